"""The PySide6 desktop client, used the way a person uses it.

Real widgets, a real ``Session`` on its bridge's loop thread, a real
livekit-server and the real livekit-agents ``AgentSession`` (the demo agent,
in process). Runs offscreen.

How the threads fit together: pytest-qt's ``qtbot`` drives the Qt event loop
on the test's (main) thread, so the tests are plain sync functions. The
session runs on the bridge's own ``LoopThread``, as in the app. The agent
fixture of ``tests/conftest.py`` is async and would live on pytest-asyncio's
loop, which does not run while a sync test waits on Qt; so these tests start
the same in-process agent (``tests.harness.agent.start_agent``) on a
``LoopThread`` of their own. Nothing here awaits; every wait pumps Qt.

Screenshots land in ``test-artifacts/screenshots/qt-*.png``.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from livekit import rtc

from lkstate import AgentStatus, ConnectionStatus, DevelopmentTokenSource, LoopThread, Role, Session
from lkstate.media import PATTERN_COLOURS, PatternVideoInput
from lkstate_qt import CommandError, SessionBridge
from lkstate_qt.app import MainWindow, build_parser, main, session_from_args
from tests.harness.peer import Peer, wait_until
from tests.harness.server import REPO_ROOT, LiveKitServer
from tests.harness.video import bar_colours, close_to, first_picture, video_of

SCREENSHOTS = Path(REPO_ROOT) / "test-artifacts" / "screenshots"
WAIT_MS = 20_000

WindowFactory = Callable[..., MainWindow]


def screenshot(window: MainWindow, name: str) -> Path:
    """Save what the window shows now as ``test-artifacts/screenshots/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    QApplication.sendPostedEvents()  # let pending layouts settle, as one more frame would
    QApplication.processEvents()
    path = SCREENSHOTS / f"{name}.png"
    assert window.grab().save(str(path)), f"could not save {path}"
    return path


def loop_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "lkstate-loop" and t.is_alive()}


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def start_agent(livekit_server: LiveKitServer) -> Iterator[Callable[..., Any]]:
    """``start_agent(room)`` -> InProcessAgent, running on a loop thread of its own."""
    from tests.harness.agent import InProcessAgent
    from tests.harness.agent import start_agent as start_in_process

    started: list[InProcessAgent] = []
    with LoopThread(name="qt-test-agent") as agent_loop:

        def start(room: str, **kwargs: Any) -> InProcessAgent:
            agent = agent_loop.run(start_in_process(livekit_server, room, **kwargs), timeout=30)
            started.append(agent)
            return agent

        yield start
        for agent in reversed(started):
            agent_loop.run(agent.aclose(), timeout=30)


@pytest.fixture
def make_window(qtbot: QtBot, livekit_server: LiveKitServer, room_name: str) -> Iterator[WindowFactory]:
    """``make_window(**session_kwargs)`` -> a shown MainWindow on a fresh Session for this test's room."""
    windows: list[MainWindow] = []

    def make(**kwargs: Any) -> MainWindow:
        kwargs.setdefault("room_name", room_name)
        tokens = DevelopmentTokenSource(livekit_server.url, livekit_server.api_key, livekit_server.api_secret)
        window = MainWindow(SessionBridge(Session(tokens, **kwargs)), title="lkstate test")
        window.resize(1000, 680)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.bridge.close()


def wait_for_agent_to_see(qtbot: QtBot, agent: Any, window: MainWindow) -> None:
    """The agent framework drops chat from a user its room has not seen join yet."""
    identity = window.bridge.state.connection.local_identity
    qtbot.waitUntil(lambda: identity in dict(agent.room.remote_participants), timeout=WAIT_MS)


# -- the conversation ---------------------------------------------------------------------------


