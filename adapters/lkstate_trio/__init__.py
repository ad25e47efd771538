"""lkstate adapter for trio (see issue 6)."""
