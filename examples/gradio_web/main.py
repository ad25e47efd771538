"""The Gradio web demo: talk to a LiveKit agent from your browser.

Against the local development server and the example agent (``lkstate demo``
starts both), or any deployment::

    python examples/gradio_web/main.py --url ws://127.0.0.1:7880 --api-key devkey --api-secret secret
    python examples/gradio_web/main.py --token-endpoint https://example.com/token
    LIVEKIT_URL=... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... python examples/gradio_web/main.py

then open http://127.0.0.1:7860/ (``--port``), press Connect and type. Every
browser tab is its own conversation. ``--help`` lists every flag.

The app itself lives in :mod:`lkstate_gradio.app` so that it can be imported
(``lkstate demo`` does); this file only runs it.
"""

from __future__ import annotations

from lkstate_gradio.app import main

if __name__ == "__main__":
    main()
