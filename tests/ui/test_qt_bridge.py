"""The Qt bridge: snapshots cross from the session's thread to the GUI thread, commands go back.

The session here is a real :class:`~lkstate.Session` that never connects:
snapshots are made by dispatching events into its store on the bridge's loop
thread, exactly where the room would dispatch them, so bursts of any size
and shape can be produced on demand. Everything on the GUI side is real Qt.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from lkstate import DevelopmentTokenSource, LoopThread, Session, SessionState
from lkstate._core.events import ProblemObserved
from lkstate_qt import CommandError, SessionBridge

WAIT_MS = 10_000


def numbered(state: SessionState) -> int:
    """Which burst event made this snapshot (-1 for the initial one)."""
    return int(state.problems[-1].message.split()[-1]) if state.problems else -1


def problem(i: int) -> ProblemObserved:
    return ProblemObserved(at=float(i), source="burst", message=f"problem {i}")


async def burst(session: Session, count: int, *, every: int = 4, pause: float = 0.002) -> None:
    """``count`` snapshots from the session's own thread, in quick succession."""
    for i in range(count):
        session.store.dispatch(problem(i))
        if i % every == every - 1:
            await asyncio.sleep(pause)


@pytest.fixture
def session() -> Session:
    return Session(DevelopmentTokenSource("ws://127.0.0.1:9", "devkey", "secret"))


BridgeFactory = Callable[..., SessionBridge]


@pytest.fixture
def make_bridge(qtbot: QtBot, session: Session) -> Iterator[BridgeFactory]:
    """``make_bridge(**kwargs)`` -> a SessionBridge on ``session``, closed at teardown."""
    bridges: list[SessionBridge] = []

    def make(**kwargs: Any) -> SessionBridge:
        bridge = SessionBridge(session, **kwargs)
        bridges.append(bridge)
        return bridge

    yield make
    for bridge in bridges:
        bridge.close()


@pytest.mark.parametrize("max_rate", [30.0, 10.0])
def test_a_burst_of_1000_snapshots_reaches_the_gui_at_most_at_the_cap_and_ends_on_the_latest(
    qtbot: QtBot, session: Session, make_bridge: BridgeFactory, max_rate: float
) -> None:
    bridge = make_bridge(max_rate=max_rate)
    produced: list[SessionState] = []
    session.states.subscribe(produced.append)
    received: list[tuple[float, SessionState]] = []
    on_gui_thread: list[bool] = []

    def record(state: SessionState) -> None:
        received.append((time.monotonic(), state))
        on_gui_thread.append(threading.current_thread() is threading.main_thread())

    bridge.state_changed.connect(record)
    done = bridge.loop_thread.submit(burst(session, 1000))
    qtbot.waitUntil(lambda: done.done() and bridge.state is session.state, timeout=WAIT_MS)

    assert len(produced) == 1 + 1000, "the session made every snapshot"
    final = session.state
    assert numbered(final) == 999
    assert received[-1][1] is final, "the GUI ends on the newest snapshot"
    shown = [(at, state) for at, state in received if state.problems]
    order = [numbered(state) for _, state in shown]
    assert order == sorted(order), "never an older snapshot after a newer one"
    span = shown[-1][0] - shown[0][0]
    assert len(shown) - 1 <= span * max_rate + 1, f"{len(shown)} updates in {span:.3f} s exceed {max_rate}/s"
    assert len(shown) < 100, "a burst is coalesced, not replayed"
    assert all(on_gui_thread)


def test_a_slot_that_raises_does_not_stop_later_snapshots(
    qtbot: QtBot, session: Session, make_bridge: BridgeFactory
) -> None:
    bridge = make_bridge()

    def broken(state: SessionState) -> None:
        raise RuntimeError("this slot is broken")

    seen: list[SessionState] = []
    bridge.state_changed.connect(broken)
    bridge.state_changed.connect(seen.append)
    with qtbot.capture_exceptions() as exceptions:
        for i in range(3):
            bridge.loop_thread.call_soon(session.store.dispatch, problem(i))
            qtbot.waitUntil(lambda i=i: bool(seen) and numbered(seen[-1]) == i, timeout=WAIT_MS)
    assert len(exceptions) >= 3
    assert all("this slot is broken" in str(error) for _, error, _ in exceptions)
    assert numbered(session.state) == 2, "the session carried on"


def test_a_gui_that_is_busy_never_holds_up_the_session(
    qtbot: QtBot, session: Session, make_bridge: BridgeFactory
) -> None:
    bridge = make_bridge()
    session_finished = threading.Event()
    waited: list[bool] = []
    delivered: list[SessionState] = []

    def busy(state: SessionState) -> None:
        delivered.append(state)
        if not waited:
            # Block the GUI thread until the session has made all its snapshots.
            # If delivery waited for the GUI, this would time out.
            waited.append(session_finished.wait(timeout=10))

    async def produce() -> None:
        await burst(session, 200)
        session_finished.set()

    bridge.state_changed.connect(busy)
    bridge.loop_thread.submit(produce())
    qtbot.waitUntil(lambda: bool(waited) and bridge.state is session.state, timeout=WAIT_MS)
    assert waited == [True]
    assert numbered(delivered[-1]) == 199
    assert len(delivered) <= 3, "a busy GUI sees fewer, newer snapshots"


