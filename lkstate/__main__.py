"""``python -m lkstate``: the same as the ``lkstate`` command."""

from ._tooling.cli import main

raise SystemExit(main())
