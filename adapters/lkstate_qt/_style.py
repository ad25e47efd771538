"""The kit's look: one Qt style sheet, applied to a window (or the whole app).

The widgets set only what depends on the state (status colours, interim
styling) themselves; everything else — cards, buttons, inputs — is here, so
an app can restyle the kit by applying its own sheet instead.
"""

from __future__ import annotations

from lkstate.ui import Tone

from ._words import Palette

__all__ = ["STYLE_SHEET"]

STYLE_SHEET = f"""
QMainWindow, #Central {{ background: #f3f4f6; }}
#Header, #SideCard, #RpcPanel, #Composer {{
    background: white; border: 1px solid {Palette.BORDER}; border-radius: 10px;
}}
#TranscriptCard {{ background: #f9fafb; border: 1px solid {Palette.BORDER}; border-radius: 10px; }}
#TranscriptView, #TranscriptContent {{ background: #f9fafb; border: none; }}
#SidePanel, #SideContent {{ background: transparent; border: none; }}
#PanelTitle {{ font-weight: bold; color: #374151; font-size: 13px; }}
#AppName {{ color: {Palette.MUTED}; font-size: 11px; font-weight: bold; letter-spacing: 1px; }}
QPushButton {{
    padding: 6px 14px; border-radius: 6px; border: 1px solid #d1d5db; background: white; color: {Palette.TEXT};
}}
QPushButton:hover {{ background: #f9fafb; border-color: #9ca3af; }}
QPushButton:disabled {{ color: #9ca3af; background: #f3f4f6; border-color: {Palette.BORDER}; }}
QPushButton[role="primary"], #SendButton {{ background: {Tone.SPEAKING.colour}; color: white; border-color: {Tone.SPEAKING.colour}; }}
QPushButton[role="primary"]:hover, #SendButton:hover {{ background: #1d4ed8; }}
#SendButton:disabled {{ background: #93c5fd; border-color: #93c5fd; color: white; }}
QPushButton[role="danger"] {{ color: {Tone.ERROR.colour}; border-color: #fca5a5; }}
QPushButton[role="danger"]:hover {{ background: #fef2f2; }}
#MicrophoneToggle, #CameraToggle {{ font-weight: bold; }}
QLineEdit {{
    padding: 7px 10px; border: 1px solid #d1d5db; border-radius: 6px; background: white; color: {Palette.TEXT};
    font-size: 14px;
}}
QLineEdit:focus {{ border-color: {Tone.SPEAKING.colour}; }}
QLineEdit:disabled {{ background: #f3f4f6; }}
QStatusBar {{ color: {Palette.MUTED}; }}
QSplitter::handle {{ background: transparent; }}
QScrollBar:vertical {{ background: transparent; width: 10px; margin: 2px; }}
QScrollBar::handle:vertical {{ background: #d1d5db; border-radius: 4px; min-height: 24px; }}
QScrollBar::add-line:vertical, QScrollBar::sub-line:vertical {{ height: 0; }}
QToolTip {{ color: {Palette.TEXT}; background: white; border: 1px solid {Palette.BORDER}; }}
"""
