"""Hostile and broken input from other participants: refused or capped, reported, nothing else disturbed.

Anyone in a room can set their own attributes and send text and byte streams
on any topic. Here participants do exactly that — standard ones posing as the
agent, agent-kind ones sending oversized or undecodable transcripts, floods —
while a real agent (livekit-agents ``AgentSession``, in process) holds a real
conversation with a real :class:`lkstate.Session`. Every test checks three
things: the input was refused or capped by the :class:`lkstate.Limits`, the
state says so in :attr:`~lkstate.SessionState.problems`, and the agent's own
messages came through complete.

The heaviest senders run in a subprocess (``_hostile_sender.py``), so what the
*sender* allocates stays out of the memory measured here, at the receiver.
"""

from __future__ import annotations

import asyncio
import os
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from livekit.protocol.agent_pb import agent_session as pb

from lkstate import AgentStatus, Limits, Role, Session, SessionOptions, SessionState
from lkstate.demo_agent import ScriptedLLM
from tests.harness.agent import InProcessAgent
from tests.harness.peer import PRECONNECT_TOPIC, Peer
from tests.harness.server import LiveKitServer
from tests.reliability._wire import (
    REPLY,
    Figures,
    HostileProcess,
    agent_messages,
    agent_sees_user,
    figures_fixture,
    new_session,
    rss_bytes,
    send_raw_text_stream,
)

figures = figures_fixture("hostile inputs tried")

MiB = 1 << 20


@pytest.fixture
async def sessions() -> AsyncIterator[list[Session]]:
    made: list[Session] = []
    yield made
    for session in made:
        await session.end()


async def talking(
    server: LiveKitServer, room_name: str, agent_factory: Any, sessions: list[Session], **kwargs: Any
) -> tuple[InProcessAgent, Session, str]:
    """A real agent and a session connected to it, ready to talk; returns the user's identity too."""
    agent = await agent_factory(room_name, llm=ScriptedLLM([REPLY]))
    session = new_session(server, room_name, **kwargs)
    sessions.append(session)
    await asyncio.wait_for(session.start(), timeout=15)
    await agent_sees_user(agent, session)
    user = session.state.connection.local_identity
    assert user is not None
    return agent, session, user


async def reply_arrives_whole(session: Session, text: str = "hi") -> SessionState:
    """Say ``text``; wait until the tracked agent's reply is final and it listens again."""
    await session.send_text(text)
    return await session.wait_until(
        lambda s: any(m.final and m.sender == s.agent.identity for m in s.messages) and s.agent.state == "listening",
        timeout=40,
    )


async def present(session: Session, identity: str) -> None:
    await session.wait_until(lambda s: any(p.identity == identity for p in s.participants), timeout=15)


def complaints(state: SessionState, *words: str) -> list[str]:
    return [p.message for p in state.problems if all(w in p.message for w in words)]


async def eventually(condition: Any, timeout: float = 10.0) -> bool:
    """Poll ``condition()`` (for what the state does not show) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def open_readers(session: Session) -> int:
    """Stream readers the session's room still holds open (each one an FFI subscription)."""
    room: Any = session.room
    return len(room._text_stream_readers) + len(room._byte_stream_readers)  # noqa: SLF001


# --- posing as the agent --------------------------------------------------------------------------


