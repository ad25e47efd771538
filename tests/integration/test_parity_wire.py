"""Parity with LiveKit's own client SDKs, over a real livekit-server and a real AgentSession.

- Messages keep their stream attributes (components-js #1416) and the agent's
  ``lk.expression`` (livekit-agents 1.8) shows on the message and the agent view.
- A session can ask for a deployment of its agent (``RoomAgentDispatch.deployment``,
  Swift #1043).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from typing import Any

from lkstate import DevelopmentTokenSource, Role, Session
from lkstate.agent_session import AgentExpression
from lkstate.errors import AgentUnavailableError
from lkstate.demo_agent import ScriptedLLM
from tests.harness.server import LiveKitServer
from tests.harness.sessions import SessionFactory, agent_sees_user


def agent_reply(session: Session, containing: str) -> Any:
    return lambda s: any(m.role is Role.AGENT and m.final and containing in m.text for m in s.messages)


# -- message attributes and expression -------------------------------------------------


async def test_the_agents_expression_reaches_its_message_and_the_agent_view(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    # The model writes expressive markup for its TTS; the framework strips it
    # from the transcript and sends the expression as lk.expression.
    llm = ScriptedLLM(['<expression value="warm surprise"/> Oh, hello there!'], token_delay=0.01)
    agent = await agent_factory(room_name, llm=llm)
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    await agent_sees_user(agent, session)
    await session.send_text("hi")
    state = await session.wait_until(agent_reply(session, "hello there"), timeout=15)
    reply = next(m for m in state.messages if m.role is Role.AGENT)
    assert reply.text.strip() == "Oh, hello there!", "the markup is not in the transcript"
    assert reply.expression == AgentExpression(label="warm surprise", mood="surprised")
    attributes = dict(reply.attributes)
    assert json.loads(attributes["lk.expression"]) == {"expression": "warm surprise", "mood": "surprised"}
    assert attributes["lk.transcription_final"] == "true" and attributes["lk.segment_id"] == reply.segment_id
    assert state.agent.expression == reply.expression


async def test_a_reply_without_markup_has_no_expression(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name, llm=ScriptedLLM(["Just words."], token_delay=0.01))
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    await agent_sees_user(agent, session)
    await session.send_text("hi")
    state = await session.wait_until(agent_reply(session, "Just words"), timeout=15)
    reply = next(m for m in state.messages if m.role is Role.AGENT)
    assert reply.expression is None and state.agent.expression is None
    assert "lk.segment_id" in dict(reply.attributes)


async def test_chat_keeps_the_attributes_its_sender_put_on_the_stream(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    await peer_factory(room_name, "agent-scripted", kind="agent", attributes={"lk.agent.state": "listening"})
    bob = await peer_factory(room_name, "bob")
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    await bob.stream_text(["see the map"], topic="lk.chat", attributes={"app.kind": "link", "app.ref": "42"},
                          close_attributes={"app.done": "yes"})
    state = await session.wait_until(lambda s: len(s.messages) == 1, timeout=10)
    (message,) = state.messages
    assert message.role is Role.PARTICIPANT and message.text == "see the map"
    assert dict(message.attributes) == {"app.kind": "link", "app.ref": "42", "app.done": "yes"}
    assert message.expression is None


# -- dispatching a deployment -------------------------------------------------------------


async def dispatched(server: LiveKitServer, room: str) -> list[tuple[str, str]]:
    """The server's own record of the agents dispatched to ``room``: (name, deployment)."""
    client = server.api()
    try:
        return [(d.agent_name, d.deployment) for d in await client.agent_dispatch.list_dispatch(room)]
    finally:
        await client.aclose()


def deployment_session(server: LiveKitServer, room: str, agent_name: str, deployment: str, timeout: float) -> Session:
    tokens = DevelopmentTokenSource(server.url, server.api_key, server.api_secret)
    return Session(tokens, room_name=room, agent_name=agent_name, agent_deployment=deployment,
                   agent_connect_timeout=timeout, audio_input=None, audio_output=None, video_input=None)


async def test_a_session_can_ask_for_a_deployment_of_its_agent(
    livekit_server: LiveKitServer, worker_factory: Any, room_name: str
) -> None:
    # A worker announces its deployment with LIVEKIT_AGENT_DEPLOYMENT; the
    # session's token asks for it in the room's agent dispatch.
    worker = await worker_factory(extra_env={"LIVEKIT_AGENT_DEPLOYMENT": "blue"})
    session = deployment_session(livekit_server, room_name, worker.agent_name, "blue", 20.0)
    try:
        state = await asyncio.wait_for(session.start(), timeout=30)
        assert state.agent.is_ready
        assert await dispatched(livekit_server, room_name) == [(worker.agent_name, "blue")]
    finally:
        await session.end()


async def test_another_deployment_of_the_agent_is_not_dispatched(
    livekit_server: LiveKitServer, worker_factory: Any, room_name: str
) -> None:
    # The deployment is not decoration: livekit-server 1.13 gives the job only
    # to a worker of the deployment asked for. (A worker of a deployment takes no
    # job that names none either, so without the field it could never be reached.)
    worker = await worker_factory(extra_env={"LIVEKIT_AGENT_DEPLOYMENT": "blue"})
    session = deployment_session(livekit_server, room_name, worker.agent_name, "green", 6.0)
    try:
        with pytest.raises(AgentUnavailableError):
            await asyncio.wait_for(session.start(), timeout=30)
        assert await dispatched(livekit_server, room_name) == [(worker.agent_name, "green")]
        assert "received job request" not in worker.log_tail(10_000)
    finally:
        await session.end()
