"""The conversation: messages and the persistent sequence that holds them.

A voice session can run for hours, and every transcript delta touches the newest
message. :class:`Messages` is the state's one persistent vector
(:class:`~lkstate._core.vector.Vector`, a 32-way trie of plain tuples plus a
tail) keyed by message id: replacing the newest message copies at most 32
references, finding the message a delta belongs to is a dict lookup, and
everything else is shared with the previous snapshot. See
``lkstate/_core/vector.py`` for why it is built from tuples and not
``pyrsistent``.

To the reader it is just an immutable, hashable sequence that compares equal to
the tuple of the same messages.
"""

# No ``from __future__ import annotations`` here, on purpose: ``Message`` is
# published as ``lkstate.Message``, and ``typing.get_type_hints`` resolves
# string annotations in the module ``__module__`` names, where
# ``AgentExpression`` does not live. Real annotations need no resolving, so a
# recording can nest messages in an event (``HistoryRestored``).

import enum
import json

import attrs

from .vector import Vector

__all__ = [
    "Role",
    "MessageKind",
    "DeliveryStatus",
    "MessageOrigin",
    "AgentExpression",
    "Message",
    "Messages",
    "EXPRESSION_ATTRIBUTE",
    "expression_of",
]

EXPRESSION_ATTRIBUTE = "lk.expression"
"""The stream attribute on which livekit-agents (1.8 and later) puts the expression of a turn."""

_MAX_EXPRESSION_CHARS = 200
"""An expression label longer than this is cut: it is a few words for a UI, not a text."""


class Role(enum.StrEnum):
    """Who a message comes from, as a UI would label it."""

    USER = "user"
    """The person using this session (typed chat, or the agent's transcript of their speech)."""
    AGENT = "agent"
    """An agent participant (its speech transcript, or chat it sent)."""
    PARTICIPANT = "participant"
    """Another, non-agent participant in the room (chat only). Never mislabelled as the agent."""


class MessageKind(enum.StrEnum):
    TRANSCRIPT = "transcript"
    """Speech turned into text (``lk.transcription``)."""
    CHAT = "chat"
    """Typed text (``lk.chat``)."""


class DeliveryStatus(enum.StrEnum):
    """Where a chat message typed by the user is on its way to the room."""

    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class MessageOrigin(enum.StrEnum):
    """Where a message in the state came from.

    A UI may show the three alike, or set the earlier conversation apart
    (dimmed, under a "before you joined" line); nothing else treats them
    differently, except that restored messages survive a new ``start()``.
    """

    LIVE = "live"
    """Heard in this session: a transcript or chat as it arrived, or chat the user typed."""
    AGENT_HISTORY = "agent_history"
    """From the agent's own chat history, said before the user joined (no transcript of it
    reached this session). Fetched over ``lk.agent.session`` when the agent is ready."""
    RESTORED = "restored"
    """Restored by the app from a saved :class:`~lkstate.MessageHistory` (an earlier session)."""


@attrs.frozen(slots=True)
class AgentExpression:
    """How the agent means what it says, as its own transcript reports it (``lk.expression``).

    An agent in expressive mode writes delivery markup for its TTS
    (``<expression value="warm surprise"/> Oh!``). The framework strips the
    markup from the transcript and puts the segment's leading expression on the
    transcription stream as ``{"expression": ..., "mood": ...}``: the provider's
    own words, and the mood the framework normalised them to, so a UI can pick
    a face or a colour from a small fixed set without its own keyword table.
    """

    label: str
    """The provider's words for the delivery ("soft, with genuine care")."""
    mood: str | None = None
    """The normalised mood when the agent sent one. livekit-agents 1.8 uses ``excited, happy,
    playful, curious, surprised, hopeful, empathetic, sad, angry, anxious, calm`` (``calm`` when
    nothing matched); kept as a string so a mood added by a later framework still shows."""