async def test_a_participant_that_is_not_an_agent_cannot_set_the_agents_state_or_pose_as_its_avatar(
    room_name: str, agent_factory: Any, peer_factory: Any, sessions: list[Session],
    livekit_server: LiveKitServer, figures: Figures,
) -> None:
    agent, session, _ = await talking(livekit_server, room_name, agent_factory, sessions)
    statuses: list[AgentStatus] = []
    session.select(lambda s: s.agent.status).subscribe(statuses.append)
    mallory = await peer_factory(room_name, "mallory", name="lkstate-demo",
                                 attributes={"lk.agent.name": "lkstate-demo", "lk.agent.state": "speaking"})
    await present(session, "mallory")

    values = ["thinking", "speaking", "initializing", "failed", "", "x" * 1000, "listening\x00", "💥", "idle"]
    for value in values:
        await mallory.set_attributes({"lk.agent.state": value})
    await mallory.set_attributes({"lk.publish_on_behalf": agent.identity})
    figures.add("lk.agent.state set by a non-agent", len(values) + 2)
    figures.add("lk.publish_on_behalf set by a non-agent")
    state = await session.wait_until(
        lambda s: any(p.identity == "mallory" and ("lk.publish_on_behalf", agent.identity) in p.attributes
                      for p in s.participants),
        timeout=10,
    )

    assert state.agent.identity == agent.identity
    assert [p.identity for p in state.agent.agents] == [agent.identity], "mallory is not among the agents"
    assert state.agent.avatar_identity is None and state.agent.unknown_state is None
    assert set(statuses) == {AgentStatus.LISTENING}, "only the real agent moved the status"
    state = await reply_arrives_whole(session)
    assert [m.text for m in agent_messages(state)] == [REPLY]


async def test_transcriptions_claiming_to_come_from_the_agent_or_the_user_are_refused_and_the_reply_is_untouched(
    room_name: str, agent_factory: Any, peer_factory: Any, sessions: list[Session],
    livekit_server: LiveKitServer, figures: Figures,
) -> None:
    agent, session, user = await talking(livekit_server, room_name, agent_factory, sessions)
    mallory = await peer_factory(room_name, "mallory")
    await mallory.publish_audio(None)  # announced at once
    await present(session, "mallory")

    await session.send_text("hi")
    state = await session.wait_until(lambda s: any(m.text and not m.final for m in agent_messages(s)), timeout=20)
    segment = agent_messages(state)[0].segment_id
    assert segment is not None

    forged = 0
    for claimed, segment_id in ((agent.identity, segment), (agent.identity, "SG_forged"), (user, "SG_user")):
        await mallory.stream_text(
            [" and also send me your password"], topic="lk.transcription", sender_identity=claimed,
            attributes={"lk.segment_id": segment_id, "lk.transcription_final": "false"},
            close_attributes={"lk.transcription_final": "true"},
        )
        forged += 1
    await send_raw_text_stream(  # the same, one packet at a time
        mallory.room, topic="lk.transcription", chunks=[b"I am the agent"],
        attributes={"lk.segment_id": segment, "lk.transcription_final": "true"},
    )
    await mallory.stream_text(["this is the agent speaking"], topic="lk.chat", sender_identity=agent.identity)
    forged += 2
    figures.add("forged transcriptions and chat", forged)

    state = await session.wait_until(
        lambda s: any(m.final for m in agent_messages(s)) and s.agent.state == "listening", timeout=30
    )
    assert [m.text for m in agent_messages(state)] == [REPLY], "the agent's words only, complete"
    assert all("password" not in m.text and "I am the agent" not in m.text for m in state.messages)
    (chat,) = [m for m in state.messages if m.sender == "mallory"]
    assert chat.role is Role.PARTICIPANT and chat.text == "this is the agent speaking", "chat is mallory's, by name"
    assert complaints(state, "'mallory'", "only the agent may send transcriptions")


# --- garbage ------------------------------------------------------------------------------------------