def test_typing_a_message_shows_the_agents_reply_and_the_tool_it_used(
    qtbot: QtBot, make_window: WindowFactory, start_agent: Callable[..., Any], room_name: str
) -> None:
    window = make_window()
    titles = [window.indicator.title.text()]
    window.bridge.state_changed.connect(lambda _: titles.append(window.indicator.title.text()))
    assert window.indicator.title.text() == "Not connected"
    assert not window.chat.line.isEnabled(), "nothing can be typed before connecting"
    screenshot(window, "qt-01-not-connected")

    qtbot.mouseClick(window.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.indicator.title.text() == "Waiting for the agent…", timeout=WAIT_MS)
    assert window.connect_button.text() == "Disconnect"
    assert window.details.values["Room"].text() == room_name
    screenshot(window, "qt-02-waiting-for-agent")

    agent = start_agent(room_name)
    qtbot.waitUntil(lambda: window.indicator.status is AgentStatus.LISTENING, timeout=WAIT_MS)
    assert window.indicator.title.text() == "Listening"
    assert window.chat.line.isEnabled()
    wait_for_agent_to_see(qtbot, agent, window)

    qtbot.keyClicks(window.chat.line, "What is the weather in Paris?")
    qtbot.mouseClick(window.chat.send_button, Qt.MouseButton.LeftButton)
    assert window.chat.line.text() == "", "the line is cleared once sent"
    qtbot.waitUntil(lambda: window.indicator.status is AgentStatus.SPEAKING, timeout=WAIT_MS)

    def agent_speaking_interim() -> bool:
        return any(
            role == "agent" and interim and len(text.split()) >= 4
            for role, text, interim in window.transcript.bubble_texts()
        )

    # The agent's words arrive as they are spoken, as interim text, until the end of the sentence.
    qtbot.waitUntil(agent_speaking_interim, timeout=WAIT_MS)
    screenshot(window, "qt-03-agent-speaking")

    reply = "The weather in Paris is sunny and 21 degrees."

    def replied() -> bool:
        return ("agent", reply, False) in window.transcript.bubble_texts()

    qtbot.waitUntil(replied, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.indicator.status is AgentStatus.LISTENING, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bool(window.tools.usage_texts()), timeout=WAIT_MS)
    shown = window.transcript.bubble_texts()
    assert shown[0] == ("user", "What is the weather in Paris?", False)
    assert "sent ✓" in window.transcript.header_texts()[0]
    assert [m.role for m in window.transcript.messages()] == [Role.USER, Role.AGENT]
    assert window.tools.call_texts() == (('get_weather(city="Paris")', reply),)
    assert any(text.startswith("LLM ") for text in window.tools.usage_texts())
    assert {"Not connected", "Waiting for the agent…", "Listening", "Speaking"} <= set(titles)
    screenshot(window, "qt-04-conversation")

    qtbot.mouseClick(window.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.indicator.title.text() == "Disconnected", timeout=WAIT_MS)
    assert window.indicator.detail.text() == "You ended the session. Connect to talk again."
    assert window.connect_button.text() == "Connect"
    assert len(window.transcript.messages()) == 2, "the conversation stays on screen after leaving"
    screenshot(window, "qt-05-disconnected")


def test_an_agent_that_never_comes_is_shown_as_failed_with_the_reason(
    qtbot: QtBot, make_window: WindowFactory
) -> None:
    window = make_window(agent_connect_timeout=1.0)
    failures: list[CommandError] = []
    window.bridge.command_failed.connect(failures.append)
    qtbot.mouseClick(window.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.indicator.status is AgentStatus.FAILED, timeout=WAIT_MS)
    assert window.indicator.title.text() == "Agent unavailable"
    reasons = window.bridge.state.agent.failure_reasons
    assert reasons and window.indicator.detail.text().startswith(" ".join(reasons)), "why, then what still works"
    qtbot.waitUntil(lambda: bool(failures), timeout=WAIT_MS)
    assert failures[0].command == "start" and failures[0].shown_in_state
    assert window.statusBar().currentMessage() == "", "the failure is said once, by the indicator"
    screenshot(window, "qt-06-agent-unavailable")


