"""The one persistent vector of the state: an immutable sequence whose updates share almost everything.

A voice session can run for hours. Its transcript (:class:`~lkstate.Messages`),
the agent's conversation items and its tool calls all grow without bound, and
every update must make a new snapshot. Copying a tuple of 10 000 entries for
each transcript delta costs tens of microseconds and grows with the history.
:class:`Vector` keeps the entries in a 32-way trie of plain tuples plus a tail
tuple holding the newest ones. Replacing one of the newest entries copies the
tail (at most 32 references); appending copies the tail too, and once every 32
entries a handful of small nodes along one path. Replacing an older entry
copies the nodes on its path, O(log₃₂ n). Everything else is shared with the
previous snapshot.

Why plain tuples, and not ``pyrsistent.pvector``: the C vector reports every
element it holds to the garbage collector each time a *new* vector is young,
and every update makes a new one. CPython's youngest-generation collection
runs every few hundred allocations, so with a 100 000-entry history each of
those collections walked all 100 000 entries — an O(n) pause every hundred
updates, which decided the p99 and made building a long history quadratic.
A tuple node shows the collector only its own 32 children.

A subclass may name a key for its entries (a message id, a tool call's
``call_id``) by overriding :meth:`Vector._key_of`; it then finds an entry by
key without a scan. Keys are only ever added (a replacement keeps its key,
nothing is removed), so snapshots of one history share one append-only dict:
a snapshot of ``n`` entries ignores the entries at positions ``n`` and later,
which belong to its descendants. Only appending to an older snapshot (a
branch, as a replay from an earlier point does) copies the index, once.

To the reader it is just an immutable, hashable sequence that compares equal
to the tuple of the same entries, and hashes like it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar, Self, TypeVar, overload

__all__ = ["Vector"]

_T = TypeVar("_T")

_BITS = 5
_WIDTH = 1 << _BITS
_MASK = _WIDTH - 1

# A node is a tuple: of entries at level 0 (a leaf), of nodes above. Typed
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


def _assoc(level: int, node: _Node, position: int, value: object) -> _Node:
    """A copy of the path from ``node`` to ``position`` with the entry there replaced."""
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
        return a == b  # tuple comparison: identity first, then the entries' __eq__
    below = level - _BITS
    return all(x is y or _same_nodes(x, y, below) for x, y in zip(a, b, strict=True))


class _Index:
    """Key → position, shared by every snapshot of one linear history.

    ``size`` is the length of the longest snapshot that wrote into it; only a
    snapshot of exactly that length may add the next entry. The lock makes
    that check-and-write one step even if two threads append to snapshots of
    one history at once.
    """

    __slots__ = ("positions", "size", "lock")

    def __init__(self, positions: dict[str, int], size: int) -> None:
        self.positions = positions
        self.size = size
        self.lock = threading.Lock()


class Vector(Sequence[_T]):
    """An immutable, hashable sequence with cheap updates that share structure.

    Compares equal to another ``Vector`` or a ``tuple`` holding equal entries
    in the same order, and hashes like that tuple. :meth:`appended` and
    :meth:`replaced` return a new vector of the same class that shares almost
    all of its structure with the old one.
    """

    __slots__ = ("_count", "_shift", "_root", "_tail", "_index", "_hash")

    _keyed: ClassVar[bool] = False
    """Whether :meth:`_key_of` is overridden: entries can then be found by key."""
    _key_name: ClassVar[str] = "key"
    """What the key is called in error messages ("message id", "call_id")."""

    _count: int
    _shift: int
    """The level of ``_root``: 5 while the trie holds up to 32 leaves, 10 up to 1 024…"""
    _root: _Node
    _tail: _Node
    """The newest entries (1..32 of them unless empty), not yet in the trie."""
    _index: _Index | None
    """Key → position for a keyed class, else ``None``."""
    _hash: int | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._keyed = cls._key_of is not Vector._key_of

    @staticmethod
    def _key_of(value: Any) -> str | None:
        """The key that finds ``value``, or ``None`` for an entry that has none.

        Override in a subclass (as a ``staticmethod``) to index entries. A key
        must be unique within one vector and kept by replacements.
        """
        return None

    def __init__(self, values: Iterable[_T] = ()) -> None:
        items = tuple(values)
        count = len(items)
        if self._keyed:
            positions: dict[str, int] = {}
            key_of = self._key_of
            for position, value in enumerate(items):
                key = key_of(value)
                if key is None:
                    continue
                if key in positions:
                    raise ValueError(f"duplicate {self._key_name} {key!r}")
                positions[key] = position
            self._index = _Index(positions, count)
        else:
            self._index = None
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
        self._hash = None

    def _make(self, count: int, shift: int, root: _Node, tail: _Node, index: _Index | None) -> Self:
        new = object.__new__(type(self))
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

    def _at(self, position: int) -> _T:
        """The entry at a valid, non-negative ``position``."""
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
    def __getitem__(self, index: int) -> _T: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[_T, ...]: ...

    def __getitem__(self, index: int | slice) -> _T | tuple[_T, ...]:
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
            raise IndexError(f"{type(self).__name__} index out of range")
        return self._at(position)

    def _range(self, start: int, stop: int) -> tuple[_T, ...]:
        """Entries ``start`` (inclusive) to ``stop`` (exclusive), for valid bounds."""
        tail_offset = self._count - len(self._tail)
        if start >= tail_offset:
            return self._tail[start - tail_offset : stop - tail_offset]
        picked: list[_T] = []
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

    def __iter__(self) -> Iterator[_T]:
        if not self._root:
            return iter(self._tail)
        return itertools.chain(itertools.chain.from_iterable(_leaves(self._root, self._shift)), self._tail)

    def __reversed__(self) -> Iterator[_T]:
        if not self._root:
            return reversed(self._tail)
        return itertools.chain(
            reversed(self._tail),
            itertools.chain.from_iterable(map(reversed, _leaves_reversed(self._root, self._shift))),
        )

    def __contains__(self, value: object) -> bool:
        if self._keyed:
            try:
                key = self._key_of(value)
            except AttributeError:  # not the kind of entry this vector holds
                return False
            if key is not None:
                position = self.position(key)
                return position is not None and self._at(position) == value
        return any(entry is value or entry == value for entry in self)

    def position(self, key: str) -> int | None:
        """Where the entry with this key stands, or ``None`` (always ``None`` for a vector without keys)."""
        index = self._index
        if index is None:
            return None
        position = index.positions.get(key)
        if position is None or position >= self._count:
            return None  # unknown, or appended by a later snapshot of this history
        return position

    def get(self, key: str) -> _T | None:
        """The entry with this key, or ``None``."""
        position = self.position(key)
        return None if position is None else self._at(position)

    def last(self, count: int) -> tuple[_T, ...]:
        """The newest ``count`` entries, oldest first: what a view of a long history usually renders."""
        if count <= 0:
            return ()
        return self._range(max(0, self._count - count), self._count)

    # -- comparing -------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if isinstance(other, Vector):
            theirs: Vector[object] = other  # pyright: ignore[reportUnknownVariableType]
            if self._count != theirs._count:
                return False
            if self._hash is not None and theirs._hash is not None and self._hash != theirs._hash:
                return False
            # Same length means the same shape. Updates nearly always touch the
            # tail, and untouched subtries are the same objects, so this costs
            # about one tail comparison.
            return self._tail == theirs._tail and _same_nodes(self._root, theirs._root, self._shift)
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
        name = type(self).__name__
        if self._count <= 3:
            return f"{name}({list(self)!r})"
        return f"{name}([... {self._count} entries, last={self._at(self._count - 1)!r}])"

    def __rich_repr__(self) -> Iterator[Any]:  # pragma: no cover - cosmetic for rich/Textual
        yield "count", self._count

    # -- updating --------------------------------------------------------------

    def appended(self, value: _T) -> Self:
        """A new vector with ``value`` at the end. Its key, if it has one, must be new."""
        count = self._count
        index = self._index
        if index is not None:
            key = self._key_of(value)
            with index.lock:
                if key is not None and index.positions.get(key, count) < count:
                    raise ValueError(f"duplicate {self._key_name} {key!r}")
                if index.size != count:
                    # A later snapshot of this history already wrote past us: branch off.
                    kept = {known: at for known, at in index.positions.items() if at < count}
                    index = _Index(kept, count)
                if key is not None:
                    index.positions[key] = count
                index.size = count + 1
        tail = self._tail
        if len(tail) < _WIDTH:
            return self._make(count + 1, self._shift, self._root, (*tail, value), index)
        shift = self._shift
        if (count >> _BITS) > (1 << shift):
            root: _Node = (self._root, _new_path(shift, tail))
            shift += _BITS
        else:
            root = _push_tail(count, shift, self._root, tail)
        return self._make(count + 1, shift, root, (value,), index)

    def replaced(self, position: int, value: _T) -> Self:
        """A new vector with the entry at ``position`` replaced; a keyed entry must keep its key."""
        count = self._count
        if position < 0:
            position += count
        if not 0 <= position < count:
            raise IndexError(f"{type(self).__name__} index out of range")
        tail = self._tail
        tail_offset = count - len(tail)
        if position >= tail_offset:  # nearly always: a transcript delta touches the newest message
            at = position - tail_offset
            if self._keyed and self._key_of(tail[at]) != self._key_of(value):
                raise ValueError(f"a replacement must keep the {self._key_name}")
            return self._make(count, self._shift, self._root, (*tail[:at], value, *tail[at + 1 :]), self._index)
        if self._keyed and self._key_of(self._at(position)) != self._key_of(value):
            raise ValueError(f"a replacement must keep the {self._key_name}")
        root = _assoc(self._shift, self._root, position, value)
        return self._make(count, self._shift, root, tail, self._index)

    def renewed(self, position: int, value: _T) -> Self:
        """:meth:`replaced`, unchecked: for a ``value`` copied from the entry at ``position`` itself.

        The reducer's transcript delta, which copies the message it extends:
        its key is kept by construction and ``position`` came from
        :meth:`position`, so the bounds and key checks of :meth:`replaced`
        (two calls of ``_key_of``) would only repeat what is known.
        """
        tail = self._tail
        count = self._count
        at = position - (count - len(tail))
        new = object.__new__(type(self))
        if at >= 0:  # nearly always: a transcript delta touches the newest message
            new._root = self._root
            new._tail = (*tail[:at], value, *tail[at + 1 :])
        else:
            new._root = _assoc(self._shift, self._root, position, value)
            new._tail = tail
        new._count = count
        new._shift = self._shift
        new._index = self._index
        new._hash = None
        return new

    def shares_structure_with(self, other: Vector[Any]) -> bool:
        """True when both vectors hold their common oldest entries in the very same stored nodes.

        Used by the benchmark and tests to show that an update did not copy the history.
        """
        if not self._count or not other._count:
            return False
        if self._root and other._root:
            return next(_leaves(self._root, self._shift)) is next(_leaves(other._root, other._shift))
        return self._at(0) is other._at(0)
