"""lkstate adapter for textual (see issue 6)."""
