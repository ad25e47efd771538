"""Events: the only way anything enters the state.

Sources (the room, the audio input, the agent's session messages, timers) and
command outcomes (a chat message delivered, a start that failed) are turned into
these small frozen records. The reducer folds them into the next snapshot and
does nothing else: no clock reads, no I/O, no randomness. Every event therefore
carries its own time (``at``, seconds since the epoch) and every identifier the
reducer needs (message ids are chosen by the command that sends, not by the
reducer).

That makes a session exactly reproducible: record the events, replay them
through the same reducer, and every snapshot comes out equal.
"""

from __future__ import annotations

import attrs

from .messages import Message
from .rpc import RpcDirection, RpcStatus
from .state import Attributes, EncryptionState, LocalTrackState, PreConnectState, TrackSource

__all__ = [
    "Event",
    "StartRequested",
    "ConnectFailed",
    "RoomConnected",
    "RoomReconnecting",
    "RoomReconnected",
    "RoomDisconnected",
    "ParticipantJoined",
    "ParticipantLeft",
    "ParticipantAttributesChanged",
    "RemoteTrackUpdated",
    "RemoteTrackRemoved",
    "TranscriptReceived",
    "TranscriptCut",
    "ChatSendRequested",
    "ChatSendSucceeded",
    "ChatSendFailed",
    "ChatReceived",
    "AgentWaitTimedOut",
    "LocalTrackChanged",
    "LocalOutputChanged",
    "EncryptionChanged",
    "PreConnectChanged",
    "AgentSessionPayload",
    "ProblemObserved",
    "ProblemsDismissed",
    "RpcMethodsChanged",
    "RpcCallStarted",
    "RpcCallFinished",
    "HistoryRestored",
    "AgentHistoryRequested",
]


@attrs.frozen(slots=True)
class StartRequested:
    """``start()`` was called: a new connection attempt begins."""

    at: float
    requested_agent: str | None = None
    keep_history: bool = False
    """Keep the previous conversation's messages instead of starting a new one."""


@attrs.frozen(slots=True)
class ConnectFailed:
    """The attempt could not join the room (token source, network, server refused…)."""

    at: float
    error: str


@attrs.frozen(slots=True)
class RoomConnected:
    at: float
    room_name: str
    local_identity: str
    server_url: str


@attrs.frozen(slots=True)
class RoomReconnecting:
    at: float


@attrs.frozen(slots=True)
class RoomReconnected:
    at: float


@attrs.frozen(slots=True)
class RoomDisconnected:
    """The room is gone. ``expected`` is true when the user ended the session."""

    at: float
    reason: str
    expected: bool


@attrs.frozen(slots=True)
class ParticipantJoined:
    """A remote participant is in the room (also emitted for those present at connect)."""

    at: float
    identity: str
    name: str
    kind: str
    attributes: Attributes = ()


@attrs.frozen(slots=True)
class ParticipantLeft:
    at: float
    identity: str


@attrs.frozen(slots=True)
class ParticipantAttributesChanged:
    """The participant's whole attribute set after a change."""

    at: float
    identity: str
    attributes: Attributes


@attrs.frozen(slots=True)
class RemoteTrackUpdated:
    """A remote track was published, subscribed, muted or unmuted: its current facts."""

    at: float
    identity: str
    sid: str
    kind: str
    source: TrackSource
    subscribed: bool
    muted: bool


@attrs.frozen(slots=True)
class RemoteTrackRemoved:
    at: float
    identity: str
    sid: str


@attrs.frozen(slots=True)
class TranscriptReceived:
    """A piece of a transcription segment arrived on ``lk.transcription``.

    ``text`` continues stream ``stream_seq`` of the segment. A stream that
    arrived later than the one currently shown (higher ``stream_seq``) starts
    the text over (user interim results are one full-text stream each); chunks
    of an older stream are stale and ignored. ``final`` is true when the stream
    header or trailer says the segment is complete; ``closed`` marks the end of
    the stream.

    ``attributes`` are the stream's attributes, sent with the first piece (the
    header's) and with the close (header and trailer merged); the pieces in
    between leave them empty, which means "unchanged", so a long reply does
    not repeat them in every event of a recording.
    """

    at: float
    sender: str
    segment_id: str
    stream_seq: int
    text: str
    final: bool = False
    closed: bool = False
    attributes: Attributes = ()


@attrs.frozen(slots=True)
class TranscriptCut:
    """Stream ``stream_seq`` of a transcription segment broke before its trailer.

    Our own reconnect breaks the stream carrying the agent's words, and the
    rest of them never arrive on it. The agent also reports each finished
    utterance on ``lk.agent.session``: the reducer remembers the cut message
    and completes it from that report (see ``SessionState.cut_transcripts``),
    so the completion is a fold of recorded events and replays. Only streams
    that delivered words, were not cut for size and did not say final in
    their header are reported.
    """

    at: float
    sender: str
    segment_id: str
    stream_seq: int


