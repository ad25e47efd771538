"""The one persistent vector, as the agent's conversation items and tool calls use it.

``tests/unit/test_messages.py`` checks the trie itself through ``Messages``
(snapshots, branches, shared structure); these tests check what the other
users of the same structure rely on: entries without a key, keys of another
kind, equality and hashing inside a frozen state, and a history merged from
the agent.
"""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lkstate import Message, MessageKind, Messages, Role
from lkstate._core.remote_state import (
    AgentHandoffItem,
    ConversationItems,
    MessageItem,
    RemoteSessionState,
    ToolCall,
    ToolCalls,
    merge_conversation_items,
)
from lkstate._core.vector import Vector


def said(text: str, id: str = "") -> MessageItem:
    return MessageItem(id=id or f"item/{text}", role="assistant", text=text, created_at=1.0)


def test_items_are_found_by_id_and_an_item_without_one_only_by_position() -> None:
    nameless = MessageItem(id="", role="user", text="?", created_at=2.0)

    grown = ConversationItems([said("hello", id="a")]).appended(nameless).appended(nameless)

    assert grown.get("a") == said("hello", id="a")
    assert grown.get("") is None and grown.position("") is None
    assert list(grown) == [said("hello", id="a"), nameless, nameless]
    assert nameless in grown and said("hello", id="a") in grown and said("other") not in grown
    with pytest.raises(ValueError, match="a replacement must keep the item id"):
        grown.replaced(0, nameless)


def test_a_key_appears_once_and_a_replacement_keeps_it() -> None:
    calls = ToolCalls([ToolCall(call_id="c1", name="get_weather")])

    with pytest.raises(ValueError, match="duplicate call_id 'c1'"):
        calls.appended(ToolCall(call_id="c1"))
    with pytest.raises(ValueError, match="duplicate call_id 'c1'"):
        ToolCalls([ToolCall(call_id="c1"), ToolCall(call_id="c1")])
    with pytest.raises(ValueError, match="keep the call_id"):
        calls.replaced(0, ToolCall(call_id="c2"))
    done = calls.replaced(0, attrs.evolve(calls[0], status="done"))

    assert done.get("c1") == ToolCall(call_id="c1", name="get_weather", status="done")
    assert calls.get("c1") == ToolCall(call_id="c1", name="get_weather"), "the old snapshot kept its call"


def test_an_older_snapshot_does_not_find_what_a_later_one_appended() -> None:
    root = ToolCalls([ToolCall(call_id="c0")])
    later = root.appended(ToolCall(call_id="c1"))
    branch = root.appended(ToolCall(call_id="c2"))

    assert root.get("c1") is None and root.get("c2") is None
    assert later.get("c1") == ToolCall(call_id="c1") and later.get("c2") is None
    assert branch.get("c2") == ToolCall(call_id="c2") and branch.get("c1") is None
    assert branch.position("c2") == later.position("c1") == 1


def test_a_vector_without_keys_is_a_plain_persistent_sequence() -> None:
    numbers = Vector(range(100)).replaced(3, -3).appended(100)

    assert numbers == (0, 1, 2, -3, *range(4, 101))
    assert numbers.position("3") is None
    assert -3 in numbers and 3 not in numbers
    assert numbers[-1] == 100 and numbers[95:] == (95, 96, 97, 98, 99, 100)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 10_000)), max_size=120))
def test_built_by_updates_or_at_once_equal_the_tuple_and_hash_like_it(steps: list[tuple[bool, int]]) -> None:
    grown = ConversationItems()
    model: list[MessageItem] = []
    for n, (append, where) in enumerate(steps):
        if append or not model:
            model.append(said(f"item {n}", id=f"i{n}"))
            grown = grown.appended(model[-1])
        else:
            position = where % len(model)
            model[position] = attrs.evolve(model[position], text=f"edited {n}")
            grown = grown.replaced(position, model[position])
    at_once = ConversationItems(model)

    assert grown == at_once == tuple(model)
    assert hash(grown) == hash(at_once) == hash(tuple(model))
    assert grown.last(5) == tuple(model[-5:])
    assert all(grown.get(item.id) == item for item in model)


def test_remote_states_with_equal_histories_are_equal_and_hash_alike() -> None:
    items = [said(f"line {n}", id=f"i{n}") for n in range(70)]
    built = RemoteSessionState()
    for item in items:
        built = attrs.evolve(built, items=built.items.appended(item))
    at_once = RemoteSessionState(items=ConversationItems(items))

    assert built == at_once and hash(built) == hash(at_once)
    assert built != attrs.evolve(at_once, items=at_once.items.replaced(3, said("changed", id="i3")))
    assert built.item("i42") == items[42]


def test_a_vector_of_messages_and_one_of_items_are_one_structure() -> None:
    message = Message(id="m", role=Role.AGENT, kind=MessageKind.TRANSCRIPT, text="hi", final=True,
                      sender="agent", first_seen=1.0, updated=1.0)

    assert isinstance(Messages([message]), Vector) and isinstance(ConversationItems(), Vector)
    assert isinstance(ToolCalls(), Vector)
    assert Messages([message]).get("m") == message


def test_a_history_repeating_an_id_merges_to_one_item_per_id_the_later_version_winning() -> None:
    live = RemoteSessionState(items=ConversationItems([said("seen live", id="live")]))
    history = [said("first", id="a"), AgentHandoffItem(id="h", new_agent_id="next"), said("again", id="a")]

    merged = merge_conversation_items(live, history, at=5.0)

    assert [(item.id, getattr(item, "text", None)) for item in merged.items] == [
        ("a", "again"), ("h", None), ("live", "seen live"),
    ]
    assert merged.item("a") == said("again", id="a") and merged.agent_id == "next"