async def test_garbage_on_the_agent_session_and_preconnect_topics_is_refused_and_leaves_nothing_behind(
    room_name: str, agent_factory: Any, peer_factory: Any, sessions: list[Session],
    livekit_server: LiveKitServer, figures: Figures,
) -> None:
    _, session, user = await talking(livekit_server, room_name, agent_factory, sessions)
    mallory = await peer_factory(room_name, "mallory")
    await mallory.publish_audio(None)
    await present(session, "mallory")

    forged = pb.AgentSessionMessage(
        event=pb.AgentSessionEvent(agent_state_changed=pb.AgentSessionEvent.AgentStateChanged(new_state=pb.AS_THINKING))
    ).SerializeToString()
    junk = [b"", b"\x00", b"\xff" * 7, forged, os.urandom(300), bytes(range(256)) * 64]
    sent = 0
    for _ in range(10):
        for payload in junk:
            await mallory.send_bytes(payload, topic="lk.agent.session", destination_identities=[user])
            # To the user only: livekit-agents 1.8.9 loops forever on a pre-connect buffer
            # whose sampleRate is 0 or negative (AudioByteStream with a frame size <= 0).
            await mallory.send_bytes(payload, topic=PRECONNECT_TOPIC, destination_identities=[user],
                                     attributes={"trackId": "TR_bogus", "sampleRate": "-1", "channels": "999"})
            sent += 2
    figures.add("garbage byte streams (agent-session and pre-connect topics)", sent)

    state = await reply_arrives_whole(session)
    await asyncio.sleep(0.5)
    state = session.state
    assert [m.text for m in agent_messages(state)] == [REPLY]
    assert state.remote.problem_count == 0, "nothing of mallory's reached the decoder"
    assert state.remote.agent_state == "listening"
    assert complaints(state, "'mallory'", "which is not the agent")
    assert await eventually(lambda: open_readers(session) == 0), "every refused stream was closed"


# --- size -----------------------------------------------------------------------------------------------


async def test_100_megabyte_streams_are_refused_unread_and_cost_no_memory(
    room_name: str, agent_factory: Any, sessions: list[Session], livekit_server: LiveKitServer,
    figures: Figures, record_property: Any,
) -> None:
    # An agent-kind sender, so that its transcription is not refused for who sent it but for its size.
    _, session, user = await talking(livekit_server, room_name, agent_factory, sessions)
    sender = HostileProcess.start(livekit_server, room_name, "mallory", "big-text", kind="agent",
                                  topic="lk.chat,lk.transcription", destination=user, size=100 * MiB)
    try:
        await sender.wait_line("joined")
        rss_before = rss_bytes()
        tracemalloc.start()
        try:
            sender.process.stdin.write("go\n")  # type: ignore[union-attr]
            sender.process.stdin.flush()  # type: ignore[union-attr]
            await sender.wait_line("sent")
            state = await session.wait_until(
                lambda s: {p.source for p in s.problems if f"{100 * MiB} bytes from 'mallory'" in p.message}
                == {"lk.chat", "lk.transcription"},
                timeout=30,
            )
            await asyncio.sleep(0.5)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        grown = rss_bytes() - rss_before
    finally:
        await sender.finish()
    figures.add("100 MB streams", 2)
    record_property("rss_growth_bytes", grown)
    record_property("python_peak_bytes", peak)
    print(f"\ntwo 100 MB streams: RSS grew {grown / MiB:.1f} MiB, Python allocations peaked at {peak / MiB:.2f} MiB")

    assert len(complaints(state, f"Refused a stream of {100 * MiB} bytes from 'mallory'")) == 2
    assert not [m for m in state.messages if m.sender == "mallory"]
    assert peak < 4 * MiB, "not even one chunk of them was read"
    assert grown < 32 * MiB
    state = await reply_arrives_whole(session)
    assert [m.text for m in agent_messages(state)] == [REPLY]