def test_a_server_that_cannot_be_reached_is_shown_in_words(qtbot: QtBot) -> None:
    tokens = DevelopmentTokenSource("ws://127.0.0.1:9", "devkey", "secret")
    window = MainWindow(SessionBridge(Session(tokens)), title="lkstate test")
    qtbot.addWidget(window)
    window.show()
    window.bridge.start()
    qtbot.waitUntil(lambda: window.indicator.title.text() == "Could not connect", timeout=WAIT_MS)
    assert "ws://127.0.0.1:9" in window.indicator.detail.text()
    assert window.connect_button.text() == "Connect"
    screenshot(window, "qt-07-could-not-connect")
    window.close()


def test_sending_while_disconnected_reports_a_command_error_in_the_status_bar(
    qtbot: QtBot, make_window: WindowFactory
) -> None:
    window = make_window()
    with qtbot.waitSignal(window.bridge.command_failed, timeout=WAIT_MS) as failed:
        window.bridge.send_text("hello?")
    assert failed.args is not None
    error = failed.args[0]
    assert isinstance(error, CommandError)
    assert error.command == "send_text" and error.error_type == "SessionClosedError"
    assert not error.shown_in_state
    assert window.statusBar().currentMessage() == error.text


def test_closing_the_window_ends_the_session_and_leaves_no_loop_thread(
    qtbot: QtBot, make_window: WindowFactory
) -> None:
    before = loop_threads()
    window = make_window(agent_connect_timeout=None)
    bridge, session = window.bridge, window.bridge.session
    assert loop_threads() - before, "the bridge runs its session on a loop thread"
    bridge.start(wait_for_agent=False)
    qtbot.waitUntil(lambda: bridge.state.connection.status is ConnectionStatus.CONNECTED, timeout=WAIT_MS)
    window.close()
    assert bridge.is_closed
    assert session.state.connection.status is ConnectionStatus.DISCONNECTED
    assert not bridge.loop_thread.is_running
    assert not (loop_threads() - before)


# -- the camera ----------------------------------------------------------------------------------


def test_the_camera_button_sends_the_camera_for_the_room_to_see_and_stops_it(
    qtbot: QtBot, make_window: WindowFactory, livekit_server: LiveKitServer, room_name: str
) -> None:
    window = make_window(video_input=PatternVideoInput(320, 180), audio_input=None, agent_connect_timeout=None)
    assert window.camera.text().endswith("Camera off") and not window.camera.isChecked()
    qtbot.mouseClick(window.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.bridge.state.connection.status is ConnectionStatus.CONNECTED, timeout=WAIT_MS)
    identity = window.bridge.state.connection.local_identity
    assert identity is not None

    with LoopThread(name="qt-test-viewer") as viewer_loop:
        viewer = viewer_loop.run(Peer.join(livekit_server, room_name), timeout=30)
        try:
            qtbot.mouseClick(window.camera, Qt.MouseButton.LeftButton)
            sent = "The room sees your camera (test pattern 320×180 at 15 fps)."
            qtbot.waitUntil(lambda: window.camera.toolTip() == sent, timeout=WAIT_MS)
            assert window.camera.text().endswith("Camera on")
            assert window.camera.isChecked(), "checked while the camera is on"
            assert not window.camera_notice.isVisible()
            camera = window.bridge.state.local_media.camera
            assert camera.published and camera.error is None

            async def seen() -> list[tuple[int, int, int]]:
                publication = await video_of(viewer, identity, rtc.TrackSource.SOURCE_CAMERA)
                assert publication.sid == camera.track_sid and publication.track is not None
                return bar_colours(await first_picture(publication.track, width=320))

            assert close_to(viewer_loop.run(seen(), timeout=30), PATTERN_COLOURS, tolerance=48)
            screenshot(window, "qt-10-camera-on")

            qtbot.mouseClick(window.camera, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: window.camera.text().endswith("Camera off"), timeout=WAIT_MS)
            assert not window.camera.isChecked()

            def gone() -> bool:
                participant = viewer.remote(identity)
                return participant is not None and not any(
                    t.source == rtc.TrackSource.SOURCE_CAMERA for t in participant.track_publications.values()
                )

            viewer_loop.run(wait_until(gone, timeout=10, message="the camera track to be gone"), timeout=30)
        finally:
            viewer_loop.run(viewer.disconnect(), timeout=30)


