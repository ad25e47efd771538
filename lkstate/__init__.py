"""lkstate: a LiveKit voice-agent session as one reactive, immutable UI state.

::

    from lkstate import Session, DevelopmentTokenSource

    session = Session(DevelopmentTokenSource(url, api_key, api_secret), agent_name="my-agent")
    session.states.subscribe(lambda state: print(state.agent.state, len(state.messages)))
    async with session:
        await session.send_text("Hello!")

Everything a UI needs is in :class:`SessionState`; it only changes through a
pure reducer fed by typed events, so sessions can be recorded and replayed.

This module holds what an app needs. The rest sits in public tiers:
:mod:`lkstate.media` (devices, cameras, the agent's voice),
:mod:`lkstate.tokens` (token requests and claims),
:mod:`lkstate.agent_session` (the agent's remote-session events and requests),
:mod:`lkstate.recording` (record and replay), :mod:`lkstate.errors`,
:mod:`lkstate.ui` (what front-end adapters use), :mod:`lkstate.apps` (the
example apps' flags) and :mod:`lkstate.lowlevel` (store, reducer, events).
"""

from ._core.exports import publish as _publish
from ._core.history import MessageHistory
from ._core.messages import DeliveryStatus, Message, MessageKind, MessageOrigin, Messages, Role
from ._core.options import Limits, PreConnectLimits, SessionOptions
from ._core.state import (
    AgentFailure,
    AgentState,
    AgentStatus,
    ConnectionState,
    ConnectionStatus,
    EncryptionState,
    LocalMedia,
    LocalTrackState,
    PreConnectState,
    PreConnectStatus,
    Problem,
    RemoteParticipant,
    RemoteTrack,
    SessionState,
    TrackSource,
)
from ._media.audio import AudioInput, GeneratorInput, WavFileInput
from ._media.speaker import AudioOutput, WavFileOutput
from ._session.loop_thread import LoopThread
from ._session.session import Session
from ._wire.tokens import (
    CustomTokenSource,
    DevelopmentTokenSource,
    EndpointTokenSource,
    LiteralTokenSource,
    TokenSource,
)
from ._wire.tokens_env import token_source_from_env

__all__ = [
    "AgentFailure",
    "AgentState",
    "AgentStatus",
    "AudioInput",
    "AudioOutput",
    "ConnectionState",
    "ConnectionStatus",
    "CustomTokenSource",
    "DeliveryStatus",
    "DevelopmentTokenSource",
    "EncryptionState",
    "EndpointTokenSource",
    "GeneratorInput",
    "Limits",
    "LiteralTokenSource",
    "LocalMedia",
    "LocalTrackState",
    "LoopThread",
    "Message",
    "MessageHistory",
    "MessageKind",
    "MessageOrigin",
    "Messages",
    "PreConnectLimits",
    "PreConnectState",
    "PreConnectStatus",
    "Problem",
    "RemoteParticipant",
    "RemoteTrack",
    "Role",
    "Session",
    "SessionOptions",
    "SessionState",
    "TokenSource",
    "TrackSource",
    "WavFileInput",
    "WavFileOutput",
    "token_source_from_env",
]

_publish(__name__, globals(), __all__)
