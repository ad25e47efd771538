"""Message history: saved as versioned JSON, restored first and marked, and the agent's record of before the join.

Everything here is pure: the history codec, and the reducer fed the events a
session makes — ``HistoryRestored`` when the app restores, ``AgentHistoryRequested``
then the agent's answer as an ``AgentSessionPayload`` when it fetches. The
same over the wire, with a real agent, is in
``tests/integration/test_message_history_wire.py``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence

import attrs
import pytest
from livekit.protocol.agent_pb import agent_session as pb

from lkstate import DeliveryStatus, Limits, Message, MessageHistory, MessageKind, MessageOrigin, Role, SessionState
from lkstate._core import events as ev
from lkstate._core.remote_state import AgentHandoffItem, MessageItem
from lkstate._core.timeline import timeline
from lkstate.agent_session import AgentExpression
from lkstate.errors import HistoryError
from lkstate.lowlevel import Store, reduce
from lkstate.recording import Recorder, Replay

USER = "user-1"
AGENT = "agent-AJ_1"
T0 = 1_764_000_000.0


def fold(events: Iterable[ev.Event], state: SessionState | None = None, limits: Limits | None = None) -> SessionState:
    state = state if state is not None else SessionState()
    for event in events:
        state = reduce(state, event) if limits is None else reduce(state, event, limits)
    return state


def connected() -> SessionState:
    """Connected, with a ready agent."""
    return fold(
        [
            ev.StartRequested(at=T0),
            ev.RoomConnected(at=T0 + 0.1, room_name="room", local_identity=USER, server_url="ws://x"),
            ev.ParticipantJoined(
                at=T0 + 0.2, identity=AGENT, name="", kind="agent", attributes=(("lk.agent.state", "listening"),)
            ),
        ]
    )


def agent_says(text: str, segment: str, at: float, *, final: bool = True) -> ev.TranscriptReceived:
    return ev.TranscriptReceived(
        at=at, sender=AGENT, segment_id=segment, stream_seq=1, text=text, final=final, closed=final
    )


def user_says(text: str, segment: str, at: float, seq: int = 1) -> ev.TranscriptReceived:
    return ev.TranscriptReceived(
        at=at, sender=USER, segment_id=segment, stream_seq=seq, text=text, final=True, closed=True
    )


def typed(text: str, message_id: str, at: float) -> list[ev.Event]:
    return [
        ev.ChatSendRequested(at=at, message_id=message_id, text=text, sender=USER),
        ev.ChatSendSucceeded(at=at + 0.01, message_id=message_id),
    ]


def item(
    item_id: str, role: int, text: str, *, confidence: float | None = None, created: float | None = None
) -> pb.ChatContext.ChatItem:
    message = pb.ChatMessage(id=item_id, role=role, content=[pb.ChatMessage.ChatContent(text=text)])
    if confidence is not None:
        message.transcript_confidence = confidence
    if created is not None:
        message.created_at.FromNanoseconds(int(created * 1e9))
    return pb.ChatContext.ChatItem(message=message)


def handoff(item_id: str = "item_h") -> pb.ChatContext.ChatItem:
    return pb.ChatContext.ChatItem(agent_handoff=pb.AgentHandoff(id=item_id, new_agent_id="demo_agent"))


def answer(request_id: str, items: Sequence[pb.ChatContext.ChatItem]) -> bytes:
    return pb.AgentSessionMessage(
        response=pb.SessionResponse(
            request_id=request_id, get_chat_history=pb.SessionResponse.GetChatHistoryResponse(items=items)
        )
    ).SerializeToString()


def fetched(
    state: SessionState, items: Sequence[pb.ChatContext.ChatItem], *, request_id: str = "req-1", at: float = T0 + 5
) -> SessionState:
    """``state`` after the session asked the agent for its history and the agent answered with ``items``."""
    return fold(
        [
            ev.AgentHistoryRequested(at=at, agent=AGENT, request_id=request_id),
            ev.AgentSessionPayload(at=at + 0.05, sender=AGENT, payload=answer(request_id, items)),
        ],
        state,
    )


def shown(state: SessionState) -> list[tuple[Role, str, MessageOrigin]]:
    return [(m.role, m.text, m.origin) for m in state.messages]


def message(message_id: str, text: str, role: Role = Role.AGENT, **changes: object) -> Message:
    base = Message(
        id=message_id,
        role=role,
        kind=MessageKind.TRANSCRIPT,
        text=text,
        final=True,
        sender=AGENT if role is Role.AGENT else USER,
        first_seen=T0,
        updated=T0 + 1,
    )
    return attrs.evolve(base, **changes)


LIVE, HISTORY, RESTORED = MessageOrigin.LIVE, MessageOrigin.AGENT_HISTORY, MessageOrigin.RESTORED


# --- the saved form ----------------------------------------------------------------------------


def test_a_history_is_versioned_json_that_reads_back_as_the_same_messages() -> None:
    messages = (
        message("tr/1", "Hello! <b>ça va?</b> 👋", attributes=(("lk.segment_id", "SG_1"),),
                expression=AgentExpression(label="warm", mood="happy"), segment_id="SG_1"),
        message("chat/1", "hi", Role.USER, kind=MessageKind.CHAT, delivery=DeliveryStatus.SENT),
        message("tr/2", "cut", interrupted=True, final=False, error="The agent left.", origin=HISTORY),
    )
    history = MessageHistory.of(messages)
    document = json.loads(history.to_json())
    assert (document["format"], document["version"]) == ("lkstate-message-history", 1)
    assert document["messages"][0]["role"] == "agent" and document["messages"][0]["origin"] == "live"
    assert MessageHistory.from_json(history.to_json()) == history
    assert MessageHistory.from_dict(history.to_dict()) == history
    assert len(history) == 3


def test_a_lone_surrogate_a_peer_sent_is_written_escaped_and_read_back() -> None:
    history = MessageHistory.of([message("tr/1", "bad \udcff byte")])
    text = history.to_json()
    text.encode("utf-8")  # writable as a file
    assert MessageHistory.from_json(text) == history


def test_a_hand_written_history_needs_only_id_role_kind_and_text() -> None:
    history = MessageHistory.from_dict(
        {"format": "lkstate-message-history", "version": 1,
         "messages": [{"id": "1", "role": "user", "kind": "chat", "text": "Hi", "first_seen": 5}]}
    )
    (only,) = history.messages
    assert (only.final, only.interrupted, only.origin, only.sender) == (True, False, LIVE, "")
    assert (only.first_seen, only.updated) == (5.0, 5.0), "updated defaults to first_seen"


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("{not json", None, "not JSON"),
        ("[]", None, "expected a JSON object, got an array"),
        ('{"format": "lkstate-recording", "version": 1, "messages": []}', "format", "not a message history"),
        ('{"format": "lkstate-message-history", "version": 2, "messages": []}', "version", "newer lkstate"),
        ('{"format": "lkstate-message-history", "version": 0, "messages": []}', "version", "versions 1 to 1"),
        ('{"format": "lkstate-message-history", "version": "1", "messages": []}', "version", "'1'"),
        ('{"format": "lkstate-message-history", "messages": []}', "version", "None"),
        ('{"format": "lkstate-message-history", "version": 1, "messages": {}}', "messages", "must be an array"),
        ('{"format": "lkstate-message-history", "version": 1, "messages": [], "x": 1}', "the document", "'x'"),
        ('{"format": "lkstate-message-history", "version": 1, "messages": [7]}', "messages[0]", "an object"),
        ('{"format": "lkstate-message-history", "version": 1, "messages": [{"id": "1", "kind": "chat", "text": ""}]}',
         "messages[0]", "has no 'role'"),
        ('{"format": "lkstate-message-history", "version": 1, "messages": '
         '[{"id": "1", "role": "robot", "kind": "chat", "text": ""}]}', "messages[0].role", "'robot'"),
        ('{"format": "lkstate-message-history", "version": 1, "messages": '
         '[{"id": "1", "role": "user", "kind": "chat", "text": 5}]}', "messages[0].text", "a number"),
        ('{"format": "lkstate-message-history", "version": 1, "messages": '
         '[{"id": "1", "role": "user", "kind": "chat", "text": "", "first_seen": "NaN"}]}',
         "messages[0].first_seen", "finite"),
        ('{"format": "lkstate-message-history", "version": 1, "messages": '
         '[{"id": "1", "role": "user", "kind": "chat", "text": "", "colour": "red"}]}', "messages[0]", "'colour'"),
        ('{"format": "lkstate-message-history", "version": 1, "messages": '
         '[{"id": "1", "role": "user", "kind": "chat", "text": "", "attributes": [["k"]]}]}',
         "messages[0].attributes[0]", "pair"),
        ('{"format": "lkstate-message-history", "version": 1, "messages": '
         '[{"id": "1", "role": "user", "kind": "chat", "text": "a"}, {"id": "1", "role": "user", "kind": "chat", '
         '"text": "b"}]}', "messages[1].id", "two messages with the id '1'"),
    ],
)
def test_what_is_not_a_readable_history_is_refused_in_words_saying_where(
    text: str, where: str | None, words: str
) -> None:
    with pytest.raises(HistoryError) as refused:
        MessageHistory.from_json(text)
    assert words in str(refused.value)
    assert refused.value.where == where
    assert refused.value.remedy, "every refusal says what to do"
    assert isinstance(refused.value, ValueError)


def test_a_deeply_nested_document_is_refused_not_a_crash() -> None:
    with pytest.raises(HistoryError, match="not JSON"):
        MessageHistory.from_json("[" * 100_000 + "]" * 100_000)


# --- restoring ---------------------------------------------------------------------------------


def restored(messages: Sequence[Message], at: float = T0 + 1) -> ev.HistoryRestored:
    return ev.HistoryRestored(at=at, messages=tuple(messages))


def test_restored_messages_come_first_marked_restored_and_the_live_ones_stay() -> None:
    live = fold([agent_says("Welcome back.", "SG_9", T0 + 0.5)], connected())
    old = [message("tr/a", "Hello!"), message("chat/b", "Hi", Role.USER, kind=MessageKind.CHAT)]
    state = reduce(live, restored(old))
    assert shown(state) == [(Role.AGENT, "Hello!", RESTORED), (Role.USER, "Hi", RESTORED),
                            (Role.AGENT, "Welcome back.", LIVE)]
    assert list(state.messages)[:2] == [attrs.evolve(m, origin=RESTORED) for m in old], "otherwise unchanged"
    assert reduce(state, restored(old, at=T0 + 9)) is state, "the same restore again changes nothing"


def test_a_second_restore_replaces_the_first_and_an_empty_one_clears_it() -> None:
    state = reduce(connected(), restored([message("a", "one"), message("b", "two")]))
    state = reduce(state, restored([message("c", "three")]))
    assert shown(state) == [(Role.AGENT, "three", RESTORED)]
    assert shown(reduce(state, restored([]))) == []


def test_a_new_start_keeps_the_restored_conversation_and_drops_what_was_heard() -> None:
    state = fold([restored([message("a", "before")]), agent_says("heard", "SG_1", T0 + 2)], connected())
    state = reduce(state, ev.StartRequested(at=T0 + 10))
    assert shown(state) == [(Role.AGENT, "before", RESTORED)]


def test_restored_messages_never_wait_forever() -> None:
    state = reduce(connected(), restored([
        message("chat/1", "on its way", Role.USER, kind=MessageKind.CHAT, delivery=DeliveryStatus.SENDING),
        message("tr/2", "half a sen", final=False),
    ]))
    sending, streaming = state.messages
    assert sending.delivery is DeliveryStatus.FAILED and "still being sent" in (sending.error or "")
    assert streaming.interrupted and not streaming.final and "still arriving" in (streaming.error or "")


def test_an_id_this_session_already_uses_is_prefixed_and_a_repeated_one_is_reported() -> None:
    live = fold(typed("hi", "chat/local/1", T0 + 1), connected())
    state = reduce(live, restored([message("chat/local/1", "old hi"), message("x", "a"), message("x", "b")]))
    assert [m.id for m in state.messages] == ["restored/chat/local/1", "x", "chat/local/1"]
    assert state.messages[1].text == "a"
    assert state.problems[-1].source == "history" and "'x'" in state.problems[-1].message


def test_a_restored_text_longer_than_the_limit_is_cut_and_says_so() -> None:
    state = reduce(connected(), restored([message("a", "x" * 50)]), Limits(max_message_chars=10))
    assert state.messages[0].text == "x" * 10 and state.messages[0].error == "Cut at 10 characters."


def test_the_timeline_never_pairs_the_agents_record_with_a_restored_message() -> None:
    state = reduce(connected(), restored([message("old", "Hello! I am the demo agent.")]))
    state = fetched(state, [item("item_g", pb.ASSISTANT, "Hello! I am the demo agent.")])
    rows = timeline(state)
    assert [(r.message.origin if r.message else None, r.item is not None) for r in rows] == [
        (RESTORED, False), (HISTORY, True)
    ]


# --- the agent's history -------------------------------------------------------------------------


GREETING = "Hello! I am the lkstate demo agent."


def test_a_greeting_said_before_the_join_appears_once_marked_from_history_before_the_live_messages() -> None:
    live = fold([*typed("What is the weather?", "chat/local/1", T0 + 3)], connected())
    state = fetched(live, [
        handoff(),
        item("item_g", pb.ASSISTANT, "<expression value=\"warm\"/> " + GREETING, created=T0 - 30),
        item("item_q", pb.USER, "What is the weather?"),
    ])
    assert shown(state) == [(Role.AGENT, GREETING, HISTORY), (Role.USER, "What is the weather?", LIVE)]
    greeting = state.messages[0]
    assert (greeting.id, greeting.sender, greeting.kind, greeting.final) == (
        "history/item_g", AGENT, MessageKind.TRANSCRIPT, True)
    assert greeting.first_seen == pytest.approx(T0 - 30), "when the agent said it"
    assert any(isinstance(i, AgentHandoffItem) for i in state.remote.items), "the handoff joins the agent's items"
    assert state.remote.agent_id == "demo_agent"
    assert (state.agent_history.request_id, state.agent_history.fetched, state.agent_history.added) == (None, 1, 1)
    assert fetched(state, [handoff(), item("item_g", pb.ASSISTANT, GREETING), item("item_q", pb.USER, "What is the weather?")],
                   request_id="req-2").messages == state.messages, "a second fetch adds nothing"


def test_what_also_arrived_as_transcripts_is_not_added_again() -> None:
    live = fold([
        agent_says("Hi there, how can I help?", "SG_1", T0 + 1),
        user_says("What is the weather", "SG_u1", T0 + 2),  # one spoken turn, two final STT results
        user_says("in Paris?", "SG_u2", T0 + 2.5),
        *typed("thanks!", "chat/local/1", T0 + 4),
        agent_says("The weather in Paris is sun", "SG_2", T0 + 5, final=False),  # still streaming
    ], connected())
    state = fetched(live, [
        item("item_1", pb.ASSISTANT, "Hi there, how can I help?"),
        item("item_2", pb.USER, "What is the weather in Paris?", confidence=0.9),
        item("item_3", pb.USER, "Thanks!"),
        item("item_4", pb.ASSISTANT, "The weather in Paris is sunny and 21 degrees."),
    ])
    assert state.messages == live.messages
    assert state.agent_history.added == 0 and state.agent_history.fetched == 1


def test_the_same_words_before_and_after_the_join_are_two_messages() -> None:
    """The edge of matching by text: walking from the end pairs the newer greeting with its transcript."""
    live = fold([agent_says(GREETING, "SG_1", T0 + 1)], connected())
    state = fetched(live, [item("item_a", pb.ASSISTANT, GREETING), item("item_b", pb.ASSISTANT, GREETING)])
    assert shown(state) == [(Role.AGENT, GREETING, HISTORY), (Role.AGENT, GREETING, LIVE)]
    assert state.messages[0].id == "history/item_a"


def test_a_reply_cut_off_a_word_apart_on_the_two_roads_is_one_message() -> None:
    live = fold([agent_says("The weather in", "SG_1", T0 + 1)], connected())
    live = reduce(live, ev.ParticipantLeft(at=T0 + 2, identity=AGENT))  # interrupted where it stood
    state = fetched(live, [item("item_1", pb.ASSISTANT, "The weather in Par")])
    assert state.messages == live.messages


def test_an_item_said_after_the_join_without_a_transcript_is_left_to_the_timeline() -> None:
    live = fold([agent_says("Hi.", "SG_1", T0 + 1)], connected())
    state = fetched(live, [item("item_1", pb.ASSISTANT, "Hi."), item("item_2", pb.USER, "run input text")])
    assert state.messages == live.messages
    assert [r.text for r in timeline(state)] == ["Hi.", "run input text"]


def test_what_the_user_said_before_the_join_is_the_users_spoken_or_typed() -> None:
    state = fetched(connected(), [item("u1", pb.USER, "spoken", confidence=1.0), item("u2", pb.USER, "typed")])
    assert [(m.role, m.kind, m.sender) for m in state.messages] == [
        (Role.USER, MessageKind.TRANSCRIPT, USER), (Role.USER, MessageKind.CHAT, USER)]


def test_the_agents_instructions_and_unknown_items_are_not_shown_and_unknown_ones_are_counted() -> None:
    state = fetched(connected(), [
        item("s", pb.SYSTEM, "You are a helpful agent."),
        pb.ChatContext.ChatItem(),  # a kind this version cannot read
        item("g", pb.ASSISTANT, GREETING),
    ])
    assert shown(state) == [(Role.AGENT, GREETING, HISTORY)]
    assert [i.id for i in state.remote.items] == ["g"]
    assert state.agent_history.unknown_items == 1
    assert state.problems == (), "a newer framework's item is not the user's problem"


def test_the_order_is_restored_then_agent_history_then_live() -> None:
    state = fold([agent_says("live", "SG_1", T0 + 1), restored([message("old", "restored")])], connected())
    state = fetched(state, [item("g", pb.ASSISTANT, "from history"), item("l", pb.ASSISTANT, "live")])
    assert shown(state) == [(Role.AGENT, "restored", RESTORED), (Role.AGENT, "from history", HISTORY),
                            (Role.AGENT, "live", LIVE)]


def test_only_the_answer_to_the_request_from_the_agent_asked_is_merged() -> None:
    base = fold([ev.AgentHistoryRequested(at=T0 + 5, agent=AGENT, request_id="mine")], connected())
    theirs = reduce(base, ev.AgentSessionPayload(at=T0 + 6, sender=AGENT, payload=answer("theirs", [item("g", pb.ASSISTANT, "x")])))
    assert theirs is base, "another client's answer (the host sends answers to the whole room)"
    impostor = fold([
        ev.ParticipantJoined(at=T0 + 1, identity="mallory", name="", kind="standard"),
        ev.AgentSessionPayload(at=T0 + 6, sender="mallory", payload=answer("mine", [item("g", pb.ASSISTANT, "x")])),
    ], base)
    assert impostor.messages == () and impostor.agent_history.request_id == "mine"
    assert "not the agent" in impostor.problems[-1].message


@pytest.mark.parametrize(
    ("response", "words"),
    [
        (pb.SessionResponse(request_id="req-1", error="internal error"), "could not give its chat history: internal error"),
        (pb.SessionResponse(request_id="req-1", pong=pb.SessionResponse.Pong()), "with something else (pong)"),
        (pb.SessionResponse(request_id="req-1"), "with something else (an empty answer)"),
    ],
)
def test_an_answer_that_is_not_a_history_is_a_problem_in_words_and_nothing_is_lost(
    response: pb.SessionResponse, words: str
) -> None:
    live = fold([agent_says("Hi.", "SG_1", T0 + 1)], connected())
    state = fold([
        ev.AgentHistoryRequested(at=T0 + 5, agent=AGENT, request_id="req-1"),
        ev.AgentSessionPayload(at=T0 + 6, sender=AGENT, payload=pb.AgentSessionMessage(response=response).SerializeToString()),
    ], live)
    assert state.messages == live.messages
    assert state.problems[-1].source == "agent history" and words in state.problems[-1].message
    assert state.agent_history.request_id is None


def test_garbage_where_the_answer_should_be_is_reported_and_the_request_stays_open() -> None:
    live = fold([ev.AgentHistoryRequested(at=T0 + 5, agent=AGENT, request_id="req-1")], connected())
    state = reduce(live, ev.AgentSessionPayload(at=T0 + 6, sender=AGENT, payload=b"\x2a\xff\xff\xff garbage"))
    assert "not a valid AgentSessionMessage" in state.problems[-1].message
    assert state.agent_history.request_id == "req-1" and state.messages == ()


# --- recorded and replayed -------------------------------------------------------------------------


def test_a_replay_of_restore_and_merge_reproduces_every_snapshot() -> None:
    events: list[ev.Event] = [
        ev.StartRequested(at=T0),
        ev.HistoryRestored(at=T0 + 0.01, messages=(message("old", "from last time", expression=AgentExpression("calm")),)),
        ev.RoomConnected(at=T0 + 0.1, room_name="room", local_identity=USER, server_url="ws://x"),
        ev.ParticipantJoined(at=T0 + 0.2, identity=AGENT, name="", kind="agent", attributes=(("lk.agent.state", "listening"),)),
        ev.AgentHistoryRequested(at=T0 + 0.3, agent=AGENT, request_id="req-1"),
        ev.AgentSessionPayload(at=T0 + 0.4, sender=AGENT, payload=answer("req-1", [handoff(), item("g", pb.ASSISTANT, GREETING)])),
        agent_says("And now live.", "SG_1", T0 + 1),
    ]
    buffer = io.StringIO()
    store = Store()
    live: list[SessionState] = []
    store.states.subscribe(live.append)
    Recorder(buffer).attach(store)
    for event in events:
        store.dispatch(event)
    replay = Replay.from_file(io.StringIO(buffer.getvalue()))
    replayed: list[SessionState] = []
    replay.states.subscribe(replayed.append)
    replay.step(len(replay))
    assert replayed == live
    assert shown(live[-1]) == [(Role.AGENT, "from last time", RESTORED), (Role.AGENT, GREETING, HISTORY),
                               (Role.AGENT, "And now live.", LIVE)]


def test_front_ends_say_where_an_earlier_message_came_from() -> None:
    from lkstate.ui import describe_message

    assert describe_message(message("a", "x", origin=RESTORED)).notes == ("spoken", "earlier session")
    assert describe_message(message("b", "x", origin=HISTORY)).notes == ("spoken", "before you joined")
    assert describe_message(message("c", "x")).earlier is None


def test_a_conversation_kept_from_an_earlier_room_is_not_taken_for_this_agents() -> None:
    before = fold([agent_says(GREETING, "SG_1", T0 + 1)], connected())
    again = fold([
        ev.StartRequested(at=T0 + 60, keep_history=True),
        ev.RoomConnected(at=T0 + 60.1, room_name="room-2", local_identity=USER, server_url="ws://x"),
        ev.ParticipantJoined(at=T0 + 60.2, identity=AGENT, name="", kind="agent",
                             attributes=(("lk.agent.state", "listening"),)),
    ], before)
    again = reduce(again, agent_says("Welcome.", "SG_2", T0 + 62))
    state = fetched(again, [item("item_g2", pb.ASSISTANT, GREETING), item("item_w", pb.ASSISTANT, "Welcome.")], at=T0 + 63)
    assert shown(state) == [(Role.AGENT, GREETING, LIVE), (Role.AGENT, GREETING, HISTORY), (Role.AGENT, "Welcome.", LIVE)]
