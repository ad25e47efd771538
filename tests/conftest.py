"""Shared fixtures: a real livekit-server, real agents, raw peers.

The server, the worker, the sessions and the failure reports come from
lkstate's own published test kit (the ``lkstate_pytest`` plugin:
``livekit_server``, ``room_name``, ``user_token``, ``worker_factory``,
``make_session``, ``agent_worker``, ``agent_session``), so the project tests
itself with what its users get. What stays here is for the project's own
hostile tests: an agent in this process and raw peers.
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
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

# Import the project and the harness from this checkout whatever the working
# directory or invocation (`pytest`, `python -m pytest`, an IDE runner).
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.harness.server import LiveKitServer  # noqa: E402
from tests.harness import package as _package  # noqa: E402
from tests.harness.package import distributions, installed_lkstate  # noqa: E402, F401 - one build and install per run


def _kit_plugin_autoloaded() -> bool:
    """The ``lkstate`` pytest11 entry point is installed and pytest loads plugins by itself."""
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    from importlib.metadata import entry_points

    return any(ep.value == "lkstate_pytest" for ep in entry_points(group="pytest11"))


# An editable install made before the entry point existed does not announce it: load it by name.
pytest_plugins = [] if _kit_plugin_autoloaded() else ["lkstate_pytest"]

_WIRE_FIXTURES = {
    "livekit_server", "agent_factory", "peer_factory", "worker_factory", "user_token",
    "make_session", "agent_worker", "agent_session",
}
_AGENT_FIXTURES = {"agent_factory", "worker_factory", "agent_worker", "agent_session"}


# --------------------------------------------------------------------------- options & markers


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="also run the long-running reliability variants (marked soak)",
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    # The package build and clean install mostly wait on pip: begun now, they overlap the tests before theirs.
    _package.prepare_early(session.config, session.items)


def pytest_sessionfinish(session: pytest.Session) -> None:
    _package.finish(session.config)


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


# --------------------------------------------------------------------------- in-process agents & raw peers


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
