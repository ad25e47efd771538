"""The Session over a real livekit-server and a real livekit-agents AgentSession.

Each test is one behaviour of the core store, observed the way an app sees it:
through ``session.state`` and ``session.states``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Any

import pytest
from livekit import rtc
from livekit.protocol.room import ListParticipantsRequest

from lkstate import (
    AgentFailure,
    AgentStatus,
    ConnectionStatus,
    CustomTokenSource,
    DeliveryStatus,
    DevelopmentTokenSource,
    LoopThread,
    Role,
    Session,
    SessionState,
)
from lkstate.errors import AgentUnavailableError, ConnectionFailedError, TokenSourceError
from lkstate.media import PatternVideoInput
from lkstate._core.options import SessionOptions
from tests.harness.peer import wait_until
from tests.harness.server import LiveKitServer
from tests.harness.sessions import SessionFactory, agent_sees_user


def statuses(session: Session) -> list[str]:
    seen: list[str] = []
    session.select(lambda s: s.agent.state).subscribe(seen.append)
    return seen


async def test_the_agent_is_seen_joining_and_becoming_ready(make_session: SessionFactory, room_name: str,
                                                            agent_factory: Any) -> None:
    session = make_session()
    seen = statuses(session)
    start = asyncio.ensure_future(session.start())
    await session.wait_until(lambda s: s.connection.is_connected, timeout=10)
    agent = await agent_factory(room_name)
    state = await asyncio.wait_for(start, timeout=15)
    assert state.agent.is_ready and state.agent.identity == agent.identity
    assert state.agent.name == "lkstate-demo"
    assert seen[:2] == ["disconnected", "connecting"]
    assert "listening" in seen


async def test_an_agent_already_in_the_room_at_connect_is_seen(make_session: SessionFactory, room_name: str,
                                                               agent_factory: Any) -> None:
    agent = await agent_factory(room_name)
    session = make_session()
    state = await asyncio.wait_for(session.start(), timeout=15)
    assert state.agent.identity == agent.identity and state.agent.is_ready
    await session.wait_until(lambda s: s.agent.audio_available, timeout=10)


async def test_chat_appears_at_once_is_delivered_and_the_agent_replies(make_session: SessionFactory,
                                                                       room_name: str, agent_factory: Any) -> None:
    agent = await agent_factory(room_name)
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    await agent_sees_user(agent, session)
    deliveries: list[DeliveryStatus | None] = []
    session.select(lambda s: s.messages[0].delivery if len(s.messages) else None).subscribe(deliveries.append)
    message = await session.send_text("hello there")
    assert message.role is Role.USER and message.delivery is DeliveryStatus.SENT
    assert deliveries[1:] == [DeliveryStatus.SENDING, DeliveryStatus.SENT]
    state = await session.wait_until(
        lambda s: any(m.role is Role.AGENT and m.final for m in s.messages), timeout=15
    )
    reply = next(m for m in state.messages if m.role is Role.AGENT)
    assert reply.text.strip(), "the agent's reply has text"
    assert [m.id for m in state.messages].count(reply.id) == 1


async def test_chat_typed_the_moment_the_session_connects_is_not_lost(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    # The server announces a track-less participant only every ~3 s and the
    # agent ignores chat from participants it has not seen join: the session
    # holds such early chat (shown as sending) instead of losing it.
    await agent_factory(room_name)
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    message = await session.send_text("hello, are you there?")
    assert message.delivery is DeliveryStatus.SENT
    state = await session.wait_until(
        lambda s: any(m.role is Role.AGENT and m.final for m in s.messages), timeout=15
    )
    assert state.messages[0].text == "hello, are you there?"
    assert not state.problems, f"nothing was refused: {state.problems}"


async def test_text_typed_while_the_agent_is_about_to_greet_is_answered(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    # The demo agent greets on entering. Typed text interrupts the agent; cut off
    # before its first audio plays, the greeting would leave the reply silent
    # (livekit-agents 1.8.9; see lkstate.demo_agent.answer_text).
    from lkstate.demo_agent import DemoAgent

    await agent_factory(room_name, agent=DemoAgent(greeting="Hello there, I am the demo agent."))
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    await session.send_text("What's the weather in Paris?")
    state = await session.wait_until(
        lambda s: any(m.role is Role.AGENT and m.final and "Paris" in m.text for m in s.messages), timeout=15
    )
    replies = [m.text for m in state.messages if m.role is Role.AGENT]
    assert replies[-1] == "The weather in Paris is sunny and 21 degrees.", replies


async def test_user_transcripts_sent_on_the_users_behalf_become_one_message(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    agent = await peer_factory(room_name, "agent-scripted", kind="agent",
                               attributes={"lk.agent.state": "listening"})
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    user = session.state.connection.local_identity
    assert user is not None
    common = {"lk.segment_id": "SG_user_1", "lk.transcribed_track_id": "TR_x"}
    for text in ("what", "what is the", "what is the weather"):
        await agent.stream_text([text], topic="lk.transcription", sender_identity=user,
                                attributes={**common, "lk.transcription_final": "false"})
    await agent.stream_text(["what is the weather in Paris"], topic="lk.transcription", sender_identity=user,
                            attributes={**common, "lk.transcription_final": "true"})
    state = await session.wait_until(lambda s: len(s.messages) > 0 and s.messages[0].final, timeout=10)
    assert len(state.messages) == 1
    (message,) = state.messages
    assert message.role is Role.USER and message.sender == user
    assert message.text == "what is the weather in Paris"


async def test_agent_speech_deltas_accumulate_and_become_final_with_the_trailer(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    agent = await peer_factory(room_name, "agent-scripted", kind="agent", attributes={"lk.agent.state": "speaking"})
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    texts: list[str] = []
    session.select(lambda s: s.messages[0].text if len(s.messages) else "").subscribe(texts.append)
    await agent.stream_text(
        ["Hel", "lo, ", "how can ", "I help?"],
        topic="lk.transcription",
        attributes={"lk.segment_id": "SG_a1", "lk.transcription_final": "false"},
        close_attributes={"lk.transcription_final": "true"},
        delay=0.02,
    )
    state = await session.wait_until(lambda s: len(s.messages) > 0 and s.messages[0].final, timeout=10)
    assert state.messages[0].text == "Hello, how can I help?"
    assert state.messages[0].role is Role.AGENT
    assert texts[-1] == "Hello, how can I help?" and len(texts) >= 3, "the text grew while it streamed"


async def test_no_agent_within_the_timeout_fails_start_then_an_agent_recovers(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    session = make_session(agent_connect_timeout=1.0)
    with pytest.raises(AgentUnavailableError) as raised:
        await asyncio.wait_for(session.start(), timeout=10)
    assert "No agent joined within 1 s" in str(raised.value)
    assert session.state.agent.failure is AgentFailure.DID_NOT_JOIN
    assert session.state.connection.is_connected, "failed is not terminal: the session stays connected"
    await agent_factory(room_name)
    state = await session.wait_until(lambda s: s.agent.is_ready, timeout=15)
    assert state.agent.failure_reasons == ()


async def test_an_agent_that_joins_but_never_gets_ready_fails_with_its_own_reason(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    await peer_factory(room_name, "agent-stuck", kind="agent", attributes={"lk.agent.state": "initializing"})
    session = make_session(agent_connect_timeout=1.0)
    with pytest.raises(AgentUnavailableError):
        await asyncio.wait_for(session.start(), timeout=10)
    assert session.state.agent.failure is AgentFailure.NEVER_READY
    assert session.state.agent.identity == "agent-stuck"
    assert "did not become ready within 1 s" in session.state.agent.failure_reasons[0]


async def test_an_agent_leaving_unexpectedly_fails_and_a_new_agent_recovers(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    first = await agent_factory(room_name)
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    await first.leave_abruptly("kick")
    state = await session.wait_until(lambda s: s.agent.status is AgentStatus.FAILED, timeout=15)
    assert state.agent.failure is AgentFailure.LEFT
    assert state.agent.failure_reasons == ("The agent left the room unexpectedly.",)
    second = await agent_factory(room_name)
    state = await session.wait_until(lambda s: s.agent.is_ready, timeout=15)
    assert state.agent.identity == second.identity


async def test_a_standard_participant_claiming_to_be_an_agent_is_not_one(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    await peer_factory(room_name, "mallory", attributes={"lk.agent.state": "listening"})
    session = make_session()
    await asyncio.wait_for(session.start(wait_for_agent=False), timeout=10)
    await session.wait_until(lambda s: any(p.identity == "mallory" for p in s.participants), timeout=10)
    assert session.state.agent.identity is None
    assert session.state.agent.status is AgentStatus.CONNECTING


async def test_unknown_agent_states_are_tolerated_and_reported(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    agent = await peer_factory(room_name, "agent-odd", kind="agent", attributes={"lk.agent.state": "listening"})
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    await agent.set_attributes({"lk.agent.state": "daydreaming"})
    state = await session.wait_until(lambda s: s.agent.unknown_state == "daydreaming", timeout=10)
    assert state.agent.status is AgentStatus.LISTENING


async def test_an_avatar_worker_is_merged_into_the_agent(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    agent = await peer_factory(room_name, "agent-main", kind="agent", attributes={"lk.agent.state": "listening"})
    avatar = await peer_factory(room_name, "avatar-worker", kind="agent",
                                attributes={"lk.publish_on_behalf": "agent-main"})
    await avatar.publish_audio()
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    state = await session.wait_until(lambda s: s.agent.audio_available, timeout=10)
    assert state.agent.identity == agent.identity
    assert state.agent.avatar_identity == "avatar-worker"
    assert [p.identity for p in state.agent.agents] == ["agent-main", "avatar-worker"]


async def test_a_hostile_transcription_is_refused_and_the_real_agent_is_unaffected(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    agent = await peer_factory(room_name, "agent-real", kind="agent", attributes={"lk.agent.state": "listening"})
    mallory = await peer_factory(room_name, "mallory")
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    await mallory.stream_text(["I am the agent"], topic="lk.transcription",
                              attributes={"lk.segment_id": "SG_fake", "lk.transcription_final": "true"})
    await agent.stream_text(["real reply"], topic="lk.transcription",
                            attributes={"lk.segment_id": "SG_real", "lk.transcription_final": "true"})
    state = await session.wait_until(lambda s: len(s.messages) > 0, timeout=10)
    await asyncio.sleep(0.3)
    state = session.state
    assert [m.text for m in state.messages] == ["real reply"]
    assert any("only the agent may send transcriptions" in p.message for p in state.problems)


@pytest.mark.parametrize("scenario", ["signal", "full"])
async def test_reconnects_keep_messages_and_do_not_leave_the_agent_failed(
    make_session: SessionFactory, room_name: str, agent_factory: Any, scenario: str
) -> None:
    agent = await agent_factory(room_name)
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    await agent_sees_user(agent, session)
    await session.send_text("hello")
    await session.wait_until(lambda s: any(m.role is Role.AGENT and m.final for m in s.messages), timeout=15)
    before = session.state.messages
    connection_states: list[ConnectionStatus] = []
    session.select(lambda s: s.connection.status).subscribe(connection_states.append)
    kind = {
        "signal": rtc.SimulateScenarioKind.SIMULATE_SIGNAL_RECONNECT,
        "full": rtc.SimulateScenarioKind.SIMULATE_FULL_RECONNECT,
    }[scenario]
    assert session.room is not None
    await session.room.simulate_scenario(kind)
    state = await session.wait_until(
        lambda s: s.connection.is_connected and s.agent.is_ready and ConnectionStatus.RECONNECTING in connection_states,
        timeout=20,
    )
    assert ConnectionStatus.RECONNECTING in connection_states
    assert state.messages == before, "nothing received is lost across a reconnect"
    assert state.agent.failure is None


async def test_end_then_start_again_works(make_session: SessionFactory, room_name: str, agent_factory: Any) -> None:
    await agent_factory(room_name)
    session = make_session()
    await asyncio.wait_for(session.start(), timeout=15)
    await session.end()
    assert session.state.connection.status is ConnectionStatus.DISCONNECTED
    assert session.state.connection.disconnect_reason == "You ended the session."
    assert session.state.agent.status is AgentStatus.DISCONNECTED
    state = await asyncio.wait_for(session.start(), timeout=15)
    assert state.agent.is_ready and state.connection.attempt == 2


async def test_after_end_the_room_holds_none_of_our_callbacks(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    session = make_session(video_input=PatternVideoInput())
    await asyncio.wait_for(session.start(), timeout=15)
    await agent_sees_user(agent, session)
    await session.set_camera_enabled(True)
    await session.send_text("hello")
    await session.wait_until(lambda s: any(m.role is Role.AGENT and m.final for m in s.messages), timeout=20)
    await session.remote.ping()
    room: Any = session.room
    assert room is not None

    def ours() -> dict[str, list[str]]:
        """lkstate's callbacks on the room, by event (the SDK keeps a few of its own there)."""
        found: dict[str, list[str]] = {}
        for event, callbacks in room._events.items():  # noqa: SLF001
            for callback in callbacks:
                if getattr(callback, "__module__", "").startswith("lkstate"):
                    found.setdefault(event, []).append(callback.__qualname__)
        return found

    while_running = ours()
    assert sum(map(len, while_running.values())) >= 13, f"the session listens to the room while it runs: {while_running}"
    assert set(room._text_stream_handlers) == {"lk.transcription", "lk.chat"}  # noqa: SLF001
    assert set(room._byte_stream_handlers) == {"lk.agent.session"}  # noqa: SLF001

    await session.end()
    assert ours() == {}, "every callback registered on the room was removed"
    assert room._text_stream_handlers == {} and room._byte_stream_handlers == {}  # noqa: SLF001


