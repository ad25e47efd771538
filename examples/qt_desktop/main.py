"""The lkstate PySide6 desktop client.

    python examples/qt_desktop/main.py --url ws://127.0.0.1:7880 \
        --api-key devkey --api-secret secret --agent-name lkstate-demo

Flags and environment variables: see ``--help`` or :mod:`lkstate_qt.app`.
The app's code lives in the installed ``lkstate_qt.app`` module.
"""

from __future__ import annotations

from lkstate_qt.app import main

if __name__ == "__main__":
    raise SystemExit(main())
