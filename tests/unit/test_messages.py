"""Messages: a persistent sequence that behaves exactly like the tuple of its messages.

Every snapshot keeps its own contents whatever is done to the others — also
when two updates branch from one older snapshot, as a replay from an earlier
point does — and lookups by id only ever see the snapshot's own messages.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lkstate import Message, MessageKind, Messages, Role


def message(key: str, text: str = "") -> Message:
    return Message(
        id=key,
        role=Role.AGENT,
        kind=MessageKind.TRANSCRIPT,
        text=text or key,
        final=False,
        sender="agent",
        first_seen=1.0,
        updated=1.0,
    )


def check_same(messages: Messages, model: list[Message]) -> None:
    assert len(messages) == len(model)
    assert list(messages) == model
    assert list(reversed(messages)) == model[::-1]
    assert messages == tuple(model) and hash(messages) == hash(tuple(model))
    for position, expected in enumerate(model):
        assert messages[position] is expected
        assert messages[position - len(model)] is expected
        assert messages.position(expected.id) == position
        assert messages.get(expected.id) is expected
    for count in (0, 1, 31, 33, len(model)):
        assert messages.last(count) == tuple(model[-count:] if count else ())


# Operations on a growing family of snapshots: ("append", snapshot, key) appends
# a new message to snapshot number ``snapshot`` (modulo how many exist), and
# ("replace", snapshot, position) replaces one of its messages.
operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 10_000), st.integers(0, 3)),
        st.tuples(st.just("replace"), st.integers(0, 10_000), st.integers(0, 10_000)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(operations, st.integers(0, 1200))
def test_every_snapshot_keeps_its_contents_whatever_is_derived_from_any_of_them(
    steps: list[tuple[str, int, int]], start: int
) -> None:
    base = [message(f"m{i}") for i in range(start)]
    snapshots: list[tuple[Messages, list[Message]]] = [(Messages(base), base)]
    fresh = 0
    for op, which, arg in steps:
        messages, model = snapshots[which % len(snapshots)]
        if op == "append":
            # mostly new ids; sometimes an id another branch already used
            key = f"n{fresh}" if arg else f"n{max(fresh - 1, 0)}"
            fresh += 1
            if any(m.id == key for m in model):
                with pytest.raises(ValueError):
                    messages.appended(message(key))
                continue
            new = message(key)
            snapshots.append((messages.appended(new), [*model, new]))
        elif model:
            position = arg % len(model)
            new = message(model[position].id, text=f"edit {fresh}")
            fresh += 1
            snapshots.append((messages.replaced(position, new), [*model[:position], new, *model[position + 1 :]]))
    for messages, model in snapshots:
        check_same(messages, model)


@pytest.mark.parametrize("count", [0, 1, 32, 33, 1024, 1056, 1057, 33_000])
def test_building_at_once_and_appending_one_by_one_give_equal_sequences(count: int) -> None:
    items = [message(f"m{i}") for i in range(count)]
    grown = Messages()
    for item in items:
        grown = grown.appended(item)
    built = Messages(items)
    assert grown == built and built == grown
    assert list(grown) == items == list(built)
    assert grown[1:5] == tuple(items[1:5]) and built[::-7] == tuple(items[::-7])


def test_a_message_appended_by_a_later_snapshot_is_unknown_to_the_earlier_one() -> None:
    earlier = Messages([message("a")])
    later = earlier.appended(message("b"))
    assert later.position("b") == 1
    assert earlier.position("b") is None and earlier.get("b") is None and message("b") not in earlier


def test_two_branches_from_one_snapshot_may_append_the_same_id_at_different_places() -> None:
    root = Messages([message("a")])
    left = root.appended(message("x"))
    right = root.appended(message("y")).appended(message("x"))
    assert left.position("x") == 1 and right.position("x") == 2
    assert left.get("y") is None


def test_updates_share_the_untouched_history() -> None:
    messages = Messages([message(f"m{i}") for i in range(5000)])
    edited = messages.replaced(4999, message("m4999", "edited"))
    grown = edited.appended(message("new"))
    assert grown.shares_structure_with(messages) and edited.shares_structure_with(messages)
    assert all(grown[i] is messages[i] for i in range(4999))


def test_a_replacement_must_keep_the_id_and_an_append_must_bring_a_new_one() -> None:
    messages = Messages([message("a"), message("b")])
    with pytest.raises(ValueError):
        messages.replaced(0, message("b"))
    with pytest.raises(ValueError):
        messages.appended(message("a"))
    with pytest.raises(IndexError):
        messages.replaced(2, message("c"))
    with pytest.raises(IndexError):
        messages[2]


def test_equality_tells_different_contents_apart() -> None:
    a = Messages([message(f"m{i}") for i in range(100)])
    b = a.replaced(3, message("m3", "other"))
    assert a != b and b != a and a != tuple(b)
    assert a != a.appended(message("z"))
    assert a == Messages(list(a))