@pytest.mark.parametrize(
    ("size", "limits"),
    [
        pytest.param(3 * MiB, Limits(), id="3MB"),
        pytest.param(3 * MiB, Limits(max_session_response_bytes=2 * MiB), id="3MB-beyond-what-the-SDK-takes"),
        pytest.param(100 * MiB, Limits(), id="100MB", marks=pytest.mark.soak),
    ],
)
async def test_a_stream_that_does_not_declare_its_size_is_cut_at_the_limit_and_never_held_whole(
    room_name: str, peer_factory: Any, sessions: list[Session], livekit_server: LiveKitServer,
    figures: Figures, record_property: Any, size: int, limits: Limits,
) -> None:
    """Cut at ``max_stream_bytes``, drained to its end — or, past the largest limit, stopped by the SDK."""
    await peer_factory(room_name, "agent-scripted", kind="agent", attributes={"lk.agent.state": "listening"})
    session = new_session(livekit_server, room_name, options=SessionOptions(limits=limits))
    sessions.append(session)
    await asyncio.wait_for(session.start(), timeout=15)
    user = session.state.connection.local_identity or ""
    sdk_cap = max(limits.max_stream_bytes, limits.max_session_message_bytes, limits.max_session_response_bytes)
    stopped_by_the_sdk = size > sdk_cap
    sender = HostileProcess.start(livekit_server, room_name, "agent-mallory", "slow-text", kind="agent",
                                  topic="lk.transcription", destination=user, size=size)
    try:
        await sender.wait_line("joined")
        await present(session, "agent-mallory")
        rss_before = rss_bytes()
        sender.process.stdin.write("go\n")  # type: ignore[union-attr]
        sender.process.stdin.flush()  # type: ignore[union-attr]

        def over(s: SessionState) -> bool:
            if not complaints(s, "'agent-mallory'", f"exceeded {limits.max_stream_bytes} bytes"):
                return False
            if stopped_by_the_sdk:
                return bool(complaints(s, "'agent-mallory'", "could not be read", "exceeds maximum size"))
            return any(m.sender == "agent-mallory" and m.final for m in s.messages)

        state = await session.wait_until(over, timeout=600)
        grown = rss_bytes() - rss_before
    finally:
        await sender.finish(timeout=600)
    figures.add(f"undeclared {size // MiB} MB streams")
    record_property("rss_growth_bytes", grown)
    print(f"\nundeclared {size / MiB:.0f} MB stream (SDK cap {sdk_cap / MiB:.0f} MiB): RSS grew {grown / MiB:.1f} MiB")

    (message,) = [m for m in state.messages if m.sender == "agent-mallory"]
    assert len(message.text) == limits.max_message_chars and message.error is not None, "kept up to the cut"
    assert message.final is not stopped_by_the_sdk
    assert grown < 64 * MiB
    assert await eventually(lambda: open_readers(session) == 0), "read to its end or stopped, then closed"
    assert session.state.agent.identity == "agent-scripted"


# --- bytes that are not text -----------------------------------------------------------------------------


async def test_text_that_is_not_utf8_is_reported_and_the_words_before_it_are_kept(
    room_name: str, peer_factory: Any, sessions: list[Session], livekit_server: LiveKitServer, figures: Figures
) -> None:
    agent = await peer_factory(room_name, "agent-scripted", kind="agent", attributes={"lk.agent.state": "listening"})
    mallory = await peer_factory(room_name, "mallory")
    await mallory.publish_audio(None)
    session = new_session(livekit_server, room_name)
    sessions.append(session)
    await asyncio.wait_for(session.start(), timeout=15)
    await present(session, "mallory")

    def transcript(segment: str) -> dict[str, str]:
        return {"lk.segment_id": segment, "lk.transcription_final": "false"}

    final = {"lk.transcription_final": "true"}
    await send_raw_text_stream(agent.room, topic="lk.transcription", chunks=[b"Hello ", b"wor\xffld", b" again"],
                               attributes=transcript("SG_1"), close_attributes=final)
    # a valid character split between two packets: the SDK decodes each packet on its own
    await send_raw_text_stream(agent.room, topic="lk.transcription", chunks=[b"Caf\xc3", b"\xa9 au lait"],
                               attributes=transcript("SG_2"), close_attributes=final)
    await send_raw_text_stream(agent.room, topic="lk.transcription", chunks=[b"\xed\xa0\x80 surrogate"],
                               attributes=transcript("SG_3"), close_attributes=final)
    await send_raw_text_stream(mallory.room, topic="lk.chat", chunks=[b"\xc0\xafetc/passwd"])
    await agent.stream_text(["Fine now."], topic="lk.transcription", attributes=transcript("SG_4"),
                            close_attributes=final)
    figures.add("streams that are not UTF-8", 4)

    await session.wait_until(lambda s: any(m.text == "Fine now." and m.final for m in s.messages), timeout=15)
    # A broken stream is judged once a departure or reconnect that would explain it had time to show.
    await session.wait_until(lambda s: len(complaints(s, "could not be read", "UTF-8")) >= 2, timeout=10)
    await asyncio.sleep(0.5)
    state = session.state
    assert state.connection.is_connected
    by_segment = {m.segment_id: m for m in state.messages}
    assert by_segment["SG_1"].text == "Hello " and not by_segment["SG_1"].final, "the words before are kept"
    assert "SG_2" not in by_segment and "SG_3" not in by_segment
    assert by_segment["SG_4"].final
    assert not [m for m in state.messages if m.sender == "mallory"]
    assert len(complaints(state, "could not be read", "UTF-8")) >= 2, "reported, in words"
    assert complaints(state, "'mallory'", "could not be read")


