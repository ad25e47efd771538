"""The PySide6 desktop client: talk to a LiveKit agent from a window.

One command, against the local development server and example agent::

    python examples/qt_desktop/main.py --url ws://127.0.0.1:7880 \\
        --api-key devkey --api-secret secret --agent-name lkstate-demo

or against any deployment, from flags or the environment (see
:func:`lkstate.token_source_from_env`):

==========================  ============================  ======================================
flag                        environment                   meaning
==========================  ============================  ======================================
``--token-endpoint URL``    ``LKSTATE_TOKEN_ENDPOINT``    a standard token endpoint (first choice)
``--url`` + ``--token``     ``LIVEKIT_URL``, ``LIVEKIT_TOKEN``  a server URL and a ready token
``--api-key``, ``--api-secret``  ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``  mint development tokens for ``--url``
``--agent-name NAME``       ``LKSTATE_AGENT_NAME``        ask the server to dispatch this agent
``--room``, ``--identity``, ``--name``                     room and participant (random by default)
``--max-rate N``                                          screen updates per second (default 30)
``--agent-timeout S``                                     give up waiting for the agent after S seconds
``--camera default|pattern|none``                          what the camera button sends (default: this machine's camera)
``--no-connect``                                          open the window without connecting
==========================  ============================  ======================================

The window: the agent's state in words and colour at the top (connecting,
waiting, early listening, listening, thinking, speaking, failed and why),
with the microphone, camera and Connect/Disconnect buttons beside it (a
camera that cannot work says why under the agent's state); problems
under it; the live transcript in the middle; session details, tool calls,
usage and (once there is one) RPC calls on the right; the pre-connect indicator and the chat line at the bottom.
Closing the window ends the session and stops its thread.

For other programs (``lkstate demo``): :func:`main` takes an argv list;
:func:`run` takes a ready :class:`~lkstate.Session`; :class:`MainWindow` is the
window itself, for embedding and tests.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence

from PySide6.QtCore import QSocketNotifier, Qt
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from lkstate import SessionState
from lkstate.errors import LkstateError
from lkstate.ui import DEFAULT_MAX_RATE
from lkstate.apps import CONNECTION_HELP, add_camera_argument, add_connection_arguments, session_from_args

from ._bridge import CommandError, SessionBridge, SessionLike
from ._style import STYLE_SHEET
from ._visualizer import VoiceVisualizer
from ._widgets import (
    AgentStateIndicator,
    CameraNotice,
    CameraToggle,
    ChatInput,
    ConnectButton,
    MicrophoneToggle,
    PreConnectIndicator,
    ProblemsBar,
    SessionDetails,
    RpcPanel,
    ToolCallsPanel,
    TranscriptView,
    connect_widgets,
)

__all__ = ["MainWindow", "build_parser", "main", "run", "session_from_args"]

logger = logging.getLogger(__name__)


def _card(name: str, child_layout: QVBoxLayout | QHBoxLayout) -> QFrame:
    frame = QFrame()
    frame.setObjectName(name)
    frame.setLayout(child_layout)
    return frame


class MainWindow(QMainWindow):
    """The client's window, showing one :class:`SessionBridge`.

    The widgets are attributes (``indicator``, ``transcript``, ``chat``,
    ``microphone``, ``camera``, ``camera_notice``, ``connect_button``, ``preconnect``, ``tools``,
    ``rpc``, ``details``, ``problems``) so tests and embedders can reach them.
    Closing the window closes the bridge: the session ends and its thread stops.
    """

    def __init__(self, bridge: SessionBridge, *, title: str = "lkstate", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self._base_title = title
        self.setWindowTitle(title)
        self.setStyleSheet(STYLE_SHEET)
        self.resize(1000, 680)
        self.setMinimumSize(720, 480)

        self.indicator = AgentStateIndicator()
        self.microphone = MicrophoneToggle()
        self.camera = CameraToggle()
        self.camera_notice = CameraNotice()
        self.connect_button = ConnectButton()
        self.problems = ProblemsBar()
        self.transcript = TranscriptView()
        self.details = SessionDetails()
        self.tools = ToolCallsPanel()
        self.rpc = RpcPanel()
        self.preconnect = PreConnectIndicator()
        self.chat = ChatInput()
        self.voice = VoiceVisualizer()

        app_name = QLabel("LKSTATE · VOICE AGENT")
        app_name.setObjectName("AppName")
        status_column = QVBoxLayout()
        status_column.setSpacing(4)
        status_column.addWidget(app_name)
        status_column.addWidget(self.indicator)
        status_column.addWidget(self.camera_notice)
        header_row = QHBoxLayout()
        header_row.setContentsMargins(16, 12, 16, 12)
        header_row.setSpacing(10)
        header_row.addLayout(status_column, 1)
        header_row.addWidget(self.voice, 0, Qt.AlignmentFlag.AlignVCenter)
        header_row.addWidget(self.microphone, 0, Qt.AlignmentFlag.AlignVCenter)
        header_row.addWidget(self.camera, 0, Qt.AlignmentFlag.AlignVCenter)
        header_row.addWidget(self.connect_button, 0, Qt.AlignmentFlag.AlignVCenter)
        header = _card("Header", header_row)

        transcript_box = QVBoxLayout()
        transcript_box.setContentsMargins(1, 1, 1, 1)
        transcript_box.addWidget(self.transcript)
        transcript_card = _card("TranscriptCard", transcript_box)

        side_content = QWidget()
        side_content.setObjectName("SideContent")
        side_column = QVBoxLayout(side_content)
        side_column.setContentsMargins(0, 0, 0, 0)
        side_column.setSpacing(10)
        for name, widget in (("SideCard", self.details), ("SideCard", self.tools)):
            box = QVBoxLayout()
            box.setContentsMargins(0, 0, 0, 0)
            box.addWidget(widget)
            side_column.addWidget(_card(name, box))
        side_column.addWidget(self.rpc)  # a card of its own, hidden until there is a call
        side_column.addStretch(1)
        side = QScrollArea()
        side.setObjectName("SidePanel")
        side.setWidgetResizable(True)
        side.setFrameShape(QFrame.Shape.NoFrame)
        side.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        side.setWidget(side_content)
        side.setMinimumWidth(260)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setChildrenCollapsible(False)
        splitter.setHandleWidth(10)
        splitter.addWidget(transcript_card)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([680, 300])

        composer_column = QVBoxLayout()
        composer_column.setContentsMargins(12, 10, 12, 10)
        composer_column.setSpacing(8)
        composer_column.addWidget(self.preconnect, 0, Qt.AlignmentFlag.AlignLeft)
        composer_column.addWidget(self.chat)
        composer = _card("Composer", composer_column)

        central = QWidget()
        central.setObjectName("Central")
        page = QVBoxLayout(central)
        page.setContentsMargins(12, 12, 12, 6)
        page.setSpacing(10)
        page.addWidget(header)
        page.addWidget(self.problems)
        page.addWidget(splitter, 1)
        page.addWidget(composer)
        self.setCentralWidget(central)
        self.statusBar().setSizeGripEnabled(False)

        widgets = (
            self.indicator,
            self.microphone,
            self.camera,
            self.camera_notice,
            self.connect_button,
            self.problems,
            self.transcript,
            self.details,
            self.tools,
            self.rpc,
            self.preconnect,
            self.chat,
        )
        connect_widgets(bridge.state_changed, widgets)
        bridge.state_changed.connect(self._render_title)
        bridge.levels_changed.connect(self.voice.render_levels)
        bridge.command_failed.connect(self._command_failed)
        self.chat.submitted.connect(bridge.send_text)
        self.microphone.requested.connect(bridge.set_microphone_enabled)
        self.camera.requested.connect(bridge.set_camera_enabled)
        self.connect_button.connect_requested.connect(lambda: bridge.start())
        self.connect_button.disconnect_requested.connect(lambda: bridge.end())
        self.problems.dismissed.connect(bridge.dismiss_problems)
        QShortcut(QKeySequence.StandardKey.Quit, self, self.close)
        QShortcut(QKeySequence("Ctrl+W"), self, self.close)
        for widget in widgets:
            widget.render_state(bridge.state)
        self._render_title(bridge.state)
        self.chat.line.setFocus()

    def _render_title(self, state: SessionState) -> None:
        agent = state.agent.name or state.agent.identity
        title = f"{agent} — {self._base_title}" if agent else self._base_title
        if title != self.windowTitle():
            self.setWindowTitle(title)

    def _command_failed(self, error: CommandError) -> None:
        if error.shown_in_state:
            return  # the indicator already says it, with the reasons
        self.statusBar().showMessage(error.text, 10_000)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.statusBar().showMessage("Leaving the room…")
        self.bridge.close()
        super().closeEvent(event)


def run(
    session: SessionLike | Callable[[], SessionLike],
    *,
    argv: Sequence[str] | None = None,
    max_rate: float | None = DEFAULT_MAX_RATE,
    connect: bool = True,
    title: str = "lkstate",
) -> int:
    """Open the window on ``session`` (or the session a factory makes) and run Qt until it closes.

    ``session`` is a :class:`~lkstate.Session` or a replay (anything with the
    session's read API). Creates the ``QApplication`` when there is none.
    ``connect`` starts the session (or plays the replay) as soon as the window
    shows. Returns the application's exit code.
    """
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("lkstate")
    app.setApplicationDisplayName("lkstate")
    actual: SessionLike = session if _is_session(session) else session()  # type: ignore[operator]
    bridge = SessionBridge(actual, max_rate=max_rate)
    window = MainWindow(bridge, title=title)
    window.show()
    if connect:
        bridge.start()
    restore = _close_on_signals(window)
    try:
        return app.exec()
    finally:
        restore()
        bridge.close()


def _is_session(candidate: object) -> bool:
    return hasattr(candidate, "states") and hasattr(candidate, "start")


def _close_on_signals(window: QMainWindow) -> Callable[[], None]:
    """Ctrl+C or SIGTERM in the terminal closes the window the normal way (leaving the room).

    While Qt's loop runs, Python only gets to run its signal handlers when Qt
    calls back into Python; a socket the interpreter writes to on each signal
    (``signal.set_wakeup_fd``) wakes a notifier, which is such a call.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno())
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, window)

    def drain() -> None:
        with contextlib.suppress(OSError):
            reader.recv(512)

    notifier.activated.connect(drain)
    def close(_signum: int, _frame: object) -> None:
        window.close()

    previous = {sig: signal.signal(sig, close) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        notifier.setEnabled(False)
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reader.close()
        writer.close()

    return restore


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lkstate-qt",
        description="A desktop client for a LiveKit voice agent (PySide6).",
        epilog=CONNECTION_HELP,
    )
    add_connection_arguments(parser)
    add_camera_argument(parser)
    parser.add_argument("--no-connect", action="store_true", help="open the window without connecting")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), open the window, return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        session = session_from_args(args)
    except LkstateError as error:
        print(f"lkstate-qt: {error}", file=sys.stderr)
        return 2
    return run(session, max_rate=args.max_rate, connect=not args.no_connect)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
