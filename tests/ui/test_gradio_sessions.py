"""BrowserSessions: one lkstate Session per browser session, on one shared loop thread.

These use real, unstarted sessions (no server needed): what is under test is
the bookkeeping, the thread the commands run on and the snapshot streams.
The same class is exercised over the wire, in a browser, by
test_gradio_browser.py.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from lkstate import DevelopmentTokenSource, Session, SessionState
from lkstate.errors import ReplayReadOnlyError, SessionClosedError
from lkstate.recording import read_recording, Replay
from lkstate._core import events as ev

from lkstate_gradio import BrowserSessions


def new_session() -> Session:
    return Session(DevelopmentTokenSource("ws://127.0.0.1:9", "key", "secret-that-is-long-enough-for-hmac-use"))


@pytest.fixture
def sessions() -> BrowserSessions:
    made = BrowserSessions(new_session, max_rate=20)
    yield made  # type: ignore[misc]
    made.close()


async def test_each_browser_session_gets_its_own_session_made_on_first_use(sessions: BrowserSessions) -> None:
    assert sessions.get("tab-a") is None
    first = sessions.session("tab-a")
    assert sessions.session("tab-a") is first
    second = sessions.session("tab-b")
    assert second is not first
    assert set(sessions.keys()) == {"tab-a", "tab-b"}


async def test_a_request_is_keyed_by_its_session_hash(sessions: BrowserSessions) -> None:
    class Request:
        session_hash = "hash-1"

    assert sessions.session(Request()) is sessions.session("hash-1")

    class Anonymous:
        session_hash = None

    with pytest.raises(ValueError, match="no session hash"):
        sessions.session(Anonymous())


async def test_every_sessions_commands_run_on_one_shared_loop_thread(sessions: BrowserSessions) -> None:
    async def thread_of(session: Session) -> threading.Thread:
        return threading.current_thread()

    on_a = await sessions.run("tab-a", thread_of)
    on_b = await sessions.run("tab-b", thread_of)
    assert on_a is on_b
    assert on_a.name == "lkstate-gradio"
    assert on_a is not threading.current_thread()


async def test_a_failing_command_raises_to_its_caller_in_words(sessions: BrowserSessions) -> None:
    with pytest.raises(SessionClosedError, match="not connected"):
        await sessions.run("tab-a", lambda s: s.send_text("hello"))
    assert sessions.session("tab-a").state.connection.status.value == "disconnected"


async def test_sending_text_raises_at_once_when_it_cannot_be_sent(sessions: BrowserSessions) -> None:
    with pytest.raises(SessionClosedError, match="not connected"):
        await sessions.send_text("tab-a", "hello")
    with pytest.raises(ValueError, match="empty"):
        await sessions.send_text("tab-a", "   ")
    assert len(sessions.session("tab-a").state.messages) == 0


async def test_a_stream_starts_with_the_current_snapshot_and_ends_when_the_tab_is_released(
    sessions: BrowserSessions,
) -> None:
    seen: list[SessionState] = []

    async def read() -> None:
        async for state in sessions.states("tab-a"):
            seen.append(state)

    reader = asyncio.ensure_future(read())
    while not seen:
        await asyncio.sleep(0.01)
    assert seen[0] is sessions.session("tab-a").state
    session = sessions.session("tab-a")
    await sessions.release("tab-a")
    await asyncio.wait_for(reader, timeout=5)
    assert "tab-a" not in sessions
    assert session.room is None
    await sessions.release("tab-a")  # releasing twice is harmless


async def test_a_burst_of_snapshots_reaches_the_page_coalesced_and_ending_on_the_latest(
    sessions: BrowserSessions,
) -> None:
    seen: list[SessionState] = []
    quiet = asyncio.Event()

    async def read() -> None:
        async for state in sessions.states("tab-a"):
            seen.append(state)
            if state.problems and state.problems[-1].message == "problem 199":
                quiet.set()

    reader = asyncio.ensure_future(read())
    while not seen:
        await asyncio.sleep(0.01)

    async def burst(session: Session) -> SessionState:
        for index in range(200):
            session.store.dispatch(ev.ProblemObserved(at=float(index), source="test", message=f"problem {index}"))
        return session.state

    final = await sessions.run("tab-a", burst)
    await asyncio.wait_for(quiet.wait(), timeout=5)
    assert seen[-1] is final, "the stream ends on the newest snapshot"
    assert len(seen) < 200, "superseded snapshots are dropped, not queued"
    await sessions.release("tab-a")
    await asyncio.wait_for(reader, timeout=5)


async def test_closing_ends_every_session_and_refuses_new_ones() -> None:
    sessions = BrowserSessions(new_session)
    first, second = sessions.session("tab-a"), sessions.session("tab-b")
    await sessions.run("tab-a", lambda s: asyncio.sleep(0))
    loop_thread = sessions.loop_thread
    await asyncio.to_thread(sessions.close)
    assert not loop_thread.is_running
    assert len(sessions) == 0
    assert first.room is None and second.room is None
    with pytest.raises(RuntimeError, match="closed"):
        sessions.session("tab-c")


def test_a_rate_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        BrowserSessions(new_session, max_rate=0)


# -- replays (``lkstate replay --ui gradio``) ------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "recordings" / "demo.jsonl"


async def test_each_tab_plays_its_own_replay_from_the_start_and_commands_are_refused_in_words() -> None:
    header, events = read_recording(EXAMPLE)
    everything = Replay(events, header=header).state_at(len(events))
    sessions = BrowserSessions(lambda: Replay(events, header=header, speed=math.inf), max_rate=None)
    try:
        seen: list[SessionState] = []

        async def watch() -> None:
            async for state in sessions.states("tab-a"):
                seen.append(state)

        reader = asyncio.ensure_future(watch())
        await eventually(lambda: bool(seen))  # the tab shows the start before it plays
        await asyncio.wrap_future(sessions.submit("tab-a", lambda replay: replay.start()))
        await sessions.run("tab-a", lambda replay: replay.wait_finished())
        await eventually(lambda: bool(seen) and seen[-1] == everything)
        assert not seen[0].messages and seen[-1].messages, "the tab saw it play from the empty start to the end"

        other = sessions.session("tab-b")
        assert other is not sessions.session("tab-a") and other.position == 0, "another tab starts from the start"

        with pytest.raises(ReplayReadOnlyError, match="cannot send a message"):
            await sessions.send_text("tab-a", "hello")
        with pytest.raises(ReplayReadOnlyError, match="microphone"):
            await sessions.run("tab-a", lambda replay: replay.set_microphone_enabled(True))
        await sessions.release("tab-a")
        await asyncio.wait_for(reader, timeout=5)
    finally:
        await asyncio.to_thread(sessions.close)


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)
