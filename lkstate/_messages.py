"""The conversation: messages and the persistent sequence that holds them.

A voice session can run for hours, and every transcript delta touches the newest
message. Copying a tuple of 10 000 messages for each delta costs tens of
microseconds and grows with the history; a snapshot per delta would make the UI
fall behind the agent. :class:`Messages` therefore keeps the messages in a
persistent vector (a 32-way trie: replacing or appending one message copies a
handful of small nodes and shares the rest with the previous snapshot) plus a
persistent map from message key to position, so finding the message a delta
belongs to is logarithmic too.

To the reader it is just an immutable, hashable sequence that compares equal to
the tuple of the same messages.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from typing import Any, overload

import attrs
from pyrsistent import PMap, PVector, pmap, pvector

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


class Messages(Sequence[Message]):
    """An immutable, hashable sequence of :class:`Message`, ordered by first arrival.

    Compares equal to another ``Messages`` or a ``tuple`` holding equal messages
    in the same order. Updates return a new ``Messages`` that shares almost all
    of its structure with the old one.
    """

    __slots__ = ("_items", "_index", "_hash")

    _items: PVector[Message]
    _index: PMap[str, int]
    _hash: int | None

    def __init__(self, messages: Sequence[Message] = ()) -> None:
        items: PVector[Message] = pvector(messages)
        index: dict[str, int] = {}
        for position, message in enumerate(items):
            if message.id in index:
                raise ValueError(f"duplicate message id {message.id!r}")
            index[message.id] = position
        self._items = items
        self._index = pmap(index)
        self._hash = None

    @classmethod
    def _make(cls, items: PVector[Message], index: PMap[str, int]) -> Messages:
        new = cls.__new__(cls)
        new._items = items
        new._index = index
        new._hash = None
        return new

    # -- reading ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Message: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Message, ...]: ...

    def __getitem__(self, index: int | slice) -> Message | tuple[Message, ...]:
        if isinstance(index, slice):
            return tuple(self._items[index])
        return self._items[index]

    def __iter__(self) -> Iterator[Message]:
        return iter(self._items)

    def __contains__(self, value: object) -> bool:
        if isinstance(value, Message):
            position = self._index.get(value.id)
            return position is not None and self._items[position] == value
        return False

    def get(self, message_id: str) -> Message | None:
        """The message with this id, or ``None``."""
        position = self._index.get(message_id)
        return None if position is None else self._items[position]

    def position(self, message_id: str) -> int | None:
        """Where the message with this id stands in the conversation, or ``None``."""
        return self._index.get(message_id)

    def last(self, count: int) -> tuple[Message, ...]:
        """The newest ``count`` messages, oldest first: what a chat view usually renders."""
        if count <= 0:
            return ()
        return tuple(self._items[-count:])

    # -- comparing -------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if isinstance(other, Messages):
            if len(self._items) != len(other._items):
                return False
            if self._hash is not None and other._hash is not None and self._hash != other._hash:
                return False
            # Updates nearly always touch the newest messages, so a difference
            # is found fastest walking back from the end.
            mine, theirs = self._items, other._items
            for position in range(len(mine) - 1, -1, -1):
                a, b = mine[position], theirs[position]
                if a is not b and a != b:
                    return False
            return True
        if isinstance(other, tuple):
            items: tuple[object, ...] = other  # pyright: ignore[reportUnknownVariableType]
            return len(items) == len(self._items) and tuple(self._items) == items
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._items))
        return self._hash

    def __repr__(self) -> str:
        if len(self._items) <= 3:
            return f"Messages({list(self._items)!r})"
        return f"Messages([... {len(self._items)} messages, last={self._items[-1]!r}])"

    def __rich_repr__(self) -> Iterator[Any]:  # pragma: no cover - cosmetic for rich/Textual
        yield "count", len(self._items)

    # -- updating (used by the reducer) ---------------------------------------

    def appended(self, message: Message) -> Messages:
        """A new sequence with ``message`` at the end. Its id must be new."""
        if message.id in self._index:
            raise ValueError(f"duplicate message id {message.id!r}")
        position = len(self._items)
        return Messages._make(self._items.append(message), self._index.set(message.id, position))

    def replaced(self, position: int, message: Message) -> Messages:
        """A new sequence with the message at ``position`` replaced by one with the same id."""
        if self._items[position].id != message.id:
            raise ValueError("a replacement must keep the message id")
        return Messages._make(self._items.set(position, message), self._index)

    def shares_structure_with(self, other: Messages) -> bool:
        """True when both sequences reuse the same stored messages for their common prefix start.

        Used by the benchmark to show that an update did not copy the history.
        """
        if not self._items or not other._items:
            return False
        return self._items[0] is other._items[0]
