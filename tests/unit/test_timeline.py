"""The timeline: the room's messages and the agent's own record, one row per utterance.

Pure functions over hand-built lists; the rule they check is documented in
``lkstate/_core/timeline.py``. The hypothesis tests hold the invariants a UI
relies on over arbitrary conversations, and hold the incremental builder to
the answer of a builder starting from nothing after every kind of change.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from lkstate import Message, MessageKind, Messages, Role, SessionState
from lkstate._core.remote_state import (
    ConversationItems,
    ToolCalls,
    AgentConfigUpdateItem,
    AgentHandoffItem,
    ConversationItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    MessageItem,
    MessageMetrics,
    RemoteSessionState,
    ToolCall,
)
from lkstate._core.timeline import LOOKAHEAD, TimelineBuilder, TimelineEntry, normalize_text, timeline, timeline_of

USER = "user-1"
AGENT = "agent-1"


def said(
    text: str,
    *,
    role: Role = Role.AGENT,
    id: str | None = None,
    final: bool = True,
    interrupted: bool = False,
    kind: MessageKind = MessageKind.TRANSCRIPT,
) -> Message:
    sender = {Role.USER: USER, Role.AGENT: AGENT, Role.PARTICIPANT: "bob"}[role]
    return Message(
        id=id or f"m/{role.value}/{text}",
        role=role,
        kind=kind,
        text=text,
        final=final,
        sender=sender,
        first_seen=0.0,
        updated=0.0,
        interrupted=interrupted,
    )


def heard(text: str, *, id: str | None = None, final: bool = True, kind: MessageKind = MessageKind.TRANSCRIPT) -> Message:
    return said(text, role=Role.USER, id=id or f"m/user/{text}", final=final, kind=kind)


def item(
    text: str,
    role: str = "assistant",
    *,
    id: str | None = None,
    at: float | None = None,
    interrupted: bool = False,
    metrics: MessageMetrics = MessageMetrics(),
) -> MessageItem:
    return MessageItem(
        id=id or f"item/{role}/{text}",
        role=role,  # type: ignore[arg-type]
        text=text,
        created_at=at,
        interrupted=interrupted,
        metrics=metrics,
    )


def tool(call_id: str, at: float | None, name: str = "get_weather") -> ToolCall:
    return ToolCall(call_id=call_id, name=name, arguments='{"city": "Paris"}', status="done", started_at=at)


def rows(
    messages: Sequence[Message], items: Sequence[ConversationItem] = (), tools: Sequence[ToolCall] = ()
) -> tuple[TimelineEntry, ...]:
    return TimelineBuilder().of(Messages(messages), ConversationItems(items), ToolCalls(tools))


def shape(entries: Sequence[TimelineEntry]) -> list[str]:
    """Each row in a word: ``m:<message id>[+item]``, ``i:<item id>``, ``t:<call>``, ``h:<id>``."""
    out: list[str] = []
    for entry in entries:
        if entry.kind == "tool_call":
            assert entry.tool_call is not None
            out.append(f"t:{entry.tool_call.call_id}")
        elif entry.kind == "handoff":
            assert entry.handoff is not None
            out.append(f"h:{entry.handoff.id}")
        elif entry.message is not None:
            out.append(f"m:{entry.message.id}" + ("+item" if entry.item is not None else ""))
        else:
            assert entry.item is not None
            out.append(f"i:{entry.item.id}")
    return out


# --- matching -----------------------------------------------------------------------------


def test_a_transcript_and_the_agents_record_of_it_are_one_row_carrying_the_metrics() -> None:
    metrics = MessageMetrics(llm_node_ttft=0.2, tts_node_ttfb=0.1, e2e_latency=0.9)
    reply = item("The weather in Paris is sunny.", metrics=metrics, id="it_1")
    (row,) = rows([said("The weather in Paris is sunny.", id="tr_1")], [reply])
    assert row.kind == "message" and row.key == "tr_1"
    assert row.item is reply and row.metrics == metrics
    assert row.role is Role.AGENT and row.text == "The weather in Paris is sunny." and row.final


def test_typed_chat_is_matched_to_the_users_item() -> None:
    chat = heard("What is the weather in Paris?", kind=MessageKind.CHAT)
    entries = rows([chat], [item("What is the weather in Paris?", "user")])
    assert shape(entries) == [f"m:{chat.id}+item"]


def test_a_spoken_turn_of_several_transcripts_is_one_item_attached_to_the_last() -> None:
    parts = [heard("I'd like", id="s1"), heard("the weather", id="s2"), heard("in Paris, please.", id="s3")]
    turn = item("I'd like the weather in Paris, please.", "user")
    entries = rows(parts, [turn])
    assert shape(entries) == ["m:s1", "m:s2", "m:s3+item"]
    assert entries[2].item is turn


def test_a_transcript_still_streaming_already_takes_its_item() -> None:
    streaming = said("The weather in Pa", final=False, id="tr")
    assert shape(rows([streaming], [item("The weather in Paris is sunny.")])) == ["m:tr+item"]


def test_a_final_transcript_that_says_something_else_does_not_take_the_item() -> None:
    entries = rows([said("The weather in Pa", id="tr")], [item("The weather in Paris is sunny.", id="it")])
    assert shape(entries) == ["i:it", "m:tr"]  # nothing matched before it: at the start


def test_an_interrupted_reply_matches_though_cut_at_a_different_word() -> None:
    cut_later = said("The weather in Paris is", id="tr", interrupted=True)
    cut_earlier = item("The weather in", interrupted=True, id="it")
    assert shape(rows([cut_later], [cut_earlier])) == ["m:tr+item"]
    assert rows([cut_later], [cut_earlier])[0].interrupted


def test_markup_punctuation_case_and_spacing_do_not_prevent_a_match() -> None:
    transcript = said("Well... that's GREAT news!", id="tr")
    record = item('<emotion value="happy"/>well, that\'s great   news', id="it")
    assert shape(rows([transcript], [record])) == ["m:tr+item"]
    assert normalize_text('<break time="1s"/> Hello,  World!') == "hello world"


def test_identical_utterances_are_matched_in_order() -> None:
    first, second = said("Yes.", id="a"), said("Yes.", id="b")
    one, two = item("Yes.", id="x", at=1.0), item("Yes.", id="y", at=2.0)
    entries = rows([first, second], [one, two])
    assert [(e.key, e.item) for e in entries] == [("a", one), ("b", two)]


def test_roles_are_matched_separately() -> None:
    entries = rows([heard("hello", id="u"), said("hello", id="a")], [item("hello", "assistant", id="it")])
    assert shape(entries) == ["m:u", "m:a+item"]


def test_chat_from_another_participant_is_never_matched() -> None:
    bob = said("hello", role=Role.PARTICIPANT, id="bob")
    assert shape(rows([bob], [item("hello", "user", id="it")])) == ["i:it", "m:bob"]


def test_messages_the_agent_never_recorded_are_stepped_over() -> None:
    ignored = [heard(f"message {n} the agent never saw", id=f"x{n}") for n in range(5)]
    entries = rows([*ignored, heard("hello", id="h")], [item("hello", "user")])
    assert shape(entries)[-1] == "m:h+item" and len(entries) == 6


def test_a_match_further_than_the_lookahead_is_not_found() -> None:
    ignored = [heard(f"unrecorded {n}", id=f"x{n}") for n in range(LOOKAHEAD)]
    entries = rows([*ignored, heard("hello", id="h")], [item("hello", "user", id="it")])
    assert "m:h" in shape(entries) and "i:it" in shape(entries)


# --- rows of their own, and where they go ------------------------------------------------


def test_input_the_room_never_carried_is_a_row_after_the_last_matched_message() -> None:
    # run_input: the agent got the text over the session protocol, not as chat
    messages = [heard("weather in Paris?", id="q"), said("Sunny.", id="a1"), said("You said: hello", id="a2")]
    items = [
        item("weather in Paris?", "user", at=1.0),
        item("Sunny.", at=2.0),
        item("hello", "user", at=3.0, id="run"),
        item("You said: hello", at=3.1),
    ]
    assert shape(rows(messages, items)) == ["m:q+item", "m:a1+item", "i:run", "m:a2+item"]


def test_tool_calls_are_placed_among_the_items_by_the_agents_clock() -> None:
    messages = [heard("weather in Paris?", id="q"), said("It is sunny.", id="a")]
    items = [item("weather in Paris?", "user", at=10.0), item("It is sunny.", at=10.5)]
    entries = rows(messages, items, [tool("call_1", at=10.2)])
    assert shape(entries) == ["m:q+item", "t:call_1", "m:a+item"]
    assert entries[1].tool_call is not None and entries[1].tool_call.name == "get_weather"


def test_a_tool_call_later_than_every_item_comes_last() -> None:
    messages = [heard("weather in Paris?", id="q")]
    entries = rows(messages, [item("weather in Paris?", "user", at=10.0)], [tool("call_1", at=10.2)])
    assert shape(entries) == ["m:q+item", "t:call_1"]


def test_rows_with_nothing_matched_before_them_go_at_the_start() -> None:
    handoff = AgentHandoffItem(id="ho", new_agent_id="demo_agent", created_at=1.0)
    messages = [heard("hi", id="q"), said("Hello!", id="a")]
    entries = rows(messages, [handoff, item("hi", "user", at=2.0), item("Hello!", at=3.0)])
    assert shape(entries) == ["h:ho", "m:q+item", "m:a+item"]
    assert entries[0].kind == "handoff" and entries[0].handoff is handoff


def test_with_transcription_off_the_agents_messages_are_rows_of_their_own() -> None:
    items = [item("hi", "user", at=1.0, id="u"), item("Hello!", at=2.0, id="a")]
    entries = rows([], items, [tool("c", at=1.5)])
    assert shape(entries) == ["i:u", "t:c", "i:a"]
    assert entries[2].role is Role.AGENT and entries[2].text == "Hello!" and entries[2].final


def test_instructions_config_updates_and_raw_function_items_are_not_rows() -> None:
    items: list[ConversationItem] = [
        MessageItem(id="sys", role="system", text="You are helpful."),
        MessageItem(id="dev", role="developer", text="Be brief."),
        MessageItem(id="none", role=None, text="?"),
        AgentConfigUpdateItem(id="cfg", instructions="x", tools_added=("get_weather",)),
        FunctionCallItem(id="fc", call_id="c", name="get_weather", arguments="{}"),
        FunctionCallOutputItem(id="fo", call_id="c", name="get_weather", output="sunny"),
    ]
    assert shape(rows([], items, [tool("c", at=None)])) == ["t:c"]


def test_keys_are_unique_even_for_items_without_ids() -> None:
    items = [item("a", id="", at=1.0), item("b", id="", at=2.0), AgentHandoffItem(id="", new_agent_id="x")]
    keys = [entry.key for entry in rows([], items)]
    assert len(keys) == len(set(keys)) == 3


# --- state, memo, entry -------------------------------------------------------------------


def test_timeline_reads_the_state_and_gives_the_same_tuple_for_an_unchanged_conversation() -> None:
    messages = Messages([said("Hello!", id="a")])
    remote = RemoteSessionState(items=ConversationItems([item("Hello!")]))
    state = SessionState(messages=messages, remote=remote)
    first = timeline(state)
    assert shape(first) == ["m:a+item"]
    later = attrs.evolve(state, remote=attrs.evolve(remote, agent_state="speaking"), updated_at=5.0)
    assert timeline(later) is first
    assert timeline_of(messages, remote.items, remote.tool_calls) is first


def test_a_row_without_a_record_has_no_metrics_and_a_row_is_interrupted_by_either_road() -> None:
    (row,) = rows([said("Hel", id="a", interrupted=True)])
    assert row.item is None and row.metrics is None and row.interrupted
    (row,) = rows([said("Hello", id="a")], [item("Hello", interrupted=True)])
    assert row.interrupted


def test_a_reply_arriving_before_its_transcript_is_absorbed_into_it_when_it_comes() -> None:
    builder = TimelineBuilder()
    messages = Messages([heard("hi", id="q")])
    items = ConversationItems([item("hi", "user", at=1.0), item("Hello there!", at=2.0, id="it")])
    assert shape(builder.of(messages, items)) == ["m:q+item", "i:it"]
    messages = messages.appended(said("Hello", final=False, id="a"))
    assert shape(builder.of(messages, items)) == ["m:q+item", "m:a+item"]
    messages = messages.replaced(1, said("Hello there!", id="a"))
    assert shape(builder.of(messages, items)) == ["m:q+item", "m:a+item"]


def test_a_message_changed_deep_in_the_history_is_seen() -> None:
    builder = TimelineBuilder()
    history = [heard(f"question {n}", id=f"q{n}") for n in range(50)]
    messages = Messages(history)
    items = ConversationItems([item(f"question {n}", "user", at=float(n)) for n in range(50)])
    assert all(e.item is not None for e in builder.of(messages, items))
    messages = messages.replaced(3, heard("something else", id="q3"))
    entries = builder.of(messages, items)
    assert entries == TimelineBuilder().of(messages, items)
    assert shape(entries)[3:6] == ["i:item/user/question 3", "m:q3", "m:q4+item"]


# --- invariants over arbitrary conversations ------------------------------------------------

WORDS = ["yes", "no", "hello", "weather", "paris", "sunny", "ok"]

texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join)


@st.composite
def conversations(
    draw: st.DrawFn,
) -> tuple[list[Message], list[ConversationItem], list[ToolCall]]:
    """Utterances heard in the room and/or recorded by the agent, plus tool calls."""
    messages: list[Message] = []
    items: list[ConversationItem] = []
    tools: list[ToolCall] = []
    clock = 0.0
    for n in range(draw(st.integers(0, 12))):
        clock += 1.0
        role = draw(st.sampled_from([Role.USER, Role.AGENT, Role.PARTICIPANT]))
        text = draw(texts)
        if draw(st.booleans()) or role is Role.PARTICIPANT:
            pieces = text.split(" ") if role is Role.USER and draw(st.booleans()) else [text]
            for p, piece in enumerate(pieces):
                messages.append(
                    said(piece, role=role, id=f"m{n}.{p}", final=draw(st.booleans()), interrupted=draw(st.booleans()))
                )
        if role is not Role.PARTICIPANT and draw(st.booleans()):
            spoken = draw(st.sampled_from([text, text.upper() + "!", f"<x/>{text}"]))
            items.append(
                item(spoken, "user" if role is Role.USER else "assistant", id=f"i{n}", at=clock, interrupted=draw(st.booleans()))
            )
        if draw(st.integers(0, 4)) == 0:
            tools.append(tool(f"c{n}", at=draw(st.one_of(st.none(), st.just(clock + 0.5), st.just(clock - 3)))))
        if draw(st.integers(0, 8)) == 0:
            items.append(AgentHandoffItem(id=f"h{n}", new_agent_id="next", created_at=clock))
    return messages, items, tools


@given(conversations())
@settings(max_examples=300, deadline=None)
def test_every_message_tool_call_and_handoff_appears_exactly_once_and_no_item_twice(
    conversation: tuple[list[Message], list[ConversationItem], list[ToolCall]],
) -> None:
    messages, items, tools = conversation
    entries = rows(messages, items, tools)
    assert [e.message for e in entries if e.message is not None] == messages
    assert sorted(e.tool_call.call_id for e in entries if e.tool_call is not None) == sorted(t.call_id for t in tools)
    handoffs = [i for i in items if isinstance(i, AgentHandoffItem)]
    assert [e.handoff for e in entries if e.handoff is not None] == handoffs, "in the agent's order"
    recorded = [id(e.item) for e in entries if e.item is not None]
    assert len(recorded) == len(set(recorded))
    assert all(isinstance(e.item, MessageItem) and e.item in items for e in entries if e.item is not None)
    assert len({e.key for e in entries}) == len(entries)
    own_items = [e for e in entries if e.kind == "message" and e.message is None]
    assert all(e.item is not None for e in own_items)
    attached = [e for e in entries if e.message is not None and e.item is not None]
    assert len(own_items) + len(attached) == sum(
        1 for i in items if isinstance(i, MessageItem) and i.role in ("user", "assistant")
    )


@given(conversations())
@settings(max_examples=200, deadline=None)
def test_each_utterance_heard_and_recorded_alike_is_shown_once(
    conversation: tuple[list[Message], list[ConversationItem], list[ToolCall]],
) -> None:
    """With distinct texts, final and uninterrupted, every record finds its transcript."""
    messages, _, _ = conversation
    distinct = [
        attrs.evolve(m, text=f"utterance {n}", final=True, interrupted=False)
        for n, m in enumerate(messages)
        if m.role is not Role.PARTICIPANT
    ]
    records = [
        item(m.text.upper(), "user" if m.role is Role.USER else "assistant", id=f"r{n}", at=float(n))
        for n, m in enumerate(distinct)
    ]
    entries = rows(distinct, records)
    assert len(entries) == len(distinct)
    assert all(e.message is not None and e.item is not None for e in entries)


Change = tuple[str, int, str, bool]


@st.composite
def histories(draw: st.DrawFn) -> list[Change]:
    return draw(
        st.lists(
            st.tuples(
                st.sampled_from(["msg", "msg", "item", "item", "tool", "edit-msg", "edit-item", "edit-tool", "handoff"]),
                st.integers(0, 40),
                texts,
                st.booleans(),
            ),
            max_size=40,
        )
    )


@given(histories())
@settings(max_examples=300, deadline=None)
def test_the_builder_reusing_its_work_agrees_with_one_starting_from_nothing(changes: list[Change]) -> None:
    """Snapshot after snapshot, as a store makes them: appends and edits anywhere."""
    builder = TimelineBuilder()
    messages = Messages()
    items = ConversationItems()
    tools = ToolCalls()
    clock = 0.0
    for n, (what, where, text, flag) in enumerate(changes):
        clock += 1.0
        if what == "msg":
            role = [Role.USER, Role.AGENT, Role.PARTICIPANT][where % 3]
            messages = messages.appended(said(text, role=role, id=f"m{n}", final=flag))
        elif what == "item":
            items = items.appended(item(text, "user" if flag else "assistant", id=f"i{n}", at=clock))
        elif what == "handoff":
            items = items.appended(AgentHandoffItem(id=f"h{n}", new_agent_id="x", created_at=clock))
        elif what == "tool":
            tools = tools.appended(tool(f"c{n}", at=clock - where % 5 if flag else None))
        elif what == "edit-msg" and len(messages):
            position = where % len(messages)
            old = messages[position]
            messages = messages.replaced(position, attrs.evolve(old, text=text, final=flag, interrupted=not flag))
        elif what == "edit-item" and items:
            position = where % len(items)
            old_item = items[position]
            if isinstance(old_item, MessageItem):
                items = items.replaced(position, attrs.evolve(old_item, text=text, interrupted=flag))
        elif what == "edit-tool" and tools:
            position = where % len(tools)
            tools = tools.replaced(position, attrs.evolve(tools[position], started_at=clock - where % 7))
        assert builder.of(messages, items, tools) == TimelineBuilder().of(messages, items, tools)


@given(conversations(), st.data())
@settings(max_examples=200, deadline=None)
def test_a_conversation_growing_at_its_end_keeps_its_rows_in_order(
    conversation: tuple[list[Message], list[ConversationItem], list[ToolCall]], data: st.DataObject
) -> None:
    """With transcription on — each record comes after its transcript — growth never reorders rows."""
    messages, _, tools = conversation
    arrivals: list[Message | ConversationItem | ToolCall] = []
    for n, message in enumerate(messages):
        message = attrs.evolve(message, text=f"utterance {n}", final=True)
        arrivals.append(message)
        if message.role is not Role.PARTICIPANT:
            role = "user" if message.role is Role.USER else "assistant"
            arrivals.append(item(message.text, role, id=f"r{n}", at=float(n)))
        if n < len(tools):
            arrivals.append(attrs.evolve(tools[n], started_at=n + 0.5))
    builder = TimelineBuilder()
    previous: list[str] = []
    for end in sorted(data.draw(st.lists(st.integers(0, len(arrivals)), max_size=4))) + [len(arrivals)]:
        now = arrivals[:end]
        entries = builder.of(
            Messages([a for a in now if isinstance(a, Message)]),
            ConversationItems([a for a in now if isinstance(a, MessageItem)]),
            ToolCalls([a for a in now if isinstance(a, ToolCall)]),
        )
        keys = [e.key for e in entries]
        assert [key for key in keys if key in set(previous)] == previous
        previous = keys
