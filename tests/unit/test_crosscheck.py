"""The agent's state by two roads — its attribute and its session events — side by side."""

from __future__ import annotations

from collections.abc import Iterable

from livekit.protocol.agent_pb import agent_session as pb

from lkstate import SessionState
from lkstate.lowlevel import reduce
from lkstate._core import events as ev
from lkstate._core.crosscheck import AgentStateCheck, check_agent_state

USER = "user-1"
AGENT = "agent-1"


def fold(events: Iterable[ev.Event], state: SessionState | None = None) -> SessionState:
    state = state if state is not None else SessionState()
    for event in events:
        state = reduce(state, event)
    return state


def connected() -> SessionState:
    return fold(
        [
            ev.StartRequested(at=1.0),
            ev.RoomConnected(at=1.1, room_name="room", local_identity=USER, server_url="ws://x"),
        ]
    )


def agent_joins(value: str | None = "listening") -> ev.Event:
    attributes = (("lk.agent.state", value),) if value is not None else ()
    return ev.ParticipantJoined(at=2.0, identity=AGENT, name="", kind="agent", attributes=attributes)


def attribute(value: str, at: float = 3.0) -> ev.Event:
    return ev.ParticipantAttributesChanged(at=at, identity=AGENT, attributes=(("lk.agent.state", value),))


def reported(state: int, at: float = 3.0) -> ev.Event:
    message = pb.AgentSessionMessage(
        event=pb.AgentSessionEvent(agent_state_changed=pb.AgentSessionEvent.AgentStateChanged(new_state=state))  # type: ignore[arg-type]
    )
    return ev.AgentSessionPayload(at=at, sender=AGENT, payload=message.SerializeToString())


def test_with_no_agent_there_is_nothing_to_compare() -> None:
    check = check_agent_state(connected())
    assert check == AgentStateCheck(attribute=None, remote=None)
    assert check.agreement == "unknown" and check.agrees is None


def test_before_the_session_host_reports_the_answer_is_unknown() -> None:
    check = check_agent_state(fold([agent_joins("listening")], connected()))
    assert (check.attribute, check.remote, check.agreement) == ("listening", None, "unknown")


def test_before_the_attribute_is_published_the_answer_is_unknown() -> None:
    check = check_agent_state(fold([agent_joins(None), reported(pb.AS_LISTENING)], connected()))
    assert (check.attribute, check.remote, check.agrees) == (None, "listening", None)


def test_the_same_state_by_both_roads_agrees() -> None:
    state = fold([agent_joins("listening"), attribute("thinking"), reported(pb.AS_THINKING)], connected())
    check = check_agent_state(state)
    assert (check.agreement, check.agrees) == ("agree", True)


def test_one_road_ahead_of_the_other_disagrees_until_the_other_catches_up() -> None:
    state = fold([agent_joins("listening"), reported(pb.AS_LISTENING), reported(pb.AS_SPEAKING, at=4.0)], connected())
    assert check_agent_state(state).agreement == "disagree" and check_agent_state(state).agrees is False
    state = reduce(state, attribute("speaking", at=4.1))
    assert check_agent_state(state).agreement == "agree"


def test_the_raw_attribute_is_compared_not_the_clients_lifecycle() -> None:
    """The status may say ``pre-connect-buffering`` or ``failed``; the agent never reports those."""
    state = fold(
        [agent_joins("initializing"), reported(pb.AS_INITIALIZING), ev.AgentWaitTimedOut(at=30.0, timeout=20.0)],
        connected(),
    )
    assert state.agent.state == "failed"
    assert check_agent_state(state).agreement == "agree"


def test_an_attribute_value_lkstate_does_not_know_is_compared_as_it_is() -> None:
    state = fold([agent_joins("dreaming"), reported(pb.AS_IDLE)], connected())
    assert check_agent_state(state) == AgentStateCheck(attribute="dreaming", remote="idle")
    assert check_agent_state(state).agreement == "disagree"


def test_once_the_agent_is_gone_its_reports_are_forgotten_and_not_compared() -> None:
    state = fold(
        [agent_joins("listening"), reported(pb.AS_LISTENING), ev.ParticipantLeft(at=5.0, identity=AGENT)], connected()
    )
    assert state.remote.agent_state is None
    assert check_agent_state(state).agreement == "unknown"
