"""The ``lkstate`` command line.

::

    lkstate demo [--ui textual|qt|gradio] [--camera default|pattern|none] [--headless]
    lkstate serve [--agent-name NAME] [--env-file FILE]     # the demo's server + agent, for your program
    lkstate connect --url URL --token TOKEN | --token-endpoint URL [--ui ...] [--camera ...]
    lkstate record --out FILE (connection flags) [--ui ... | --headless]
    lkstate replay FILE [--ui ...] [--speed N] [--headless]
    lkstate inspect FILE [--step N]                         # timeline + the state at a step
    lkstate token --api-key KEY --api-secret SECRET [--room R] [--agent-name A [--agent-deployment D]]

``demo`` is the one a newcomer runs: it starts (installing it the first time)
a local livekit-server, registers the offline example agent with it, and opens
a front end talking to that agent; quitting, Ctrl-C or a closed terminal stop
everything it started. ``--headless`` does the same without a UI — connect,
say hello, print the agent's reply and every state change, exit — which is
how CI runs it. ``serve`` starts the same server and agent but keeps no
session of its own: it prints the environment another program needs to reach
them (the README's example, ``lkstate connect``) and runs until Ctrl-C. ``--camera`` picks what the front end's camera button sends:
the machine's camera (``default``), generated colour bars (``pattern``, a
working camera on a machine without one) or nothing (``none``).

Front ends are imported only when asked for (``lkstate_textual.app``,
``lkstate_qt.app``, ``lkstate_gradio.app``), so ``inspect`` or ``token`` need
none of them. Every error lkstate knows about is printed as its message and
remedy, with exit status 2 and no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import importlib
import logging
import math
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Generator, Sequence
from types import FrameType, ModuleType
from typing import Any, Literal, TextIO

import attrs

from .._core import events as ev
from .app_args import (
    CONNECTION_HELP,
    add_camera_argument,
    add_connection_arguments,
    token_source_from_args,
    video_input_for,
)
from .devserver import DevServer, dev_environment
from .._core.errors import LkstateError, TokenSourceError
from .._core.messages import DeliveryStatus, Message, Role
from .._core.options import Limits
from .._session.recording import Recorder, RecordingHeader, Replay, read_recording, record
from .._session.session import Session
from .._core.state import SessionState
from .._wire.tokens import DevelopmentTokenSource, TokenRequest, TokenSource
from .._media.video import PatternVideoInput, VideoInput

__all__ = ["main", "describe_state", "describe_event"]

logger = logging.getLogger(__name__)

UIS = ("textual", "qt", "gradio")
DEMO_AGENT = "lkstate-demo"
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class _Terminated(SystemExit):
    """SIGTERM or SIGHUP: unwind like Ctrl-C so everything started is stopped."""


# ---------------------------------------------------------------------------
# Entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lkstate`` command; return its exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:
        # The benchmark owns its flags (--json, --no-server, --quick); see lkstate._tooling.bench.
        from . import bench as _bench

        return _bench.main(arguments[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    command: Callable[[argparse.Namespace], int] = args.run
    _stacks_on_request()
    try:
        with _unwind_on_termination():
            return command(args)
    except LkstateError as error:
        _complain(error)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("lkstate: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        return EXIT_INTERRUPTED


def _stacks_on_request() -> None:
    """``kill -USR1 <pid>`` prints every thread's stack to stderr: how to see where a stuck run is."""
    if hasattr(signal, "SIGUSR1") and not faulthandler.is_enabled():
        with contextlib.suppress(ValueError, OSError, RuntimeError):  # not the main thread, or no stderr
            faulthandler.register(signal.SIGUSR1, all_threads=True)


def _complain(error: LkstateError) -> None:
    print(f"lkstate: {error.message}", file=sys.stderr)
    if error.remedy:
        print(f"  {error.remedy}", file=sys.stderr)


