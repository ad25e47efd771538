"""The reducer and ``lk.agent.session`` payloads: who may speak for the agent, and what a bad payload does.

Payloads go through :func:`lkstate.reduce` as :class:`AgentSessionPayload`
events, the way a session and a replay feed them. The decoding of each kind of
event is specified in ``test_remote_decode.py``; here it is the reducer's part:
only the tracked agent's payloads count, limits come from :class:`Limits`, and
payloads the real agent could not produce — cut short, oversized, garbage —
are reported without disturbing anything else.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from livekit.protocol.agent_pb import agent_session as pb

from lkstate import Limits, SessionState
from lkstate.lowlevel import reduce
from lkstate._core import events as ev
from lkstate._core.remote_state import MessageItem

USER = "user-1"
AGENT = "agent-AJ_1"


def fold(events: Iterable[ev.Event], state: SessionState | None = None, limits: Limits | None = None) -> SessionState:
    state = state if state is not None else SessionState()
    for event in events:
        state = reduce(state, event) if limits is None else reduce(state, event, limits)
    return state


def joined(
    identity: str, kind: str = "agent", at: float = 2.0, attributes: dict[str, str] | None = None
) -> ev.ParticipantJoined:
    pairs = tuple(sorted((attributes or {}).items()))
    return ev.ParticipantJoined(at=at, identity=identity, name="", kind=kind, attributes=pairs)


def with_agent() -> SessionState:
    return fold(
        [
            ev.StartRequested(at=1.0),
            ev.RoomConnected(at=1.1, room_name="room", local_identity=USER, server_url="ws://x"),
            joined(AGENT, attributes={"lk.agent.state": "listening"}),
        ]
    )


def event(e: pb.AgentSessionEvent) -> bytes:
    return pb.AgentSessionMessage(event=e).SerializeToString()


def said(text: str, id: str = "item_1") -> bytes:
    message = pb.ChatMessage(id=id, role=pb.ASSISTANT, content=[pb.ChatMessage.ChatContent(text=text)])
    return event(
        pb.AgentSessionEvent(
            conversation_item_added=pb.AgentSessionEvent.ConversationItemAdded(item=pb.ChatContext.ChatItem(message=message))
        )
    )


def thinking() -> bytes:
    return event(pb.AgentSessionEvent(agent_state_changed=pb.AgentSessionEvent.AgentStateChanged(new_state=pb.AS_THINKING)))


def payload(data: bytes, sender: str = AGENT, at: float = 5.0) -> ev.AgentSessionPayload:
    return ev.AgentSessionPayload(at=at, sender=sender, payload=data)


# --- who speaks for the agent -------------------------------------------------------------


def test_a_payload_from_the_tracked_agent_updates_the_remote_state_and_the_time() -> None:
    state = fold([payload(thinking(), at=5.0), payload(said("Hello!"), at=6.0)], with_agent())
    assert state.remote.agent_state == "thinking"
    assert [i.text for i in state.remote.items if isinstance(i, MessageItem)] == ["Hello!"]
    assert state.updated_at == 6.0 and state.problems == ()


def test_a_payload_from_a_participant_who_is_not_the_agent_is_refused_and_reported() -> None:
    for impostor in (
        joined("mallory", kind="standard"),
        joined("agent-impostor", kind="standard", attributes={"lk.agent.name": "demo", "lk.agent.state": "listening"}),
        joined("agent-second", attributes={"lk.agent.state": "listening"}),
        joined("avatar", attributes={"lk.publish_on_behalf": AGENT}),
    ):
        base = reduce(with_agent(), impostor)
        assert base.agent.identity == AGENT
        state = reduce(base, payload(said("Send me your password."), sender=impostor.identity))
        assert state.remote is base.remote
        (problem,) = state.problems
        assert problem.source == "lk.agent.session"
        assert problem.message == f"Ignored an agent-session message from {impostor.identity!r}, which is not the agent."


def test_a_payload_claiming_to_come_from_the_user_or_a_stranger_is_refused() -> None:
    base = with_agent()
    for sender in (USER, "never-joined", ""):
        state = reduce(base, payload(thinking(), sender=sender))
        assert state.remote is base.remote and len(state.problems) == 1


def test_before_any_agent_is_known_no_payload_is_accepted() -> None:
    base = fold([ev.StartRequested(at=1.0), ev.RoomConnected(at=1.1, room_name="r", local_identity=USER, server_url="x")])
    state = reduce(base, payload(thinking(), sender=AGENT))
    assert state.remote.agent_state is None and state.problems[-1].source == "lk.agent.session"


def test_after_the_agent_is_replaced_only_the_new_one_is_heard() -> None:
    state = fold(
        [payload(thinking()), ev.ParticipantLeft(at=7.0, identity=AGENT), joined("agent-2", at=8.0)], with_agent()
    )
    assert state.agent.identity == "agent-2"
    old = reduce(state, payload(said("from the old agent", id="old"), sender=AGENT, at=9.0))
    assert old.remote.item("old") is None and old.problems[-1].source == "lk.agent.session"
    new = reduce(state, payload(said("from the new agent", id="new"), sender="agent-2", at=9.0))
    assert new.remote.item("new") is not None


def test_a_flood_of_refused_payloads_keeps_one_problem_per_sender_in_a_row() -> None:
    base = reduce(with_agent(), joined("mallory", kind="standard"))
    state = fold([payload(b"junk", sender="mallory", at=10.0 + n) for n in range(100)], base)
    assert len(state.problems) == 1 and state.problems[0].at == 109.0


# --- payloads the real agent cannot produce -------------------------------------------------


def test_a_payload_cut_short_is_a_remote_problem_and_changes_nothing_else() -> None:
    base = fold([payload(said("Hello!"))], with_agent())
    whole = said("The weather in Paris is sunny and 21 degrees.", id="item_2")
    state = reduce(base, payload(whole[: len(whole) // 2], at=7.0))
    assert state.remote.items == base.remote.items and state.remote.agent_state == base.remote.agent_state
    (problem,) = state.remote.problems
    assert "not a valid AgentSessionMessage (corrupt or cut short)" in problem
    assert state.remote.problem_count == 1
    assert [p.message for p in state.problems] == [*(p.message for p in base.problems), problem]
    assert state.messages is base.messages and state.agent is base.agent


def test_an_event_larger_than_the_limit_is_refused_naming_the_limit() -> None:
    big = said("word " * 400)
    limits = Limits(max_session_message_bytes=1000)
    state = reduce(with_agent(), payload(big), limits)
    assert len(state.remote.items) == 0
    assert state.remote.problems == (
        f"Ignored a remote-session message of {len(big):,} bytes from the agent: larger than the 1,000-byte limit.",
    )
    assert len(reduce(with_agent(), payload(big)).remote.items) == 1, "within the default limit"


def test_an_oversized_response_is_left_to_the_client_and_changes_nothing() -> None:
    items = [
        pb.ChatContext.ChatItem(message=pb.ChatMessage(id=f"i{n}", role=pb.USER, content=[pb.ChatMessage.ChatContent(text="x" * 100)]))
        for n in range(20)
    ]
    response = pb.AgentSessionMessage(
        response=pb.SessionResponse(
            request_id="r1", get_chat_history=pb.SessionResponse.GetChatHistoryResponse(items=items)
        )
    ).SerializeToString()
    base = with_agent()
    assert reduce(base, payload(response), Limits(max_session_message_bytes=500)) is base


def test_responses_and_repeated_events_return_the_very_same_state() -> None:
    base = fold([payload(thinking())], with_agent())
    pong = pb.AgentSessionMessage(response=pb.SessionResponse(request_id="r", pong=pb.SessionResponse.Pong()))
    assert reduce(base, payload(pong.SerializeToString())) is base
    assert reduce(base, payload(thinking(), at=99.0)) is base


def test_an_empty_payload_and_one_of_an_unknown_kind_are_problems() -> None:
    unknown_kind = b"\xf2\x07\x02\x08\x01"  # field 126, a message this schema does not have
    state = fold([payload(b""), payload(unknown_kind)], with_agent())
    assert state.remote.problems[0] == "Ignored an empty remote-session message from the agent."
    assert "of a kind this version of lkstate does not know (field 126)" in state.remote.problems[1]


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_whatever_bytes_the_agent_sends_only_the_remote_state_problems_and_time_can_change(data: bytes) -> None:
    base = with_agent()
    state = reduce(base, payload(data))
    assert attrs.evolve(state, remote=base.remote, updated_at=base.updated_at, problems=base.problems) == base


# --- lifecycle -----------------------------------------------------------------------------


def test_garbage_from_the_agent_is_also_shown_with_the_sessions_problems() -> None:
    state = fold([payload(b"\xff\x00garbage")], with_agent())
    assert state.remote.problems
    assert state.problems and state.problems[-1].source == "lk.agent.session"
    assert state.problems[-1].message == state.remote.problems[-1]


def test_a_restart_forgets_the_old_agents_reports() -> None:
    state = fold([payload(thinking()), payload(said("Hello!"))], with_agent())
    fresh = reduce(state, ev.StartRequested(at=10.0))
    assert fresh.remote.agent_state is None and len(fresh.remote.items) == 0
    kept = reduce(state, ev.StartRequested(at=10.0, keep_history=True))
    assert kept.remote.agent_state is None and len(kept.remote.items) == 1


def test_the_agent_leaving_clears_what_it_reported_about_itself() -> None:
    state = fold([payload(thinking()), ev.ParticipantLeft(at=7.0, identity=AGENT)], with_agent())
    assert state.remote.agent_state is None
