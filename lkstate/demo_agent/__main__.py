"""``python -m lkstate.demo_agent``: run the demo agent worker."""

from __future__ import annotations

import sys

from .agent import main

if __name__ == "__main__":
    sys.exit(main())
