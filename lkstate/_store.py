"""The store: one current snapshot, folded once, shared by every subscriber.

RxPY's ``scan`` keeps one accumulator per subscription, so putting the reducer
behind an observable would fold every event once per subscriber and let their
states drift apart. The store instead folds each event exactly once and
publishes the result through a ``BehaviorSubject``: a late subscriber gets the
current snapshot at once, then every change in order.

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
from reactivex.subject import BehaviorSubject

from . import _events as ev
from ._options import Limits
from ._reducer import reduce
from ._state import SessionState

__all__ = ["Store"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

EventTap = Callable[[ev.Event, SessionState], None]
"""Called with each event and the snapshot it produced (recorders, tracing)."""


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
        self._subject: BehaviorSubject[SessionState] = BehaviorSubject(self._state)
        self._pending: deque[ev.Event] = deque()
        self._dispatching = False
        self._owner: int | None = None
        self._taps: list[EventTap] = []
        self._failed_subscribers: set[int] = set()
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
                    self._subject.on_next(new)
        finally:
            self._dispatching = False
        return self._state

    def release_thread(self) -> None:
        """Forget the owning thread (a session restarted on another loop)."""
        if not self._dispatching:
            self._owner = None

    def complete(self) -> None:
        """Tell subscribers no more snapshots will come."""
        self._subject.on_completed()

    # -- shielding subscribers ---------------------------------------------------

    def _subscribe(
        self, observer: abc.ObserverBase[SessionState], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        del scheduler
        key = id(observer)

        def on_next(state: SessionState) -> None:
            try:
                observer.on_next(state)
            except Exception as error:
                self._subscriber_failed(key, error)

        def on_error(error: Exception) -> None:
            observer.on_error(error)

        def on_completed() -> None:
            observer.on_completed()

        subscription = self._subject.subscribe(on_next, on_error, on_completed)

        def dispose() -> None:
            subscription.dispose()
            self._failed_subscribers.discard(key)

        return Disposable(dispose)

    def _subscriber_failed(self, key: int, error: Exception) -> None:
        logger.error("a state subscriber raised; other subscribers and the session carry on", exc_info=error)
        if key in self._failed_subscribers:
            return
        self._failed_subscribers.add(key)
        # Queued behind the current delivery; reported once per subscriber so a
        # subscriber that always raises cannot start a feedback loop.
        self.dispatch(
            ev.ProblemObserved(
                at=time.time(),
                source="subscriber",
                message=f"A state subscriber failed ({type(error).__name__}: {error}); the session carries on.",
            )
        )

