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

from ._media.audio import AudioInput, GeneratorInput, MicrophoneInput, WavFileInput, default_audio_input
from ._core.crosscheck import AgentStateCheck, check_agent_state
from ._core.options import PreConnectLimits
from ._session.recording import Recorder, RecordingHeader, Replay, read_recording, record
from ._wire.remote_client import AgentInfo, AgentSessionInfo, FrameworkInfo, RemoteSessionClient, RtcStats
from ._core.remote_state import (
    AgentConfigUpdateItem,
    AgentHandoffItem,
    ConversationItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    LLMUsage,
    MessageItem,
    MessageMetrics,
    RemoteSessionState,
    SessionUsage,
    STTUsage,
    ToolCall,
    TTSUsage,
)
from ._media.speaker import AgentVoice, AudioOutput, SpeakerOutput, WavFileOutput, agent_voice, default_audio_output
from ._media.video import PATTERN_COLOURS, CameraInput, PatternVideoInput, VideoGeneratorInput, VideoInput
from ._core.timeline import TimelineBuilder, TimelineEntry, timeline
from ._wire.tokens_env import token_source_from_env
from ._core.delivery import DEFAULT_MAX_RATE, FrameLimiter, Mailbox, latest_states
from ._core.errors import (
    AgentUnavailableError,
    AudioInputError,
    AudioOutputError,
    ConnectionFailedError,
    DevServerError,
    LkstateError,
    RecordingError,
    RemoteSessionError,
    ReplayReadOnlyError,
    RequestTimeoutError,
    SessionClosedError,
    TokenSourceError,
    VideoInputError,
)
from ._session.loop_thread import LoopThread
from ._core.messages import DeliveryStatus, Message, MessageKind, Messages, Role
from ._core.options import Limits, SessionOptions
from ._core.reducer import reduce
from ._session.session import Session
from ._core.state import (
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
from ._core.store import Store
from ._wire.tokens import (
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
    "agent_voice",
    "AgentConfigUpdateItem",
    "AgentFailure",
    "AgentHandoffItem",
    "AgentInfo",
    "AgentSessionInfo",
    "AgentState",
    "AgentStateCheck",
    "AgentStatus",
    "AgentUnavailableError",
    "AgentVoice",
    "AudioInput",
    "AudioInputError",
    "AudioOutput",
    "AudioOutputError",
    "CameraInput",
    "check_agent_state",
    "ConnectionFailedError",
    "ConnectionState",
    "ConnectionStatus",
    "ConversationItem",
    "Credentials",
    "CustomTokenSource",
    "decode_claims",
    "default_audio_input",
    "default_audio_output",
    "DEFAULT_MAX_RATE",
    "DeliveryStatus",
    "DevelopmentTokenSource",
    "DevServerError",
    "EndpointTokenSource",
    "FrameLimiter",
    "FrameworkInfo",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "GeneratorInput",
    "latest_states",
    "Limits",
    "LiteralTokenSource",
    "LkstateError",
    "LLMUsage",
    "LocalMedia",
    "LocalTrackState",
    "LoopThread",
    "Mailbox",
    "Message",
    "MessageItem",
    "MessageKind",
    "MessageMetrics",
    "Messages",
    "MicrophoneInput",
    "PATTERN_COLOURS",
    "PatternVideoInput",
    "PreConnectLimits",
    "PreConnectState",
    "PreConnectStatus",
    "Problem",
    "read_recording",
    "record",
    "Recorder",
    "RecordingError",
    "RecordingHeader",
    "reduce",
    "RemoteParticipant",
    "RemoteSessionClient",
    "RemoteSessionError",
    "RemoteSessionState",
    "RemoteTrack",
    "Replay",
    "ReplayReadOnlyError",
    "RequestTimeoutError",
    "Role",
    "RtcStats",
    "Session",
    "SessionClosedError",
    "SessionOptions",
    "SessionState",
    "SessionUsage",
    "SpeakerOutput",
    "Store",
    "STTUsage",
    "timeline",
    "TimelineBuilder",
    "TimelineEntry",
    "token_source_from_env",
    "TokenClaims",
    "TokenRequest",
    "TokenSource",
    "TokenSourceError",
    "ToolCall",
    "TrackSource",
    "TTSUsage",
    "VideoGeneratorInput",
    "VideoInput",
    "VideoInputError",
    "WavFileInput",
    "WavFileOutput",
]