def test_without_a_camera_the_button_and_a_notice_say_why_in_words(
    qtbot: QtBot, make_window: WindowFactory
) -> None:
    # This machine has no camera (CI has none): "default" cannot open one.
    window = make_window(audio_input=None, agent_connect_timeout=None)
    qtbot.mouseClick(window.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.bridge.state.connection.status is ConnectionStatus.CONNECTED, timeout=WAIT_MS)
    qtbot.mouseClick(window.camera, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(window.camera_notice.isVisible, timeout=WAIT_MS)
    assert window.camera.text().endswith("No camera") and not window.camera.isChecked()
    notice = window.camera_notice.text()
    assert notice.startswith("Camera: No camera") and "PatternVideoInput" in notice, notice
    assert window.camera.toolTip() == window.bridge.state.local_media.camera.error
    assert window.connect_button.text() == "Disconnect", "the session goes on"
    screenshot(window, "qt-11-no-camera")


# -- the command line ----------------------------------------------------------------------------


def test_the_one_command_app_talks_to_an_agent_dispatched_by_name(
    qtbot: QtBot, livekit_server: LiveKitServer, tmp_path: Path
) -> None:
    """``main(argv)`` as ``lkstate demo`` runs it: a real worker, dispatched by name; Ctrl+C closes it."""
    from tests.harness.agent import start_worker

    agent_name = f"lkstate-qt-{uuid.uuid4().hex[:6]}"
    greeting = "Hello from a real worker."
    reply = "The weather in Oslo is sunny and 21 degrees."
    before = loop_threads()
    seen: list[str] = []

    def step() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if not windows:
            return
        window = windows[0]
        shown = window.transcript.bubble_texts()
        if not seen and ("agent", greeting, False) in shown:
            seen.append("greeting")
            window.chat.line.setText("What's the weather in Oslo?")
            window.chat.send_button.click()
        elif seen == ["greeting"] and ("agent", reply, False) in shown and window.tools.call_texts():
            seen.append("reply")
            screenshot(window, "qt-09-app-with-dispatched-worker")
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl+C in the terminal

    def give_up() -> None:
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, MainWindow):
                widget.close()

    with LoopThread(name="qt-test-worker") as worker_loop:
        worker = worker_loop.run(
            start_worker(livekit_server, agent_name=agent_name, log_dir=tmp_path, greeting=greeting), timeout=60
        )
        try:
            poll = QTimer()
            poll.timeout.connect(step)
            poll.start(100)
            QTimer.singleShot(45_000, give_up)
            code = main(["--url", livekit_server.url, "--api-key", livekit_server.api_key,
                         "--api-secret", livekit_server.api_secret, "--agent-name", agent_name])
            poll.stop()
        finally:
            worker_loop.run(worker.stop(), timeout=30)
    assert seen == ["greeting", "reply"]
    assert code == 0
    assert not (loop_threads() - before), "closing the app stopped the session's thread"



def test_flags_choose_how_to_reach_the_server_and_which_agent_to_ask_for() -> None:
    args = build_parser().parse_args(
        ["--url", "ws://127.0.0.1:7880", "--api-key", "devkey", "--api-secret", "secret",
         "--agent-name", "lkstate-demo", "--room", "r1", "--agent-timeout", "5"]
    )
    session = session_from_args(args)
    assert session.options.agent_connect_timeout == 5
    assert session.state.connection.status is ConnectionStatus.DISCONNECTED


def test_without_any_way_to_reach_a_server_the_app_says_what_to_pass(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LKSTATE_TOKEN_ENDPOINT", "LIVEKIT_URL", "LIVEKIT_TOKEN", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert main([]) == 2
    assert "--token-endpoint" in capsys.readouterr().err