@attrs.frozen(slots=True)
class ChatSendRequested:
    """The user typed ``text``; it is shown at once with delivery ``sending``."""

    at: float
    message_id: str
    text: str
    sender: str


@attrs.frozen(slots=True)
class ChatSendSucceeded:
    at: float
    message_id: str


@attrs.frozen(slots=True)
class ChatSendFailed:
    at: float
    message_id: str
    error: str


@attrs.frozen(slots=True)
class ChatReceived:
    """Another participant sent chat on ``lk.chat``, with its stream's attributes."""

    at: float
    sender: str
    stream_id: str
    text: str
    attributes: Attributes = ()


@attrs.frozen(slots=True)
class AgentWaitTimedOut:
    """The agent connect timeout elapsed while no agent was ready."""

    at: float
    timeout: float


@attrs.frozen(slots=True)
class LocalTrackChanged:
    """The local microphone, camera or screen share changed; carries its whole new state."""

    at: float
    source: TrackSource
    track: LocalTrackState


@attrs.frozen(slots=True)
class LocalOutputChanged:
    """Playback of the agent's voice changed; carries the speaker's whole new state."""

    at: float
    speaker: LocalTrackState


@attrs.frozen(slots=True)
class EncryptionChanged:
    """End-to-end encryption changed (turned on, a key that does not match…); carries its whole new state."""

    at: float
    encryption: EncryptionState


@attrs.frozen(slots=True)
class PreConnectChanged:
    """The pre-connect buffer changed; carries its whole new state."""

    at: float
    preconnect: PreConnectState


@attrs.frozen(slots=True)
class AgentSessionPayload:
    """One message received on ``lk.agent.session`` from the tracked agent, kept as raw bytes.

    Keeping the bytes (rather than a decoded form) makes recordings faithful to
    the wire; decoding is a pure function the reducer applies.
    """

    at: float
    sender: str
    payload: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")


@attrs.frozen(slots=True)
class ProblemObserved:
    """Something was refused or went wrong; the session carried on."""

    at: float
    source: str
    message: str


@attrs.frozen(slots=True)
class ProblemsDismissed:
    """The user acknowledged the problems shown; they are cleared from the state."""

    at: float


@attrs.frozen(slots=True)
class RpcMethodsChanged:
    """The app registered or unregistered an RPC method; carries the whole new set."""

    at: float
    methods: tuple[str, ...]


@attrs.frozen(slots=True)
class RpcCallStarted:
    """An RPC call was made (outgoing) or arrived (incoming).

    ``request`` is the payload only when payloads are kept for this method or call.
    """

    at: float
    call_id: str
    direction: RpcDirection
    method: str
    caller: str
    callee: str
    request: str | None = None


@attrs.frozen(slots=True)
class RpcCallFinished:
    """An RPC call came to its end: answered, failed, refused or timed out."""

    at: float
    call_id: str
    status: RpcStatus
    error: str | None = None
    error_code: int | None = None
    response: str | None = None


@attrs.frozen(slots=True)
class HistoryRestored:
    """The app restored a saved conversation: ``messages`` go before everything else, marked restored.

    They replace the messages an earlier restore put there; live messages and
    the agent's history stay. The messages travel whole in the event (not a
    file name, not JSON to parse later), so the reducer stays pure and a
    recording replays the restore exactly. A history is checked before this
    event is made (:class:`~lkstate.MessageHistory`); the reducer still never
    raises on one made by hand.
    """

    at: float
    messages: tuple[Message, ...]


@attrs.frozen(slots=True)
class AgentHistoryRequested:
    """The session asked ``agent`` for its chat history, with request ``request_id``.

    The answer is an :class:`AgentSessionPayload` like anything else the agent
    sends; the reducer merges the one answering ``request_id`` (see
    ``SessionState.agent_history``).
    """

    at: float
    agent: str
    request_id: str


Event = (
    StartRequested
    | ConnectFailed
    | RoomConnected
    | RoomReconnecting
    | RoomReconnected
    | RoomDisconnected
    | ParticipantJoined
    | ParticipantLeft
    | ParticipantAttributesChanged
    | RemoteTrackUpdated
    | RemoteTrackRemoved
    | TranscriptReceived
    | TranscriptCut
    | ChatSendRequested
    | ChatSendSucceeded
    | ChatSendFailed
    | ChatReceived
    | AgentWaitTimedOut
    | LocalTrackChanged
    | LocalOutputChanged
    | EncryptionChanged
    | PreConnectChanged
    | AgentSessionPayload
    | ProblemObserved
    | ProblemsDismissed
    | RpcMethodsChanged
    | RpcCallStarted
    | RpcCallFinished
    | HistoryRestored
    | AgentHistoryRequested
)
"""Every event the reducer understands."""
