"""Store delivery at its edges: subscribing or leaving mid-delivery, and completion."""

from __future__ import annotations

from reactivex.abc import DisposableBase

from lkstate import SessionState
from lkstate.lowlevel import Store
from lkstate._core import events as ev


def problem(text: str, at: float = 1.0) -> ev.ProblemObserved:
    return ev.ProblemObserved(at=at, source="test", message=text)


def last_problem(state: SessionState) -> str:
    return state.problems[-1].message if state.problems else "initial"


def test_a_subscriber_added_during_a_delivery_gets_that_snapshot_once_then_the_next_ones() -> None:
    store = Store()
    late: list[str] = []

    def first(state: SessionState) -> None:
        if last_problem(state) == "one" and not late:
            store.states.subscribe(lambda s: late.append(last_problem(s)))

    store.states.subscribe(first)
    store.dispatch(problem("one"))
    store.dispatch(problem("two", at=2.0))
    assert late == ["one", "two"]


def test_a_subscriber_disposed_during_a_delivery_receives_nothing_more() -> None:
    store = Store()
    seen: list[str] = []
    subscription: list[DisposableBase] = []

    def leaver(state: SessionState) -> None:
        if last_problem(state) == "one":
            subscription[0].dispose()

    store.states.subscribe(leaver)
    subscription.append(store.states.subscribe(lambda s: seen.append(last_problem(s))))
    store.dispatch(problem("one"))
    store.dispatch(problem("two", at=2.0))
    assert seen == ["initial"]


def test_completion_reaches_current_and_later_subscribers_and_ends_delivery() -> None:
    store = Store()
    events: list[str] = []
    store.states.subscribe(lambda s: events.append("next"), on_completed=lambda: events.append("done"))
    store.complete()
    store.complete()
    store.dispatch(problem("after"))
    store.states.subscribe(lambda s: events.append("late next"), on_completed=lambda: events.append("late done"))
    assert events == ["next", "done", "late done"]
    assert last_problem(store.state) == "after"
