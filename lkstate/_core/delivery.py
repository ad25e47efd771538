"""Getting snapshots to a consumer: latest wins, at a rate a screen can show.

A transcript burst can produce hundreds of snapshots a second; a screen shows
thirty to sixty frames. Every front end therefore needs the same thing: take
snapshots from the session's thread, drop the ones superseded before they
could be shown, deliver at most ``max_rate`` per second on the consumer's own
thread, and always end on the latest. This module is that, once, with no
framework in it; each adapter supplies how to wake its thread and how to set a
timer there.

- :class:`Mailbox` is the thread boundary: ``put`` from any thread keeps only
  the newest value and wakes the consumer once until it takes it.
- :class:`FrameLimiter` is the pacing on the consumer's thread: it delivers at
  once when the last delivery was long enough ago, else once at the next slot.
- :func:`latest_states` is the plain-asyncio consumer built from both.

A consumer callback that raises is logged and does not stop later deliveries;
a slow one only makes the limiter skip to the newest value.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

from reactivex import Observable

__all__ = ["Mailbox", "FrameLimiter", "latest_states", "DEFAULT_MAX_RATE"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

DEFAULT_MAX_RATE = 30.0
"""Deliveries per second adapters default to: smooth text, little work."""

_EMPTY = object()


class Mailbox(Generic[_T]):
    """A one-slot, thread-safe box: ``put`` overwrites, ``take`` empties.

    ``wake`` is called (from the putting thread) when the box goes from empty
    to full, so the consumer is woken once per batch, not once per value.
    """

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._lock = threading.Lock()
        self._value: object = _EMPTY

    def put(self, value: _T) -> None:
        with self._lock:
            was_empty = self._value is _EMPTY
            self._value = value
        if was_empty:
            self._wake()

    def take(self) -> tuple[bool, _T | None]:
        """``(True, value)`` if there was one, else ``(False, None)``."""
        with self._lock:
            value, self._value = self._value, _EMPTY
        if value is _EMPTY:
            return False, None
        return True, value  # type: ignore[return-value]


class FrameLimiter(Generic[_T]):
    """Delivers the newest value at most ``max_rate`` times per second, on one thread.

    ``call_later(delay, fn)`` must run ``fn`` on the consumer's thread after
    ``delay`` seconds (Qt ``QTimer.singleShot``, Textual ``set_timer``,
    ``loop.call_later``). ``offer`` must be called on that same thread.
    """

    def __init__(
        self,
        deliver: Callable[[_T], None],
        *,
        max_rate: float = DEFAULT_MAX_RATE,
        call_later: Callable[[float, Callable[[], None]], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_rate <= 0:
            raise ValueError("max_rate must be positive (deliveries per second).")
        self._deliver = deliver
        self._interval = 1.0 / max_rate
        self._call_later = call_later
        self._clock = clock
        self._last = float("-inf")
        self._pending: object = _EMPTY
        self._timer_set = False
        self.delivered = 0
        """How many values were delivered (for tests and the benchmark)."""

    def offer(self, value: _T) -> None:
        """A new value: deliver now if the last delivery is old enough, else at the next slot."""
        self._pending = value
        if self._timer_set:
            return
        wait = self._last + self._interval - self._clock()
        if wait <= 0:
            self._flush()
        else:
            self._timer_set = True
            self._call_later(wait, self._on_timer)

    def _on_timer(self) -> None:
        self._timer_set = False
        self._flush()

    def _flush(self) -> None:
        value, self._pending = self._pending, _EMPTY
        if value is _EMPTY:
            return
        self._last = self._clock()
        self.delivered += 1
        try:
            self._deliver(value)  # type: ignore[arg-type]
        except Exception:
            logger.exception("a snapshot consumer raised; later snapshots are still delivered")


async def latest_states(
    states: Observable[_T], *, max_rate: float | None = DEFAULT_MAX_RATE
) -> AsyncIterator[_T]:
    """Iterate an observable on the current asyncio loop, latest-wins, rate-capped.

    The observable may emit on any thread. A consumer slower than the source
    simply sees fewer, newer values; the last value it sees after the source
    goes quiet is always the newest. Ends when the observable completes.
    ``max_rate=None`` delivers as fast as the consumer takes values.
    """
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    done = False

    def wake() -> None:
        loop.call_soon_threadsafe(ready.set)

    box: Mailbox[_T] = Mailbox(wake)

    def completed() -> None:
        nonlocal done
        done = True
        loop.call_soon_threadsafe(ready.set)

    def failed(error: Exception) -> None:
        logger.error("the state stream failed", exc_info=error)
        completed()

    subscription = states.subscribe(box.put, failed, completed)
    interval = 0.0 if max_rate is None else 1.0 / max_rate
    last = float("-inf")
    try:
        while True:
            await ready.wait()
            ready.clear()
            if interval and not done:
                wait = last + interval - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            has_value, value = box.take()
            if has_value:
                last = loop.time()
                yield value  # type: ignore[misc]
            if done:
                has_value, value = box.take()
                if has_value:
                    yield value  # type: ignore[misc]
                return
    finally:
        subscription.dispose()
