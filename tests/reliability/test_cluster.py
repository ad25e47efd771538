"""Distributed deployment: two livekit-server nodes sharing a Redis, the user on one, the agent on the other.

A LiveKit deployment of more than one node routes through Redis: a room lives
on one node, and a participant who connects to another node has its signal
relayed there (its media goes straight to the room's node). lkstate must not
notice. The test starts its own ``redis-server`` (Debian's, no persistence,
on a free loopback port) and two nodes configured by
:class:`lkstate._tooling.devserver.DevServer` — the same keys, the same Redis,
distinct ports, node IP 127.0.0.1 — then:

- the demo agent's worker registers with node B and is dispatched by the
  user's token, which node A receives (room creation, dispatch and the job
  all cross nodes);
- the user's :class:`Session` connects to node A and holds a scripted
  conversation (greeting, a typed question answered through a tool);
- the same conversation runs against one standalone node;

and the two runs must show the same snapshots: the same sequence of agent
statuses and the same final messages (and the same items reported by the
agent's session host). Which node hosted the room is read from the nodes'
logs and printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import attrs
import pytest

from lkstate import AgentStatus, DevelopmentTokenSource, Role, Session, SessionState
from lkstate._core.remote_state import MessageItem
from lkstate.demo_agent import weather_report
from tests.harness.agent import WorkerProcess, start_worker
from tests.harness.server import LiveKitServer, find_livekit_server, free_port

pytestmark = [pytest.mark.wire, pytest.mark.agent]

GREETING = "Hello, I am the demo agent. Ask me about the weather."
QUESTION = "What's the weather in Paris?"


# --- redis and the two nodes ------------------------------------------------------------


def _missing(message: str) -> None:
    """Fail, as the wire tests do when a part is missing, or skip with LKSTATE_ALLOW_SKIP=1."""
    if os.environ.get("LKSTATE_ALLOW_SKIP") == "1":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


def _redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        _missing(
            "redis-server not found: the multi-node test needs it. "
            "Install it with `apt-get install redis-server` (scripts/setup does, as root)."
        )
    assert binary is not None
    return binary


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port: no persistence, gone after the module."""
    workdir = tmp_path_factory.mktemp("redis")
    port = free_port("tcp")
    log = open(workdir / "redis.log", "wb")
    process = subprocess.Popen(
        [_redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--protected-mode", "yes"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not _ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{(workdir / 'redis.log').read_text()}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@attrs.frozen
class Cluster:
    a: LiveKitServer
    b: LiveKitServer

    def node_id(self, node: LiveKitServer) -> str:
        found = re.search(r'starting LiveKit server.*?"nodeID": "([^"]+)"', node.log_tail(400))
        assert found, node.log_tail()
        return found.group(1)


@pytest.fixture(scope="module")
def cluster(redis_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if find_livekit_server() is None:
        _missing("livekit-server not found (looked at $LIVEKIT_SERVER_BIN, PATH and .tools/bin).")
    secret = secrets.token_urlsafe(36)  # one key pair for the whole deployment
    nodes = [
        LiveKitServer(api_secret=secret, redis_address=redis_address, workdir=tmp_path_factory.mktemp(f"node-{n}"))
        for n in "ab"
    ]
    try:
        for node in nodes:
            node.start()
        yield Cluster(*nodes)
    finally:
        for node in nodes:
            node.stop()


# --- the scripted conversation ---------------------------------------------------------------


@attrs.frozen
class Conversation:
    """What the user's session showed, reduced to what must not depend on the deployment."""

    statuses: tuple[str, ...]
    messages: tuple[tuple[str, str, str, bool], ...]  # (role, kind, text, final)
    agent_items: tuple[tuple[str | None, str], ...]  # (role, text) of the agent's session-host items
    problems: tuple[str, ...]
    room: str
    agent_identity: str
    user_identity: str


def _dedup(values: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        if not out or out[-1] != value:
            out.append(value)
    return tuple(out)


def comparable(statuses: tuple[str, ...]) -> tuple[str, ...]:
    """The statuses, less an ``initializing`` before the agent's first report.

    Whether the user sees the agent before its first ``lk.agent.state`` is a
    race inside any deployment (the server announces a participant in batches
    about 3 s apart), not a difference between one node and two. Everything
    after, and every other status, must match.
    """
    first_ready = next((i for i, s in enumerate(statuses) if s in ("listening", "thinking", "speaking")), len(statuses))
    kept = [s for i, s in enumerate(statuses) if not (s == "initializing" and i < first_ready)]
    return _dedup(kept)


async def converse(user_node: LiveKitServer, worker: WorkerProcess) -> Conversation:
    """Greeting, then a typed question the agent answers through its weather tool."""
    tokens = DevelopmentTokenSource(user_node.url, user_node.api_key, user_node.api_secret)
    session = Session(
        tokens,
        agent_name=worker.agent_name,
        room_name=f"cluster-{uuid.uuid4().hex[:8]}",
        audio_input=None,
        audio_output=None,
        agent_connect_timeout=45.0,
    )
    statuses: list[str] = []
    session.select(lambda s: s.agent.status.value).subscribe(statuses.append)
    answer = weather_report("Paris")

    def agent_said(text: str) -> Callable[[SessionState], bool]:
        return lambda s: any(m.role is Role.AGENT and m.final and m.text.strip() == text for m in s.messages)

    try:
        await asyncio.wait_for(session.start(), timeout=60)
        await session.wait_until(agent_said(GREETING), timeout=30)
        await session.wait_until(lambda s: s.agent.status is AgentStatus.LISTENING, timeout=30)
        await session.send_text(QUESTION)
        await session.wait_until(agent_said(answer), timeout=30)
        state = await session.wait_until(
            lambda s: s.agent.status is AgentStatus.LISTENING
            and any(isinstance(i, MessageItem) and i.role == "assistant" and i.text.strip() == answer for i in s.remote.items),
            timeout=30,
        )
        room, agent_identity = state.connection.room_name or "", state.agent.identity or ""
        user_identity = state.connection.local_identity or ""
    finally:
        await session.end()
    final = session.state
    return Conversation(
        statuses=_dedup(statuses),
        messages=tuple((m.role.value, m.kind.value, m.text.strip(), m.final) for m in final.messages),
        agent_items=tuple(
            (i.role, i.text.strip()) for i in final.remote.items if isinstance(i, MessageItem) and i.text.strip()
        ),
        problems=tuple(p.message for p in final.problems),
        room=room,
        agent_identity=agent_identity,
        user_identity=user_identity,
    )


@contextlib.asynccontextmanager
async def workers_on(*nodes: LiveKitServer, log_dir: Path) -> AsyncIterator[list[WorkerProcess]]:
    """The demo worker registered with each of ``nodes`` (started side by side), stopped on exit."""
    started = await asyncio.gather(
        *(
            start_worker(node, agent_name=f"cluster-agent-{uuid.uuid4().hex[:6]}", greeting=GREETING,
                         log_dir=log_dir / str(i))
            for i, node in enumerate(nodes)
        ),
        return_exceptions=True,
    )
    workers = [w for w in started if isinstance(w, WorkerProcess)]
    try:
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        yield workers
    finally:
        await asyncio.gather(*(w.stop() for w in workers))


def room_host(cluster: Cluster, room: str) -> str:
    """Which node the room lived on, from the nodes' logs ("a" or "b")."""
    ids = {cluster.node_id(cluster.a): "a", cluster.node_id(cluster.b): "b"}
    for node in (cluster.a, cluster.b):
        for line in node.log_tail(5000).splitlines():
            if "selected node for room" in line and f'"room": "{room}"' in line:
                found = re.search(r'"selectedNodeID": "([^"]+)"', line)
                if found:
                    return ids.get(found.group(1), found.group(1))
    raise AssertionError(f"no node logged selecting a node for room {room}")


# --- the tests ----------------------------------------------------------------------------------


def test_the_two_nodes_share_one_view_of_the_rooms(cluster: Cluster) -> None:
    async def check() -> None:
        name = f"shared-{uuid.uuid4().hex[:8]}"
        from livekit import api

        on_a, on_b = cluster.a.api(), cluster.b.api()
        try:
            await on_a.room.create_room(api.CreateRoomRequest(name=name))
            listed = await on_b.room.list_rooms(api.ListRoomsRequest(names=[name]))
            assert [r.name for r in listed.rooms] == [name], "a room created through node A is seen through node B"
            await on_b.room.delete_room(api.DeleteRoomRequest(room=name))
        finally:
            await on_a.aclose()
            await on_b.aclose()

    assert cluster.node_id(cluster.a) != cluster.node_id(cluster.b)
    asyncio.run(check())


async def test_user_on_one_node_and_agent_on_the_other_see_the_same_snapshots_as_on_one_node(
    cluster: Cluster, livekit_server: LiveKitServer, tmp_path: Path, record_property: object
) -> None:
    began = time.monotonic()
    # The two runs go side by side (each with its own worker and server), to halve the wait.
    async with workers_on(livekit_server, cluster.b, log_dir=tmp_path) as (single_worker, cluster_worker):
        single, clustered = await asyncio.gather(
            converse(livekit_server, single_worker), converse(cluster.a, cluster_worker)
        )
    host = room_host(cluster, clustered.room)
    # Both participants' RTC sessions ran on the room's node: one of them came in through the other node.
    hosting = cluster.a if host == "a" else cluster.b
    log = hosting.log_tail(5000)
    for identity in (clustered.user_identity, clustered.agent_identity):
        assert re.search(rf'starting RTC session.*"room": "{clustered.room}".*"participant": "{identity}"', log)

    figures = {
        "room_on_node": host,
        "statuses": " > ".join(clustered.statuses),
        "single_node_statuses": " > ".join(single.statuses),
        "messages": len(clustered.messages),
        "seconds": round(time.monotonic() - began, 1),
    }
    record_property("cluster", figures)  # type: ignore[operator]
    print(f"\ncluster: {figures}")

    assert single.problems == () and clustered.problems == ()
    assert comparable(clustered.statuses) == comparable(single.statuses)
    assert "speaking" in single.statuses and "thinking" in single.statuses
    assert clustered.messages == single.messages
    assert clustered.agent_items == single.agent_items
    assert single.messages == (
        ("agent", "transcript", GREETING, True),
        ("user", "chat", QUESTION, True),
        ("agent", "transcript", weather_report("Paris"), True),
    )
