"""lkstate for Gradio: one Session per browser tab, snapshots streamed into components.

- :class:`BrowserSessions` — a :class:`~lkstate.Session` per Gradio session hash, all on
  one shared loop thread; commands from handlers, rate-capped latest-wins snapshot streams,
  release on ``demo.unload``.
- :mod:`lkstate_gradio.app` — the web demo (``build_demo``, ``run``, ``main``).
- The render functions turn a snapshot into the page's HTML and ``gr.Chatbot`` messages.
"""

from ._render import (
    Palette,
    StatusWords,
    activity_html,
    agent_status_words,
    camera_label,
    camera_words,
    chat_message,
    chat_messages,
    microphone_label,
    problems_html,
    rpc_html,
    status_html,
    tools_html,
)
from ._sessions import DEFAULT_WEB_MAX_RATE, BrowserSessions, SessionKey, SessionLike

__all__ = [
    "BrowserSessions",
    "DEFAULT_WEB_MAX_RATE",
    "Palette",
    "SessionKey",
    "SessionLike",
    "StatusWords",
    "activity_html",
    "agent_status_words",
    "camera_label",
    "camera_words",
    "chat_message",
    "chat_messages",
    "microphone_label",
    "problems_html",
    "rpc_html",
    "status_html",
    "tools_html",
]