# --- floods -------------------------------------------------------------------------------------------------


async def test_a_flood_of_tiny_streams_is_held_to_the_rate_limit_and_the_agents_reply_arrives_whole(
    room_name: str, agent_factory: Any, sessions: list[Session], livekit_server: LiveKitServer,
    figures: Figures, record_property: Any,
) -> None:
    limits = Limits()
    _, session, user = await talking(livekit_server, room_name, agent_factory, sessions)
    count = 3000
    sender = HostileProcess.start(livekit_server, room_name, "mallory", "flood", topic="lk.chat",
                                  destination=user, count=count)
    try:
        await sender.wait_line("joined")
        await present(session, "mallory")
        rss_before = rss_bytes()
        started = time.monotonic()
        sender.process.stdin.write("go\n")  # type: ignore[union-attr]
        sender.process.stdin.flush()  # type: ignore[union-attr]
        replied = asyncio.ensure_future(reply_arrives_whole(session))  # the agent talks meanwhile
        _, sent, seconds = (await sender.wait_line("sent", timeout=120)).split()
        state = await replied
        await asyncio.sleep(1.0)  # the tail of the flood
        elapsed = time.monotonic() - started
        state = session.state
        grown = rss_bytes() - rss_before
    finally:
        await sender.finish()
    figures.add("tiny streams in a flood", int(sent))
    accepted = len([m for m in state.messages if m.sender == "mallory"])
    record_property("flood", f"{sent} streams in {seconds} s, {accepted} accepted")
    print(f"\nflood: {sent} streams sent in {seconds} s; {accepted} accepted; RSS grew {grown / MiB:.1f} MiB")

    assert int(sent) == count
    assert accepted <= limits.stream_burst + limits.max_streams_per_second * elapsed
    assert complaints(state, "Refused streams from 'mallory'", "a second")
    assert [m.text for m in agent_messages(state)] == [REPLY], "the agent's reply is complete, and once"
    assert grown < 64 * MiB
    assert await eventually(lambda: open_readers(session) == 0), "every stream read or refused, and closed"


async def test_streams_left_open_are_capped_and_released_when_their_sender_leaves(
    room_name: str, peer_factory: Any, sessions: list[Session], livekit_server: LiveKitServer, figures: Figures
) -> None:
    limits = Limits(max_open_streams_per_sender=16, max_streams_per_second=1000, stream_burst=1000)
    await peer_factory(room_name, "agent-scripted", kind="agent", attributes={"lk.agent.state": "listening"})
    mallory = await peer_factory(room_name, "mallory")
    await mallory.publish_audio(None)
    session = new_session(livekit_server, room_name, options=SessionOptions(limits=limits))
    sessions.append(session)
    await asyncio.wait_for(session.start(), timeout=15)
    await present(session, "mallory")
    user = session.state.connection.local_identity or ""

    for n in range(100):
        await send_raw_text_stream(mallory.room, topic="lk.chat", chunks=[f"never ending {n}".encode()],
                                   destination_identities=[user], close=False)
    figures.add("streams never closed", 100)
    state = await session.wait_until(lambda s: bool(complaints(s, "more than 16 open at once")), timeout=15)
    assert complaints(state, "Refused a stream from 'mallory'")
    await asyncio.sleep(0.5)
    assert open_readers(session) == 16, "the rest were refused and closed"

    await mallory.disconnect()
    await session.wait_until(lambda s: not any(p.identity == "mallory" for p in s.participants), timeout=15)
    assert await eventually(lambda: open_readers(session) == 0), "their readers ended with the sender"
    assert session.state.agent.identity == "agent-scripted" and session.state.connection.is_connected
