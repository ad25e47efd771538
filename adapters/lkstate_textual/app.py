"""The lkstate terminal client: talk to a LiveKit agent from a terminal.

::

    python -m lkstate_textual.app --url ws://127.0.0.1:7880 --agent-name lkstate-demo
    python examples/textual_tui/main.py --token-endpoint https://example.com/token

It connects at start (``--no-connect`` to wait for F3), shows the agent's
status in words and colour (and how it sounds, when it says), the live
transcript, the agent's tool calls, RPC calls between the app and the agent,
model usage, and anything that went wrong; type below and press Enter to chat,
F2 turns the microphone on and off, F5 the camera (a camera that cannot
work says why under the agent's status), Ctrl+C or Ctrl+Q quits (leaving
the room).

Where to connect comes from flags or the environment, first match wins (see
:func:`lkstate.token_source_from_env`):

- ``--token-endpoint URL`` / ``LKSTATE_TOKEN_ENDPOINT``
- ``--url`` + ``--token`` / ``LIVEKIT_URL`` + ``LIVEKIT_TOKEN``
- ``--url`` / ``LIVEKIT_URL`` with ``LIVEKIT_API_KEY`` + ``LIVEKIT_API_SECRET``
  (development tokens minted locally)

``--agent-name`` (``LKSTATE_AGENT_NAME``) asks the server to dispatch that agent.
``--camera pattern`` sends generated colour bars instead of this machine's
camera (``--camera none``: no camera).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header

from lkstate import Session, TokenSource
from lkstate.errors import LkstateError
from lkstate.ui import DEFAULT_MAX_RATE
from lkstate.apps import CONNECTION_HELP, add_camera_argument, add_connection_arguments, session_from_args

from ._binding import SessionBinding, SessionLike, SessionStateChanged
from .widgets import (
    AgentStatusIndicator,
    CameraNotice,
    CameraToggle,
    ChatInput,
    ConnectButton,
    MicrophoneNotice,
    MicrophoneToggle,
    PreConnectIndicator,
    ProblemsBar,
    RpcPanel,
    SessionInfo,
    ToolCallsPanel,
    TranscriptView,
    UsagePanel,
    VoiceVisualizer,
)

__all__ = ["VoiceAgentApp", "build_parser", "main", "run"]

logger = logging.getLogger(__name__)


class VoiceAgentApp(App[None]):
    """A terminal client for one :class:`~lkstate.Session` (or a recorded replay).

    The session runs on this app's asyncio loop; the app connects it on start
    (unless ``autoconnect`` is false) and ends it on exit. Snapshots reach the
    widgets through a :class:`~lkstate_textual.SessionBinding` capped at
    ``max_rate`` updates per second.
    """

    TITLE = "lkstate"

    CSS = """
    Screen {
        layout: vertical;
    }
    #top {
        height: auto;
        padding: 0 1;
    }
    #status-column {
        width: 1fr;
        height: auto;
    }
    #controls {
        width: auto;
        height: auto;
        padding: 1 0 0 1;
    }
    #controls Button {
        margin: 0 0 0 1;
    }
    #main {
        height: 1fr;
        padding: 0 1;
    }
    #side {
        width: 36%;
        min-width: 30;
        max-width: 56;
        height: 1fr;
        margin-left: 1;
        overflow-y: auto;
    }
    #bottom {
        height: auto;
        padding: 0 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "toggle_microphone", "Mic on/off", priority=True),
        Binding("f5", "toggle_camera", "Cam on/off", priority=True),
        Binding("f3", "toggle_connection", "Connect/Disconnect", priority=True),
        Binding("f4", "dismiss_problems", "Dismiss problems", priority=True),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        session: SessionLike,
        *,
        autoconnect: bool = True,
        max_rate: float | None = DEFAULT_MAX_RATE,
        end_session_on_exit: bool = True,
        agent_name: str | None = None,
    ) -> None:
        super().__init__()
        self.session = session
        self.autoconnect = autoconnect
        self.end_session_on_exit = end_session_on_exit
        self.binding = SessionBinding(self, session, max_rate=max_rate)
        self.sub_title = f"talking to {agent_name}" if agent_name else "voice agent client"

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with Horizontal(id="top"):
            with Vertical(id="status-column"):
                yield AgentStatusIndicator(id="agent-status")
                yield PreConnectIndicator(id="preconnect")
                yield MicrophoneNotice(id="microphone-notice")
                yield CameraNotice(id="camera-notice")
            with Horizontal(id="controls"):
                yield MicrophoneToggle(id="microphone")
                yield CameraToggle(id="camera")
                yield ConnectButton(id="connect")
        with Horizontal(id="main"):
            yield TranscriptView(id="transcript")
            with Vertical(id="side"):
                yield VoiceVisualizer(id="voice")
                yield ToolCallsPanel(id="tool-calls")
                yield RpcPanel(id="rpc")
                yield UsagePanel(id="usage")
                yield SessionInfo(id="session-info")
        with Vertical(id="bottom"):
            yield ProblemsBar(id="problems")
            yield ChatInput(id="chat-input")
        yield Footer()

    def on_mount(self) -> None:
        self.binding.start()
        self.query_one(ChatInput).focus()
        if self.autoconnect:
            self.binding.connect()

    async def on_unmount(self) -> None:
        self.binding.close()
        if self.end_session_on_exit:
            try:
                await self.session.end()
            except Exception:  # leaving must not fail because the room is already gone
                logger.exception("ending the session on exit failed")

    def on_session_state_changed(self, message: SessionStateChanged) -> None:
        agent = message.state.agent
        if agent.name:
            self.sub_title = f"talking to {agent.name}"

    # -- actions ----------------------------------------------------------------

    def action_toggle_microphone(self) -> None:
        self.binding.toggle_microphone()

    def action_toggle_camera(self) -> None:
        self.binding.toggle_camera()

    def action_toggle_connection(self) -> None:
        self.binding.toggle_connection()

    def action_dismiss_problems(self) -> None:
        self.query_one(ProblemsBar).dismiss()

    def action_help_quit(self) -> None:
        """Ctrl+C quits, as a person expects of a terminal program.

        Textual binds Ctrl+C to copying the selected text, and when nothing is
        selected only tells how to quit; here it quits then. Quitting ends the
        session, and ``lkstate demo`` then stops the server and agent it started.
        """
        self.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lkstate-tui",
        description="Talk to a LiveKit voice agent from the terminal.",
        epilog=CONNECTION_HELP,
    )
    add_connection_arguments(parser)
    add_camera_argument(parser)
    parser.add_argument("--no-connect", action="store_true", help="do not connect at start (press F3)")
    return parser


def run(
    token_source: TokenSource,
    *,
    agent_name: str | None = None,
    room_name: str | None = None,
    participant_identity: str | None = None,
    participant_name: str | None = None,
    agent_connect_timeout: float | None = 20.0,
    max_rate: float | None = DEFAULT_MAX_RATE,
    autoconnect: bool = True,
    **session_kwargs: Any,
) -> None:
    """Run the TUI for a new session until the user quits (the entry the CLI calls)."""
    session = Session(
        token_source,
        agent_name=agent_name,
        room_name=room_name,
        participant_identity=participant_identity,
        participant_name=participant_name,
        agent_connect_timeout=agent_connect_timeout,
        **session_kwargs,
    )
    VoiceAgentApp(session, autoconnect=autoconnect, max_rate=max_rate, agent_name=agent_name).run()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags (falling back to the environment) and run the TUI."""
    args = build_parser().parse_args(argv)
    try:
        session = session_from_args(args)
    except LkstateError as error:
        print(f"lkstate-tui: {error}", file=sys.stderr)
        return 2
    VoiceAgentApp(
        session, autoconnect=not args.no_connect, max_rate=args.max_rate, agent_name=args.agent_name or None
    ).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
