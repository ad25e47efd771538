"""lkstate_trio without a server: snapshots cross from a loop thread into trio, commands go back.

Each test is a plain function that calls ``trio.run``; the session lives on a
real :class:`lkstate.LoopThread`, never connected, and its store is fed events
on that thread the way a room would feed it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import trio

import lkstate_trio
from lkstate import DevelopmentTokenSource, LoopThread, Session, SessionState
from lkstate.errors import LkstateError
from lkstate._core import events as ev


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    with LoopThread(name="test-trio") as thread:
        yield thread


def offline_session() -> Session:
    return Session(DevelopmentTokenSource("ws://127.0.0.1:9", "devkey", "secret"))


async def burst(session: Session, count: int) -> None:
    """``count`` state changes on the session's loop, in bursts with the loop running between."""
    for n in range(count):
        session.store.dispatch(ev.ProblemObserved(at=time.time(), source="test", message=f"problem {n}"))
        if n % 20 == 19:
            await asyncio.sleep(0.002)


def test_a_thousand_rapid_changes_arrive_at_most_at_the_cap_and_end_on_the_latest(loop_thread: LoopThread) -> None:
    session = offline_session()
    seen: list[SessionState] = []

    async def main() -> float:
        async with trio.open_nursery() as nursery:
            stream = lkstate_trio.states(session, max_rate=30)

            async def consume() -> None:
                async with stream:
                    async for state in stream:
                        seen.append(state)

            nursery.start_soon(consume)
            await trio.sleep(0.05)
            started = trio.current_time()
            await lkstate_trio.run(loop_thread, burst(session, 1000))
            while not seen or seen[-1] is not session.state:
                await trio.sleep(0.01)
            elapsed = trio.current_time() - started
            await trio.sleep(0.1)  # nothing more arrives once the session is quiet
            nursery.cancel_scope.cancel()
        return elapsed

    elapsed = trio.run(main)
    assert seen[0].problems == (), "the first snapshot is the state at subscription"
    assert seen[-1] is session.state
    assert seen[-1].problems[-1].message == "problem 999"
    changes = len(seen) - 1
    assert 1 <= changes <= elapsed * 30 + 2
    assert changes < 1000


def test_a_slow_consumer_sees_fewer_newer_snapshots_not_a_backlog(loop_thread: LoopThread) -> None:
    session = offline_session()
    seen: list[str | None] = []

    async def main() -> None:
        with trio.fail_after(10):
            async with lkstate_trio.states(session, max_rate=None) as stream:
                async for state in stream:
                    seen.append(state.problems[-1].message if state.problems else None)
                    if len(seen) == 1:
                        await lkstate_trio.run(loop_thread, burst(session, 200))
                    await trio.sleep(0.05)  # a slow consumer
                    if seen[-1] == "problem 199":
                        break

    trio.run(main)
    assert seen[0] is None and seen[-1] == "problem 199"
    assert len(seen) <= 3, f"no backlog: {seen}"


def test_the_stream_ends_when_the_session_state_completes(loop_thread: LoopThread) -> None:
    session = offline_session()

    async def complete() -> None:
        session.store.complete()

    async def main() -> int:
        count = 0
        with trio.fail_after(10):
            async with lkstate_trio.states(session) as stream:
                async for _ in stream:
                    count += 1
                    if count == 1:
                        await lkstate_trio.run(loop_thread, complete())
        return count

    assert trio.run(main) == 1


def test_run_returns_the_result_and_raises_the_error_of_the_command(loop_thread: LoopThread) -> None:
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0.01)
        return a + b

    async def fail() -> None:
        raise LkstateError("it broke", remedy="Do it again.")

    async def main() -> None:
        assert await lkstate_trio.run(loop_thread, add(2, 3)) == 5
        with pytest.raises(LkstateError, match="it broke"):
            await lkstate_trio.run(loop_thread, fail())

    trio.run(main)


def test_cancelling_in_trio_cancels_the_command_and_waits_for_it_to_unwind(loop_thread: LoopThread) -> None:
    events: list[str] = []

    async def slow() -> None:
        try:
            events.append("started")
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.05)  # a clean-up that takes a moment
            events.append("cleaned up")

    async def main() -> None:
        with trio.move_on_after(0.2) as scope:
            await lkstate_trio.run(loop_thread, slow())
        assert scope.cancelled_caught
        assert events == ["started", "cleaned up"], "run() returned only after the task unwound"

    trio.run(main)


def test_run_cannot_use_a_stopped_loop_thread() -> None:
    thread = LoopThread()

    async def nothing() -> None:
        pass

    async def main() -> None:
        with pytest.raises(RuntimeError, match="not started"):
            await lkstate_trio.run(thread, nothing())

    trio.run(main)


def test_max_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        lkstate_trio.states(offline_session(), max_rate=0)