@contextlib.contextmanager
def _unwind_on_termination() -> Generator[None]:
    """Turn SIGTERM/SIGHUP into an exception, so ``finally`` blocks stop the server and the agent."""

    def handler(signum: int, frame: FrameType | None) -> None:
        del frame
        raise _Terminated(128 + signum)

    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):  # not the main thread, or no such signal
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, old)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lkstate",
        description="A LiveKit voice-agent session as one reactive, immutable state: demo, connect, record, replay.",
    )
    parser.add_argument("--log-level", default=os.environ.get("LKSTATE_LOG_LEVEL", "WARNING"),
                        help="logging level on stderr (default WARNING; env LKSTATE_LOG_LEVEL)")
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run a local LiveKit server and the example agent, and talk to it",
        description="Start a local livekit-server (installing it the first time), register the offline "
        "example agent with it, and open a front end talking to it. Quitting, Ctrl-C or closing the "
        "terminal stops everything it started.",
    )
    _add_ui_flags(demo, headless_help="no UI: connect, say hello, print the reply and the state changes, exit")
    demo.add_argument("--agent-name", default=DEMO_AGENT, help="the name the example agent registers (default %(default)s)")
    demo.add_argument("--greeting", default=None, help="what the agent says when you join (default: its hello; '' for none)")
    demo.add_argument("--record", metavar="FILE", help="also record the session into FILE")
    add_camera_argument(demo)
    demo.set_defaults(run=_cmd_demo, command="demo")

    serve = commands.add_parser(
        "serve",
        help="run a local LiveKit server and the example agent for your own program to talk to",
        description="Start what `lkstate demo` starts (a local livekit-server and the offline example "
        "agent) without a front end, print the environment another program needs to reach them "
        "(LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET, LKSTATE_AGENT_NAME) as shell `export` "
        "lines, and keep them running until Ctrl-C, which stops both.",
    )
    serve.add_argument("--agent-name", default=DEMO_AGENT, help="the name the example agent registers (default %(default)s)")
    serve.add_argument("--greeting", default=None, help="what the agent says when you join (default: its hello; '' for none)")
    serve.add_argument("--env-file", metavar="FILE",
                       help="also write the export lines into FILE (for `source FILE`); removed when serve stops")
    serve.set_defaults(run=_cmd_serve, command="serve")

    connect = commands.add_parser(
        "connect",
        help="open a front end connected to any LiveKit deployment",
        description="Connect to a LiveKit server and talk to its agent. " + CONNECTION_HELP,
    )
    add_connection_arguments(connect, max_rate=None)
    _add_ui_flags(connect, headless_help="no UI: print the state changes (and with --say, the agent's replies)")
    connect.add_argument("--record", metavar="FILE", help="also record the session into FILE")
    add_camera_argument(connect)
    connect.set_defaults(run=_cmd_connect, command="connect")

    rec = commands.add_parser(
        "record",
        help="connect like `connect` and record the session into a file",
        description="Connect like `lkstate connect` and write every event of the session into FILE "
        "(tokens and keys redacted). " + CONNECTION_HELP,
    )
    rec.add_argument("--out", "-o", metavar="FILE", required=True, help="the recording to write (.jsonl)")
    add_connection_arguments(rec, max_rate=None)
    _add_ui_flags(rec, headless_help="no UI: print the state changes (and with --say, the agent's replies)")
    add_camera_argument(rec)
    rec.set_defaults(run=_cmd_record, command="record")

    replay = commands.add_parser(
        "replay",
        help="play a recording back in a front end (no server needed)",
        description="Play a recording back through the same reducer, in a front end or as text.",
    )
    replay.add_argument("file", metavar="FILE", help="a recording (.jsonl)")
    replay.add_argument("--ui", choices=UIS, default="textual", help="front end (default %(default)s)")
    replay.add_argument("--headless", action="store_true", help="no UI: print the state changes as they replay")
    replay.add_argument("--speed", type=_speed, default=None,
                        help="1 = as recorded, 2 = twice as fast, inf = at once "
                        "(default: 1 in a front end, inf headless)")
    replay.add_argument("--max-gap", type=float, default=None, metavar="SECONDS",
                        help="cut longer silences to this many seconds")
    replay.set_defaults(run=_cmd_replay, command="replay")

    inspect = commands.add_parser(
        "inspect",
        help="print a recording's timeline and the state at any step",
        description="Print the events of a recording, one line each, and the whole state after step N "
        "(time travel for bug reports).",
    )
    inspect.add_argument("file", metavar="FILE", help="a recording (.jsonl)")
    inspect.add_argument("--step", "-s", type=int, default=None,
                         help="show the state after this many events (default: the last; 0 = before any; "
                         "negative counts from the end)")
    inspect.add_argument("--no-timeline", action="store_true", help="print only the state")
    inspect.set_defaults(run=_cmd_inspect, command="inspect")

    token = commands.add_parser(
        "token",
        help="mint a development token from an API key and secret",
        description="Print a participant token minted locally from an API key and secret (for "
        "development: whoever has the secret can mint any token).",
    )
    token.add_argument("--url", default=os.environ.get("LIVEKIT_URL", "ws://127.0.0.1:7880"),
                       help="server URL the token is for (env LIVEKIT_URL; default %(default)s)")
    token.add_argument("--api-key", default=os.environ.get("LIVEKIT_API_KEY"), help="env LIVEKIT_API_KEY")
    token.add_argument("--api-secret", default=os.environ.get("LIVEKIT_API_SECRET"), help="env LIVEKIT_API_SECRET")
    token.add_argument("--room", help="room name (default: a new random room)")
    token.add_argument("--identity", help="participant identity (default: random)")
    token.add_argument("--name", help="participant display name")
    token.add_argument("--agent-name", default=os.environ.get("LKSTATE_AGENT_NAME"),
                       help="dispatch this agent when the token's join creates the room")
    token.add_argument("--agent-deployment", help="the deployment of that agent to dispatch (needs --agent-name)")
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds the token is valid (default %(default)s)")
    token.add_argument("--json", action="store_true",
                       help='print {"server_url": ..., "participant_token": ...} (a token endpoint\'s answer)')
    token.set_defaults(run=_cmd_token, command="token")

    commands.add_parser(
        "bench",
        help="measure lkstate against a raw livekit.rtc app and a naive store (JSON with --json)",
        description="Run the benchmark; `lkstate bench --help` lists its flags.",
        add_help=False,
    )
    return parser


