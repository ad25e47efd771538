"""lkstate adapter for gradio (see issue 6)."""
