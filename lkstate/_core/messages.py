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

from __future__ import annotations

import enum

import attrs

from .vector import Vector

__all__ = ["Role", "MessageKind", "DeliveryStatus", "Message", "Messages"]


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
