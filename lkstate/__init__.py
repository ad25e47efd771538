"""lkstate: a LiveKit voice-agent session as one reactive, immutable UI state.

::

    from lkstate import Session, DevelopmentTokenSource

    session = Session(DevelopmentTokenSource(url, api_key, api_secret), agent_name="my-agent")
    session.states.subscribe(lambda state: print(state.agent.state, len(state.messages)))
    async with session:
        await session.send_text("Hello!")

Everything a UI needs is in :class:`SessionState`; it only changes through a
pure reducer fed by typed events, so sessions can be recorded and replayed.
"""

from ._config import token_source_from_env
from ._delivery import DEFAULT_MAX_RATE, FrameLimiter, Mailbox, latest_states
from ._errors import (
    AgentUnavailableError,
    AudioInputError,
    ConnectionFailedError,
    LkstateError,
    RemoteSessionError,
    RequestTimeoutError,
    SessionClosedError,
    TokenSourceError,
)
from ._loop_thread import LoopThread
from ._messages import DeliveryStatus, Message, MessageKind, Messages, Role
from ._options import Limits, SessionOptions
from ._reducer import reduce
from ._session import Session
from ._state import (
    AgentFailure,
    AgentState,
    AgentStatus,
    ConnectionState,
    ConnectionStatus,
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
from ._store import Store
from ._tokens import (
    Credentials,
    CustomTokenSource,
    DevelopmentTokenSource,
    EndpointTokenSource,
    LiteralTokenSource,
    TokenClaims,
    TokenRequest,
    TokenSource,
    decode_claims,
)

__all__ = [
    "AgentFailure",
    "AgentState",
    "AgentStatus",
    "AgentUnavailableError",
    "AudioInputError",
    "ConnectionFailedError",
    "ConnectionState",
    "ConnectionStatus",
    "Credentials",
    "CustomTokenSource",
    "DeliveryStatus",
    "DevelopmentTokenSource",
    "EndpointTokenSource",
    "Limits",
    "LiteralTokenSource",
    "LkstateError",
    "LocalMedia",
    "LocalTrackState",
    "LoopThread",
    "Message",
    "MessageKind",
    "Messages",
    "PreConnectState",
    "PreConnectStatus",
    "Problem",
    "RemoteParticipant",
    "RemoteSessionError",
    "RemoteTrack",
    "RequestTimeoutError",
    "Role",
    "Session",
    "SessionClosedError",
    "SessionOptions",
    "SessionState",
    "Store",
    "TokenClaims",
    "TokenRequest",
    "TokenSource",
    "TokenSourceError",
    "TrackSource",
    "decode_claims",
    "token_source_from_env",
    "latest_states",
    "FrameLimiter",
    "Mailbox",
    "DEFAULT_MAX_RATE",
    "reduce",
]
