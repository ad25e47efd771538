"""The remote-session client, asking the real agent framework's session host.

The client talks to a real ``SessionHost`` serving a real ``AgentSession``
(no plugins: a scripted agent stands in for the LLM). Only the room is
replaced, by an in-memory pipe that carries the same serialized
``AgentSessionMessage`` bytes a byte stream would. Timeouts, closing and
failures that need a misbehaving peer use a hand-written peer instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from livekit.protocol.agent_pb import agent_session as pb

from lkstate._core import errors as _errors
from lkstate._wire.remote_client import RemoteSessionClient
from lkstate._core.remote_state import (
    AgentConfigUpdateItem,
    AgentHandoffItem,
    MessageItem,
    SessionUsage,
)

agents = pytest.importorskip("livekit.agents")
from livekit.agents import llm  # noqa: E402
from livekit.agents.voice.remote_session import SessionHost, SessionTransport  # noqa: E402


class HostSide(SessionTransport):
    """The host's end of an in-memory pipe: what it sends goes to the client."""

    def __init__(self, deliver: Callable[[bytes], None]) -> None:
        self._deliver = deliver
        self._inbox: asyncio.Queue[pb.AgentSessionMessage | None] = asyncio.Queue()

    def push(self, payload: bytes) -> None:
        msg = pb.AgentSessionMessage()
        msg.ParseFromString(payload)
        self._inbox.put_nowait(msg)

    async def start(self) -> None:
        pass

    async def send_message(self, msg: pb.AgentSessionMessage) -> None:
        # delivered on a later loop turn, as a byte stream would be
        asyncio.get_running_loop().call_soon(self._deliver, msg.SerializeToString())

    async def close(self) -> None:
        self._inbox.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[pb.AgentSessionMessage]:
        return self

    async def __anext__(self) -> pb.AgentSessionMessage:
        msg = await self._inbox.get()
        if msg is None:
            raise StopAsyncIteration
        return msg


class NoModel(llm.LLM):
    """The session insists on an LLM object; the agent below never calls it."""

    def chat(self, **kwargs: Any) -> Any:
        raise NotImplementedError


class WeatherAgent(agents.Agent):
    """Answers the first turn with a tool call, then speaks a fixed reply."""

    def __init__(self) -> None:
        super().__init__(instructions="You report the weather.")
        self._turns = 0

    @agents.function_tool
    async def lookup_weather(self, city: str) -> str:
        """Look up the weather in a city."""
        return f"sunny in {city}"

    async def llm_node(self, chat_ctx: Any, tools: Any, model_settings: Any) -> Any:  # type: ignore[override]
        self._turns += 1
        if self._turns == 1:
            yield llm.ChatChunk(
                id="chunk_1",
                delta=llm.ChoiceDelta(
                    role="assistant",
                    tool_calls=[
                        llm.FunctionToolCall(
                            name="lookup_weather", arguments='{"city": "Paris"}', call_id="call_1"
                        )
                    ],
                ),
            )
        else:
            yield "It is sunny in Paris."


class Connected:
    def __init__(self, session: Any, client: RemoteSessionClient) -> None:
        self.session = session
        self.client = client


@pytest.fixture
async def connected() -> AsyncIterator[Connected]:
    """A real AgentSession behind a real SessionHost, and our client talking to it."""
    session: Any = agents.AgentSession(llm=NoModel())
    client: RemoteSessionClient
    host_side = HostSide(lambda payload: client.handle_payload(payload))

    async def send(payload: bytes) -> None:
        host_side.push(payload)

    client = RemoteSessionClient(send, default_timeout=10.0)
    host = SessionHost(host_side)
    host.register_session(session)
    await host.start()
    await session.start(agent=WeatherAgent())
    try:
        yield Connected(session, client)
    finally:
        await client.aclose()
        await host.aclose()
        await session.aclose()


pytestmark = pytest.mark.agent


async def test_ping_measures_a_round_trip(connected: Connected) -> None:
    round_trip = await connected.client.ping()

    assert round_trip > 0
    assert connected.client.pending_requests == 0


async def test_chat_history_returns_what_the_session_recorded(connected: Connected) -> None:
    items = await connected.client.get_chat_history()

    assert [item.kind for item in items] == ["agent_handoff", "agent_config_update"]
    handoff, config = items
    assert isinstance(handoff, AgentHandoffItem) and handoff.new_agent_id == "weather_agent"
    assert isinstance(config, AgentConfigUpdateItem)
    assert config.instructions == "You report the weather."


async def test_agent_info_names_the_agent_its_instructions_and_tools(connected: Connected) -> None:
    info = await connected.client.get_agent_info()

    assert info.id == "weather_agent"
    assert info.instructions == "You report the weather."
    assert info.tools == ("lookup_weather",)


