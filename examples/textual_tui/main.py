"""The lkstate terminal client: talk to a LiveKit voice agent from a terminal.

    python examples/textual_tui/main.py --url ws://127.0.0.1:7880 --agent-name lkstate-demo

The app itself lives in the installed package, as ``lkstate_textual.app``, so
``lkstate demo`` can start it too; this file is the one-command entry point.
``--help`` lists the flags; see README.md beside this file.
"""

from __future__ import annotations

from lkstate_textual.app import main

if __name__ == "__main__":
    raise SystemExit(main())
