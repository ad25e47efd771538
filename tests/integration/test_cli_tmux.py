"""`lkstate demo --ui textual` in a real terminal (tmux): the README's first command, as a person runs it.

tmux gives the test a terminal: the demo starts its server and agent, the TUI
comes up and shows the agent listening, a typed question gets the agent's
answer (and its tool call) on screen, Ctrl+Q (or Ctrl+C, as people press) quits,
and nothing the demo started is left running. The last screen is saved under
``test-artifacts/tmux/`` for people to look at.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.test_cli_demo import assert_nothing_left, lkstate_command, processes_marked

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "tmux"

pytestmark = [
    pytest.mark.wire,
    pytest.mark.agent,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc"),
]


def _textual_app_missing() -> bool:
    try:
        return importlib.util.find_spec("lkstate_textual.app") is None
    except ModuleNotFoundError:
        return True


class Terminal:
    """One detached tmux session on a private server socket."""

    def __init__(self, socket: str, width: int = 140, height: int = 42) -> None:
        self.socket = socket
        self.width, self.height = width, height

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                              check=True, timeout=10).stdout

    def start(self, command: str, env: dict[str, str]) -> None:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        # The shell stays after the command, so its exit status can be read from the screen.
        self.tmux("new-session", "-d", "-s", "demo", "-x", str(self.width), "-y", str(self.height),
                  f"sleep 0.5; cd {shlex.quote(str(REPO))} && env -u COLUMNS -u LINES {exports} {command}; "
                  "echo \"EXITED rc=$?\"; sleep 600")
        # A detached session may take the server's default size; make sure the app sees a wide terminal.
        self.tmux("resize-window", "-t", "demo", "-x", str(self.width), "-y", str(self.height))
        size = self.tmux("display", "-p", "-t", "demo", "#{window_width}x#{window_height}").strip()
        assert size == f"{self.width}x{self.height}", size

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "demo")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "demo", *keys)

    def wait_for(self, what: str | Callable[[str], bool], timeout: float) -> str:
        check = what if callable(what) else (lambda screen: what in screen)
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if check(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what!r}; the screen shows:\n{screen}")

    def save(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.txt"
        path.write_text(self.screen())
        return path

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal(f"lkstate-test-{uuid.uuid4().hex[:8]}")
    try:
        yield term
    finally:
        term.kill()


def start_demo_tui(terminal: Terminal) -> str:
    """Run ``lkstate demo --ui textual`` in the terminal; return the marker its processes carry."""
    marker = uuid.uuid4().hex
    command = " ".join(shlex.quote(part) for part in [*lkstate_command(), "demo", "--ui", "textual"])
    terminal.start(command, {"LKSTATE_TEST_MARKER": marker, "TERM": "xterm-256color",
                             "PATH": os.environ.get("PATH", "")})
    return marker


@pytest.mark.skipif(_textual_app_missing(), reason="the Textual front end (lkstate_textual.app) is not installed yet")
def test_the_demo_in_a_terminal_answers_a_typed_question_and_quits_cleanly(terminal: Terminal) -> None:
    marker = start_demo_tui(terminal)
    try:
        terminal.wait_for("Listening", timeout=90)
        terminal.wait_for("▌ Hello! I am the lkstate demo agent.", timeout=30)
        assert len(processes_marked(marker)) >= 3, "the demo, its server and its worker are running"
        terminal.keys("What's the weather in Paris?", "Enter")
        answer = "▌ The weather in Paris is sunny and 21 degrees."  # in the conversation, not the tool panel
        screen = terminal.wait_for(answer, timeout=30)
        assert "✓ get_weather" in screen, "the tool call is shown"
        terminal.wait_for(lambda s: "● Listening" in s and answer in s, timeout=30)
        terminal.save("demo-textual-answered")
        terminal.keys("C-q")
        screen = terminal.wait_for("EXITED rc=", timeout=60)
        assert "EXITED rc=0" in screen, screen
        assert "stopping the demo agent and livekit-server" in screen
    finally:
        terminal.save("demo-textual-last")
    assert_nothing_left(marker)


@pytest.mark.skipif(_textual_app_missing(), reason="the Textual front end (lkstate_textual.app) is not installed yet")
def test_ctrl_c_in_the_demo_quits_it_and_stops_everything_it_started(terminal: Terminal) -> None:
    marker = start_demo_tui(terminal)
    try:
        terminal.wait_for("● Listening", timeout=90)
        assert len(processes_marked(marker)) >= 3, "the demo, its server and its worker are running"
        terminal.keys("C-c")
        screen = terminal.wait_for("EXITED rc=", timeout=60)
        assert "EXITED rc=0" in screen, screen
        assert "stopping the demo agent and livekit-server" in screen
        assert "to quit the app" not in screen, "Ctrl+C quit; it did not just say how to"
    finally:
        terminal.save("demo-textual-ctrl-c")
    assert_nothing_left(marker)


def test_closing_the_terminal_stops_everything_the_demo_started(terminal: Terminal) -> None:
    marker = uuid.uuid4().hex
    command = " ".join(shlex.quote(part) for part in [*lkstate_command(), "demo", "--headless", "--say", "Hello!",
                                                       "--say", "Hello again!", "--timeout", "120"])
    terminal.start(command, {"LKSTATE_TEST_MARKER": marker, "PATH": os.environ.get("PATH", "")})
    terminal.wait_for("the demo agent is registered", timeout=90)
    assert len(processes_marked(marker)) >= 3
    terminal.kill()  # the terminal goes away: SIGHUP
    assert_nothing_left(marker, timeout=20)