async def test_session_state_reports_states_agent_and_options(connected: Connected) -> None:
    state = await connected.client.get_session_state()

    assert state.agent_state == connected.session.agent_state == "listening"
    assert state.user_state == connected.session.user_state
    assert state.agent_id == "weather_agent"
    assert state.options["max_tool_steps"] == str(connected.session.options.max_tool_steps)
    assert state.started_at is not None
    assert state.started_at == pytest.approx(connected.session._started_at)


async def test_framework_info_reports_the_agents_sdk_version(connected: Connected) -> None:
    info = await connected.client.get_framework_info()

    assert (info.sdk, info.sdk_version) == ("python", agents.__version__)


async def test_session_usage_of_a_session_without_models_is_empty(connected: Connected) -> None:
    usage = await connected.client.get_session_usage()

    assert isinstance(usage, SessionUsage)
    assert usage.models == ()
    assert usage.reported_at is not None


async def test_rtc_stats_of_an_agent_without_a_room_are_empty(connected: Connected) -> None:
    stats = await connected.client.get_rtc_stats()

    assert (stats.publisher, stats.subscriber) == ((), ())


async def test_run_input_returns_the_items_of_the_whole_turn(connected: Connected) -> None:
    items = await connected.client.run_input("what's the weather?")

    # the framework reports what the agent did in the turn; the user's input
    # itself is in the chat history, not in the run's items
    assert [item.kind for item in items] == ["function_call", "function_call_output", "message"]
    reply = items[-1]
    assert isinstance(reply, MessageItem)
    assert (reply.role, reply.text) == ("assistant", "It is sunny in Paris.")
    history = await connected.client.get_chat_history()
    said = [(i.role, i.text) for i in history if isinstance(i, MessageItem)]
    assert said == [("user", "what's the weather?"), ("assistant", "It is sunny in Paris.")]


async def test_an_error_answer_raises_with_the_agents_own_message(connected: Connected) -> None:
    with pytest.raises(_errors.RemoteSessionError) as caught:
        await connected.client.run_input("")

    assert "empty run_input text" in str(caught.value)
    assert caught.value.remedy
    assert not isinstance(caught.value, _errors.RequestTimeoutError)
    assert connected.client.pending_requests == 0


async def test_update_io_switches_only_the_channels_given(connected: Connected) -> None:
    output = connected.session.output
    audio_before = output.audio_enabled

    await connected.client.update_io(output_transcription_enabled=False)

    assert output.transcription_enabled is False
    assert output.audio_enabled == audio_before


async def test_concurrent_requests_each_get_their_own_answer(connected: Connected) -> None:
    client = connected.client

    info, framework, history, _ = await asyncio.gather(
        client.get_agent_info(), client.get_framework_info(), client.get_chat_history(), client.ping()
    )

    assert info.id == "weather_agent"
    assert framework.sdk == "python"
    assert len(history) == 2
    assert client.pending_requests == 0


# --- a hand-written peer, for what a well-behaved host never does --------------------


class Peer:
    """Receives the client's requests; answers only when told to."""

    def __init__(self) -> None:
        self.requests: list[pb.SessionRequest] = []
        self.arrived = asyncio.Event()
        self.client = RemoteSessionClient(self.send, default_timeout=0.2)

    async def send(self, payload: bytes) -> None:
        msg = pb.AgentSessionMessage()
        msg.ParseFromString(payload)
        self.requests.append(msg.request)
        self.arrived.set()

    def answer(self, response: pb.SessionResponse) -> None:
        self.client.handle_payload(pb.AgentSessionMessage(response=response).SerializeToString())

    async def next_request(self) -> pb.SessionRequest:
        await self.arrived.wait()
        self.arrived.clear()
        return self.requests[-1]


async def test_a_request_nobody_answers_times_out_and_leaves_nothing_pending() -> None:
    peer = Peer()

    with pytest.raises(_errors.RequestTimeoutError) as caught:
        await peer.client.get_agent_info(timeout=0.05)

    assert "0.05 seconds" in str(caught.value)
    assert peer.client.pending_requests == 0
    assert len(peer.requests) == 1


async def test_every_request_carries_a_fresh_request_id() -> None:
    peer = Peer()

    for _ in range(3):
        with contextlib.suppress(_errors.RequestTimeoutError):
            await peer.client.ping(timeout=0.01)

    ids = [r.request_id for r in peer.requests]
    assert len(set(ids)) == 3 and all(ids)


async def test_closing_fails_waiting_requests_and_refuses_new_ones() -> None:
    peer = Peer()
    waiting = asyncio.ensure_future(peer.client.get_chat_history(timeout=30))
    await peer.next_request()

    await peer.client.aclose()

    with pytest.raises(_errors.SessionClosedError):
        await waiting
    with pytest.raises(_errors.SessionClosedError):
        await peer.client.ping()
    assert peer.client.pending_requests == 0
    assert peer.client.closed


