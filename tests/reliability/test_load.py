"""Load and leaks, over the real server: many cycles, long sessions, many sessions.

These are leak checks, not timing checks. Each test measures the process —
Python threads, native threads (``/proc/self/task``), asyncio tasks, open file
descriptors (``/proc/self/fd``), resident memory, the bytes the C allocator
has handed out (glibc ``mallinfo2``: native code and Python's larger
objects), Python's small-object blocks (``sys.getallocatedblocks``) and the
objects the garbage collector tracks — after a warm-up and again at the end,
and holds the growth
to a bound stated next to the test. A leak of one task, one descriptor or one
room per cycle crosses its bound many times over; allocator noise and lazily
started worker threads (the FFI's, asyncio's default executor) stay inside it.

The agent is a raw peer minted as an agent (``lk.agent.state = listening``)
that sends transcripts on ``lk.transcription`` the way the framework does: the
load is on lkstate and the real server, not on a scripted model.

Figures are printed (``-s``) and recorded as test properties. The long
variants (1 000 cycles, 100 sessions) are marked ``soak`` (``--soak``).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import pytest

from lkstate import DevelopmentTokenSource, Role, Session, SessionState
from tests.harness.peer import Peer
from tests.harness.server import LiveKitServer

pytestmark = pytest.mark.serial

PeerFactory = Callable[..., Awaitable[Peer]]
MiB = 1 << 20
KiB = 1 << 10


# --- measuring the process --------------------------------------------------------------


@attrs.frozen
class Usage:
    """What the process holds at one moment."""

    threads: int
    native_threads: int
    tasks: int
    fds: int
    rss: int
    malloc: int
    blocks: int
    objects: int

    def minus(self, other: Usage) -> Usage:
        return Usage(*(a - b for a, b in zip(attrs.astuple(self), attrs.astuple(other), strict=True)))

    def describe(self) -> str:
        return (
            f"threads {self.threads:+d}, native threads {self.native_threads:+d}, tasks {self.tasks:+d}, "
            f"fds {self.fds:+d}, RSS {self.rss / MiB:+.1f} MiB, malloc {self.malloc / KiB:+.0f} KiB, "
            f"Python blocks {self.blocks:+d}, "
            f"objects {self.objects:+d}"
        )


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")
    ]


def _malloc_in_use() -> int:
    """Bytes in use from glibc's malloc, all arenas and mmapped chunks (0 where there is no mallinfo2).

    Finer than RSS, which moves by pages and keeps freed memory: a leak of a
    few KiB per cycle shows here long before it shows there.
    """
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return 0
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd)


async def settle_and_measure(*, expected_tasks: int | None = None) -> Usage:
    """Let teardown finish (bounded), collect garbage, and measure.

    Waits up to 5 s for the asyncio task count to come down to
    ``expected_tasks`` — closing rooms and readers takes a few loop turns — so
    that what remains is held, not merely still finishing. A count that never
    comes down is measured as it is, and the caller's bound decides.
    """
    deadline = time.monotonic() + 5.0
    while True:
        await asyncio.sleep(0.05)
        tasks = len(asyncio.all_tasks()) - 1  # not counting the test itself
        if expected_tasks is None or tasks <= expected_tasks or time.monotonic() > deadline:
            break
    gc.collect()
    return Usage(
        threads=threading.active_count(),
        native_threads=len(os.listdir("/proc/self/task")),
        tasks=len(asyncio.all_tasks()) - 1,
        fds=len(os.listdir("/proc/self/fd")),
        rss=_rss(),
        malloc=_malloc_in_use(),
        blocks=sys.getallocatedblocks(),
        objects=len(gc.get_objects()),
    )


def report(record_property: Callable[[str, object], None], name: str, **figures: object) -> None:
    record_property(name, figures)
    print(f"\n{name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


# --- the scripted agent and the sessions ----------------------------------------------------


async def scripted_agent(peer_factory: PeerFactory, room: str, identity: str = "agent-load") -> Peer:
    """A raw participant minted as an agent, ready (``listening``), that reads nothing."""
    return await peer_factory(
        room, identity, kind="agent", attributes={"lk.agent.state": "listening"}, text_topics=()
    )


async def say(agent: Peer, segment: str, text: str) -> None:
    """One final agent transcript segment, as the agent framework sends a short one."""
    await agent.local.send_text(
        text, topic="lk.transcription", attributes={"lk.segment_id": segment, "lk.transcription_final": "true"}
    )


def agent_texts(state: SessionState) -> list[str]:
    return [m.text for m in state.messages if m.role is Role.AGENT and m.final]


@pytest.fixture
async def sessions(livekit_server: LiveKitServer) -> AsyncIterator[Callable[..., Session]]:
    made: list[Session] = []

    def make(room: str, **kwargs: Any) -> Session:
        tokens = DevelopmentTokenSource(livekit_server.url, livekit_server.api_key, livekit_server.api_secret)
        kwargs.setdefault("audio_input", None)
        kwargs.setdefault("audio_output", None)
        kwargs.setdefault("agent_connect_timeout", 30.0)
        session = Session(tokens, room_name=room, **kwargs)
        made.append(session)
        return session

    yield make
    await asyncio.gather(*(s.end() for s in made), return_exceptions=True)


# --- many start/end cycles of one session ---------------------------------------------------

# Bounds for the cycle test, over all measured cycles (after 5 warm-up cycles).
CYCLE_MAX_THREADS = 2  # Python threads: asyncio's executor may add a worker late
CYCLE_MAX_NATIVE_THREADS = 8  # the FFI's runtime threads, started on demand
CYCLE_MAX_TASKS = 0  # every task a cycle starts is finished by end()
CYCLE_MAX_FDS = 8  # sockets and pipes: a leaked room holds several per cycle
CYCLE_MAX_BLOCKS_PER_CYCLE = 40  # Python memory blocks: a kept session, room or task costs hundreds
CYCLE_MAX_OBJECTS_PER_CYCLE = 4  # objects the garbage collector tracks
CYCLE_MAX_MALLOC_PER_CYCLE = 6 * KiB  # C allocator; a retried failing import of sounddevice alone was 24 KiB
CYCLE_MALLOC_SLACK = 1 * MiB
CYCLE_MAX_RSS_PER_CYCLE = 256 * KiB  # resident memory, allocator and FFI noise included
CYCLE_RSS_SLACK = 16 * MiB  # one-off growth (arenas, caches) allowed on top


async def run_cycles(
    cycles: int, room: str, make: Callable[..., Session], peer_factory: PeerFactory
) -> tuple[Usage, Usage, Session]:
    agent = await scripted_agent(peer_factory, room)
    # The default microphone and speaker, as an app gets them: on this headless
    # machine (no PortAudio) every start looks for them and finds none.
    session = make(room, audio_input="default", audio_output="default")

    async def cycle(n: int) -> None:
        state = await asyncio.wait_for(session.start(), timeout=30)
        assert state.agent.identity == agent.identity and state.agent.is_ready
        await say(agent, f"cycle-{n}", f"reply {n}")
        state = await session.wait_until(lambda s: agent_texts(s) == [f"reply {n}"], timeout=15)
        await session.end()
        assert session.state.connection.status.value == "disconnected"

    for n in range(5):  # warm-up: first-use allocations (FFI runtime, executor, caches)
        await cycle(n)
    baseline = await settle_and_measure(expected_tasks=None)
    for n in range(5, 5 + cycles):
        await cycle(n)
    final = await settle_and_measure(expected_tasks=baseline.tasks)
    return baseline, final, session


def check_cycles(cycles: int, baseline: Usage, final: Usage) -> Usage:
    growth = final.minus(baseline)
    assert growth.threads <= CYCLE_MAX_THREADS, growth.describe()
    assert growth.native_threads <= CYCLE_MAX_NATIVE_THREADS, growth.describe()
    assert growth.tasks <= CYCLE_MAX_TASKS, growth.describe()
    assert growth.fds <= CYCLE_MAX_FDS, growth.describe()
    assert growth.blocks <= cycles * CYCLE_MAX_BLOCKS_PER_CYCLE, growth.describe()
    assert growth.objects <= cycles * CYCLE_MAX_OBJECTS_PER_CYCLE, growth.describe()
    assert growth.malloc <= CYCLE_MALLOC_SLACK + cycles * CYCLE_MAX_MALLOC_PER_CYCLE, growth.describe()
    assert growth.rss <= CYCLE_RSS_SLACK + cycles * CYCLE_MAX_RSS_PER_CYCLE, growth.describe()
    return growth


@pytest.mark.timeout(300)
async def test_a_hundred_start_end_cycles_leave_no_threads_tasks_fds_or_memory_behind(
    room_name: str, sessions: Callable[..., Session], peer_factory: PeerFactory,
    record_property: Callable[[str, object], None],
) -> None:
    cycles = 100
    began = time.monotonic()
    baseline, final, _ = await run_cycles(cycles, room_name, sessions, peer_factory)
    growth = check_cycles(cycles, baseline, final)
    report(record_property, "start_end_cycles", cycles=cycles, growth=growth.describe(),
           blocks_per_cycle=round(growth.blocks / cycles, 1), malloc_per_cycle_bytes=growth.malloc // cycles,
           seconds=round(time.monotonic() - began, 1))


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_a_thousand_start_end_cycles_leave_no_threads_tasks_fds_or_memory_behind(
    room_name: str, sessions: Callable[..., Session], peer_factory: PeerFactory,
    record_property: Callable[[str, object], None],
) -> None:
    cycles = 1000
    began = time.monotonic()
    baseline, final, _ = await run_cycles(cycles, room_name, sessions, peer_factory)
    growth = check_cycles(cycles, baseline, final)
    report(record_property, "start_end_cycles_soak", cycles=cycles, growth=growth.describe(),
           blocks_per_cycle=round(growth.blocks / cycles, 1), malloc_per_cycle_bytes=growth.malloc // cycles,
           seconds=round(time.monotonic() - began, 1))


# --- one long session -------------------------------------------------------------------------

LONG_MESSAGES = 10_000
LONG_WINDOW = 48  # transcripts in flight: below Limits.max_open_streams_per_sender (64)
LONG_MAX_THREADS = 2
LONG_MAX_NATIVE_THREADS = 8
LONG_MAX_TASKS = 0
LONG_MAX_FDS = 8
LONG_MAX_BLOCKS_PER_MESSAGE = 40  # what the state legitimately keeps per message, with room to spare
LONG_MAX_OBJECTS_PER_MESSAGE = 8
LONG_MAX_BLOCKS_AFTER_RESTART = 20_000  # a restart without history lets the messages go (all but 2 per message)
LONG_MAX_MALLOC = 16 * MiB  # C allocator, messages included
LONG_MAX_MALLOC_AFTER_RESTART = 2 * MiB
LONG_MAX_RSS = 128 * MiB


@pytest.mark.timeout(300)
async def test_a_session_with_ten_thousand_messages_keeps_every_one_and_only_their_memory(
    room_name: str, sessions: Callable[..., Session], peer_factory: PeerFactory,
    record_property: Callable[[str, object], None],
) -> None:
    agent = await scripted_agent(peer_factory, room_name)
    session = sessions(room_name)
    await asyncio.wait_for(session.start(), timeout=30)
    snapshots = 0

    def count(_: SessionState) -> None:
        nonlocal snapshots
        snapshots += 1

    subscription = session.states.subscribe(count)
    for n in range(20):  # warm-up: the reader and stream paths, once each
        await say(agent, f"warm-{n}", f"warm {n}")
    await session.wait_until(lambda s: len(s.messages) == 20, timeout=15)
    baseline = await settle_and_measure(expected_tasks=None)

    began = time.monotonic()
    for n in range(LONG_MESSAGES):
        if n - (len(session.state.messages) - 20) >= LONG_WINDOW:
            await session.wait_until(lambda s: n - (len(s.messages) - 20) < LONG_WINDOW, timeout=15)
        await say(agent, f"seg-{n}", f"message {n}")
    state = await session.wait_until(lambda s: len(s.messages) == 20 + LONG_MESSAGES, timeout=30)
    seconds = time.monotonic() - began
    full = await settle_and_measure(expected_tasks=baseline.tasks)
    subscription.dispose()

    texts = [m.text for m in state.messages][20:]
    assert texts == [f"message {n}" for n in range(LONG_MESSAGES)], "every message, once, in order"
    assert all(m.final and m.role is Role.AGENT for m in state.messages)
    assert state.problems == ()
    growth = full.minus(baseline)
    assert growth.threads <= LONG_MAX_THREADS, growth.describe()
    assert growth.native_threads <= LONG_MAX_NATIVE_THREADS, growth.describe()
    assert growth.tasks <= LONG_MAX_TASKS, growth.describe()
    assert growth.fds <= LONG_MAX_FDS, growth.describe()
    assert growth.blocks <= LONG_MESSAGES * LONG_MAX_BLOCKS_PER_MESSAGE, growth.describe()
    assert growth.objects <= LONG_MESSAGES * LONG_MAX_OBJECTS_PER_MESSAGE, growth.describe()
    assert growth.malloc <= LONG_MAX_MALLOC, growth.describe()
    assert growth.rss <= LONG_MAX_RSS, growth.describe()

    # End, start again without history: the messages' memory is released.
    await session.end()
    await asyncio.wait_for(session.start(), timeout=30)
    assert len(session.state.messages) == 0
    del state, texts
    restarted = (await settle_and_measure(expected_tasks=baseline.tasks)).minus(baseline)
    assert restarted.blocks <= LONG_MAX_BLOCKS_AFTER_RESTART, restarted.describe()
    assert restarted.malloc <= LONG_MAX_MALLOC_AFTER_RESTART, restarted.describe()
    await session.end()

    report(record_property, "long_session", messages=LONG_MESSAGES, snapshots=snapshots,
           messages_per_second=round(LONG_MESSAGES / seconds), growth_with_messages=growth.describe(),
           blocks_per_message=round(growth.blocks / LONG_MESSAGES, 1),
           rss_per_message_bytes=growth.rss // LONG_MESSAGES, growth_after_restart=restarted.describe())


# --- many sessions in one process ---------------------------------------------------------------


async def hold_many_sessions(
    count: int, room_name: str, make: Callable[..., Session], peer_factory: PeerFactory
) -> dict[str, object]:
    """``count`` sessions on one loop, each with its own room and agent; all must keep updating."""
    limit = asyncio.Semaphore(8)  # joins at once: the server takes them, this 2-core box chokes less

    async def open_one(i: int) -> tuple[Session, Peer]:
        async with limit:
            room = f"{room_name}-{i}"
            agent = await scripted_agent(peer_factory, room, identity=f"agent-{i}")
            session = make(room)
            await asyncio.wait_for(session.start(), timeout=60)
            return session, agent

    began = time.monotonic()
    pairs = await asyncio.gather(*(open_one(i) for i in range(count)))
    opened = time.monotonic() - began
    before = await settle_and_measure()
    updates = [0] * count
    subscriptions = []
    for i, (session, _) in enumerate(pairs):
        def bump(_: SessionState, i: int = i) -> None:
            updates[i] += 1

        subscriptions.append(session.states.subscribe(bump))

    for turn in range(3):  # every agent speaks three times; every session must show each turn
        await asyncio.gather(*(say(agent, f"turn-{turn}", f"agent {i} turn {turn}") for i, (_, agent) in enumerate(pairs)))
        await asyncio.gather(
            *(
                session.wait_until(lambda s, i=i, t=turn: len(agent_texts(s)) == t + 1, timeout=30)
                for i, (session, _) in enumerate(pairs)
            )
        )
    for i, (session, agent) in enumerate(pairs):
        assert agent_texts(session.state) == [f"agent {i} turn {t}" for t in range(3)], f"session {i}"
        assert session.state.agent.identity == agent.identity and session.state.problems == ()
        assert updates[i] >= 3
    held = await settle_and_measure()
    for subscription in subscriptions:
        subscription.dispose()
    await asyncio.gather(*(session.end() for session, _ in pairs))
    await asyncio.gather(*(agent.disconnect() for _, agent in pairs))
    return {
        "sessions": count,
        "seconds_to_open": round(opened, 1),
        "snapshots_per_session_min": min(updates),
        "tasks_while_held": held.tasks,
        "native_threads_while_held": held.native_threads,
        "fds_while_held": held.fds,
        "rss_while_held_MiB": round(held.rss / MiB),
        "held_vs_open": held.minus(before).describe(),
    }


@pytest.mark.timeout(300)
async def test_thirty_sessions_in_one_process_all_keep_updating(
    room_name: str, sessions: Callable[..., Session], peer_factory: PeerFactory,
    record_property: Callable[[str, object], None],
) -> None:
    figures = await hold_many_sessions(30, room_name, sessions, peer_factory)
    report(record_property, "concurrent_sessions", **figures)


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_a_hundred_sessions_in_one_process_all_keep_updating(
    room_name: str, sessions: Callable[..., Session], peer_factory: PeerFactory,
    record_property: Callable[[str, object], None],
) -> None:
    figures = await hold_many_sessions(100, room_name, sessions, peer_factory)
    report(record_property, "concurrent_sessions_soak", **figures)
