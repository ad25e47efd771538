"""lkstate for Textual: a session bound to an app, a widget kit, and a TUI.

::

    from textual.app import App
    from lkstate_textual import SessionBinding, StateWidget
    from lkstate_textual.widgets import AgentStatusIndicator, TranscriptView, ChatInput

    class MyApp(App):
        def __init__(self, session):
            super().__init__()
            self.binding = SessionBinding(self, session, max_rate=30)

        def compose(self):
            yield AgentStatusIndicator()
            yield TranscriptView()
            yield ChatInput()

        def on_mount(self):
            self.binding.start()
            self.binding.connect()

The session runs on the app's own asyncio loop. Snapshots reach widgets at
most ``max_rate`` times a second, always ending on the latest; each widget
re-renders only when its slice of the state changes. The ready-made client is
:mod:`lkstate_textual.app` (``python -m lkstate_textual.app --help``).
"""

from ._binding import SessionBinding, SessionLike, SessionStateChanged, StateView, StateWidget, binding_of
from ._describe import AgentDescription, describe_agent, describe_camera, describe_microphone, describe_preconnect
from .widgets import (
    AgentStatusIndicator,
    CameraNotice,
    CameraToggle,
    ChatInput,
    ConnectButton,
    MessageBubble,
    MicrophoneNotice,
    MicrophoneToggle,
    PreConnectIndicator,
    ProblemsBar,
    RpcPanel,
    SessionInfo,
    ToolCallsPanel,
    TranscriptView,
    UsagePanel,
    VoiceVisualizer,
)

__all__ = [
    "AgentDescription",
    "AgentStatusIndicator",
    "CameraNotice",
    "CameraToggle",
    "ChatInput",
    "ConnectButton",
    "MessageBubble",
    "MicrophoneNotice",
    "MicrophoneToggle",
    "PreConnectIndicator",
    "ProblemsBar",
    "RpcPanel",
    "SessionBinding",
    "SessionInfo",
    "SessionLike",
    "SessionStateChanged",
    "StateView",
    "StateWidget",
    "ToolCallsPanel",
    "TranscriptView",
    "UsagePanel",
    "VoiceVisualizer",
    "binding_of",
    "describe_agent",
    "describe_camera",
    "describe_microphone",
    "describe_preconnect",
]
