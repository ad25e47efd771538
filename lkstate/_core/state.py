"""The snapshot: everything a voice-agent UI shows, as one frozen value.

:class:`SessionState` is what a front end renders. It is immutable, hashable and
cheap to compare: the reducer builds each new snapshot from the previous one,
reusing every part an event did not touch, so a widget that watches only
``state.agent`` can skip work with a plain ``==`` (or even ``is``).

Problems are part of the state. A failed connection, an agent that never came,
a garbage message on a topic: each appears here in words a person understands,
next to everything that was already received.
"""

from __future__ import annotations

import enum

import attrs

from .messages import AgentExpression, Messages
from .remote_state import RemoteSessionState
from .rpc import RpcState

__all__ = [
    "ConnectionStatus",
    "ConnectionState",
    "EncryptionState",
    "AgentStatus",
    "AgentFailure",
    "RemoteParticipant",
    "RemoteTrack",
    "AgentState",
    "TrackSource",
    "LocalTrackState",
    "LocalMedia",
    "PreConnectStatus",
    "PreConnectState",
    "Problem",
    "AgentHistoryState",
    "SessionState",
    "Attributes",
]

Attributes = tuple[tuple[str, str], ...]
"""Participant attributes as sorted ``(key, value)`` pairs: hashable and order-independent."""


def attributes_of(mapping: dict[str, str] | None) -> Attributes:
    """Attributes in the canonical form the state keeps (sorted pairs)."""
    if not mapping:
        return ()
    return tuple(sorted(mapping.items()))


def attribute(attributes: Attributes, key: str) -> str | None:
    """The value of one attribute, or ``None``."""
    for k, v in attributes:
        if k == key:
            return v
    return None


# -- connection -----------------------------------------------------------------


