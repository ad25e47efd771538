"""``state.rpc``: RPC calls both ways, folded from events. Pure; the wire tests are in
tests/integration/test_parity_wire.py."""

from __future__ import annotations

import pytest

from lkstate import Limits, SessionState
from lkstate._core import events as ev
from lkstate._session.recording import decode_event, encode_event
from lkstate.agent_session import RpcDirection, RpcStatus
from lkstate.lowlevel import reduce
from tests.unit.test_reducer import AGENT, USER, fold, ready_session


def started(call_id: str, at: float, *, method: str = "get_location", caller: str = AGENT,
            direction: RpcDirection = RpcDirection.INCOMING, request: str | None = None) -> ev.RpcCallStarted:
    callee = USER if direction is RpcDirection.INCOMING else AGENT
    return ev.RpcCallStarted(at=at, call_id=call_id, direction=direction, method=method, caller=caller,
                             callee=callee, request=request)


def test_a_call_is_pending_then_settled_with_its_duration() -> None:
    state = fold([started("rpc/in/1", 10.0, request="{}")], ready_session())
    (call,) = state.rpc.calls
    assert call.status is RpcStatus.PENDING and call.duration is None and state.rpc.pending == (call,)
    state = reduce(state, ev.RpcCallFinished(at=10.25, call_id="rpc/in/1", status=RpcStatus.SUCCEEDED,
                                             response="Lisbon"))
    (call,) = state.rpc.calls
    assert call.status is RpcStatus.SUCCEEDED and call.duration == pytest.approx(0.25)
    assert (call.request, call.response) == ("{}", "Lisbon")
    assert state.rpc.total == 1 and state.rpc.pending == ()


def test_a_settled_call_does_not_change_again_and_unknown_calls_change_nothing() -> None:
    state = fold([started("rpc/in/1", 10.0),
                  ev.RpcCallFinished(at=11.0, call_id="rpc/in/1", status=RpcStatus.TIMED_OUT, error="late",
                                     error_code=1502)], ready_session())
    again = ev.RpcCallFinished(at=12.0, call_id="rpc/in/1", status=RpcStatus.SUCCEEDED)
    assert reduce(state, again) is state
    assert reduce(state, ev.RpcCallFinished(at=12.0, call_id="rpc/in/9", status=RpcStatus.FAILED)) is state
    assert reduce(state, started("rpc/in/1", 13.0)) is state  # a call id is used once


def test_a_refused_call_is_also_a_problem_in_words() -> None:
    words = "Refused a call of 'get_location' from 'mallory': only the agent may call it."
    state = fold([started("rpc/in/2", 10.0, caller="mallory"),
                  ev.RpcCallFinished(at=10.0, call_id="rpc/in/2", status=RpcStatus.REFUSED, error=words,
                                     error_code=1400)], ready_session())
    assert state.rpc.calls[-1].error == words
    assert (state.problems[-1].source, state.problems[-1].message) == ("rpc", words)


def test_a_failed_call_is_not_a_problem_the_call_itself_says_it() -> None:
    state = fold([started("rpc/out/1", 10.0, direction=RpcDirection.OUTGOING, caller=USER),
                  ev.RpcCallFinished(at=10.5, call_id="rpc/out/1", status=RpcStatus.FAILED, error="no such method",
                                     error_code=1400)], ready_session())
    assert state.problems == () and state.rpc.calls[-1].status is RpcStatus.FAILED


def test_only_the_newest_calls_are_kept_and_the_total_counts_them_all() -> None:
    events: list[ev.Event] = [started(f"rpc/in/{i}", 10.0 + i) for i in range(5)]
    state = SessionState()
    for event in events:
        state = reduce(state, event, Limits(max_rpc_calls=3))
    assert [c.id for c in state.rpc.calls] == ["rpc/in/2", "rpc/in/3", "rpc/in/4"]
    assert state.rpc.total == 5


def test_the_methods_are_the_registered_set_sorted() -> None:
    state = reduce(SessionState(), ev.RpcMethodsChanged(at=1.0, methods=("b", "a")))
    assert state.rpc.methods == ("a", "b")
    assert reduce(state, ev.RpcMethodsChanged(at=2.0, methods=("a", "b"))) is state


def test_rpc_events_are_recorded_and_replay_to_equal_states() -> None:
    events: list[ev.Event] = [
        ev.RpcMethodsChanged(at=1.0, methods=("get_location",)),
        started("rpc/in/1", 10.0, request='{"precision": "city"}'),
        ev.RpcCallFinished(at=10.5, call_id="rpc/in/1", status=RpcStatus.SUCCEEDED, response="Lisbon"),
        started("rpc/out/1", 11.0, direction=RpcDirection.OUTGOING, caller=USER),
        ev.RpcCallFinished(at=12.0, call_id="rpc/out/1", status=RpcStatus.TIMED_OUT, error="late", error_code=1502),
    ]
    replayed = [decode_event(encode_event(event)) for event in events]
    assert replayed == events
    assert fold(replayed, ready_session()) == fold(events, ready_session())
