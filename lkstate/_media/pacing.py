"""Releasing frames on a schedule, and reading any iterable as an async one.

Generated and file-backed inputs (audio and video) must hand out frames at the
pace a device would, or a track receives a minute of audio in a second; user
sources may be plain or async iterables. Both needs are the same for every
input, so they live here once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

__all__ = ["Pacer", "each"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


async def each(source: Iterable[_T] | AsyncIterable[_T]) -> AsyncIterator[_T]:
    """Every item of a plain or async iterable; a plain one yields to the loop between items."""
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    else:
        for item in source:
            yield item
            await asyncio.sleep(0)


class Pacer:
    """Releases frame *n* at ``start + n * period`` on a monotonic clock.

    Each deadline is computed from the start, never from the previous wake-up,
    so the scheduler's lateness on one frame is absorbed by a shorter sleep
    before the next one instead of piling up: after an hour the stream is
    still an hour long. If the consumer stalls for longer than ``max_lag``
    (a paused laptop, a blocked loop), the schedule is re-anchored rather than
    bursting the backlog out at once — a real microphone could not have
    produced that burst either.
    """

    def __init__(
        self,
        period: float,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        max_lag: float = 1.0,
    ) -> None:
        self._period = period
        self._clock = clock
        self._sleep = sleep
        self._max_lag = max_lag
        self._start: float | None = None
        self._count = 0

    def deadline(self, n: int) -> float:
        """When frame ``n`` (counted since the last re-anchoring) is due."""
        assert self._start is not None
        return self._start + n * self._period

    async def wait(self) -> None:
        now = self._clock()
        if self._start is None:
            self._start = now
        due = self.deadline(self._count)
        if now - due > self._max_lag:
            logger.debug("pacing fell %.3f s behind; re-anchoring", now - due)
            self._start, self._count, due = now, 0, now
        self._count += 1
        if due > now:
            await self._sleep(due - now)

    @classmethod
    def for_running_loop(cls, period: float) -> Pacer:
        loop = asyncio.get_running_loop()
        return cls(period, clock=loop.time, sleep=asyncio.sleep)