def test_command_errors_arrive_as_a_signal_on_the_gui_thread(
    qtbot: QtBot, session: Session, make_bridge: BridgeFactory
) -> None:
    bridge = make_bridge()
    threads: list[bool] = []
    bridge.command_failed.connect(lambda _: threads.append(threading.current_thread() is threading.main_thread()))
    with qtbot.waitSignal(bridge.command_failed, timeout=WAIT_MS) as failed:
        bridge.send_text("   ")
    assert failed.args is not None
    error = failed.args[0]
    assert isinstance(error, CommandError)
    assert (error.command, error.error_type) == ("send_text", "ValueError")
    assert error.message == "Nothing to send: the text is empty."
    assert threads == [True]


def test_after_closing_commands_are_refused_in_words_and_the_loop_thread_is_gone(
    qtbot: QtBot, session: Session
) -> None:
    bridge = SessionBridge(session)
    thread_was_running = bridge.loop_thread.is_running
    with qtbot.waitSignal(bridge.closed, timeout=WAIT_MS):
        bridge.close()
    assert thread_was_running and not bridge.loop_thread.is_running
    with qtbot.waitSignal(bridge.command_failed, timeout=WAIT_MS) as failed:
        assert bridge.start() is None
    assert failed.args is not None and failed.args[0].message == "The session window is closed."
    bridge.close()  # twice is fine


def test_a_shared_loop_thread_is_left_running_for_its_owner(qtbot: QtBot, session: Session) -> None:
    with LoopThread(name="shared-loop") as shared:
        bridge = SessionBridge(session, loop_thread=shared)
        assert bridge.loop_thread is shared
        bridge.close()
        assert shared.is_running


def test_the_installed_pyside_keeps_reference_counts_straight(qtbot: QtBot) -> None:
    """PySide6 6.12.0 on Python < 3.12 drops a reference to None/True per slot call, then aborts.

    Checked directly, so a machine that installs such a build fails here, in
    words, rather than crashing at random in a long session.
    """
    from PySide6.QtCore import QObject, QTimer, Signal

    class Emitter(QObject):
        ping = Signal()

    emitter = Emitter()
    calls: list[None] = []
    emitter.ping.connect(lambda: calls.append(None))
    before = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(500):
        emitter.ping.emit()
    for _ in range(100):
        QTimer.singleShot(0, emitter, lambda: calls.append(None))
    qtbot.waitUntil(lambda: len(calls) == 600, timeout=WAIT_MS)
    after = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
    assert all(a - b > -100 for a, b in zip(after, before)), (
        f"reference counts of None/True/False fell by {[b - a for a, b in zip(after, before)]}: "
        'this PySide6 build corrupts memory on this Python; install "PySide6-Essentials<6.12"'
    )


def test_a_replay_plays_in_the_window_and_refuses_commands_in_words(qtbot: QtBot) -> None:
    """``lkstate replay --ui qt`` hands the app a Replay: it plays like a session and cannot be typed into."""
    from lkstate._core import events as ev
    from lkstate._session.recording import Replay
    from lkstate_qt.app import MainWindow

    events = [
        ev.StartRequested(at=1.0, requested_agent="lkstate-demo"),
        ev.RoomConnected(at=1.1, room_name="recorded-room", local_identity="user-1", server_url="ws://127.0.0.1:7880"),
        ev.ChatSendRequested(at=2.0, message_id="chat/local/1", text="hello from the past", sender="user-1"),
        ev.ChatSendSucceeded(at=2.1, message_id="chat/local/1"),
        ev.RoomDisconnected(at=3.0, reason="You ended the session.", expected=True),
    ]
    replay = Replay(events, speed=float("inf"))
    window = MainWindow(SessionBridge(replay), title="replay")
    qtbot.addWidget(window)
    window.show()
    window.bridge.start()
    qtbot.waitUntil(lambda: window.indicator.title.text() == "Disconnected", timeout=WAIT_MS)
    assert window.transcript.bubble_texts() == (("user", "hello from the past", False),)
    assert window.details.values["Room"].text() == "recorded-room"
    with qtbot.waitSignal(window.bridge.command_failed, timeout=WAIT_MS) as failed:
        window.bridge.dismiss_problems()
    assert failed.args is not None and failed.args[0].error_type == "ReplayReadOnlyError"
    window.close()
    assert not window.bridge.loop_thread.is_running
