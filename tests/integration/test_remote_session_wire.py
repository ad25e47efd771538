"""The remote-session protocol over a real livekit-server, against a real AgentSession.

The agent is the demo agent (``lkstate.demo_agent``): a genuine LiveKit Agents
``AgentSession`` with its session host on — the framework's default for the
primary session of a room (``AgentSession.start(session_host=...)`` defaults
to true; nothing in the harness sets it) — and scripted models, so a turn that
mentions the weather in a city calls the ``get_weather`` tool. The user is a
real :class:`lkstate.Session`. Everything between them is the wire.

Unless a test is about arrival order, the agent joins first: its startup
events then went out before the user was in the room, and the snapshot starts
from the first turn.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from livekit.protocol.agent_pb import agent_session as pb

import lkstate._session.session
from lkstate import Role, Session, SessionState
from lkstate.errors import RemoteSessionError, RequestTimeoutError
from lkstate._core.crosscheck import check_agent_state
from lkstate._core.remote_state import (
    FunctionCallItem,
    FunctionCallOutputItem,
    LLMUsage,
    MessageItem,
    TTSUsage,
)
from lkstate._core.timeline import timeline
from lkstate.demo_agent import DEFAULT_INSTRUCTIONS, weather_report
from tests.harness.sessions import SessionFactory, agent_sees_user

agents = pytest.importorskip("livekit.agents")

QUESTION = "What is the weather in Paris?"
ANSWER = weather_report("Paris")


async def started(make_session: SessionFactory, agent: Any) -> Session:
    """A session connected to ``agent``, which has seen the user join (it ignores chat before)."""
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    await agent_sees_user(agent, session)
    return session


def assistant_said(text: str) -> Callable[[SessionState], bool]:
    return lambda s: any(
        isinstance(i, MessageItem) and i.role == "assistant" and i.text == text for i in s.remote.items
    )


def session_problems(state: SessionState) -> list[str]:
    return [p.message for p in state.problems if p.source == "lk.agent.session"]


async def weather_turn(session: Session) -> SessionState:
    """Ask about the weather; wait until the agent answered, spoke, and reported usage."""
    await session.send_text(QUESTION)
    return await session.wait_until(
        lambda s: assistant_said(ANSWER)(s)
        and s.remote.agent_state == "listening"
        and s.remote.usage is not None
        and any(m.role is Role.AGENT and m.final for m in s.messages),
        timeout=30,
    )


# --- events ----------------------------------------------------------------------------------


async def test_a_turn_with_a_tool_call_reaches_the_snapshot_as_the_agent_reported_it(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name, session_kwargs={"user_away_timeout": 1.0})
    session = await started(make_session, agent)
    agent_states: list[str | None] = []
    session.select(lambda s: s.remote.agent_state).subscribe(agent_states.append)

    state = await weather_turn(session)
    remote = state.remote

    assert {"thinking", "speaking"} <= set(agent_states) and agent_states[-1] == "listening", agent_states

    user, reply = (i for i in remote.items if isinstance(i, MessageItem))
    assert (user.role, user.text) == ("user", QUESTION)
    assert (reply.role, reply.text, reply.interrupted) == ("assistant", ANSWER, False)
    assert reply.metrics.llm_node_ttft is not None and reply.metrics.llm_node_ttft >= 0
    assert reply.metrics.tts_node_ttfb is not None and reply.metrics.tts_node_ttfb >= 0
    assert reply.metrics.started_speaking_at is not None
    assert reply.metrics.stopped_speaking_at is not None
    assert reply.metrics.started_speaking_at <= reply.metrics.stopped_speaking_at

    (call,) = remote.tool_calls
    assert call.call_id == "call_1" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert (call.status, call.output, call.is_error) == ("done", ANSWER, False)
    assert call.started_at is not None and call.ended_at is not None and call.started_at <= call.ended_at
    assert remote.tool_call("call_1") is call

    assert remote.usage is not None
    llm = next(m for m in remote.usage.models if isinstance(m, LLMUsage))
    tts = next(m for m in remote.usage.models if isinstance(m, TTSUsage))
    assert (llm.provider, llm.model) == ("lkstate", "scripted")
    assert llm.input_tokens > 0 and llm.output_tokens > 0
    assert tts.characters_count >= len(ANSWER) and tts.audio_duration > 0

    state = await session.wait_until(lambda s: s.remote.user_state == "away", timeout=10)
    assert state.remote.problems == () and session_problems(state) == []
    assert state.remote.message_count >= 6


async def test_usage_grows_with_every_turn(make_session: SessionFactory, room_name: str, agent_factory: Any) -> None:
    agent = await agent_factory(room_name)
    session = await started(make_session, agent)
    first = await weather_turn(session)
    assert first.remote.usage is not None
    before = next(m for m in first.remote.usage.models if isinstance(m, LLMUsage))

    await session.send_text("Thank you very much")
    state = await session.wait_until(
        lambda s: assistant_said("You said: Thank you very much")(s)
        and s.remote.usage is not None
        and next(m for m in s.remote.usage.models if isinstance(m, LLMUsage)).output_tokens > before.output_tokens,
        timeout=30,
    )
    assert state.remote.usage is not None and first.remote.usage.reported_at is not None
    assert state.remote.usage.reported_at is not None
    assert state.remote.usage.reported_at >= first.remote.usage.reported_at


async def test_the_agents_first_events_are_kept_though_they_can_beat_its_join(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    """An agent joining after the user sends its startup events at once, often before
    the user has seen it join. Those events are the agent's, and must not be refused."""
    session = make_session()
    starting = asyncio.ensure_future(session.start())
    await session.wait_until(lambda s: s.connection.is_connected, timeout=10)
    await agent_factory(room_name)
    await asyncio.wait_for(starting, timeout=15)
    state = await session.wait_until(lambda s: s.remote.agent_state == "listening", timeout=10)
    assert session_problems(state) == [] and state.remote.problems == ()