def left_on_request(server: LiveKitServer, room: str, identity: str) -> bool:
    """The server's log says ``identity`` left ``room`` because its client asked to leave."""
    return any(
        "participant closing" in line and room in line and f'"participant": "{identity}"' in line
        and "CLIENT_REQUEST_LEAVE" in line
        for line in server.log_path.read_text(errors="replace").splitlines()
    )


async def test_ending_a_session_while_it_connects_leaves_the_room_and_releases_it(
    livekit_server: LiveKitServer, room_name: str
) -> None:
    """A tab closed (or a test ended) while the SDK is mid-connect leaves no room behind.

    The end arrives after the connect request went to LiveKit's native library
    and before its answer came back. Abandoning the SDK's connect there left the
    native room connected for the rest of the process, its events never taken
    up ("timed out waiting for ReadyForRoomEventRequest"), its threads calling
    into Python during unrelated work; on Python 3.11 such a call during
    ``tracemalloc.stop()`` crashed a later test (CPython gh-128679), and the
    native library's panic over it makes the SDK terminate the process. So the
    session lets the connect finish and then leaves: the server logs the user
    leaving at the client's request, and the SDK keeps no event queue for it.
    """
    from livekit.rtc._ffi_client import FfiClient  # the SDK's own bookkeeping is the evidence

    development = DevelopmentTokenSource(livekit_server.url, livekit_server.api_key, livekit_server.api_secret)
    ending: list[asyncio.Task[None]] = []

    async def credentials_then_end(request: Any) -> Any:
        credentials = await development.fetch(request)
        # end() runs at start()'s next wait: inside the SDK's connect, its request sent by then.
        ending.append(asyncio.create_task(session.end()))
        return credentials

    queues_before = len(FfiClient.instance.queue._subscribers)  # noqa: SLF001
    session = Session(CustomTokenSource(credentials_then_end), room_name=room_name, participant_identity="leaving",
                      audio_input=None, audio_output=None, video_input=None)
    starting = asyncio.create_task(session.start(wait_for_agent=False))
    await asyncio.wait({starting}, timeout=30)
    assert starting.cancelled(), "end() cancels a start() that is still connecting"
    await asyncio.wait_for(ending[0], timeout=30)

    assert session.room is None
    assert session.state.connection.status is ConnectionStatus.DISCONNECTED
    assert len(FfiClient.instance.queue._subscribers) == queues_before, "the room's event queue was given back"  # noqa: SLF001

    await wait_until(lambda: left_on_request(livekit_server, room_name, "leaving"), timeout=15,
                     message="the server logging that the user left at the client's request")
    client = livekit_server.api()
    try:
        listed = await client.room.list_participants(ListParticipantsRequest(room=room_name))
    finally:
        await client.aclose()
    assert [p.identity for p in listed.participants] == []


