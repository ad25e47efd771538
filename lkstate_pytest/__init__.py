"""lkstate's pytest plugin: fixtures to test a LiveKit agent as its users meet it.

Installed with lkstate and loaded by pytest through the ``pytest11`` entry
point named ``lkstate`` (turn it off with ``-p no:lkstate``). It is a
top-level module, not part of the ``lkstate`` package, on purpose: pytest
imports every installed plugin at start-up, in every project, and importing
anything under ``lkstate`` imports ``lkstate`` itself, which loads
``livekit.rtc``. This module imports only pytest and the standard library;
the fixtures import :mod:`lkstate.testing` when a test first uses one.

Fixtures (async ones need pytest-asyncio; see docs/testing.md):

``livekit_server`` (session)
    A real livekit-server on free loopback ports: the version lkstate pins,
    found (``$LIVEKIT_SERVER_BIN``, PATH, ``~/.cache/lkstate/bin``) or built
    with Go as ``lkstate demo`` does. No Go and no server fails the test with
    what to install (``LKSTATE_ALLOW_SKIP=1`` skips instead).
``room_name``
    A fresh room name for the test.
``user_token``
    ``user_token(room, identity, **kwargs) -> str``, a join token.
``agent_entrypoint``
    Your agent: the ``lkstate_agent`` ini option (``my_agent:entrypoint``,
    ``path/to/agent.py``, ``my_agent:server``…), or ``None`` for lkstate's
    offline demo agent. Override the fixture to choose per module.
``agent_worker`` (session)
    That agent as a worker subprocess registered under a fresh agent name.
``worker_factory``
    ``await worker_factory(entrypoint=None, *, agent_name=None, greeting="", …)``:
    more workers, stopped at teardown.
``make_session``
    ``make_session(audio=None, **session_kwargs) -> Session``: unstarted, in
    the test's room, no devices, recorded; ended at teardown.
``agent_session``
    ``await agent_session(audio=None, **session_kwargs) -> Session``: started,
    with ``agent_worker``'s agent dispatched into the room and ready.

When a test fails, its report gets the server log lines written during the
test and the end of every worker log it used.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from lkstate import Session
    from lkstate.testing import LiveKitServer, SessionMaker, WorkerProcess

try:
    import pytest_asyncio

    _async_fixture: Any = pytest_asyncio.fixture
    _HAVE_ASYNCIO = True
except ImportError:  # pragma: no cover - depends on the environment
    _async_fixture = pytest.fixture
    _HAVE_ASYNCIO = False

__all__ = [
    "livekit_server",
    "room_name",
    "user_token",
    "agent_entrypoint",
    "agent_worker",
    "worker_factory",
    "make_session",
    "agent_session",
]

_SERVER_KEY = pytest.StashKey["LiveKitServer"]()
_LOG_OFFSET_KEY = pytest.StashKey[int]()
_WORKER_LOGS_KEY = pytest.StashKey[list[Path]]()


def _need_asyncio() -> None:
    if not _HAVE_ASYNCIO:
        pytest.fail(
            "lkstate's session and worker fixtures are async and need pytest-asyncio: "
            "pip install pytest-asyncio (and set asyncio_mode = auto, or mark tests with @pytest.mark.asyncio).",
            pytrace=False,
        )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "lkstate_agent",
        "the agent the lkstate fixtures start: module:function, path/to/agent.py[:name] or module:server "
        "(empty: lkstate's offline demo agent)",
        default="",
    )


# --------------------------------------------------------------------------- server


@pytest.fixture(scope="session")
def livekit_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitServer]:
    """A real livekit-server for the whole test session, on free loopback ports."""
    from lkstate.testing import LiveKitServer, LiveKitServerError, ensure_livekit_server

    def progress(line: str) -> None:
        print(f"lkstate: {line}", file=sys.stderr, flush=True)

    try:
        binary = ensure_livekit_server(progress=progress)
    except LiveKitServerError as error:
        remedy = getattr(error, "remedy", None)
        message = f"{error}{(' ' + remedy) if remedy else ''} (LKSTATE_ALLOW_SKIP=1 skips these tests instead.)"
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


@pytest.fixture
def user_token(livekit_server: LiveKitServer) -> Any:
    """``user_token(room, identity, **kwargs)`` -> a join JWT (see ``LiveKitServer.token``)."""

    def make(room: str, identity: str, **kwargs: Any) -> str:
        return livekit_server.token(room, identity, **kwargs)

    return make


# --------------------------------------------------------------------------- agents


@pytest.fixture(scope="session")
def agent_entrypoint(pytestconfig: pytest.Config) -> str | None:
    """The agent under test: the ``lkstate_agent`` ini option, or ``None`` for the demo agent."""
    value = str(pytestconfig.getini("lkstate_agent") or "").strip()
    return value or None


@pytest.fixture(scope="session")
def agent_worker(
    livekit_server: LiveKitServer, agent_entrypoint: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """The agent under test as a worker registered with ``livekit_server``, for the whole session.

    The demo agent says nothing on joining, so tests start from a quiet,
    listening agent.
    """
    from lkstate.testing import start_worker

    entrypoint, env = agent_entrypoint, {}
    if entrypoint is None:  # the demo agent, quiet on joining, through the kit's worker (which reports no load)
        entrypoint, env = "lkstate.demo_agent:create_server", {"LKSTATE_DEMO_GREETING": ""}
    worker = asyncio.run(
        start_worker(livekit_server, entrypoint, extra_env=env, log_dir=tmp_path_factory.mktemp("agent"))
    )
    try:
        yield worker
    finally:
        asyncio.run(worker.stop())


@_async_fixture
async def worker_factory(
    request: pytest.FixtureRequest, livekit_server: LiveKitServer, tmp_path: Path
) -> AsyncIterator[Any]:
    """``await worker_factory(entrypoint=None, *, agent_name=None, greeting="", **kwargs)`` -> WorkerProcess.

    Registered with the server when returned; stopped at teardown. Its log is
    attached to the report when the test fails.
    """
    _need_asyncio()
    from lkstate.testing import start_worker

    workers: list[WorkerProcess] = []
    logs = request.node.stash.setdefault(_WORKER_LOGS_KEY, [])

    async def factory(entrypoint: object = None, **kwargs: Any) -> WorkerProcess:
        kwargs.setdefault("log_dir", tmp_path)
        worker = await start_worker(livekit_server, entrypoint, **kwargs)
        workers.append(worker)
        logs.append(worker.log_path)
        return worker

    yield factory
    for worker in reversed(workers):
        await worker.stop()


# --------------------------------------------------------------------------- sessions


@_async_fixture
async def make_session(livekit_server: LiveKitServer, room_name: str, tmp_path: Path) -> AsyncIterator[SessionMaker]:
    """``make_session(audio=None, **session_kwargs) -> Session``: unstarted, in this test's room.

    No microphone, speaker or camera unless asked (``audio=`` a WAV path or
    an ``AudioInput``); recorded under ``tmp_path/recordings``; every session
    made is ended at teardown.
    """
    _need_asyncio()
    from lkstate.testing import SessionMaker

    maker = SessionMaker(livekit_server, room_name=room_name, recordings=tmp_path / "recordings")
    try:
        yield maker
    finally:
        await maker.aclose()


@_async_fixture
async def agent_session(
    request: pytest.FixtureRequest,
    livekit_server: LiveKitServer,
    agent_worker: WorkerProcess,
    room_name: str,
    tmp_path: Path,
) -> AsyncIterator[Any]:
    """``await agent_session(audio=None, **session_kwargs) -> Session``: started, the agent ready.

    The session's token dispatches ``agent_worker``'s agent into this test's
    room; ``start()`` returns once the agent is ready to listen.
    """
    _need_asyncio()
    from lkstate.testing import SessionMaker

    request.node.stash.setdefault(_WORKER_LOGS_KEY, []).append(agent_worker.log_path)
    maker = SessionMaker(
        livekit_server, room_name=room_name, agent_name=agent_worker.agent_name, recordings=tmp_path / "recordings"
    )

    async def start(**kwargs: Any) -> Session:
        return await maker.start(**kwargs)

    try:
        yield start
    finally:
        await maker.aclose()


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
    if server is not None and _LOG_OFFSET_KEY in item.stash:
        offset = item.stash[_LOG_OFFSET_KEY]
        text = server.log_since(offset, max_lines=80, max_line_chars=400) or "(nothing logged during this test)"
        report.sections.append((f"livekit-server log ({server.log_path})", text))
    for path in dict.fromkeys(item.stash.get(_WORKER_LOGS_KEY, [])):
        try:
            lines = path.read_text(errors="replace").splitlines()[-60:]
        except FileNotFoundError:
            continue
        report.sections.append((f"agent worker log ({path})", "\n".join(lines)))
