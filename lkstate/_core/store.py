"""The store: one current snapshot, folded once, shared by every subscriber.

RxPY's ``scan`` keeps one accumulator per subscription, so putting the reducer
behind an observable would fold every event once per subscriber and let their
states drift apart. The store instead folds each event exactly once and
publishes the result the way a ``BehaviorSubject`` does: a late subscriber gets
the current snapshot at once, then every change in order.

It does not use a ``BehaviorSubject`` itself: that takes a lock and copies its
observer list on every value and adds a layer of observers per subscriber,
which was a fifth of the cost of a transcript delta. Here the subscribers are
an immutable tuple, replaced when someone subscribes or leaves (rare) and
simply iterated when a snapshot is delivered (often), so a subscriber joining
or leaving during a delivery never disturbs it.

Delivery rules, which front ends rely on:

- Only changes are delivered. The reducer returns the same object when an event
  changes nothing, so the check is ``is``, not a deep comparison.
- Never two calls at once. Events are dispatched from one thread (the
  session's event loop); an event dispatched *while* subscribers are being
  called (a subscriber that sends a command, say) is queued and folded after
  the current delivery finishes, so no subscriber is ever re-entered.
- A subscriber that raises does not break the others or the session: the error
  is logged and reported once as a problem in the state.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import Disposable

from . import events as ev
from .options import Limits
from .reducer import reduce
from .state import SessionState

__all__ = ["Store"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

EventTap = Callable[[ev.Event, SessionState], None]
"""Called with each event and the snapshot it produced (recorders, tracing)."""


class _Subscriber:
    """One subscription: its observer, and whether it still wants values."""

    __slots__ = ("observer", "active")

    def __init__(self, observer: abc.ObserverBase[SessionState]) -> None:
        self.observer = observer
        self.active = True


class Store:
    """Holds the current :class:`SessionState` and folds events into it."""

    def __init__(
        self,
        initial: SessionState | None = None,
        *,
        limits: Limits | None = None,
        reducer: Callable[[SessionState, ev.Event, Limits], SessionState] = reduce,
    ) -> None:
        self._state = initial if initial is not None else SessionState()
        self._limits = limits if limits is not None else Limits()
        self._reducer = reducer
        self._subscribers: tuple[_Subscriber, ...] = ()
        self._completed = False
        self._pending: deque[ev.Event] = deque()
        self._dispatching = False
        self._owner: int | None = None
        self._taps: list[EventTap] = []
        self._failed_subscribers: set[_Subscriber] = set()
        self._states: Observable[SessionState] = reactivex.create(self._subscribe)

    @property
    def state(self) -> SessionState:
        """The current snapshot."""
        return self._state

    @property
    def states(self) -> Observable[SessionState]:
        """The current snapshot on subscribe, then every change, in order."""
        return self._states

    def select(self, selector: Callable[[SessionState], _T]) -> Observable[_T]:
        """A slice of the state, delivered only when it changes (compared with ``==``)."""
        return self._states.pipe(ops.map(selector), ops.distinct_until_changed())

    async def wait_until(
        self, predicate: Callable[[SessionState], bool], *, timeout: float | None = None
    ) -> SessionState:
        """Wait for a snapshot that satisfies ``predicate``; return it (the current one, if it does).

        Whatever moves the state (a session's room, a replay's playback) must
        run meanwhile on the same loop. Raises :class:`TimeoutError` after
        ``timeout`` seconds (``None``: no limit). ``Session.wait_until`` and
        ``Replay.wait_until`` are this.
        """
        if predicate(self._state):
            return self._state
        found: asyncio.Future[SessionState] = asyncio.get_running_loop().create_future()

        def check(state: SessionState) -> None:
            if not found.done() and predicate(state):
                found.set_result(state)

        subscription = self._states.subscribe(check)
        try:
            async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow a cancellation
                return await found
        finally:
            subscription.dispose()

    def add_tap(self, tap: EventTap) -> Callable[[], None]:
        """Call ``tap(event, state_after)`` for every dispatched event; returns a remover."""
        self._taps.append(tap)

        def remove() -> None:
            if tap in self._taps:
                self._taps.remove(tap)

        return remove

    def dispatch(self, event: ev.Event) -> SessionState:
        """Fold ``event`` (and anything queued meanwhile) and deliver the changes.

        Must be called from one thread only: the thread of the session's loop.
        Returns the state after this call's folding.
        """
        ident = threading.get_ident()
        if self._owner is None:
            self._owner = ident
        elif self._owner != ident:
            raise RuntimeError(
                "Store.dispatch called from a second thread. Events must be dispatched from "
                "the session's event loop thread; use Session methods, which marshal for you."
            )
        self._pending.append(event)
        if self._dispatching:
            return self._state
        self._dispatching = True
        try:
            while self._pending:
                event = self._pending.popleft()
                new = self._reducer(self._state, event, self._limits)
                for tap in self._taps:
                    try:
                        tap(event, new)
                    except Exception:
                        logger.exception("an event tap raised; it keeps receiving events")
                if new is not self._state:
                    self._state = new
                    for subscriber in self._subscribers:
                        if subscriber.active:
                            try:
                                subscriber.observer.on_next(new)
                            except Exception as error:
                                self._subscriber_failed(subscriber, error)
        finally:
            self._dispatching = False
        return self._state

    def release_thread(self) -> None:
        """Forget the owning thread (a session restarted on another loop)."""
        if not self._dispatching:
            self._owner = None

    def complete(self) -> None:
        """Tell subscribers no more snapshots will come."""
        if self._completed:
            return
        self._completed = True
        subscribers, self._subscribers = self._subscribers, ()
        for subscriber in subscribers:
            if subscriber.active:
                subscriber.active = False
                subscriber.observer.on_completed()

    # -- shielding subscribers ---------------------------------------------------

    def _subscribe(
        self, observer: abc.ObserverBase[SessionState], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        del scheduler
        if self._completed:
            observer.on_completed()
            return Disposable()
        subscriber = _Subscriber(observer)
        self._subscribers = (*self._subscribers, subscriber)

        def dispose() -> None:
            subscriber.active = False
            self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)
            self._failed_subscribers.discard(subscriber)

        try:
            observer.on_next(self._state)
        except Exception as error:
            self._subscriber_failed(subscriber, error)
        return Disposable(dispose)

    def _subscriber_failed(self, subscriber: _Subscriber, error: Exception) -> None:
        logger.error("a state subscriber raised; other subscribers and the session carry on", exc_info=error)
        if subscriber in self._failed_subscribers:
            return
        self._failed_subscribers.add(subscriber)
        # Queued behind the current delivery; reported once per subscriber so a
        # subscriber that always raises cannot start a feedback loop.
        self.dispatch(
            ev.ProblemObserved(
                at=time.time(),
                source="subscriber",
                message=f"A state subscriber failed ({type(error).__name__}: {error}); the session carries on.",
            )
        )

