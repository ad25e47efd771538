"""Shared fixtures: a real livekit-server, real agents, raw peers.

See tests/harness/README.md for how to use them. In short::

    async def test_agent_answers_chat(livekit_server, room_name, agent_factory, peer_factory):
        agent = await agent_factory(room_name)
        user = await peer_factory(room_name, "user")
        await user.send_text("hello", topic="lk.chat")
        reply = await user.wait_for_text("lk.transcription", lambda t: t.sender == agent.identity)

The server is started once per test session (on free loopback ports); every
test gets a fresh random room name, so tests never see each other's rooms.
When a test fails, the server log lines written during that test (and the
logs of any worker subprocess it started) are attached to the report.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

# Import the project and the harness from this checkout whatever the working
# directory or invocation (`pytest`, `python -m pytest`, an IDE runner).
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.harness.server import LiveKitServer, find_livekit_server  # noqa: E402
from tests.harness.sessions import SessionFactory  # noqa: E402

_SERVER_KEY = pytest.StashKey[LiveKitServer]()
_LOG_OFFSET_KEY = pytest.StashKey[int]()
_WORKER_LOGS_KEY = pytest.StashKey[list[Path]]()

_WIRE_FIXTURES = {"livekit_server", "agent_factory", "peer_factory", "worker_factory", "user_token"}
_AGENT_FIXTURES = {"agent_factory", "worker_factory"}


# --------------------------------------------------------------------------- options & markers


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="also run the long-running reliability variants (marked soak)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_soak = config.getoption("--soak")
    skip_soak = pytest.mark.skip(reason="soak test: run with --soak")
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & _WIRE_FIXTURES:
            item.add_marker(pytest.mark.wire)
        if names & _AGENT_FIXTURES:
            item.add_marker(pytest.mark.agent)
        if "soak" in item.keywords and not run_soak:
            item.add_marker(skip_soak)


# --------------------------------------------------------------------------- server


@pytest.fixture(scope="session")
def livekit_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitServer]:
    """One real livekit-server for the whole test session, on free loopback ports.

    The binary comes from $LIVEKIT_SERVER_BIN, PATH or .tools/bin. A missing
    binary fails the tests — unless LKSTATE_ALLOW_SKIP=1, which skips them.
    """
    binary = find_livekit_server()
    if binary is None:
        message = (
            "livekit-server not found (looked at $LIVEKIT_SERVER_BIN, PATH and .tools/bin). "
            "Run scripts/install-livekit-server, or set LKSTATE_ALLOW_SKIP=1 to skip wire tests."
        )
        if os.environ.get("LKSTATE_ALLOW_SKIP") == "1":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    server = LiveKitServer(binary, workdir=tmp_path_factory.mktemp("livekit-server"))
    server.start()
    request.config.stash[_SERVER_KEY] = server
    try:
        yield server
    finally:
        server.stop()
        del request.config.stash[_SERVER_KEY]


@pytest.fixture
def room_name(request: pytest.FixtureRequest) -> str:
    """A fresh room name for this test: readable prefix, random suffix."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:40].strip("-")
    return f"{stem}-{uuid.uuid4().hex[:8]}"


class TokenFactory(Protocol):
    def __call__(self, room: str, identity: str, **kwargs: Any) -> str: ...


@pytest.fixture
def user_token(livekit_server: LiveKitServer) -> TokenFactory:
    """``user_token(room, identity, **kwargs)`` -> a join JWT (see LiveKitServer.token)."""

    def make(room: str, identity: str, **kwargs: Any) -> str:
        return livekit_server.token(room, identity, **kwargs)

    return make


@pytest.fixture
async def make_session(livekit_server: LiveKitServer, room_name: str) -> AsyncIterator[SessionFactory]:
    """``make_session(**session_kwargs) -> Session``: lkstate's own session, in this test's room.

    Each gets development tokens of its own for the test server (``room_name``
    can be overridden like any :class:`~lkstate.Session` argument); every
    session made is ended at teardown.
    """
    from lkstate import DevelopmentTokenSource, Session

    sessions: list[Session] = []

    def factory(**kwargs: Any) -> Session:
        kwargs.setdefault("room_name", room_name)
        tokens = DevelopmentTokenSource(livekit_server.url, livekit_server.api_key, livekit_server.api_secret)
        session = Session(tokens, **kwargs)
        sessions.append(session)
        return session

    yield factory
    for session in sessions:
        await session.end()


# --------------------------------------------------------------------------- agents & peers


@pytest.fixture
async def agent_factory(livekit_server: LiveKitServer) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """``await agent_factory(room_name, **kwargs)`` -> InProcessAgent (see harness.agent.start_agent).

    Every agent started is closed at teardown.
    """
    from tests.harness.agent import InProcessAgent, start_agent

    started: list[InProcessAgent] = []

    async def factory(room: str, **kwargs: Any) -> InProcessAgent:
        agent = await start_agent(livekit_server, room, **kwargs)
        started.append(agent)
        return agent

    yield factory
    for agent in reversed(started):
        await agent.aclose()


@pytest.fixture
async def peer_factory(livekit_server: LiveKitServer) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """``await peer_factory(room_name, identity=None, **kwargs)`` -> Peer (see harness.peer.Peer.join).

    Every peer is disconnected at teardown.
    """
    from tests.harness.peer import Peer

    joined: list[Peer] = []

    async def factory(room: str, identity: str | None = None, **kwargs: Any) -> Peer:
        peer = await Peer.join(livekit_server, room, identity, **kwargs)
        joined.append(peer)
        return peer

    yield factory
    for peer in reversed(joined):
        await peer.disconnect()


@pytest.fixture
async def worker_factory(
    request: pytest.FixtureRequest, livekit_server: LiveKitServer, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """``await worker_factory(agent_name=None, **kwargs)`` -> WorkerProcess, registered.

    Runs ``python -m lkstate.demo_agent`` against the test server; stopped at
    teardown. Its log is attached to the report when the test fails.
    """
    from tests.harness.agent import WorkerProcess, start_worker

    workers: list[WorkerProcess] = []
    logs = request.node.stash.setdefault(_WORKER_LOGS_KEY, [])

    async def factory(**kwargs: Any) -> WorkerProcess:
        kwargs.setdefault("log_dir", tmp_path)
        worker = await start_worker(livekit_server, **kwargs)
        workers.append(worker)
        logs.append(worker.log_path)
        return worker

    yield factory
    for worker in reversed(workers):
        await worker.stop()


# --------------------------------------------------------------------------- failure reports


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    server = item.config.stash.get(_SERVER_KEY, None)
    item.stash[_LOG_OFFSET_KEY] = server.log_size() if server is not None else 0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed:
        return
    server = item.config.stash.get(_SERVER_KEY, None)
    if server is not None:
        offset = item.stash.get(_LOG_OFFSET_KEY, 0)
        text = server.log_since(offset, max_lines=80, max_line_chars=400) or "(nothing logged during this test)"
        report.sections.append((f"livekit-server log ({server.log_path})", text))
    for path in item.stash.get(_WORKER_LOGS_KEY, []):
        try:
            lines = path.read_text(errors="replace").splitlines()[-60:]
        except FileNotFoundError:
            continue
        report.sections.append((f"agent worker log ({path})", "\n".join(lines)))
