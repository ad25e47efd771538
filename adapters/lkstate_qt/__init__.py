"""lkstate for PySide6: a session on a background loop, its snapshots on the GUI thread.

::

    from lkstate import Session, token_source_from_env
    from lkstate_qt import SessionBridge, AgentStateIndicator, TranscriptView

    bridge = SessionBridge(Session(token_source_from_env(), agent_name="my-agent"))
    indicator, transcript = AgentStateIndicator(), TranscriptView()
    bridge.state_changed.connect(indicator.render_state)
    bridge.state_changed.connect(transcript.render_state)
    bridge.start()

:class:`SessionBridge` runs the session on a :class:`lkstate.LoopThread`,
delivers snapshots through a queued signal at a capped rate (latest wins),
and marshals commands back to the session's loop. The widget kit renders
slices of the state; :mod:`lkstate_qt.app` is the complete desktop client
(``python -m lkstate_qt.app --help``).
"""

from ._bridge import CommandError, SessionBridge, SessionLike
from ._compat import warn_if_known_bad_pyside
from ._style import STYLE_SHEET
from ._widgets import (
    AgentStateIndicator,
    CameraNotice,
    CameraToggle,
    ChatInput,
    ConnectButton,
    MicrophoneToggle,
    PreConnectIndicator,
    ProblemsBar,
    SessionDetails,
    StatusDot,
    RpcPanel,
    ToolCallsPanel,
    TranscriptView,
    connect_widgets,
)
from ._visualizer import VoiceVisualizer
from ._words import (
    Palette,
    StatusWords,
    agent_status_words,
    camera_words,
    message_header,
    microphone_words,
    preconnect_words,
    tool_call_words,
    usage_lines,
)

warn_if_known_bad_pyside()

__all__ = [
    "AgentStateIndicator",
    "CameraNotice",
    "CameraToggle",
    "ChatInput",
    "CommandError",
    "ConnectButton",
    "MicrophoneToggle",
    "Palette",
    "PreConnectIndicator",
    "ProblemsBar",
    "STYLE_SHEET",
    "SessionBridge",
    "SessionDetails",
    "SessionLike",
    "StatusDot",
    "StatusWords",
    "RpcPanel",
    "ToolCallsPanel",
    "TranscriptView",
    "VoiceVisualizer",
    "agent_status_words",
    "camera_words",
    "connect_widgets",
    "message_header",
    "microphone_words",
    "preconnect_words",
    "tool_call_words",
    "usage_lines",
]
