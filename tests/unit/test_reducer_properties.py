"""Invariants of the reducer under arbitrary event sequences (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lkstate import SessionState
from lkstate.lowlevel import reduce
from lkstate._core import events as ev

USER = "me"
SENDERS = [USER, "agent-1", "agent-2", "bob"]


@st.composite
def transcript_events(draw: st.DrawFn) -> ev.Event:
    return ev.TranscriptReceived(
        at=draw(st.floats(0, 100, allow_nan=False)),
        sender=draw(st.sampled_from(SENDERS)),
        segment_id=draw(st.sampled_from(["A", "B", "C", "D"])),
        stream_seq=draw(st.integers(1, 6)),
        text=draw(st.text(max_size=5)),
        final=draw(st.booleans()),
        closed=draw(st.booleans()),
    )


presence_events = st.one_of(
    st.builds(
        ev.ParticipantJoined,
        at=st.just(1.0),
        identity=st.sampled_from(SENDERS[1:]),
        name=st.just(""),
        kind=st.sampled_from(["agent", "standard"]),
        attributes=st.sampled_from([(), (("lk.agent.state", "listening"),), (("lk.agent.state", "weird"),)]),
    ),
    st.builds(ev.ParticipantLeft, at=st.just(2.0), identity=st.sampled_from(SENDERS[1:])),
    st.builds(ev.AgentWaitTimedOut, at=st.just(3.0), timeout=st.just(20.0)),
    st.builds(ev.RoomReconnecting, at=st.just(4.0)),
    st.builds(ev.RoomReconnected, at=st.just(4.5)),
    st.builds(
        ev.ChatSendRequested,
        at=st.just(5.0),
        message_id=st.sampled_from(["c1", "c2"]),
        text=st.just("hi"),
        sender=st.just(USER),
    ),
)

events = st.lists(st.one_of(transcript_events(), presence_events), max_size=60)


def start() -> SessionState:
    state = reduce(SessionState(), ev.StartRequested(at=0.0))
    state = reduce(state, ev.RoomConnected(at=0.1, room_name="r", local_identity=USER, server_url="ws://x"))
    return reduce(
        state, ev.ParticipantJoined(at=0.2, identity="agent-1", name="", kind="agent", attributes=())
    )


@settings(max_examples=300, deadline=None)
@given(events)
def test_no_message_is_ever_lost_ids_stay_unique_and_order_is_stable(sequence: list[ev.Event]) -> None:
    state = start()
    for event in sequence:
        before = state
        state = reduce(state, event)
        ids_before = [m.id for m in before.messages]
        ids_after = [m.id for m in state.messages]
        assert ids_after[: len(ids_before)] == ids_before, "messages are only appended, never dropped or moved"
        assert len(set(ids_after)) == len(ids_after)


@settings(max_examples=300, deadline=None)
@given(events)
def test_a_final_message_stays_final(sequence: list[ev.Event]) -> None:
    state = start()
    finals: set[str] = set()
    for event in sequence:
        state = reduce(state, event)
        for message in state.messages:
            if message.id in finals:
                assert message.final
            if message.final:
                finals.add(message.id)


@settings(max_examples=200, deadline=None)
@given(events)
def test_replaying_the_same_events_gives_equal_snapshots(sequence: list[ev.Event]) -> None:
    first, second = start(), start()
    for event in sequence:
        first, second = reduce(first, event), reduce(second, event)
        assert first == second and hash(first) == hash(second)


@settings(max_examples=200, deadline=None)
@given(events)
def test_the_agent_view_is_consistent_with_its_status(sequence: list[ev.Event]) -> None:
    state = start()
    for event in sequence:
        state = reduce(state, event)
        agent = state.agent
        assert (agent.status.value == "failed") == bool(agent.failure_reasons)
        if agent.identity is not None:
            assert agent.agents and agent.agents[0].identity == agent.identity
        assert sum([agent.is_finished, agent.is_pending, agent.is_ready]) <= 1
