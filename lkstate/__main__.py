"""``python -m lkstate``: the same as the ``lkstate`` command."""

from ._cli import main

raise SystemExit(main())
