"""The conversation: messages and the persistent sequence that holds them.

A voice session can run for hours, and every transcript delta touches the newest
message. Copying a tuple of 10 000 messages for each delta costs tens of
microseconds and grows with the history; a snapshot per delta would make the UI
fall behind the agent. :class:`Messages` therefore keeps the messages in a
persistent vector: a 32-way trie of plain tuples plus a tail tuple holding the
newest messages. Replacing the newest message copies the tail (at most 32
references); appending copies the tail too, and once every 32 messages a
handful of small nodes along one path. Everything else is shared with the
previous snapshot.

Why plain tuples, and not ``pyrsistent.pvector``: the C vector reports every
element it holds to the garbage collector each time a *new* vector is young,
and every update makes a new one. CPython's youngest-generation collection
runs every few hundred allocations, so with a 100 000-message history each of
those collections walked all 100 000 messages — an O(n) pause every hundred
deltas, which decided the p99 and made building a long history quadratic.
A tuple node shows the collector only its own 32 children.

Finding the message a delta belongs to goes through an index from message id
to position. Ids are only ever appended (a replacement keeps its id, nothing
is removed), so snapshots of one history share one append-only dict: a
snapshot of ``n`` messages ignores the entries at positions ``n`` and later,
which belong to its descendants. Only appending to an older snapshot (a branch,
as a replay from an earlier point does) copies the index, once.

To the reader it is just an immutable, hashable sequence that compares equal to
the tuple of the same messages.
"""

from __future__ import annotations

import enum
import itertools
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import attrs

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


_BITS = 5
_WIDTH = 1 << _BITS
_MASK = _WIDTH - 1

# A node is a tuple: of messages at level 0 (a leaf), of nodes above. Typed
# loosely on purpose; the vector's methods are the only readers.
_Node = tuple[Any, ...]


def _new_path(level: int, node: _Node) -> _Node:
    """``node`` hung under a fresh chain of single-child nodes reaching ``level``."""
    while level > 0:
        node = (node,)
        level -= _BITS
    return node


def _push_tail(count: int, level: int, parent: _Node, tail: _Node) -> _Node:
    """A copy of ``parent`` (at ``level``) with the full ``tail`` leaf added as the next leaf."""
    index = ((count - 1) >> level) & _MASK
    if level == _BITS:
        inserted = tail
    elif index < len(parent):
        inserted = _push_tail(count, level - _BITS, parent[index], tail)
    else:
        inserted = _new_path(level - _BITS, tail)
    if index < len(parent):
        return (*parent[:index], inserted, *parent[index + 1 :])
    return (*parent, inserted)


def _assoc(level: int, node: _Node, position: int, value: Message) -> _Node:
    """A copy of the path from ``node`` to ``position`` with the message there replaced."""
    index = (position >> level) & _MASK
    if level == 0:
        replaced = value
    else:
        replaced = _assoc(level - _BITS, node[index], position, value)
    return (*node[:index], replaced, *node[index + 1 :])


def _leaves(node: _Node, level: int) -> Iterator[_Node]:
    """The leaves under ``node`` (at ``level``), oldest first."""
    if level == _BITS:
        yield from node
    else:
        for child in node:
            yield from _leaves(child, level - _BITS)


def _leaves_reversed(node: _Node, level: int) -> Iterator[_Node]:
    if level == _BITS:
        yield from reversed(node)
    else:
        for child in reversed(node):
            yield from _leaves_reversed(child, level - _BITS)


def _same_nodes(a: _Node, b: _Node, level: int) -> bool:
    """Equal subtries of the same shape; shared nodes are skipped with ``is``."""
    if a is b:
        return True
    if level == 0:
        return a == b  # tuple comparison: identity first, then Message.__eq__
    below = level - _BITS
    return all(x is y or _same_nodes(x, y, below) for x, y in zip(a, b, strict=True))


class _Index:
    """Message id → position, shared by every snapshot of one linear history.

    ``size`` is the length of the longest snapshot that wrote into it; only a
    snapshot of exactly that length may add the next id. The lock makes that
    check-and-write one step even if two threads append to snapshots of one
    history at once.
    """

    __slots__ = ("positions", "size", "lock")

    def __init__(self, positions: dict[str, int], size: int) -> None:
        self.positions = positions
        self.size = size
        self.lock = threading.Lock()


