"""Delivery to consumers: latest wins, rate-capped, always ending on the newest value."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from reactivex.subject import Subject

from lkstate._core.delivery import FrameLimiter, Mailbox, latest_states


class FakeTimers:
    """A consumer thread's timers, driven by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def clock(self) -> float:
        return self.now

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.timers.append((self.now + delay, fn))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [t for t in self.timers if t[0] <= self.now]
        self.timers = [t for t in self.timers if t[0] > self.now]
        for _, fn in due:
            fn()


def test_a_burst_is_delivered_at_most_at_the_cap_and_ends_on_the_latest() -> None:
    timers = FakeTimers()
    delivered: list[int] = []
    limiter = FrameLimiter(delivered.append, max_rate=30, call_later=timers.call_later, clock=timers.clock)
    for value in range(1000):  # 1000 values over one second
        limiter.offer(value)
        timers.advance(0.001)
    timers.advance(1.0)
    assert delivered[-1] == 999
    assert len(delivered) <= 31
    assert delivered == sorted(delivered)


def test_an_isolated_value_is_delivered_at_once() -> None:
    timers = FakeTimers()
    delivered: list[str] = []
    limiter = FrameLimiter(delivered.append, max_rate=30, call_later=timers.call_later, clock=timers.clock)
    limiter.offer("a")
    assert delivered == ["a"]
    timers.advance(5)
    limiter.offer("b")
    assert delivered == ["a", "b"]


def test_a_consumer_that_raises_does_not_stop_later_deliveries() -> None:
    timers = FakeTimers()
    delivered: list[int] = []

    def flaky(value: int) -> None:
        if value == 1:
            raise RuntimeError("render failed")
        delivered.append(value)

    limiter = FrameLimiter(flaky, max_rate=10, call_later=timers.call_later, clock=timers.clock)
    limiter.offer(1)
    timers.advance(1)
    limiter.offer(2)
    assert delivered == [2]


def test_the_mailbox_keeps_only_the_newest_and_wakes_once_per_batch() -> None:
    wakes: list[None] = []
    box: Mailbox[int] = Mailbox(lambda: wakes.append(None))
    for value in range(5):
        box.put(value)
    assert len(wakes) == 1
    assert box.take() == (True, 4)
    assert box.take() == (False, None)
    box.put(7)
    assert len(wakes) == 2


async def test_latest_states_crosses_threads_and_ends_on_the_newest_value() -> None:
    subject: Subject[int] = Subject()
    seen: list[int] = []

    def produce() -> None:
        for value in range(2000):
            subject.on_next(value)
        subject.on_completed()

    async def consume() -> None:
        async for value in latest_states(subject, max_rate=60):
            seen.append(value)
            await asyncio.sleep(0.01)  # a slow consumer

    consumer = asyncio.ensure_future(consume())
    await asyncio.sleep(0.05)
    thread = threading.Thread(target=produce)
    thread.start()
    thread.join()
    await asyncio.wait_for(consumer, timeout=5)
    assert seen and seen[-1] == 1999
    assert seen == sorted(seen)
    assert len(seen) < 2000, "superseded values were skipped"