def expression_of(attributes: tuple[tuple[str, str], ...]) -> AgentExpression | None:
    """The expression in a stream's attributes, or ``None`` when there is none.

    The value is JSON as livekit-agents writes it; a plain string (another
    agent framework, an older draft) is taken as the label itself, so nothing
    the agent sent is lost. Pure: the reducer calls it when attributes change.
    """
    raw = next((value for key, value in attributes if key == EXPRESSION_ATTRIBUTE), None)
    if raw is None or not raw.strip():
        return None
    label: object = raw
    mood: object = None
    try:
        decoded: object = json.loads(raw)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        fields: dict[str, object] = decoded  # pyright: ignore[reportUnknownVariableType]
        label = fields.get("expression")
        mood = fields.get("mood")
        if not isinstance(label, str) or not label.strip():
            label = mood if isinstance(mood, str) else None
    if not isinstance(label, str) or not label.strip():
        return None
    return AgentExpression(
        label=label.strip()[:_MAX_EXPRESSION_CHARS],
        mood=(mood.strip()[:_MAX_EXPRESSION_CHARS] or None) if isinstance(mood, str) else None,
    )


@attrs.frozen(slots=True)
class Message:
    """One message of the conversation, as a UI shows it.

    Transcripts grow while the speaker talks: ``text`` is the text so far and
    ``final`` turns true once the speaker's side says the segment is complete.
    A final message never goes back to interim.
    """

    id: str
    """Unique within the session and stable for the message's lifetime."""
    role: Role
    kind: MessageKind
    text: str
    final: bool
    sender: str
    """Identity of the participant the message is attributed to."""
    first_seen: float
    """When the first piece of this message arrived (seconds since the epoch)."""
    updated: float
    """When the last piece arrived."""
    delivery: DeliveryStatus | None = None
    """For chat typed by the user: sending, sent or failed. ``None`` otherwise."""
    error: str | None = None
    """Why delivery failed, or why the message is incomplete, in words."""
    interrupted: bool = False
    """The speaker went away before finishing this message; ``text`` is what arrived."""
    segment_id: str | None = None
    """The transcription segment this message renders (transcripts only)."""
    stream_seq: int = 0
    """Arrival order of the stream currently feeding the text (transcripts only).

    Interim user transcripts arrive as one stream each; a stream that arrives
    later supersedes the earlier ones, so stale chunks can be ignored.
    """
    attributes: tuple[tuple[str, str], ...] = ()
    """The attributes of the stream that carried the message, as sorted ``(key, value)`` pairs.

    For transcripts: ``lk.segment_id``, ``lk.transcription_final``,
    ``lk.transcribed_track_id`` and whatever else the agent put on the header
    and the trailer (the newest stream's, once a later one supersedes it). For
    chat received: the sender's. Kept as the LiveKit JS components keep them,
    so an app can read its own conventions without lkstate knowing them.
    """
    expression: AgentExpression | None = None
    """The agent's ``lk.expression`` for this message (agent messages only), decoded."""
    origin: MessageOrigin = MessageOrigin.LIVE
    """Heard live, taken from the agent's history of what was said before the user joined,
    or restored from a saved history. The default keeps every message built before this
    field existed (and every recording) reading as live."""


class Messages(Vector[Message]):
    """An immutable, hashable sequence of :class:`Message`, ordered by first arrival.

    Compares equal to another ``Messages`` or a ``tuple`` holding equal messages
    in the same order. Updates (:meth:`appended`, :meth:`replaced`) return a new
    ``Messages`` that shares almost all of its structure with the old one;
    :meth:`get` and :meth:`position` find a message by id without a scan.
    """

    __slots__ = ()

    _key_name = "message id"

    @staticmethod
    def _key_of(value: Message) -> str:
        return value.id

    def __repr__(self) -> str:
        if self._count <= 3:
            return f"Messages({list(self)!r})"
        return f"Messages([... {self._count} messages, last={self._at(self._count - 1)!r}])"