_EMPTY_NODE: _Node = ()


class Messages(Sequence[Message]):
    """An immutable, hashable sequence of :class:`Message`, ordered by first arrival.

    Compares equal to another ``Messages`` or a ``tuple`` holding equal messages
    in the same order. Updates return a new ``Messages`` that shares almost all
    of its structure with the old one.
    """

    __slots__ = ("_count", "_shift", "_root", "_tail", "_index", "_hash")

    _count: int
    _shift: int
    """The level of ``_root``: 5 while the trie holds up to 32 leaves, 10 up to 1 024…"""
    _root: _Node
    _tail: _Node
    """The newest messages (1..32 of them unless empty), not yet in the trie."""
    _index: _Index
    _hash: int | None

    def __init__(self, messages: Iterable[Message] = ()) -> None:
        items = tuple(messages)
        positions: dict[str, int] = {}
        for position, message in enumerate(items):
            if message.id in positions:
                raise ValueError(f"duplicate message id {message.id!r}")
            positions[message.id] = position
        count = len(items)
        tail_offset = 0 if count < _WIDTH else ((count - 1) >> _BITS) << _BITS
        nodes: list[_Node] = [items[start : start + _WIDTH] for start in range(0, tail_offset, _WIDTH)]
        shift = _BITS
        while len(nodes) > _WIDTH:
            nodes = [tuple(nodes[start : start + _WIDTH]) for start in range(0, len(nodes), _WIDTH)]
            shift += _BITS
        self._count = count
        self._shift = shift
        self._root = tuple(nodes)
        self._tail = items[tail_offset:]
        self._index = _Index(positions, count)
        self._hash = None

    @classmethod
    def _make(cls, count: int, shift: int, root: _Node, tail: _Node, index: _Index) -> Messages:
        new = cls.__new__(cls)
        new._count = count
        new._shift = shift
        new._root = root
        new._tail = tail
        new._index = index
        new._hash = None
        return new

    # -- reading ---------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def _at(self, position: int) -> Message:
        """The message at a valid, non-negative ``position``."""
        tail_offset = self._count - len(self._tail)
        if position >= tail_offset:
            return self._tail[position - tail_offset]
        node = self._root
        level = self._shift
        while level > 0:
            node = node[(position >> level) & _MASK]
            level -= _BITS
        return node[position & _MASK]

    @overload
    def __getitem__(self, index: int) -> Message: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Message, ...]: ...

    def __getitem__(self, index: int | slice) -> Message | tuple[Message, ...]:
        if type(index) is int and 0 <= index < self._count:  # the reducer's case: one call, no checks
            return self._at(index)
        if isinstance(index, slice):
            start, stop, step = index.indices(self._count)
            if step == 1:
                return self._range(start, stop) if start < stop else ()
            return tuple(self._at(position) for position in range(start, stop, step))
        position = index.__index__()
        if position < 0:
            position += self._count
        if not 0 <= position < self._count:
            raise IndexError("Messages index out of range")
        return self._at(position)

    def _range(self, start: int, stop: int) -> tuple[Message, ...]:
        """Messages ``start`` (inclusive) to ``stop`` (exclusive), for valid bounds."""
        tail_offset = self._count - len(self._tail)
        if start >= tail_offset:
            return self._tail[start - tail_offset : stop - tail_offset]
        picked: list[Message] = []
        position = start
        while position < min(stop, tail_offset):
            node = self._root
            level = self._shift
            while level > 0:
                node = node[(position >> level) & _MASK]
                level -= _BITS
            offset = position & _MASK
            picked.extend(node[offset : offset + (stop - position)])
            position += _WIDTH - offset
        if stop > tail_offset:
            picked.extend(self._tail[: stop - tail_offset])
        return tuple(picked)

    def __iter__(self) -> Iterator[Message]:
        if not self._root:
            return iter(self._tail)
        return itertools.chain(itertools.chain.from_iterable(_leaves(self._root, self._shift)), self._tail)

    def __reversed__(self) -> Iterator[Message]:
        if not self._root:
            return reversed(self._tail)
        return itertools.chain(
            reversed(self._tail),
            itertools.chain.from_iterable(map(reversed, _leaves_reversed(self._root, self._shift))),
        )

    def __contains__(self, value: object) -> bool:
        if isinstance(value, Message):
            position = self.position(value.id)
            return position is not None and self._at(position) == value
        return False

    def get(self, message_id: str) -> Message | None:
        """The message with this id, or ``None``."""
        position = self._index.positions.get(message_id)
        if position is None or position >= self._count:
            return None
        return self._at(position)

    def position(self, message_id: str) -> int | None:
        """Where the message with this id stands in the conversation, or ``None``."""
        position = self._index.positions.get(message_id)
        if position is None or position >= self._count:
            return None  # unknown, or appended by a later snapshot of this history
        return position

    def last(self, count: int) -> tuple[Message, ...]:
        """The newest ``count`` messages, oldest first: what a chat view usually renders."""
        if count <= 0:
            return ()
        return self._range(max(0, self._count - count), self._count)

    # -- comparing -------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if isinstance(other, Messages):
            if self._count != other._count:
                return False
            if self._hash is not None and other._hash is not None and self._hash != other._hash:
                return False
            # Same length means the same shape. Updates nearly always touch the
            # tail, and untouched subtries are the same objects, so this costs
            # about one tail comparison.
            return self._tail == other._tail and _same_nodes(self._root, other._root, self._shift)
        if isinstance(other, tuple):
            items: tuple[object, ...] = other  # pyright: ignore[reportUnknownVariableType]
            return len(items) == self._count and all(a is b or a == b for a, b in zip(self, items))
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self))
        return self._hash

    def __repr__(self) -> str:
        if self._count <= 3:
            return f"Messages({list(self)!r})"
        return f"Messages([... {self._count} messages, last={self._at(self._count - 1)!r}])"

    def __rich_repr__(self) -> Iterator[Any]:  # pragma: no cover - cosmetic for rich/Textual
        yield "count", self._count

    # -- updating (used by the reducer) ---------------------------------------

    def appended(self, message: Message) -> Messages:
        """A new sequence with ``message`` at the end. Its id must be new."""
        count = self._count
        index = self._index
        with index.lock:
            if self.position(message.id) is not None:
                raise ValueError(f"duplicate message id {message.id!r}")
            if index.size != count:
                # A later snapshot of this history already wrote past us: branch off.
                kept = {key: at for key, at in index.positions.items() if at < count}
                index = _Index(kept, count)
            index.positions[message.id] = count
            index.size = count + 1
        tail = self._tail
        if len(tail) < _WIDTH:
            return Messages._make(count + 1, self._shift, self._root, (*tail, message), index)
        shift = self._shift
        if (count >> _BITS) > (1 << shift):
            root: _Node = (self._root, _new_path(shift, tail))
            shift += _BITS
        else:
            root = _push_tail(count, shift, self._root, tail)
        return Messages._make(count + 1, shift, root, (message,), index)

    def replaced(self, position: int, message: Message) -> Messages:
        """A new sequence with the message at ``position`` replaced by one with the same id."""
        count = self._count
        if position < 0:
            position += count
        if not 0 <= position < count:
            raise IndexError("Messages index out of range")
        if self._at(position).id != message.id:
            raise ValueError("a replacement must keep the message id")
        tail = self._tail
        tail_offset = count - len(tail)
        if position >= tail_offset:
            at = position - tail_offset
            return Messages._make(count, self._shift, self._root, (*tail[:at], message, *tail[at + 1 :]), self._index)
        root = _assoc(self._shift, self._root, position, message)
        return Messages._make(count, self._shift, root, tail, self._index)

    def shares_structure_with(self, other: Messages) -> bool:
        """True when both sequences hold their common oldest messages in the very same stored nodes.

        Used by the benchmark and tests to show that an update did not copy the history.
        """
        if not self._count or not other._count:
            return False
        if self._root and other._root:
            return next(_leaves(self._root, self._shift)) is next(_leaves(other._root, other._shift))
        return self._at(0) is other._at(0)