async def test_a_caller_that_gives_up_leaves_nothing_pending() -> None:
    peer = Peer()
    waiting = asyncio.ensure_future(peer.client.ping(timeout=30))
    request = await peer.next_request()

    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    assert peer.client.pending_requests == 0
    peer.answer(pb.SessionResponse(request_id=request.request_id, pong=pb.SessionResponse.Pong()))


async def test_a_send_that_fails_raises_a_remote_session_error() -> None:
    async def broken(payload: bytes) -> None:
        raise RuntimeError("room session transport is closed")

    client = RemoteSessionClient(broken)

    with pytest.raises(_errors.RemoteSessionError) as caught:
        await client.get_session_state()

    assert "room session transport is closed" in str(caught.value)
    assert client.pending_requests == 0


async def test_only_the_matching_response_resolves_a_request() -> None:
    peer = Peer()
    waiting = asyncio.ensure_future(peer.client.get_framework_info(timeout=5))
    request = await peer.next_request()
    event = pb.AgentSessionMessage(
        event=pb.AgentSessionEvent(error=pb.AgentSessionEvent.Error(message="noise"))
    )

    for noise in [
        b"\xff\xfe garbage",
        b"",
        event.SerializeToString(),
        pb.AgentSessionMessage(
            response=pb.SessionResponse(request_id="someone-else", pong=pb.SessionResponse.Pong())
        ).SerializeToString(),
    ]:
        peer.client.handle_payload(noise)
    await asyncio.sleep(0)
    assert not waiting.done()

    peer.answer(
        pb.SessionResponse(
            request_id=request.request_id,
            get_framework_info=pb.SessionResponse.GetFrameworkInfoResponse(sdk="js", sdk_version="1.0"),
        )
    )

    info = await waiting
    assert (info.sdk, info.sdk_version) == ("js", "1.0")


async def answered(
    peer: Peer, call: Awaitable[Any], response: Callable[[str], pb.SessionResponse]
) -> Any:
    waiting = asyncio.ensure_future(call)
    request = await peer.next_request()
    peer.answer(response(request.request_id))
    return await waiting


async def test_an_internal_error_answer_raises_with_the_agents_message() -> None:
    peer = Peer()

    with pytest.raises(_errors.RemoteSessionError) as caught:
        await answered(
            peer,
            peer.client.get_rtc_stats(),
            lambda rid: pb.SessionResponse(request_id=rid, error="internal error"),
        )

    assert "internal error" in str(caught.value)


async def test_an_answer_of_the_wrong_kind_is_an_error_not_a_wrong_result() -> None:
    peer = Peer()

    with pytest.raises(_errors.RemoteSessionError) as caught:
        await answered(
            peer,
            peer.client.get_chat_history(),
            lambda rid: pb.SessionResponse(request_id=rid, pong=pb.SessionResponse.Pong()),
        )

    assert "something else (pong)" in str(caught.value)


async def test_a_session_state_number_the_client_does_not_know_reads_as_none() -> None:
    peer = Peer()

    def response(rid: str) -> pb.SessionResponse:
        state = pb.SessionResponse.GetSessionStateResponse(agent_state=pb.AS_SPEAKING, agent_id="a")
        state.user_state = 77  # type: ignore[assignment]
        return pb.SessionResponse(request_id=rid, get_session_state=state)

    info = await answered(peer, peer.client.get_session_state(), response)

    assert (info.agent_state, info.user_state, info.started_at) == ("speaking", None, None)


# --- fed from the store ---------------------------------------------------------------------


async def test_following_a_store_answers_from_the_tracked_agent_only_until_closed() -> None:
    from lkstate._core import events as ev
    from lkstate._core.store import Store

    store = Store()
    for event in (
        ev.StartRequested(at=1.0),
        ev.RoomConnected(at=1.1, room_name="room", local_identity="user", server_url="ws://x"),
        ev.ParticipantJoined(at=1.2, identity="agent", name="", kind="agent", attributes=(("lk.agent.state", "listening"),)),
        ev.ParticipantJoined(at=1.3, identity="mallory", name="", kind="standard"),
    ):
        store.dispatch(event)
    peer = Peer()
    peer.client.follow(store)

    def answer_from(sender: str, request: pb.SessionRequest) -> None:
        response = pb.SessionResponse(request_id=request.request_id, pong=pb.SessionResponse.Pong())
        data = pb.AgentSessionMessage(response=response).SerializeToString()
        store.dispatch(ev.AgentSessionPayload(at=2.0, sender=sender, payload=data))

    waiting = asyncio.ensure_future(peer.client.ping(timeout=5))
    request = await peer.next_request()
    answer_from("mallory", request)  # refused by the reducer: the client never hears it
    await asyncio.sleep(0.05)
    assert not waiting.done()
    answer_from("agent", request)
    assert await waiting >= 0

    await peer.client.aclose()
    assert store._taps == []  # noqa: SLF001 - closing leaves no tap behind