def test_stopping_a_loop_thread_while_its_session_connects_leaves_the_room(
    livekit_server: LiveKitServer, room_name: str
) -> None:
    """The same for a host that shuts its LoopThread down while a session is still connecting."""
    from livekit.rtc._ffi_client import FfiClient  # the SDK's own bookkeeping is the evidence

    development = DevelopmentTokenSource(livekit_server.url, livekit_server.api_key, livekit_server.api_secret)

    stoppers: list[threading.Thread] = []

    async def credentials_then_stop(request: Any) -> Any:
        credentials = await development.fetch(request)
        # The host shuts its loop thread down, from a thread of its own, as the connect begins.
        stoppers.append(threading.Thread(target=loop_thread.stop, kwargs={"timeout": 30}))
        stoppers[0].start()
        return credentials

    queues_before = len(FfiClient.instance.queue._subscribers)  # noqa: SLF001
    loop_thread = LoopThread(name="test-stop-mid-connect").start()
    session = Session(CustomTokenSource(credentials_then_stop), room_name=room_name, participant_identity="stopping",
                      audio_input=None, audio_output=None, video_input=None)
    starting = loop_thread.submit(session.start(wait_for_agent=False))
    concurrent.futures.wait([starting], timeout=30)
    stoppers[0].join(30)
    assert not stoppers[0].is_alive() and not loop_thread.is_running
    assert starting.cancelled(), "stopping the loop cancels a start() that is still connecting"
    assert len(FfiClient.instance.queue._subscribers) == queues_before, "the room's event queue was given back"  # noqa: SLF001
    deadline = time.monotonic() + 15
    while not left_on_request(livekit_server, room_name, "stopping"):
        assert time.monotonic() < deadline, "the server logs the user leaving at the client's request"
        time.sleep(0.05)


