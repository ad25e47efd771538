"""lkstate adapter for qt (see issue 6)."""