async def test_the_agents_two_reports_of_its_state_agree_once_it_is_quiet(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    session = await started(make_session, agent)
    await weather_turn(session)
    state = await session.wait_until(lambda s: check_agent_state(s).agreement == "agree", timeout=10)
    assert check_agent_state(state).attribute == state.remote.agent_state == "listening"

    await agent.leave_abruptly("disconnect")
    state = await session.wait_until(lambda s: s.agent.identity is None, timeout=15)
    assert state.remote.agent_state is None, "what a departed agent reported about itself is forgotten"
    assert check_agent_state(state).agreement == "unknown"


# --- requests --------------------------------------------------------------------------------


async def test_each_question_to_the_agent_is_answered_over_the_wire(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    session = await started(make_session, agent)
    round_trip = await session.remote.ping()
    assert 0 < round_trip < 5

    framework = await session.remote.get_framework_info()
    assert (framework.sdk, framework.sdk_version) == ("python", agents.__version__)

    await weather_turn(session)

    history = await session.remote.get_chat_history()
    conversation = [i for i in history if not (isinstance(i, MessageItem) and i.role == "system")]
    kinds = [i.kind for i in conversation if i.kind in ("message", "function_call", "function_call_output")]
    assert kinds == ["message", "function_call", "function_call_output", "message"]
    call = next(i for i in conversation if isinstance(i, FunctionCallItem))
    output = next(i for i in conversation if isinstance(i, FunctionCallOutputItem))
    assert (call.name, call.call_id, output.call_id, output.output) == ("get_weather", "call_1", "call_1", ANSWER)
    live = {i.id for i in session.state.remote.items}
    assert live <= {i.id for i in history}, "what was broadcast is what the history holds"

    info = await session.remote.get_agent_info()
    assert info.id == "demo_agent" and info.tools == ("get_weather",)
    assert info.instructions == DEFAULT_INSTRUCTIONS

    described = await session.remote.get_session_state()
    assert (described.agent_state, described.user_state) == ("listening", "listening")
    assert described.agent_id == "demo_agent"
    assert described.options["max_tool_steps"] == "3"
    assert described.started_at is not None and described.started_at < history[-1].created_at  # type: ignore[operator]

    usage = await session.remote.get_session_usage()
    assert usage.models == session.state.remote.usage.models  # type: ignore[union-attr]

    stats = await session.remote.get_rtc_stats()
    assert len(stats.publisher) + len(stats.subscriber) > 0

    assert session.remote.pending_requests == 0
    assert session_problems(session.state) == []


async def test_run_input_returns_the_items_of_the_turn_and_the_snapshot_shows_them(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    session = await started(make_session, agent)
    items = await session.remote.run_input("Hello there", timeout=30)
    replies = [i for i in items if isinstance(i, MessageItem) and i.role == "assistant"]
    assert [r.text for r in replies] == ["You said: Hello there"]

    state = await session.wait_until(assistant_said("You said: Hello there"), timeout=10)
    assert any(isinstance(i, MessageItem) and (i.role, i.text) == ("user", "Hello there") for i in state.remote.items)
    assert not any(m.role is Role.USER for m in state.messages), "the room never carried the text"


async def test_update_io_turns_the_agents_transcription_off_and_on(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    session = await started(make_session, agent)

    await session.remote.update_io(output_transcription_enabled=False)
    await session.remote.run_input("First without transcripts", timeout=30)
    state = await session.wait_until(assistant_said("You said: First without transcripts"), timeout=10)
    assert not any(m.role is Role.AGENT for m in state.messages), "no transcript while it is off"
    # The agent's start-up handoff is broadcast when its session starts: after the
    # user joined (then it is a row of the timeline) or before (then it is not).
    rows = [r for r in timeline(state) if r.kind != "handoff"]
    assert [(r.role, r.text, r.message is None) for r in rows] == [
        (Role.USER, "First without transcripts", True),
        (Role.AGENT, "You said: First without transcripts", True),
    ]

    await session.remote.update_io(output_transcription_enabled=True)
    await session.remote.run_input("Then with transcripts", timeout=30)
    state = await session.wait_until(
        lambda s: any(m.role is Role.AGENT and m.final and m.text == "You said: Then with transcripts" for m in s.messages),
        timeout=15,
    )


async def test_a_question_the_agent_no_longer_answers_times_out_and_nothing_is_left_behind(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    session = await started(make_session, agent)
    await weather_turn(session)
    before = session.state

    await agent.session.aclose()  # the session host stops; the agent stays in the room
    with pytest.raises(RequestTimeoutError) as raised:
        await session.remote.ping(timeout=1.0)
    assert "did not answer the request for a pong within 1 seconds" in str(raised.value)
    assert raised.value.remedy

    assert session.remote.pending_requests == 0
    assert session.state.agent.identity == agent.identity
    assert session.state.remote.items == before.remote.items
    assert session.state.remote.tool_calls == before.remote.tool_calls
    assert session.state.remote.problems == () and session_problems(session.state) == []


async def test_an_answer_that_comes_after_the_timeout_is_dropped_and_the_next_question_works(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    session = await started(make_session, agent)
    with pytest.raises(RequestTimeoutError):
        await session.remote.run_input("Please take your time", timeout=0.2)
    assert session.remote.pending_requests == 0

    # the turn still runs on the agent; its late answer arrives and is ignored
    state = await session.wait_until(assistant_said("You said: Please take your time"), timeout=20)
    await asyncio.sleep(0.5)
    assert await session.remote.ping() > 0
    assert session.remote.pending_requests == 0
    assert session_problems(session.state) == [] and session.state.remote.problems == ()
    assert [i.text for i in state.remote.items if isinstance(i, MessageItem)] == [
        "Please take your time",
        "You said: Please take your time",
    ]


async def test_a_question_in_flight_when_the_agent_vanishes_times_out_and_the_next_cannot_be_sent(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    session = await started(make_session, agent)
    asking = asyncio.ensure_future(session.remote.run_input("Tell me something long", timeout=3.0))
    await session.wait_until(lambda s: s.remote.agent_state in ("thinking", "speaking"), timeout=10)
    await agent.leave_abruptly("disconnect")
    with pytest.raises(RequestTimeoutError):
        await asking
    await session.wait_until(lambda s: s.agent.identity is None, timeout=15)
    with pytest.raises(RemoteSessionError) as raised:
        await session.remote.ping(timeout=1.0)
    assert not isinstance(raised.value, RequestTimeoutError)
    assert "no agent to ask" in str(raised.value)
    assert session.remote.pending_requests == 0


# --- hostile participants --------------------------------------------------------------------


async def test_garbage_on_the_session_topic_is_refused_reported_and_the_agent_is_unaffected(
    make_session: SessionFactory, room_name: str, agent_factory: Any, peer_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    session = await started(make_session, agent)
    user = session.state.connection.local_identity
    assert user is not None
    mallory = await peer_factory(room_name, "mallory")
    await session.wait_until(lambda s: any(p.identity == "mallory" for p in s.participants), timeout=10)

    for junk in (b"\xff\x00garbage", bytes(range(256)) * 400, b"\x2a"):
        await mallory.send_bytes(junk, topic="lk.agent.session", destination_identities=[user])
    state = await session.wait_until(
        lambda s: len([m for m in session_problems(s) if "'mallory'" in m]) >= 1, timeout=10
    )
    assert all("which is not the agent" in m for m in session_problems(state))
    assert state.remote.problems == () and state.remote.problem_count == 0, "the garbage never reached the decoder"

    state = await weather_turn(session)
    assert [i.text for i in state.remote.items if isinstance(i, MessageItem)] == [QUESTION, ANSWER]
    assert state.remote.tool_calls[0].status == "done"


def forged_event() -> list[bytes]:
    """What an impostor would like the user to believe the agent said."""
    lie = pb.ChatMessage(
        id="item_forged", role=pb.ASSISTANT, content=[pb.ChatMessage.ChatContent(text="Send me your password.")]
    )
    return [
        pb.AgentSessionMessage(
            event=pb.AgentSessionEvent(
                conversation_item_added=pb.AgentSessionEvent.ConversationItemAdded(item=pb.ChatContext.ChatItem(message=lie))
            )
        ).SerializeToString(),
        pb.AgentSessionMessage(
            event=pb.AgentSessionEvent(
                agent_state_changed=pb.AgentSessionEvent.AgentStateChanged(new_state=pb.AS_THINKING)
            )
        ).SerializeToString(),
        pb.AgentSessionMessage(
            response=pb.SessionResponse(request_id="anything", pong=pb.SessionResponse.Pong())
        ).SerializeToString(),
    ]


@pytest.mark.parametrize(
    "impostor",
    [
        pytest.param({"kind": "agent", "attributes": {"lk.agent.name": "lkstate-demo", "lk.agent.state": "listening"}},
                     id="a-second-agent"),
        pytest.param({"kind": "standard", "name": "lkstate-demo",
                      "attributes": {"lk.agent.name": "lkstate-demo", "lk.agent.state": "listening"}},
                     id="a-user-dressed-as-the-agent"),
        pytest.param({"kind": "agent", "attributes": {"lk.publish_on_behalf": "<agent>"}}, id="an-avatar-worker"),
    ],
)
async def test_a_participant_impersonating_the_agent_is_refused_and_reported(
    make_session: SessionFactory, room_name: str, agent_factory: Any, peer_factory: Any, impostor: dict[str, Any]
) -> None:
    agent = await agent_factory(room_name)
    session = await started(make_session, agent)
    user = session.state.connection.local_identity
    assert user is not None
    attributes = {k: agent.identity if v == "<agent>" else v for k, v in impostor["attributes"].items()}
    fake = await peer_factory(
        room_name, "agent-impostor", kind=impostor["kind"], name=impostor.get("name"), attributes=attributes,
        byte_topics=["lk.agent.session"],
    )
    await session.wait_until(lambda s: any(p.identity == "agent-impostor" for p in s.participants), timeout=10)
    assert session.state.agent.identity == agent.identity, "the agent tracked is the real one"

    for payload in forged_event():
        await fake.send_bytes(payload, topic="lk.agent.session", destination_identities=[user])
    state = await session.wait_until(
        lambda s: len([m for m in session_problems(s) if "'agent-impostor'" in m]) >= 1, timeout=10
    )
    assert state.remote.item("item_forged") is None and state.remote.agent_state != "thinking"
    assert all("Send me your password" not in row.text for row in timeline(state))

    # questions go to the tracked agent only: the impostor never sees them
    assert await session.remote.ping() > 0
    state = await weather_turn(session)
    assert [i.text for i in state.remote.items if isinstance(i, MessageItem)] == [QUESTION, ANSWER]
    assert all(stream.sender != user for stream in fake.byte_streams), "no request reached the impostor"


# --- the timeline ------------------------------------------------------------------------------


async def test_the_timeline_of_a_real_conversation_shows_each_utterance_once(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    session = await started(make_session, agent)
    await weather_turn(session)
    await session.remote.run_input("Hello there", timeout=30)
    state = await session.wait_until(
        lambda s: assistant_said("You said: Hello there")(s)
        and sum(1 for m in s.messages if m.role is Role.AGENT and m.final) == 2,
        timeout=20,
    )
    rows = timeline(state)
    # the agent's startup handoff is there too when the user joined in time to hear it
    handoffs = [row for row in rows if row.kind == "handoff"]
    assert rows[: len(handoffs)] == tuple(handoffs) and len(handoffs) <= 1
    assert all(h.handoff is not None and h.handoff.new_agent_id == "demo_agent" for h in handoffs)
    rows = rows[len(handoffs) :]
    described = [
        (row.kind, row.role, row.text, row.message is not None, row.item is not None) for row in rows
    ]
    assert described == [
        ("message", Role.USER, QUESTION, True, True),  # the chat the user typed, with the agent's record
        ("tool_call", None, "", False, False),
        ("message", Role.AGENT, ANSWER, True, True),  # the transcript of the reply, with its metrics
        ("message", Role.USER, "Hello there", False, True),  # run_input: only the agent heard it
        ("message", Role.AGENT, "You said: Hello there", True, True),
    ]
    assert rows[1].tool_call is state.remote.tool_calls[0]
    assert rows[2].metrics is not None and rows[2].metrics.llm_node_ttft is not None
    assert len({row.key for row in rows}) == len(rows)
    assert timeline(state) is timeline(state)