async def test_a_failing_token_source_is_an_error_in_the_state(make_session: SessionFactory) -> None:
    def refuse(request: object) -> Any:
        raise RuntimeError("the auth service is down")

    session = Session(CustomTokenSource(refuse))
    with pytest.raises(TokenSourceError):
        await session.start()
    state = session.state
    assert state.connection.status is ConnectionStatus.DISCONNECTED
    assert state.connection.error is not None and "the auth service is down" in state.connection.error


async def test_a_wrong_server_url_is_an_error_in_words(livekit_server: LiveKitServer) -> None:
    from tests.harness.server import free_port

    tokens = DevelopmentTokenSource(f"ws://127.0.0.1:{free_port()}", livekit_server.api_key,
                                    livekit_server.api_secret)
    session = Session(tokens)
    with pytest.raises(ConnectionFailedError) as raised:
        await asyncio.wait_for(session.start(), timeout=30)
    assert "Could not connect" in str(raised.value)
    assert session.state.connection.error is not None
    assert livekit_server.api_secret not in str(raised.value)


def test_a_session_runs_on_a_loop_thread_for_hosts_without_asyncio(livekit_server: LiveKitServer,
                                                                    room_name: str) -> None:
    threads_before = set(threading.enumerate())
    delivered_on: set[str] = set()
    states: list[SessionState] = []
    with LoopThread() as loop_thread:
        tokens = DevelopmentTokenSource(livekit_server.url, livekit_server.api_key, livekit_server.api_secret)
        session = Session(tokens, room_name=room_name, options=SessionOptions(agent_connect_timeout=None))

        def on_state(state: SessionState) -> None:
            delivered_on.add(threading.current_thread().name)
            states.append(state)

        session.states.subscribe(on_state)
        loop_thread.run(session.start(wait_for_agent=False), timeout=15)
        assert session.state.connection.is_connected
        loop_thread.run(session.end(), timeout=15)
    assert delivered_on <= {"lkstate-loop", threading.current_thread().name}
    assert "lkstate-loop" in delivered_on
    leftover = {t for t in threading.enumerate() if t not in threads_before and t.name == "lkstate-loop"}
    assert not leftover
    assert states[-1].connection.status is ConnectionStatus.DISCONNECTED