class ConnectionStatus(enum.StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"


@attrs.frozen(slots=True)
class EncryptionState:
    """Whether the session's media and data are end-to-end encrypted, and what stops it, in words.

    End-to-end encryption means the LiveKit server relays what it cannot read:
    only participants with the same key can. Turned on with
    ``Session(..., encryption=key)``. A participant with another key, or with
    none, cannot be heard — and hears only noise from us — so a mismatch is
    said in :attr:`error`, in words a person can act on.
    """

    enabled: bool = False
    """Encryption is on now: what the session publishes is encrypted, what it receives is decrypted."""
    media: bool = False
    """Its audio and video tracks are end-to-end encrypted (frame encryption, AES-GCM)."""
    data: bool = False
    """Its text and byte streams — chat, transcripts, the agent-session messages — are too
    (with a key, also while ``enabled`` is turned off: the SDK keeps encrypting them)."""
    error: str | None = None
    """Why someone's media cannot be read (a wrong or missing key), or ``None`` when all is well."""
    failing: tuple[str, ...] = ()
    """Identities whose media cannot be decrypted (or, without a key, arrive encrypted)."""
    has_key: bool = False
    """The session was built with a key, so ``session.set_encryption_enabled()`` can turn encryption
    on and off; ``enabled`` is ``False`` with a key only while it is turned off."""


@attrs.frozen(slots=True)
class ConnectionState:
    """The room connection as the user would describe it."""

    status: ConnectionStatus = ConnectionStatus.DISCONNECTED
    room_name: str | None = None
    local_identity: str | None = None
    server_url: str | None = None
    error: str | None = None
    """The last error, in words, until the next start (e.g. the token endpoint failed)."""
    disconnect_reason: str | None = None
    """Why the room was left, in words (``None`` while connected or never connected)."""
    attempt: int = 0
    """How many times ``start()`` was called on this session."""
    since: float | None = None
    """When ``status`` last changed (seconds since the epoch)."""
    encryption: EncryptionState = EncryptionState()
    """End-to-end encryption: on or off, for media and data, and a wrong or missing key in words."""

    @property
    def is_connected(self) -> bool:
        return self.status is ConnectionStatus.CONNECTED


# -- participants and the agent -------------------------------------------------


class TrackSource(enum.StrEnum):
    MICROPHONE = "microphone"
    CAMERA = "camera"
    SCREEN_SHARE = "screen_share"
    SCREEN_SHARE_AUDIO = "screen_share_audio"
    UNKNOWN = "unknown"


@attrs.frozen(slots=True)
class RemoteTrack:
    sid: str
    kind: str
    """``"audio"`` or ``"video"``."""
    source: TrackSource
    subscribed: bool = False
    muted: bool = False


@attrs.frozen(slots=True)
class RemoteParticipant:
    """A participant in the room other than the user, as the state knows it."""

    identity: str
    name: str
    kind: str
    """``"agent"``, ``"standard"``, ``"sip"``, ``"ingress"``, ``"egress"`` or ``"connector"``."""
    attributes: Attributes = ()
    tracks: tuple[RemoteTrack, ...] = ()
    joined_seq: int = 0
    """Order of arrival among participants seen this session (earlier is smaller)."""
    joined_at: float = 0.0
    ready_once: bool = False
    """For agents: it has been listening, thinking or speaking at least once."""

    @property
    def is_agent_kind(self) -> bool:
        return self.kind == "agent"

    @property
    def publish_on_behalf(self) -> str | None:
        return attribute(self.attributes, "lk.publish_on_behalf")

    @property
    def is_agent(self) -> bool:
        """An agent proper: kind AGENT and not publishing on another's behalf (an avatar)."""
        return self.kind == "agent" and not self.publish_on_behalf

    @property
    def is_avatar(self) -> bool:
        return self.kind == "agent" and bool(self.publish_on_behalf)

    def has_track(self, kind: str, *, subscribed: bool = True) -> bool:
        return any(t.kind == kind and (t.subscribed or not subscribed) and not t.muted for t in self.tracks)


class AgentStatus(enum.StrEnum):
    """The agent as a UI shows it: lifecycle around the agent's own ``lk.agent.state``."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    PRE_CONNECT_BUFFERING = "pre-connect-buffering"
    INITIALIZING = "initializing"
    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    FAILED = "failed"


AGENT_WIRE_STATES: frozenset[str] = frozenset({"initializing", "idle", "listening", "thinking", "speaking"})
READY_WIRE_STATES: frozenset[str] = frozenset({"listening", "thinking", "speaking"})


class AgentFailure(enum.StrEnum):
    """Why the agent is ``failed``. Not terminal: an agent that shows up later recovers it."""

    DID_NOT_JOIN = "did-not-join"
    NEVER_READY = "never-ready"
    LEFT = "left"


@attrs.frozen(slots=True)
class AgentState:
    """The agent the user talks to, merged with its avatar worker if it has one."""

    status: AgentStatus = AgentStatus.DISCONNECTED
    failure: AgentFailure | None = None
    failure_reasons: tuple[str, ...] = ()
    """Why the agent is ``failed``, in words. Empty unless ``status`` is failed."""
    identity: str | None = None
    name: str | None = None
    """The agent's ``lk.agent.name`` (or participant name)."""
    attributes: Attributes = ()
    audio_available: bool = False
    """The agent's voice can be played (its own or its avatar's audio track is subscribed)."""
    video_available: bool = False
    """The agent has a face: a camera track of its own or of its avatar worker."""
    avatar_identity: str | None = None
    unknown_state: str | None = None
    """An ``lk.agent.state`` value this library does not know, kept for display."""
    agents: tuple[RemoteParticipant, ...] = ()
    """Every agent participant present (avatars included), primary first."""
    expression: AgentExpression | None = None
    """How the agent delivers its current turn (``lk.expression`` of its newest transcript):
    what a face or a colour in the UI can follow. ``None`` when that turn carries none."""

    @property
    def state(self) -> str:
        """The status as its string value: ``"listening"``, ``"failed"``…"""
        return self.status.value

    @property
    def can_listen(self) -> bool:
        """Speech reaches the agent now: it is listening, thinking or speaking, or audio is being buffered."""
        return self.status in _CAN_LISTEN

    @property
    def is_pending(self) -> bool:
        """Waiting for the agent: connecting, initializing or idle."""
        return self.status in _PENDING

    @property
    def is_finished(self) -> bool:
        """Nothing more will happen without action: disconnected or failed."""
        return self.status in _FINISHED

    @property
    def is_ready(self) -> bool:
        """The agent is present and in a conversational state (listening, thinking, speaking)."""
        return self.status in _READY

    @property
    def is_connected(self) -> bool:
        return self.identity is not None


_CAN_LISTEN = frozenset(
    {AgentStatus.PRE_CONNECT_BUFFERING, AgentStatus.LISTENING, AgentStatus.THINKING, AgentStatus.SPEAKING}
)
_PENDING = frozenset({AgentStatus.CONNECTING, AgentStatus.INITIALIZING, AgentStatus.IDLE})
_FINISHED = frozenset({AgentStatus.DISCONNECTED, AgentStatus.FAILED})
_READY = frozenset({AgentStatus.LISTENING, AgentStatus.THINKING, AgentStatus.SPEAKING})


# -- local media ----------------------------------------------------------------


@attrs.frozen(slots=True)
class LocalTrackState:
    """One local source (microphone, camera, screen share) as the user controls it."""

    enabled: bool = False
    """The user wants it on."""
    published: bool = False
    """It is published in the room."""
    muted: bool = False
    track_sid: str | None = None
    device: str | None = None
    """What feeds it: a device name, a file, a generator."""
    error: str | None = None
    """Why it is not working, in words (no device, no permission…)."""


@attrs.frozen(slots=True)
class LocalMedia:
    microphone: LocalTrackState = LocalTrackState()
    camera: LocalTrackState = LocalTrackState()
    screen_share: LocalTrackState = LocalTrackState()
    speaker: LocalTrackState = LocalTrackState()
    """Playback of the agent's voice: ``enabled`` the user wants to hear it, ``published``
    it is playing now (``track_sid`` is the agent's track), ``device`` the output's name,
    ``error`` why it cannot play (no speaker…)."""


# -- pre-connect audio ----------------------------------------------------------


class PreConnectStatus(enum.StrEnum):
    IDLE = "idle"
    RECORDING = "recording"
    SENDING = "sending"
    SENT = "sent"
    EXPIRED = "expired"
    FAILED = "failed"


@attrs.frozen(slots=True)
class PreConnectState:
    """Audio captured before the agent was ready, and where it went."""

    status: PreConnectStatus = PreConnectStatus.IDLE
    seconds: float = 0.0
    bytes: int = 0
    destination: str | None = None
    """The agent identity the buffer was (or is being) sent to."""
    detail: str | None = None
    """What happened, in words (why it expired or failed, overflow…)."""


# -- problems -------------------------------------------------------------------


@attrs.frozen(slots=True)
class Problem:
    """Something went wrong that the user may want to know about; the session carried on."""

    at: float
    source: str
    """Where it came from: ``"connection"``, ``"lk.transcription"``, a participant identity…"""
    message: str


# -- the agent's history --------------------------------------------------------


@attrs.frozen(slots=True)
class AgentHistoryState:
    """Where fetching the agent's record of what was said before the user joined stands.

    When the agent is ready, the session asks its session host for the chat
    history (``get_chat_history`` on ``lk.agent.session``) and the reducer
    merges the answer: the utterances no transcript brought become messages
    with ``origin`` ``agent_history``, before the live ones (the docs' "Message
    history" guide gives the rule). The request's id is here
    because the answer comes back like any other message from the agent, and
    the reducer must know which answer to merge — which also makes the merge
    part of a recording, replayed exactly.
    """

    request_id: str | None = None
    """The request whose answer will be merged; ``None`` when none is awaited."""
    agent: str | None = None
    """The agent asked."""
    fetched: int = 0
    """How many answers were merged in this conversation."""
    added: int = 0
    """How many messages they added, in all."""
    unknown_items: int = 0
    """Items of kinds this version cannot read that the answers held (left out)."""
    merged_at: float | None = None
    """When the last answer was merged."""
    since: float | None = None
    """When this connection attempt started (``start()``): only messages heard since are compared
    with the agent's record, so a conversation kept from an earlier room
    (``keep_history_on_restart``) is never taken for this agent's."""


# -- the snapshot ---------------------------------------------------------------


@attrs.frozen(slots=True)
class SessionState:
    """Everything about the session a UI needs, in one immutable value."""

    connection: ConnectionState = ConnectionState()
    agent: AgentState = AgentState()
    messages: Messages = attrs.field(factory=Messages)
    local_media: LocalMedia = LocalMedia()
    preconnect: PreConnectState = PreConnectState()
    remote: RemoteSessionState = attrs.field(factory=RemoteSessionState)
    """The agent's own session events from ``lk.agent.session``: user state, conversation
    items with metrics, tool calls, handoffs, usage, agent-reported errors."""
    participants: tuple[RemoteParticipant, ...] = ()
    """Every remote participant in the room, in order of arrival."""
    rpc: RpcState = RpcState()
    """RPC between the app and the agent: the methods the app answers and recent calls both ways."""
    problems: tuple[Problem, ...] = ()
    """Recent problems, oldest first (bounded by ``Limits.max_problems``)."""
    requested_agent: str | None = None
    """The agent name this session asked to dispatch, if any; preferred as the primary agent."""
    participant_seq: int = 0
    """How many participants have been seen; gives each a deterministic arrival order."""
    cut_transcripts: tuple[str, ...] = ()
    """Ids of the agent's transcripts whose stream broke before its end, oldest first (a few at most).

    Each waits for the agent's own record of the utterance on
    ``lk.agent.session`` to complete it; see :class:`~lkstate.lowlevel.events.TranscriptCut`.
    """
    agent_history: AgentHistoryState = AgentHistoryState()
    """Fetching the agent's record of the conversation from before the user joined."""
    updated_at: float = 0.0
    """Time of the last event that changed this snapshot."""
