"""Message history over the wire: the agent's record of before the join, and a history carried to a new room.

A real livekit-server, a real ``AgentSession`` (the demo agent with scripted
models, its session host on as the framework's default) and a real
:class:`lkstate.Session`. When the agent is ready, the session asks it for its
chat history on ``lk.agent.session`` and shows what no transcript brought —
said before the user joined — as messages of origin ``agent_history``; the
pairing rule (by text, from the end: there is no key shared by a chat item and
a transcript in livekit-agents 1.8.9) is specified in
``tests/unit/test_message_history.py``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest
from livekit.agents.llm import ChatMessage
from livekit.protocol.agent_pb import agent_session as pb

from lkstate import Message, MessageHistory, MessageOrigin, Role, Session, SessionState
from lkstate.demo_agent import DemoAgent, room_options, weather_report
from lkstate.errors import RemoteSessionError
from lkstate.recording import Replay
from tests.harness.peer import wait_until
from tests.harness.sessions import SessionFactory, agent_sees_user

pytest.importorskip("livekit.agents")

GREETING = "Hello! I am the lkstate demo agent."
QUESTION = "What is the weather in Paris?"
ANSWER = weather_report("Paris")
LIVE, HISTORY, RESTORED = MessageOrigin.LIVE, MessageOrigin.AGENT_HISTORY, MessageOrigin.RESTORED


def texts(state: SessionState) -> list[tuple[Role, str, MessageOrigin]]:
    return [(m.role, m.text, m.origin) for m in state.messages]


def said_by_agent(agent: Any, text: str) -> bool:
    return any(
        isinstance(item, ChatMessage) and item.role == "assistant" and item.text_content == text
        for item in agent.session.history.items
    )


async def ask_weather(session: Session) -> SessionState:
    await session.send_text(QUESTION)
    return await session.wait_until(
        lambda s: any(m.role is Role.AGENT and m.text == ANSWER and m.final for m in s.messages), timeout=30
    )


async def test_a_greeting_said_to_an_empty_room_is_shown_once_from_the_agents_history(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    # A text-only agent's speech is done when it is written: the greeting goes out on
    # lk.transcription to nobody, and into the agent's history, before the user exists.
    options = room_options()
    options.audio_output = False
    agent = await agent_factory(room_name, agent=DemoAgent(greeting=GREETING), options=options)
    await wait_until(lambda: said_by_agent(agent, GREETING), timeout=15, message="the greeting in the agent's history")

    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    state = await session.wait_until(lambda s: s.agent_history.fetched >= 1, timeout=10)
    assert texts(state) == [(Role.AGENT, GREETING, HISTORY)]
    greeting = state.messages[0]
    assert greeting.sender == agent.identity and greeting.final and greeting.id.startswith("history/item_")
    assert any(h.new_agent_id == "demo_agent" for h in state.remote.handoffs), "the startup handoff came with it"

    # then a conversation: the reply arrives as a transcript *and* is in the history
    await agent_sees_user(agent, session)
    await ask_weather(session)
    added = await session.fetch_agent_history()
    state = session.state
    assert added == 0
    assert texts(state) == [(Role.AGENT, GREETING, HISTORY), (Role.USER, QUESTION, LIVE), (Role.AGENT, ANSWER, LIVE)]
    assert state.problems == ()


async def test_what_arrives_both_as_transcripts_and_in_the_history_is_shown_once(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    # A voice agent's greeting waits for someone to hear it: it is a live transcript.
    agent = await agent_factory(room_name, agent=DemoAgent(greeting=GREETING))
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    await agent_sees_user(agent, session)
    await session.wait_until(
        lambda s: any(m.text == GREETING and m.final for m in s.messages) and s.agent_history.fetched >= 1,
        timeout=30,
    )
    await ask_weather(session)
    await wait_until(lambda: said_by_agent(agent, ANSWER), timeout=15, message="the answer in the agent's history")

    assert await session.fetch_agent_history() == 0
    assert await session.fetch_agent_history() == 0, "asking twice changes nothing either"
    state = session.state
    assert texts(state) == [(Role.AGENT, GREETING, LIVE), (Role.USER, QUESTION, LIVE), (Role.AGENT, ANSWER, LIVE)]
    assert state.agent_history.fetched == 3 and state.agent_history.added == 0
    assert session.remote.pending_requests == 0, "the session's own question is not the app's"


async def test_a_saved_history_restored_in_a_new_room_comes_first_marked_and_replays_exactly(
    make_session: SessionFactory, room_name: str, agent_factory: Any, tmp_path: Path
) -> None:
    first_agent = await agent_factory(room_name, agent=DemoAgent(greeting=GREETING))
    first = make_session()
    await asyncio.wait_for(first.start(), timeout=15)
    await agent_sees_user(first_agent, first)
    await first.wait_until(lambda s: any(m.text == GREETING and m.final for m in s.messages), timeout=30)
    await ask_weather(first)
    saved = first.message_history().to_json()
    kept = first.state.messages
    await first.end()

    other_room = f"{room_name}-again-{uuid.uuid4().hex[:6]}"
    second_agent = await agent_factory(other_room, agent=DemoAgent(greeting=GREETING))
    path = tmp_path / "restored.jsonl"
    second = make_session(room_name=other_room, history=MessageHistory.from_json(saved), record_to=path)
    live: list[SessionState] = []
    second.states.subscribe(live.append)
    await asyncio.wait_for(second.start(), timeout=15)
    await agent_sees_user(second_agent, second)
    # the new agent greets with the same words: a new message, not the restored one again
    await second.wait_until(
        lambda s: sum(1 for m in s.messages if m.text == GREETING and m.origin is LIVE and m.final) == 1,
        timeout=30,
    )
    await second.send_text("Thank you")
    state = await second.wait_until(
        lambda s: any(m.text == "You said: Thank you" and m.final for m in s.messages), timeout=30
    )
    await second.end()

    restored = list(state.messages)[: len(kept)]
    assert restored == [attrs.evolve(m, origin=RESTORED, stream_seq=0) for m in kept]
    assert texts(state)[len(kept):] == [
        (Role.AGENT, GREETING, LIVE), (Role.USER, "Thank you", LIVE), (Role.AGENT, "You said: Thank you", LIVE)
    ]

    replay = Replay.from_file(path)
    replayed: list[SessionState] = []
    replay.states.subscribe(replayed.append)
    replay.step(len(replay))
    assert replayed == live and len(live) > 10


async def test_a_hostile_agents_garbage_history_is_a_problem_in_words_and_the_live_messages_stay(
    make_session: SessionFactory, room_name: str, peer_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lkstate")
    fake = await peer_factory(
        room_name, "agent-hostile", kind="agent",
        attributes={"lk.agent.name": "lkstate-demo", "lk.agent.state": "listening"},
        byte_topics=["lk.agent.session"],
    )
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    user = session.state.connection.local_identity
    assert user is not None and session.state.agent.identity == "agent-hostile"

    answered: set[str] = set()

    async def next_request() -> str:
        def find() -> str | None:
            for stream in fake.byte_streams:
                if stream.topic == "lk.agent.session" and stream.done and stream.stream_id not in answered:
                    request = pb.AgentSessionMessage.FromString(stream.data).request
                    assert request.HasField("get_chat_history")
                    answered.add(stream.stream_id)
                    return request.request_id
            return None

        return await wait_until(find, timeout=10, message="the session's request for the agent's history")

    async def reply(data: bytes) -> None:
        await fake.send_bytes(data, topic="lk.agent.session", destination_identities=[user])

    def response(**fields: Any) -> bytes:
        return pb.AgentSessionMessage(response=pb.SessionResponse(**fields)).SerializeToString()

    request_id = await next_request()  # asked by itself, once the agent was ready
    await fake.stream_text(["Live words."], topic="lk.transcription",
                           attributes={"lk.segment_id": "SG_live", "lk.transcription_final": "true"})
    await session.wait_until(lambda s: any(m.text == "Live words." for m in s.messages), timeout=10)
    live = session.state.messages

    await reply(b"\x2a\xff\xff\xff not a protobuf message")
    await reply(response(request_id=request_id, pong=pb.SessionResponse.Pong()))
    state = await session.wait_until(lambda s: s.agent_history.request_id is None, timeout=10)
    problems = [p.message for p in state.problems]
    assert any("not a valid AgentSessionMessage" in p for p in problems)
    assert any("answered the request for its chat history with something else (pong)" in p for p in problems)
    assert state.messages == live

    asking = asyncio.ensure_future(session.fetch_agent_history(timeout=10))
    await reply(response(request_id=await next_request(), error="no history for you"))
    with pytest.raises(RemoteSessionError, match="no history for you"):
        await asking
    assert "could not give its chat history: no history for you" in session.state.problems[-1].message

    asking = asyncio.ensure_future(session.fetch_agent_history(timeout=10))
    strange = pb.ChatMessage(id="item_s", role=42, content=[pb.ChatMessage.ChatContent(text="who said this?")])
    earlier = pb.ChatMessage(id="item_e", role=pb.ASSISTANT, content=[pb.ChatMessage.ChatContent(text="Said before.")])
    items = [pb.ChatContext.ChatItem(), pb.ChatContext.ChatItem(message=strange), pb.ChatContext.ChatItem(message=earlier)]
    await reply(response(request_id=await next_request(),
                         get_chat_history=pb.SessionResponse.GetChatHistoryResponse(items=items)))
    assert await asking == 1
    state = session.state
    assert texts(state) == [(Role.AGENT, "Said before.", HISTORY), (Role.AGENT, "Live words.", LIVE)]
    assert state.agent_history.unknown_items == 1
    assert any("cannot read; left out" in r.getMessage() for r in caplog.records), "unknown kinds are logged"
    assert isinstance(state.messages[1], Message) and state.messages[1] == live[0]
