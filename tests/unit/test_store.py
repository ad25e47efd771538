"""The store: one fold per event, delivered in order, to subscribers that cannot hurt each other."""

from __future__ import annotations

import threading

import pytest

from lkstate import SessionState
from lkstate.lowlevel import Store
from lkstate._core import events as ev


def problem(text: str, at: float = 1.0) -> ev.ProblemObserved:
    return ev.ProblemObserved(at=at, source="test", message=text)


def test_a_late_subscriber_gets_the_current_snapshot_at_once() -> None:
    store = Store()
    store.dispatch(problem("one"))
    seen: list[SessionState] = []
    store.states.subscribe(seen.append)
    assert seen == [store.state]


def test_only_changes_are_delivered() -> None:
    store = Store()
    seen: list[SessionState] = []
    store.states.subscribe(seen.append)
    store.dispatch(ev.ProblemsDismissed(at=1.0))  # nothing to dismiss: no change
    store.dispatch(problem("one"))
    assert len(seen) == 2


def test_every_subscriber_sees_the_same_snapshot_objects() -> None:
    store = Store()
    a: list[SessionState] = []
    b: list[SessionState] = []
    store.states.subscribe(a.append)
    store.states.subscribe(b.append)
    for index in range(5):
        store.dispatch(problem(f"p{index}", at=float(index)))
    assert all(x is y for x, y in zip(a, b, strict=True))


def test_an_event_dispatched_during_delivery_waits_for_the_delivery_to_finish() -> None:
    store = Store()
    calls: list[str] = []
    depth = 0

    def reentrant(state: SessionState) -> None:
        nonlocal depth
        depth += 1
        assert depth == 1, "a subscriber was re-entered"
        calls.append(state.problems[-1].message if state.problems else "initial")
        if state.problems and state.problems[-1].message == "first":
            store.dispatch(problem("second", at=2.0))
        depth -= 1

    store.states.subscribe(reentrant)
    store.dispatch(problem("first"))
    assert calls == ["initial", "first", "second"]


def test_a_subscriber_that_raises_does_not_stop_the_others_and_is_reported_once() -> None:
    store = Store()
    healthy: list[SessionState] = []

    def broken(state: SessionState) -> None:
        if state.problems:
            raise RuntimeError("widget exploded")

    store.states.subscribe(broken)
    store.states.subscribe(healthy.append)
    store.dispatch(problem("one"))
    store.dispatch(problem("two", at=2.0))
    messages = [p.message for p in store.state.problems]
    assert messages.count("one") == 1 and messages.count("two") == 1
    reports = [m for m in messages if "widget exploded" in m]
    assert len(reports) == 1
    assert healthy[-1] is store.state


def test_select_delivers_a_slice_only_when_it_changes() -> None:
    store = Store()
    counts: list[int] = []
    store.select(lambda s: len(s.problems)).subscribe(counts.append)
    store.dispatch(problem("a"))
    store.dispatch(problem("a", at=2.0))  # same complaint repeated: count unchanged
    store.dispatch(problem("b", at=3.0))
    assert counts == [0, 1, 2]


def test_dispatching_from_a_second_thread_is_refused() -> None:
    store = Store()
    store.dispatch(problem("owner thread"))
    errors: list[BaseException] = []

    def other() -> None:
        try:
            store.dispatch(problem("intruder"))
        except RuntimeError as error:
            errors.append(error)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert errors and "second thread" in str(errors[0])


def test_taps_see_every_event_with_the_state_it_produced() -> None:
    store = Store()
    tapped: list[tuple[ev.Event, SessionState]] = []
    remove = store.add_tap(lambda event, state: tapped.append((event, state)))
    event = problem("x")
    store.dispatch(event)
    remove()
    store.dispatch(problem("y", at=2.0))
    assert tapped == [(event, tapped[0][1])] and tapped[0][1] is not None


def test_a_tap_that_raises_does_not_break_dispatch(caplog: pytest.LogCaptureFixture) -> None:
    store = Store()

    def bad_tap(event: ev.Event, state: SessionState) -> None:
        raise ValueError("tap failed")

    store.add_tap(bad_tap)
    store.dispatch(problem("x"))
    assert store.state.problems[-1].message == "x"
    assert "tap raised" in caplog.text


async def test_wait_until_returns_the_current_snapshot_when_it_already_satisfies() -> None:
    store = Store()
    store.dispatch(problem("one"))
    assert await store.wait_until(lambda s: len(s.problems) == 1) is store.state


async def test_wait_until_returns_the_first_snapshot_that_satisfies_and_stops_looking() -> None:
    import asyncio

    store = Store()
    calls: list[int] = []

    def two_problems(state: SessionState) -> bool:
        calls.append(len(state.problems))
        return len(state.problems) == 2

    waiting = asyncio.ensure_future(store.wait_until(two_problems, timeout=5))
    await asyncio.sleep(0)
    store.dispatch(problem("one"))
    store.dispatch(problem("two", at=2.0))
    found = await waiting
    assert [p.message for p in found.problems] == ["one", "two"]
    asked = len(calls)
    store.dispatch(problem("three", at=3.0))
    assert len(calls) == asked, "it no longer watches the store once satisfied"


async def test_wait_until_gives_up_after_the_timeout() -> None:
    store = Store()
    with pytest.raises(TimeoutError):
        await store.wait_until(lambda s: bool(s.problems), timeout=0.05)
    store.dispatch(problem("late"))  # nobody is left watching; nothing breaks