def _add_ui_flags(parser: argparse.ArgumentParser, *, headless_help: str) -> None:
    parser.add_argument("--ui", choices=UIS, default="textual", help="front end (default %(default)s)")
    parser.add_argument("--headless", action="store_true", help=headless_help)
    parser.add_argument("--say", action="append", default=None, metavar="TEXT",
                        help="headless: send TEXT once the agent is ready and print its reply (repeatable)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="headless: seconds to wait for each step (default %(default)s)")


def _speed(text: str) -> float:
    if text.strip().lower() in ("inf", "max", "fast"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a speed; use a number like 1, 2, 0.5, or inf") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("the speed must be above zero")
    return value


# ---------------------------------------------------------------------------
# demo, connect, record


def _progress(command: str) -> Callable[[str], None]:
    def say(line: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed terminal must not stop the cleanup
            print(f"lkstate {command}: {line}", file=sys.stderr, flush=True)

    return say


def _cmd_demo(args: argparse.Namespace) -> int:
    progress = _progress("demo")
    ui = None if args.headless else _load_ui(args.ui)  # fail before starting anything
    if ui is not None and args.ui == "gradio" and args.record:
        raise _no_gradio_recording()
    with dev_environment(agent_name=args.agent_name, greeting=args.greeting, progress=progress) as (server, _):
        spec = _SessionSpec(
            tokens=lambda: DevelopmentTokenSource(server.url, server.api_key, server.api_secret),
            agent_name=args.agent_name,
            secrets=(server.api_key, server.api_secret),
            record=args.record,
            metadata={"command": "lkstate demo", "agent_name": args.agent_name},
            camera=args.camera,
        )
        if ui is None:
            say = args.say if args.say is not None else ["Hello!"]
            return _run_headless(spec, say=say, timeout=args.timeout, progress=progress, until_disconnected=False)
        progress(f"opening the {args.ui} front end ({_quit_hint(args.ui)})")
        _open_live_ui(args.ui, ui, spec, server=server)
    return 0


def _serve_environment(server: DevServer, agent_name: str) -> dict[str, str]:
    """What a program needs to reach ``server`` and have ``agent_name`` dispatched: what ``token_source_from_env`` reads."""
    return {**server.env(), "LKSTATE_AGENT_NAME": agent_name}


def _cmd_serve(args: argparse.Namespace) -> int:
    progress = _progress("serve")
    with dev_environment(agent_name=args.agent_name, greeting=args.greeting, progress=progress) as (server, worker):
        lines = "".join(f"export {name}={shlex.quote(value)}\n"
                        for name, value in _serve_environment(server, args.agent_name).items())
        env_file = args.env_file
        written = False
        try:
            if env_file:
                # Written whole, then renamed: whoever waits for the file never reads half of it.
                partial = f"{env_file}.partial"
                try:
                    with open(partial, "w", encoding="utf-8") as f:
                        f.write(lines)
                    os.replace(partial, env_file)
                    written = True
                except OSError as error:
                    with contextlib.suppress(OSError):
                        os.remove(partial)
                    raise LkstateError(
                        f"Could not write the environment into {env_file}: {error.strerror or error}.",
                        remedy="Pass --env-file a path in a directory you can write to.",
                    ) from None
            sys.stdout.write(lines)
            sys.stdout.flush()
            where = f" (also in {env_file})" if env_file else ""
            progress(f"ready: set the environment above{where} in another terminal and run your program; "
                     "Ctrl-C stops the agent and the server")
            try:
                while server.is_running() and worker.is_running():
                    time.sleep(0.25)
            except (KeyboardInterrupt, _Terminated):
                return 0  # the way to stop it; the with-block stops the worker, then the server
            stopped, log = ("livekit-server", server.log_tail()) if not server.is_running() else (
                "the demo agent", worker.log_tail())
            raise LkstateError(
                f"{stopped} stopped on its own, so `lkstate serve` stops too. The end of its log:\n{log}",
                remedy="Read the log above; rerun `lkstate serve` with --log-level INFO for more.",
            )
        finally:
            if written:
                with contextlib.suppress(OSError):
                    os.remove(env_file)


def _cmd_connect(args: argparse.Namespace) -> int:
    return _connect_command(args, "connect", args.record)


def _cmd_record(args: argparse.Namespace) -> int:
    return _connect_command(args, "record", args.out)


def _connect_command(args: argparse.Namespace, command: str, record_path: str | None) -> int:
    progress = _progress(command)
    tokens = token_source_from_args(args)
    ui = None if args.headless else _load_ui(args.ui)
    if ui is not None and args.ui == "gradio" and record_path:
        raise _no_gradio_recording()
    secrets = tuple(
        s for s in (args.token, args.api_key, args.api_secret,
                    os.environ.get("LIVEKIT_TOKEN"), os.environ.get("LIVEKIT_API_KEY"),
                    os.environ.get("LIVEKIT_API_SECRET")) if s
    )
    spec = _SessionSpec(
        tokens=lambda: tokens,
        agent_name=args.agent_name,
        room_name=args.room,
        identity=args.identity,
        name=args.name,
        agent_timeout=args.agent_timeout,
        secrets=secrets,
        record=record_path,
        metadata={"command": f"lkstate {command}", **({"agent_name": args.agent_name} if args.agent_name else {})},
        camera=args.camera,
    )
    if ui is None:
        return _run_headless(spec, say=args.say or [], timeout=args.timeout, progress=progress,
                             until_disconnected=not args.say)
    progress(f"opening the {args.ui} front end ({_quit_hint(args.ui)})")
    _open_live_ui(args.ui, ui, spec, server=None)
    return 0


def _no_gradio_recording() -> LkstateError:
    return LkstateError(
        "The gradio front end runs one session per browser tab, so it cannot record into one file.",
        remedy="Record with --ui textual, --ui qt or --headless.",
    )


def _quit_hint(ui: str) -> str:
    return {"textual": "Ctrl+C or Ctrl+Q to quit", "qt": "close the window to quit", "gradio": "Ctrl-C to stop"}[ui]


@attrs.frozen
class _SessionSpec:
    """What a session is made of, so every front end (and every Gradio tab) can make its own."""

    tokens: Callable[[], TokenSource]
    agent_name: str | None = None
    room_name: str | None = None
    identity: str | None = None
    name: str | None = None
    agent_timeout: float | None = 20.0
    secrets: tuple[str, ...] = ()
    record: str | None = None
    metadata: dict[str, str] = attrs.field(factory=lambda: dict[str, str]())
    camera: str = "default"
    """The ``--camera`` choice: ``default``, ``pattern`` or ``none``."""

    def session(self, *, microphone: bool = True) -> Session:
        """A new session; ``microphone=False`` (headless runs) never opens an audio device.

        The camera starts off whatever ``camera`` says; it only picks what the
        front end's camera button sends.
        """
        return Session(
            self.tokens(),
            audio_input="default" if microphone else None,
            video_input=video_input_for(self.camera),
            agent_name=self.agent_name,
            room_name=self.room_name,
            participant_identity=self.identity,
            participant_name=self.name,
            agent_connect_timeout=self.agent_timeout,
        )

    def camera_per_tab(self) -> Callable[[], VideoInput] | Literal["default"] | None:
        """The camera for the Gradio front end, which makes a session per browser tab: a new input each."""
        if self.camera == "pattern":
            return PatternVideoInput
        return None if self.camera == "none" else "default"

    def recorder(self, session: Session) -> Recorder | None:
        if not self.record:
            return None
        return record(session, self.record, secrets=self.secrets, metadata=self.metadata)


# ---------------------------------------------------------------------------
# Headless: the state changes as text


class _Narrator:
    """Prints what changes in the state, one line per change, with the time since the first snapshot."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._origin: float | None = None
        self._previous: SessionState | None = None
        self._told: set[str] = set()
        self._problems = 0

    def __call__(self, state: SessionState) -> None:
        before = self._previous
        self._previous = state
        if before is None:
            return
        if self._origin is None:
            self._origin = state.updated_at
        lines: list[str] = []
        if state.connection.status != before.connection.status:
            c = state.connection
            words = c.status.value
            if c.is_connected:
                words += f" to room {c.room_name!r} as {c.local_identity!r}"
            if c.status.value == "disconnected" and (c.error or c.disconnect_reason):
                words += f": {c.error or c.disconnect_reason}"
            lines.append(f"connection: {words}")
        if state.agent.status != before.agent.status:
            a = state.agent
            words = a.state
            if a.failure_reasons:
                words += " — " + " ".join(a.failure_reasons)
            lines.append(f"agent: {words}")
        for message in state.messages:
            if message.id in self._told:
                continue
            if _settled(message):
                self._told.add(message.id)
                lines.append(_message_line(message))
        for problem in state.problems[-max(0, len(state.problems) - _count_common(before.problems, state.problems)):]:
            lines.append(f"problem ({problem.source}): {problem.message}")
        for line in lines:
            print(f"[{state.updated_at - self._origin:7.2f}s] {line}", file=self._out, flush=True)


def _count_common(old: tuple[Any, ...], new: tuple[Any, ...]) -> int:
    """How many of ``new``'s problems were already shown in ``old`` (problems only drop from the front)."""
    if not new:
        return 0
    if not old:
        return 0
    last = old[-1]
    for index in range(len(new) - 1, -1, -1):
        if new[index] == last:
            return index + 1
    return 0


def _settled(message: Message) -> bool:
    if message.role is Role.USER and message.delivery is not None:
        return message.delivery is not DeliveryStatus.SENDING
    return message.final


def _message_line(message: Message) -> str:
    who = {Role.USER: "you", Role.AGENT: "agent", Role.PARTICIPANT: message.sender}[message.role]
    verb = "typed" if message.kind.value == "chat" else "said"
    extra = ""
    if message.delivery is DeliveryStatus.FAILED:
        extra = f" (not delivered: {message.error})"
    elif message.interrupted:
        extra = " (interrupted)"
    return f"{who} {verb}: {message.text.strip()}{extra}"


def _run_headless(
    spec: _SessionSpec, *, say: Sequence[str], timeout: float, progress: Callable[[str], None], until_disconnected: bool
) -> int:
    return asyncio.run(_headless(spec, say=say, timeout=timeout, progress=progress, until_disconnected=until_disconnected))


async def _headless(
    spec: _SessionSpec, *, say: Sequence[str], timeout: float, progress: Callable[[str], None], until_disconnected: bool
) -> int:
    session = spec.session(microphone=False)  # scripted text only: no device, nothing captured
    recorder = spec.recorder(session)
    session.states.subscribe(_Narrator(sys.stdout))
    try:
        progress("connecting")
        async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow Ctrl-C's cancellation
            await session.start()
        if say:
            await _let_the_agent_finish(session, min(timeout, 10.0))
        for text in say:
            sent = await session.send_text(text)
            try:
                await session.wait_until(lambda s: _reply_to(s, sent.id) is not None, timeout=timeout)
            except TimeoutError:
                raise LkstateError(
                    f"The agent did not answer {text!r} within {timeout:.0f} s.",
                    remedy="Check that the agent is running and answers chat; raise --timeout for slow agents.",
                ) from None
        if until_disconnected:
            progress("connected; Ctrl-C to leave")
            await session.wait_until(lambda s: s.connection.status.value == "disconnected")
    except TimeoutError:
        raise LkstateError(
            f"The session did not become ready within {timeout:.0f} s.",
            remedy="Check the server URL and that an agent is dispatched; raise --timeout if it is slow.",
        ) from None
    finally:
        with contextlib.suppress(Exception):
            await session.end()
        if recorder is not None:
            recorder.close()
            progress(f"recorded {recorder.events_written} events into {spec.record}")
    return 0


async def _let_the_agent_finish(session: Session, patience: float) -> None:
    """Give a greeting the time to end, so the first message does not interrupt it.

    An agent that starts talking within a moment of becoming ready is waited
    for (up to ``patience`` seconds); one that stays quiet is not.
    """

    def agent_messages(state: SessionState) -> list[Message]:
        return [m for m in state.messages if m.role is Role.AGENT]

    def talking(state: SessionState) -> bool:
        return state.agent.state in ("thinking", "speaking") or bool(agent_messages(state))

    def quiet(state: SessionState) -> bool:
        return state.agent.state == "listening" and all(m.final for m in agent_messages(state))

    try:
        await session.wait_until(talking, timeout=1.5)
    except TimeoutError:
        return
    with contextlib.suppress(TimeoutError):
        await session.wait_until(lambda s: quiet(s) and bool(agent_messages(s)), timeout=patience)


def _reply_to(state: SessionState, message_id: str) -> Message | None:
    """The agent's first complete message after the user's message ``message_id``."""
    seen = False
    for message in state.messages:
        if message.id == message_id:
            seen = True
        elif seen and message.role is Role.AGENT and message.final:
            return message
    return None


# ---------------------------------------------------------------------------
# Front ends


def _load_ui(ui: str) -> ModuleType:
    """``lkstate_<ui>.app``, imported now; a clear error when it (or its framework) is missing."""
    extra = {"textual": "textual", "qt": "qt", "gradio": "gradio"}[ui]
    try:
        return importlib.import_module(f"lkstate_{ui}.app")
    except ModuleNotFoundError as error:
        missing = error.name or "?"
        if missing.startswith(f"lkstate_{ui}"):
            raise LkstateError(
                f"The {ui} front end is not installed (no module lkstate_{ui}.app).",
                remedy=f'Install it with: pip install "lkstate[{extra}]", or choose another with --ui.',
            ) from None
        raise LkstateError(
            f"The {ui} front end needs the Python package {missing!r}, which is not installed.",
            remedy=f'Install it with: pip install "lkstate[{extra}]", or choose another with --ui.',
        ) from None
    except ImportError as error:
        raise LkstateError(
            f"The {ui} front end could not be loaded: {error}.",
            remedy=f'Reinstall it with: pip install --force-reinstall "lkstate[{extra}]".',
        ) from None


def _entry(module: ModuleType, name: str, ui: str) -> Callable[..., Any]:
    function = getattr(module, name, None)
    if not callable(function):
        raise LkstateError(
            f"The {ui} front end has no {name}() this lkstate can call.",
            remedy="Install matching versions of lkstate and its front ends.",
        )
    return function


def _require_display() -> None:
    """Qt aborts the whole process when it has no display; say so in words instead."""
    if not sys.platform.startswith("linux"):
        return
    if os.environ.get("QT_QPA_PLATFORM") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    raise LkstateError(
        "There is no display to open the Qt window on (neither DISPLAY nor WAYLAND_DISPLAY is set).",
        remedy="Run it in a desktop session, use --ui textual in a terminal, or set "
        "QT_QPA_PLATFORM=offscreen to run it without showing anything.",
    )


def _open_live_ui(ui: str, module: ModuleType, spec: _SessionSpec, *, server: DevServer | None) -> None:
    del server
    if ui == "qt":
        _require_display()  # before the session (and any recording) is created
    if ui == "gradio":
        run = _entry(module, "run", ui)
        run(spec.tokens, agent_name=spec.agent_name, port=0, auto_connect=True,
            agent_connect_timeout=spec.agent_timeout, room_name=spec.room_name,
            video_input=spec.camera_per_tab())
        return
    session = spec.session()
    recorder = spec.recorder(session)
    try:
        _open_session_ui(ui, module, session, agent_name=spec.agent_name)
    finally:
        if recorder is not None:
            recorder.close()


def _open_session_ui(ui: str, module: ModuleType, session: Session | Replay, *, agent_name: str | None) -> None:
    """Show one session (or replay) in the Textual or Qt front end until the user quits."""
    if ui == "textual":
        app_class = _entry(module, "VoiceAgentApp", ui)
        app_class(session, autoconnect=True, agent_name=agent_name).run()
    elif ui == "qt":
        _require_display()
        run = _entry(module, "run", ui)
        run(lambda: session, connect=True, argv=[sys.argv[0]])
    else:
        raise LkstateError(
            f"The {ui} front end cannot show one session in a window.", remedy="Use --ui textual or --ui qt."
        )


# ---------------------------------------------------------------------------
# replay and inspect


def _cmd_replay(args: argparse.Namespace) -> int:
    header, events = read_recording(args.file)
    if args.headless:
        speed = args.speed if args.speed is not None else math.inf
        replay = Replay(events, header=header, speed=speed, max_gap=args.max_gap)
        replay.states.subscribe(_Narrator(sys.stdout))
        asyncio.run(replay.run())
        print(f"replayed {len(replay)} events from {args.file}", file=sys.stderr)
        return 0
    module = _load_ui(args.ui)
    speed = args.speed if args.speed is not None else 1.0

    def new_replay() -> Replay:
        return Replay(events, header=header, speed=speed, max_gap=args.max_gap)

    if args.ui == "gradio":
        # Every browser tab plays its own copy from the start.
        progress = _progress("replay")
        progress(f"serving the replay in the gradio front end ({_quit_hint('gradio')})")
        run = _entry(module, "run", args.ui)
        run(session_factory=new_replay, port=0, auto_connect=True, title=f"lkstate · replay of {os.path.basename(args.file)}")
        return 0
    agent_name = dict(header.metadata).get("agent_name")
    _open_session_ui(args.ui, module, new_replay(), agent_name=f"{agent_name} (replay)" if agent_name else "a replay")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    header, events = read_recording(args.file)
    step = len(events) if args.step is None else args.step
    if step < 0:
        step += len(events) + 1
    if not 0 <= step <= len(events):
        raise LkstateError(
            f"There is no step {args.step} in {args.file}; it has {len(events)} events.",
            remedy=f"Choose --step from 0 (before the first event) to {len(events)} (after the last).",
        )
    print(inspection_text(args.file, header, events, step=step, timeline=not args.no_timeline), file=sys.stdout)
    return 0


def inspection_text(
    path: str,
    header: RecordingHeader,
    events: Sequence[ev.Event],
    *,
    step: int | None = None,
    timeline: bool = True,
    last_events: int | None = None,
) -> str:
    """What ``lkstate inspect`` prints: the header, the timeline of events and the state at ``step``.

    ``step`` defaults to after the last event. ``last_events`` keeps only the
    end of a long timeline (the test kit's failure messages), saying how many
    earlier events the recording holds.
    """
    step = len(events) if step is None else step
    lines = [_describe_header(path, header, events)]
    if timeline:
        lines += ["", "timeline (step, seconds since the first event, event):"]
        origin = events[0].at if events else 0.0
        first = 1 if last_events is None else max(1, len(events) - last_events + 1)
        if first > 1:
            lines.append(f"  … {first - 1} earlier events (all of them in {path})")
        for index in range(first, len(events) + 1):
            event = events[index - 1]
            marker = "▶" if index == step else " "
            lines.append(f"{marker}{index:5d} {event.at - origin:+9.3f}  {describe_event(event)}")
    lines.append("")
    where = "before the first event" if step == 0 else f"after step {step} of {len(events)}"
    lines.append(f"state {where}:")
    lines.append(describe_state(Replay(events, header=header).state_at(step)))
    return "\n".join(lines)


def _describe_header(path: str, header: RecordingHeader, events: Sequence[ev.Event]) -> str:
    span = events[-1].at - events[0].at if events else 0.0
    lines = [
        f"recording: {path}",
        f"format {header.format} v{header.version}, created {header.created} by lkstate {header.lkstate}; "
        f"{len(events)} events over {span:.1f} s",
    ]
    if header.metadata:
        lines.append("metadata: " + ", ".join(f"{k}={v}" for k, v in header.metadata))
    default = Limits()
    changed = [f"{f.name}={getattr(header.limits, f.name)}" for f in attrs.fields(Limits)
               if getattr(header.limits, f.name) != getattr(default, f.name)]
    lines.append("limits: " + (", ".join(changed) if changed else "the defaults"))
    return "\n".join(lines)


def _short(value: object, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe_event(event: ev.Event) -> str:
    """One line for an event: its class and its fields (time left out), long values shortened."""
    name = type(event).__name__
    if isinstance(event, ev.AgentSessionPayload):
        return f"{name:<28} from {event.sender!r}: {_describe_payload(event.payload)}"
    parts: list[str] = []
    for field in attrs.fields(type(event)):
        if field.name == "at":
            continue
        value: object = getattr(event, field.name)
        kind: type[object] = type(value)
        if attrs.has(kind):
            default = kind()
            inner = [f"{f.name}={_short(_plain(getattr(value, f.name)), 40)}" for f in attrs.fields(kind)
                     if getattr(value, f.name) != getattr(default, f.name)]
            parts.append(f"{field.name}({', '.join(inner)})")
        else:
            parts.append(f"{field.name}={_short(_plain(value))}")
    return f"{name:<28} {' '.join(parts)}".rstrip()


def _plain(value: object) -> object:
    """Enums by value, for reading."""
    enum_value = getattr(value, "value", None)
    if enum_value is not None and isinstance(value, str):
        return enum_value
    return value


def _describe_payload(payload: bytes) -> str:
    try:
        from livekit.protocol.agent_pb import agent_session as pb

        message = pb.AgentSessionMessage.FromString(payload)
        kind = message.WhichOneof("message")
        if kind is None:
            return f"an empty message ({len(payload)} bytes)"
        detail = None
        if kind in ("event", "request", "response"):  # each names its own oneof like itself
            detail = getattr(message, kind).WhichOneof(kind)
        return f"{kind}{(' ' + detail) if detail else ''} ({len(payload)} bytes)"
    except Exception:  # an unreadable payload is described, not fatal
        return f"{len(payload)} bytes (not readable as an agent-session message)"


def describe_state(state: SessionState) -> str:
    """The whole snapshot as indented text a person can read in a bug report."""
    lines: list[str] = []
    c = state.connection
    words = c.status.value
    if c.room_name:
        words += f", room {c.room_name!r} as {c.local_identity!r} on {c.server_url}"
    words += f", attempt {c.attempt}"
    lines.append(f"  connection: {words}")
    if c.error:
        lines.append(f"    error: {c.error}")
    if c.disconnect_reason:
        lines.append(f"    disconnect reason: {c.disconnect_reason}")
    a = state.agent
    agent = a.state
    if a.identity:
        agent += f" — {a.name or '?'} ({a.identity})"
    facts = [f for f, on in (("audio", a.audio_available), ("video", a.video_available),
                             ("can listen", a.can_listen)) if on]
    if facts:
        agent += "; " + ", ".join(facts)
    lines.append(f"  agent: {agent}")
    for reason in a.failure_reasons:
        lines.append(f"    failed: {reason}")
    lines.append(f"  messages ({len(state.messages)}):")
    for m in state.messages:
        flags = [m.kind.value]
        if m.delivery is not None:
            flags.append(m.delivery.value)
        elif not m.final:
            flags.append("interim")
        if m.interrupted:
            flags.append("interrupted")
        if m.error:
            flags.append(f"error: {m.error}")
        who = m.role.value if m.role is not Role.PARTICIPANT else m.sender
        lines.append(f"    [{who}, {', '.join(flags)}] {m.text}")
    lines.append(f"  participants ({len(state.participants)}):")
    for p in state.participants:
        tracks = ", ".join(
            f"{t.kind}/{t.source.value}{'' if t.subscribed else ' (not subscribed)'}{' (muted)' if t.muted else ''}"
            for t in p.tracks
        )
        lines.append(f"    {p.identity} ({p.kind}){': ' + tracks if tracks else ''}")
    media = state.local_media
    for label, track in (("microphone", media.microphone), ("camera", media.camera), ("screen share", media.screen_share)):
        if track.enabled or track.published or track.error:
            bits = [b for b, on in (("on", track.enabled), ("published", track.published), ("muted", track.muted)) if on]
            if track.device:
                bits.append(f"device {track.device}")
            if track.error:
                bits.append(f"error: {track.error}")
            lines.append(f"  {label}: {', '.join(bits)}")
    pre = state.preconnect
    if pre.status.value != "idle" or pre.bytes:
        detail = f", {pre.detail}" if pre.detail else ""
        to = f" to {pre.destination}" if pre.destination else ""
        lines.append(f"  pre-connect audio: {pre.status.value}, {pre.seconds:.1f} s, {pre.bytes} bytes{to}{detail}")
    r = state.remote
    if r.message_count:
        lines.append(f"  agent session: agent {r.agent_state or '?'}, user {r.user_state or '?'}, "
                     f"{len(r.items)} items, {r.message_count} messages")
        for call in r.tool_calls:
            result = f" -> {call.output}" if call.output is not None else ""
            lines.append(f"    tool {call.name}({call.arguments}) {call.status}{result}")
        if r.usage is not None:
            for model in r.usage.models:
                lines.append(f"    usage: {model.kind} {model.provider}/{model.model}")
        for error in r.errors:
            lines.append(f"    agent error: {error}")
    if state.problems:
        lines.append(f"  problems ({len(state.problems)}):")
        for problem in state.problems:
            lines.append(f"    ({problem.source}) {problem.message}")
    else:
        lines.append("  problems: none")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# token


def _cmd_token(args: argparse.Namespace) -> int:
    if not args.api_key or not args.api_secret:
        raise TokenSourceError(
            "Minting a token needs an API key and an API secret.",
            remedy="Pass --api-key and --api-secret (or set LIVEKIT_API_KEY and LIVEKIT_API_SECRET); "
            "for `livekit-server --dev` they are devkey and secret.",
        )
    if not args.ttl > 0:
        raise LkstateError("The token lifetime must be above zero.", remedy="Pass --ttl in seconds, e.g. --ttl 3600.")
    if args.agent_deployment is not None and args.agent_name is None:
        raise LkstateError("--agent-deployment names a deployment of an agent, but no agent is named.",
                           remedy="Pass --agent-name too ('' for the unnamed agent).")
    source = DevelopmentTokenSource(args.url, args.api_key, args.api_secret, ttl=args.ttl)
    credentials = source.mint(
        TokenRequest(room_name=args.room, participant_identity=args.identity, participant_name=args.name,
                     agent_name=args.agent_name, agent_deployment=args.agent_deployment)
    )
    claims = credentials.claims
    if args.json:
        import json

        print(json.dumps({"server_url": credentials.server_url, "participant_token": credentials.participant_token}))
    else:
        print(credentials.participant_token)
    expires = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(claims.expires_at)) if claims.expires_at else "never"
    agents = f", dispatches {', '.join(claims.dispatched_agents)}" if claims.dispatched_agents else ""
    print(f"lkstate token: room {claims.room!r}, identity {claims.identity!r}, valid until {expires}{agents}",
          file=sys.stderr)
    return 0
