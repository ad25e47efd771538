"""Parity with LiveKit's own client SDKs, over a real livekit-server and a real AgentSession.

- Messages keep their stream attributes (components-js #1416) and the agent's
  ``lk.expression`` (livekit-agents 1.8) shows on the message and the agent view.
- A session can ask for a deployment of its agent (``RoomAgentDispatch.deployment``,
  Swift #1043).
- RPC both ways (components-js ``useRpc``): a real AgentSession function tool asks
  the app and says the answer; strangers are refused; failures and timeouts are
  in the state in words.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from typing import Any

from livekit import rtc

from lkstate import DevelopmentTokenSource, Role, Session, SessionState
from lkstate.agent_session import AgentExpression, RpcCall, RpcDirection, RpcInvocation, RpcStatus
from lkstate.errors import AgentUnavailableError, RpcCallError
from lkstate.demo_agent import ScriptedLLM
from tests.harness.agent import WHERE_AM_I_RULE, RpcAgent
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


# -- RPC both ways ------------------------------------------------------------------------


async def rpc_room(make_session: SessionFactory, room_name: str, agent_factory: Any, **agent_kwargs: Any) -> tuple[Session, Any]:
    """A started session with an :class:`RpcAgent` whose LLM calls its tool when asked "where am I?"."""
    llm = ScriptedLLM(tool_rules=(WHERE_AM_I_RULE,), token_delay=0.01)
    agent = await agent_factory(room_name, llm=llm, agent=RpcAgent(**agent_kwargs))
    session = make_session()
    return session, agent


def incoming(state: SessionState) -> list[RpcCall]:
    return [c for c in state.rpc.calls if c.direction is RpcDirection.INCOMING]


async def test_an_agent_tool_asks_the_app_through_rpc_and_says_the_answer(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    session, agent = await rpc_room(make_session, room_name, agent_factory)
    asked: list[RpcInvocation] = []

    async def get_location(invocation: RpcInvocation) -> str:
        asked.append(invocation)
        return "Lisbon"

    session.register_rpc_method("get_location", get_location, keep_payloads=True)  # before start: kept for the room
    assert session.state.rpc.methods == ("get_location",)
    await asyncio.wait_for(session.start(), timeout=15)
    await agent_sees_user(agent, session)
    await session.send_text("Where am I?")
    state = await session.wait_until(agent_reply(session, "Lisbon"), timeout=15)
    assert [m.text for m in state.messages if m.role is Role.AGENT][-1] == "You are in Lisbon."
    assert agent.agent.rpc_answers == ["Lisbon"]
    (invocation,) = asked
    assert (invocation.caller, invocation.payload) == (agent.identity, '{"precision": "city"}')
    (call,) = incoming(state)
    assert (call.method, call.caller, call.callee) == ("get_location", agent.identity, state.connection.local_identity)
    assert call.status is RpcStatus.SUCCEEDED and call.error is None
    assert (call.request, call.response) == ('{"precision": "city"}', "Lisbon")
    assert call.duration is not None and 0 <= call.duration < 5


async def test_payloads_are_not_kept_unless_asked(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    session, agent = await rpc_room(make_session, room_name, agent_factory)
    session.register_rpc_method("get_location", lambda invocation: "Porto")  # a plain function works too
    await asyncio.wait_for(session.start(), timeout=15)
    await agent_sees_user(agent, session)
    await session.send_text("Where am I?")
    state = await session.wait_until(agent_reply(session, "Porto"), timeout=15)
    (call,) = incoming(state)
    assert call.status is RpcStatus.SUCCEEDED and (call.request, call.response) == (None, None)


async def test_a_handler_that_raises_is_an_error_in_words_and_the_agent_hears_it_failed(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    session, agent = await rpc_room(make_session, room_name, agent_factory)

    def get_location(invocation: RpcInvocation) -> str:
        raise ValueError("location services are off")

    session.register_rpc_method("get_location", get_location)
    await asyncio.wait_for(session.start(), timeout=15)
    await agent_sees_user(agent, session)
    await session.send_text("Where am I?")
    state = await session.wait_until(agent_reply(session, "could not tell"), timeout=15)
    assert agent.agent.rpc_answers == ["error 1500"]
    (call,) = incoming(state)
    assert call.status is RpcStatus.FAILED and call.error_code == 1500
    assert call.error == "The handler of 'get_location' raised ValueError: location services are off."


async def test_a_handler_that_does_not_answer_in_time_times_out(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    session, agent = await rpc_room(make_session, room_name, agent_factory, rpc_timeout=2.0)
    released = asyncio.Event()
    given: list[float] = []

    async def get_location(invocation: RpcInvocation) -> str:
        given.append(invocation.response_timeout)
        await released.wait()  # never: the agent waits 2 s at most
        return "too late"

    session.register_rpc_method("get_location", get_location)
    await asyncio.wait_for(session.start(), timeout=15)
    await agent_sees_user(agent, session)
    await session.send_text("Where am I?")
    state = await session.wait_until(lambda s: any(c.is_finished for c in incoming(s)), timeout=15)
    (call,) = incoming(state)
    # The SDK gives the handler the caller's timeout less the allowance for
    # the round trip (at least a second): that is the deadline it was held to.
    (deadline,) = given
    assert 0 < deadline <= 2.0
    assert call.status is RpcStatus.TIMED_OUT and call.error_code == 1502
    assert call.error == (f"The handler of 'get_location' did not answer {agent.identity!r} within {deadline:g} s; "
                          "the caller was told it timed out.")
    assert call.duration is not None and call.duration >= deadline - 0.1
    await session.wait_until(agent_reply(session, "could not tell"), timeout=15)
    assert agent.agent.rpc_answers == ["error 1502"]


async def test_a_participant_that_is_not_the_agent_is_refused(
    make_session: SessionFactory, room_name: str, agent_factory: Any, peer_factory: Any
) -> None:
    session, agent = await rpc_room(make_session, room_name, agent_factory)
    ran: list[str] = []
    session.register_rpc_method("get_location", lambda invocation: ran.append(invocation.caller) or "Lisbon")
    await asyncio.wait_for(session.start(), timeout=15)
    user = session.state.connection.local_identity
    assert user is not None
    mallory = await peer_factory(room_name, "mallory")
    with pytest.raises(rtc.RpcError) as refused:
        await mallory.local.perform_rpc(destination_identity=user, method="get_location", payload="")
    assert refused.value.code == 1400, "a stranger learns nothing about which methods exist"
    state = await session.wait_until(lambda s: any(c.is_finished for c in s.rpc.calls), timeout=10)
    (call,) = state.rpc.calls
    assert call.status is RpcStatus.REFUSED and call.caller == "mallory" and ran == []
    words = "Refused a call of 'get_location' from 'mallory': only the agent may call it."
    assert call.error == words and state.problems[-1].message == words and state.problems[-1].source == "rpc"


async def test_an_allow_list_lets_exactly_those_callers_in(
    make_session: SessionFactory, room_name: str, agent_factory: Any, peer_factory: Any
) -> None:
    session, agent = await rpc_room(make_session, room_name, agent_factory)
    session.register_rpc_method("get_location", lambda invocation: "Faro", allowed_callers=["dashboard"])
    await asyncio.wait_for(session.start(), timeout=15)
    await agent_sees_user(agent, session)
    user = session.state.connection.local_identity
    assert user is not None
    dashboard = await peer_factory(room_name, "dashboard")
    assert await dashboard.local.perform_rpc(destination_identity=user, method="get_location", payload="") == "Faro"
    await session.send_text("Where am I?")  # the agent is not on this list
    state = await session.wait_until(agent_reply(session, "could not tell"), timeout=15)
    assert [(c.caller, c.status) for c in incoming(state)] == [
        ("dashboard", RpcStatus.SUCCEEDED), (agent.identity, RpcStatus.REFUSED)
    ]


async def test_the_app_calls_a_method_the_agent_registered(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    session, agent = await rpc_room(make_session, room_name, agent_factory)
    await asyncio.wait_for(session.start(), timeout=15)
    answer = await session.perform_rpc("agent.state", "{}", timeout=5, keep_payloads=True)
    assert answer == "listening"
    (call,) = session.state.rpc.calls
    assert call.direction is RpcDirection.OUTGOING and call.status is RpcStatus.SUCCEEDED
    assert (call.caller, call.callee, call.response) == (session.state.connection.local_identity, agent.identity,
                                                         "listening")
    with pytest.raises(RpcCallError) as unknown:
        await session.perform_rpc("agent.nope", timeout=5)
    assert unknown.value.code == 1400
    failed = session.state.rpc.calls[-1]
    assert failed.status is RpcStatus.FAILED
    assert failed.error == f"{agent.identity!r} has no RPC method 'agent.nope' (or does not let this app call it)."
    assert str(unknown.value).startswith(failed.error)


async def test_methods_registered_while_connected_answer_at_once_and_unregistered_ones_stop(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    helper = await peer_factory(room_name, "agent-helper", kind="agent", attributes={"lk.agent.state": "listening"})
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    user = session.state.connection.local_identity
    assert user is not None
    session.register_rpc_method("ui.confirm", lambda invocation: "yes")
    assert await helper.local.perform_rpc(destination_identity=user, method="ui.confirm", payload="") == "yes"
    session.unregister_rpc_method("ui.confirm")
    assert session.state.rpc.methods == ()
    with pytest.raises(rtc.RpcError) as gone:
        await helper.local.perform_rpc(destination_identity=user, method="ui.confirm", payload="")
    assert gone.value.code == 1400
    assert [c.status for c in session.state.rpc.calls] == [RpcStatus.SUCCEEDED]
