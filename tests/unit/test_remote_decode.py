"""The remote-session decoder: what the agent's session host says becomes state.

Payloads are built by the real agent framework wherever it can build them —
``livekit.agents._proto.encode_chat_item`` on real chat items, and the real
``SessionHost`` listening to a real ``AgentSession`` — so these tests hold the
decoder to what a real agent sends, not to our reading of the schema.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from livekit.protocol.agent_pb import agent_session as pb

from lkstate._core.remote_state import (
    MAX_ERRORS,
    MAX_PROBLEMS,
    MAX_TOOL_PROGRESS,
    AgentConfigUpdateItem,
    AgentHandoffItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    LLMUsage,
    MessageItem,
    RemoteSessionState,
    STTUsage,
    TTSUsage,
    apply_remote_payload,
    merge_conversation_items,
)

agents = pytest.importorskip("livekit.agents")
from livekit.agents import llm  # noqa: E402
from livekit.agents._proto import encode_chat_item  # noqa: E402
from livekit.agents.voice.remote_session import SessionHost, SessionTransport  # noqa: E402

NOW = 1_700_000_000.0


def fold(payloads: list[bytes], state: RemoteSessionState | None = None) -> RemoteSessionState:
    state = RemoteSessionState() if state is None else state
    for i, payload in enumerate(payloads):
        state = apply_remote_payload(state, payload, at=NOW + i)
    return state


def event_payload(event: pb.AgentSessionEvent) -> bytes:
    return pb.AgentSessionMessage(event=event).SerializeToString()


def item_added(item: Any) -> bytes:
    """A conversation_item_added event carrying ``item``, encoded by the framework."""
    return event_payload(
        pb.AgentSessionEvent(
            conversation_item_added=pb.AgentSessionEvent.ConversationItemAdded(
                item=encode_chat_item(item)
            )
        )
    )


def agent_state(name: int) -> bytes:
    return event_payload(
        pb.AgentSessionEvent(
            agent_state_changed=pb.AgentSessionEvent.AgentStateChanged(new_state=name)  # type: ignore[arg-type]
        )
    )


# --- conversation items, encoded by the framework ------------------------------------


def test_an_assistant_message_keeps_its_text_interruption_and_latencies() -> None:
    message = llm.ChatMessage(
        role="assistant",
        content=["Hello there.", "How can I help?"],
        interrupted=True,
        created_at=1000.25,
        metrics={
            "started_speaking_at": 1001.5,
            "llm_node_ttft": 0.25,
            "tts_node_ttfb": 0.125,
            "e2e_latency": 0.75,
        },
    )

    state = fold([item_added(message)])

    (item,) = state.items
    assert isinstance(item, MessageItem)
    assert item.kind == "message"
    assert item.id == message.id
    assert item.role == "assistant"
    assert item.text == "Hello there.\nHow can I help?"
    assert item.interrupted is True
    assert item.created_at == pytest.approx(1000.25)
    assert item.metrics.llm_node_ttft == pytest.approx(0.25)
    assert item.metrics.tts_node_ttfb == pytest.approx(0.125)
    assert item.metrics.e2e_latency == pytest.approx(0.75)
    assert item.metrics.started_speaking_at == pytest.approx(1001.5)
    assert item.metrics.end_of_turn_delay is None


def test_a_user_message_keeps_its_turn_taking_delays_and_confidence() -> None:
    message = llm.ChatMessage(
        role="user",
        content=["what's the weather"],
        transcript_confidence=0.875,
        metrics={"end_of_turn_delay": 0.5, "transcription_delay": 0.25},
    )

    (item,) = fold([item_added(message)]).items

    assert isinstance(item, MessageItem)
    assert item.role == "user"
    assert item.transcript_confidence == pytest.approx(0.875)
    assert item.metrics.end_of_turn_delay == pytest.approx(0.5)
    assert item.metrics.transcription_delay == pytest.approx(0.25)
    assert item.metrics.llm_node_ttft is None


def test_function_call_items_become_items_and_a_finished_tool_call() -> None:
    call = llm.FunctionCall(call_id="call_7", name="get_time", arguments='{"tz": "UTC"}')
    output = llm.FunctionCallOutput(call_id="call_7", name="get_time", output="noon", is_error=False)

    state = fold([item_added(call), item_added(output)])

    assert [item.kind for item in state.items] == ["function_call", "function_call_output"]
    first, second = state.items
    assert isinstance(first, FunctionCallItem) and first.arguments == '{"tz": "UTC"}'
    assert isinstance(second, FunctionCallOutputItem) and second.output == "noon"
    tool = state.tool_call("call_7")
    assert tool is not None
    assert (tool.name, tool.arguments, tool.status, tool.output) == (
        "get_time",
        '{"tz": "UTC"}',
        "done",
        "noon",
    )
    assert tool.item_id == call.id


def test_a_failed_tool_output_marks_the_call_as_an_error() -> None:
    output = llm.FunctionCallOutput(call_id="c", name="t", output="boom", is_error=True)

    tool = fold([item_added(output)]).tool_call("c")

    assert tool is not None and tool.status == "error" and tool.is_error


def test_handoffs_and_config_updates_are_items_and_the_handoff_names_the_agent() -> None:
    first = llm.AgentHandoff(new_agent_id="greeter")
    second = llm.AgentHandoff(old_agent_id="greeter", new_agent_id="billing")
    config = llm.AgentConfigUpdate(instructions="be brief", tools_added=["refund"])

    state = fold([item_added(first), item_added(config), item_added(second)])

    assert state.agent_id == "billing"
    assert [h.new_agent_id for h in state.handoffs] == ["greeter", "billing"]
    assert state.handoffs[0].old_agent_id is None
    assert isinstance(state.items[1], AgentConfigUpdateItem)
    assert state.items[1].instructions == "be brief"
    assert state.items[1].tools_added == ("refund",)


# --- the real session host, listening to a real session -----------------------------


class CaptureTransport(SessionTransport):
    """The host's transport: keeps every message it sends, receives nothing."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self._closed = asyncio.Event()

    async def start(self) -> None:
        pass

    async def send_message(self, msg: pb.AgentSessionMessage) -> None:
        self.sent.append(msg.SerializeToString())

    async def close(self) -> None:
        self._closed.set()

    def __aiter__(self) -> AsyncIterator[pb.AgentSessionMessage]:
        return self

    async def __anext__(self) -> pb.AgentSessionMessage:
        await self._closed.wait()
        raise StopAsyncIteration


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
    async def lookup_weather(self, ctx: agents.RunContext, city: str) -> str:
        """Look up the weather in a city."""
        await ctx.update(f"checking the sky over {city}")
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


async def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition did not become true in time")
        await asyncio.sleep(0.01)


@pytest.mark.agent
async def test_a_turn_with_a_tool_call_through_the_real_session_host_is_reconstructed() -> None:
    session: Any = agents.AgentSession(llm=NoModel())
    transport = CaptureTransport()
    host = SessionHost(transport)
    host.register_session(session)
    await host.start()
    try:
        await session.start(agent=WeatherAgent())
        await session.run(user_input="what's the weather?")

        def reply_completed() -> bool:
            tool = fold(transport.sent).tool_call("call_1")
            return tool is not None and tool.reply_status == "completed"

        await wait_until(reply_completed)
    finally:
        await host.aclose()
        await session.aclose()

    state = fold(transport.sent)

    assert state.problems == ()
    assert state.agent_id == "weather_agent"
    assert state.agent_state == "listening"
    messages = [item for item in state.items if isinstance(item, MessageItem)]
    assert [(m.role, m.text) for m in messages][:2] == [
        ("user", "what's the weather?"),
        ("assistant", "It is sunny in Paris."),
    ]
    assert messages[1].metrics.llm_node_ttft is not None
    tool = state.tool_call("call_1")
    assert tool is not None
    assert (tool.name, tool.arguments, tool.status) == ("lookup_weather", '{"city": "Paris"}', "done")
    assert tool.progress == ("checking the sky over Paris",)
    assert tool.message == "sunny in Paris"
    assert tool.reply_status == "completed"
    assert tool.started_at is not None and tool.ended_at is not None
    assert tool.started_at <= tool.ended_at
    assert state.message_count >= len(messages)


@pytest.mark.agent
async def test_session_events_emitted_by_a_real_session_reach_the_state() -> None:
    from livekit.agents.inference.interruption import OverlappingSpeechEvent
    from livekit.agents.metrics import (
        AgentSessionUsage,
        LLMModelUsage,
        STTModelUsage,
        TTSModelUsage,
    )
    from livekit.agents.voice.events import (
        AgentFalseInterruptionEvent,
        ErrorEvent,
        SessionUsageUpdatedEvent,
        ToolCallEnded,
        ToolCallStarted,
        ToolExecutionUpdatedEvent,
        UserInputTranscribedEvent,
        UserStateChangedEvent,
    )

    session: Any = agents.AgentSession()
    transport = CaptureTransport()
    host = SessionHost(transport)
    host.register_session(session)
    await host.start()
    usage = AgentSessionUsage(
        model_usage=[
            LLMModelUsage(provider="acme", model="big", input_tokens=120, output_tokens=30),
            TTSModelUsage(provider="acme", model="voice", characters_count=400, audio_duration=12.5),
            STTModelUsage(provider="acme", model="ears", audio_duration=20.0),
        ]
    )
    try:
        session.emit("user_state_changed", UserStateChangedEvent(old_state="listening", new_state="speaking"))
        session.emit("user_input_transcribed", UserInputTranscribedEvent(transcript="hel", is_final=False))
        session.emit("user_input_transcribed", UserInputTranscribedEvent(transcript="hello", is_final=True))
        session.emit(
            "overlapping_speech",
            OverlappingSpeechEvent(is_interruption=True, detection_delay=0.25, detected_at=NOW),
        )
        session.emit("agent_false_interruption", AgentFalseInterruptionEvent(resumed=True))
        session.emit("session_usage_updated", SessionUsageUpdatedEvent(usage=usage))
        session.emit("error", ErrorEvent(error=RuntimeError("tts quota exceeded"), source=None))
        call = llm.FunctionCall(call_id="slow_1", name="book", arguments="{}")
        session.emit("tool_execution_updated", ToolExecutionUpdatedEvent(update=ToolCallStarted(function_call=call)))
        session.emit(
            "tool_execution_updated",
            ToolExecutionUpdatedEvent(
                update=ToolCallEnded(id="slow_1", call_id="slow_1", status="cancelled")
            ),
        )
    finally:
        await host.aclose()  # flushes what was queued
        await session.aclose()

    state = fold(transport.sent)

    assert state.problems == ()
    assert state.user_state == "speaking"
    assert state.last_user_transcript == ("hello", True)
    assert state.overlapping_speech_count == 1
    assert state.last_overlapping_speech is not None
    assert state.last_overlapping_speech.is_interruption is True
    assert state.last_overlapping_speech.detection_delay == pytest.approx(0.25)
    assert state.last_overlapping_speech.detected_at == pytest.approx(NOW)
    assert state.false_interruption_count == 1
    assert state.last_false_interruption is not None and state.last_false_interruption.resumed
    assert state.usage is not None
    assert state.usage.models == (
        LLMUsage(provider="acme", model="big", input_tokens=120, output_tokens=30),
        TTSUsage(provider="acme", model="voice", characters_count=400, audio_duration=12.5),
        STTUsage(provider="acme", model="ears", audio_duration=20.0),
    )
    assert state.errors == ("tts quota exceeded",)
    tool = state.tool_call("slow_1")
    assert tool is not None and tool.status == "cancelled" and tool.name == "book"


# --- tool calls arriving in any order ------------------------------------------------


def tool_update(update: pb.AgentSessionEvent.ToolExecutionUpdated, created_at: float) -> bytes:
    event = pb.AgentSessionEvent(tool_execution_updated=update)
    event.created_at.FromNanoseconds(int(created_at * 1e9))
    return event_payload(event)


TEU = pb.AgentSessionEvent.ToolExecutionUpdated


def started(call_id: str, at: float) -> bytes:
    fc = pb.FunctionCall(id=f"item/{call_id}", call_id=call_id, name="search", arguments="{}")
    return tool_update(TEU(started=TEU.Started(function_call=fc)), at)


def progress(call_id: str, message: str, at: float, update_id: str | None = None) -> bytes:
    u = TEU.CallUpdated(id=update_id or call_id, call_id=call_id, message=message)
    return tool_update(TEU(call_updated=u), at)


def ended(call_id: str, status: int, at: float) -> bytes:
    e = TEU.Ended(id=call_id, call_id=call_id, status=status, message="result")  # type: ignore[arg-type]
    return tool_update(TEU(ended=e), at)


def test_a_tool_call_goes_started_running_done_with_the_agents_times() -> None:
    state = fold([started("a", 10.0)])
    tool = state.tool_call("a")
    assert tool is not None
    assert (tool.status, tool.name, tool.item_id) == ("started", "search", "item/a")
    assert tool.started_at == pytest.approx(10.0) and tool.ended_at is None

    state = fold([progress("a", "halfway", 11.0)], state)
    tool = state.tool_call("a")
    assert tool is not None and tool.status == "running" and tool.progress == ("halfway",)

    state = fold([ended("a", pb.TC_DONE, 12.0)], state)
    tool = state.tool_call("a")
    assert tool is not None
    assert (tool.status, tool.message) == ("done", "result")
    assert tool.started_at == pytest.approx(10.0) and tool.ended_at == pytest.approx(12.0)


def test_a_finished_tool_call_is_not_unfinished_by_late_events() -> None:
    state = fold([ended("a", pb.TC_ERROR, 12.0), started("a", 10.0), progress("a", "late", 11.0)])

    tool = state.tool_call("a")
    assert tool is not None
    assert tool.status == "error"
    assert tool.name == "search"
    assert tool.started_at == pytest.approx(10.0)


def test_a_tool_call_keeps_only_its_latest_progress_messages() -> None:
    payloads = [progress("a", f"step {i}", float(i)) for i in range(MAX_TOOL_PROGRESS + 5)]

    tool = fold(payloads).tool_call("a")

    assert tool is not None
    assert len(tool.progress) == MAX_TOOL_PROGRESS
    assert tool.progress[-1] == f"step {MAX_TOOL_PROGRESS + 4}"


def test_a_deferred_reply_is_matched_to_its_call_by_update_id() -> None:
    reply = TEU(
        reply_updated=TEU.ReplyUpdated(
            update_ids=["a_update_2", "b_final", "nobody_update_1"],
            status=pb.TR_INTERRUPTED,
            speech_id="speech_1",
        )
    )

    state = fold([started("a", 1.0), started("b", 1.0), started("c", 1.0), tool_update(reply, 2.0)])

    assert [t.reply_status for t in state.tool_calls] == ["interrupted", "interrupted", None]


# --- what cannot be used becomes a problem, and nothing else changes ------------------


def test_garbage_bytes_are_a_problem_and_change_nothing_else() -> None:
    before = fold([agent_state(pb.AS_SPEAKING)])

    after = apply_remote_payload(before, b"\xff\xff\xff\xff not protobuf", at=NOW)

    assert len(after.problems) == 1
    assert "not a valid AgentSessionMessage" in after.problems[0]
    assert attrs.evolve(after, problems=(), problem_count=0) == before


def test_a_truncated_real_payload_is_a_problem() -> None:
    payload = item_added(llm.ChatMessage(role="assistant", content=["a long enough reply"]))

    state = apply_remote_payload(RemoteSessionState(), payload[: len(payload) // 2], at=NOW)

    assert len(state.items) == 0
    assert state.problem_count == 1
    assert "cut short" in state.problems[0]


def test_an_oversized_event_is_a_problem_that_names_the_limit() -> None:
    payload = item_added(llm.ChatMessage(role="assistant", content=["x" * 5000]))

    state = apply_remote_payload(RemoteSessionState(), payload, at=NOW, max_bytes=1000)

    assert len(state.items) == 0
    assert "1,000-byte limit" in state.problems[0]


def test_an_oversized_response_is_left_to_the_client_silently() -> None:
    history = pb.SessionResponse.GetChatHistoryResponse(
        items=[encode_chat_item(llm.ChatMessage(role="user", content=["y" * 5000]))]
    )
    payload = pb.AgentSessionMessage(
        response=pb.SessionResponse(request_id="r1", get_chat_history=history)
    ).SerializeToString()
    state = RemoteSessionState()

    assert apply_remote_payload(state, payload, at=NOW, max_bytes=1000) is state


def test_an_empty_payload_is_a_problem() -> None:
    state = apply_remote_payload(RemoteSessionState(), b"", at=NOW)

    assert state.problems == ("Ignored an empty remote-session message from the agent.",)


def test_a_message_kind_from_a_newer_agent_is_a_problem_naming_the_field() -> None:
    # field 15, length-delimited, holding an empty message: valid protobuf,
    # but no such field in AgentSessionMessage
    payload = bytes([(15 << 3) | 2, 0])

    state = apply_remote_payload(RemoteSessionState(), payload, at=NOW)

    assert state.problem_count == 1
    assert "field 15" in state.problems[0]
    assert "does not know" in state.problems[0]


def test_an_event_kind_from_a_newer_agent_is_a_problem_naming_the_field() -> None:
    tag = (40 << 3) | 2  # field 40, length-delimited: two varint bytes
    unknown_event = bytes([(tag & 0x7F) | 0x80, tag >> 7, 0])
    payload = bytes([(3 << 3) | 2, len(unknown_event)]) + unknown_event

    state = apply_remote_payload(RemoteSessionState(), payload, at=NOW)

    assert state.problem_count == 1
    assert "session event" in state.problems[0]
    assert "field 40" in state.problems[0]


def test_an_unknown_agent_state_number_keeps_the_previous_state() -> None:
    state = fold([agent_state(pb.AS_THINKING), agent_state(42)])

    assert state.agent_state == "thinking"
    assert "agent state number 42" in state.problems[0]


def test_problems_keep_only_the_latest_but_count_them_all() -> None:
    state = fold([b"\xff" * (i + 1) for i in range(MAX_PROBLEMS + 7)])

    assert len(state.problems) == MAX_PROBLEMS
    assert state.problem_count == MAX_PROBLEMS + 7
    assert f"{MAX_PROBLEMS + 7:,} bytes" in state.problems[-1]


def test_agent_errors_keep_only_the_latest_but_count_them_all() -> None:
    payloads = [
        event_payload(pb.AgentSessionEvent(error=pb.AgentSessionEvent.Error(message=f"e{i}")))
        for i in range(MAX_ERRORS + 3)
    ]

    state = fold(payloads)

    assert len(state.errors) == MAX_ERRORS
    assert state.error_count == MAX_ERRORS + 3
    assert state.errors[-1] == f"e{MAX_ERRORS + 2}"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_no_payload_makes_the_decoder_raise(payload: bytes) -> None:
    state = apply_remote_payload(RemoteSessionState(), payload, at=NOW)

    assert isinstance(state, RemoteSessionState)


REAL_PAYLOAD = item_added(
    llm.ChatMessage(
        id="m1", role="assistant", content=["hi"], created_at=NOW, metrics={"e2e_latency": 1.0}
    )
)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_corrupted_real_payload_never_makes_the_decoder_raise(data: st.DataObject) -> None:
    payload = bytearray(REAL_PAYLOAD)
    position = data.draw(st.integers(0, len(payload) - 1))
    payload[position] = data.draw(st.integers(0, 255))

    state = apply_remote_payload(RemoteSessionState(), bytes(payload), at=NOW)

    assert isinstance(state, RemoteSessionState)


# --- unchanged means the identical object --------------------------------------------


def test_payloads_that_change_nothing_return_the_identical_state() -> None:
    message = llm.ChatMessage(role="user", content=["hi"])
    state = fold([agent_state(pb.AS_LISTENING), item_added(message)])
    response = pb.AgentSessionMessage(
        response=pb.SessionResponse(request_id="nobody", pong=pb.SessionResponse.Pong())
    )
    request = pb.AgentSessionMessage(
        request=pb.SessionRequest(request_id="x", ping=pb.SessionRequest.Ping())
    )
    audio = pb.AgentSessionMessage(audio_output=pb.AgentSessionMessage.ConsoleIO.AudioFrame(data=b"\0\0"))
    debug = pb.AgentSessionEvent(debug_message=pb.DebugMessage())

    for payload in [
        agent_state(pb.AS_LISTENING),  # the same state again
        item_added(message),  # the same item again
        response.SerializeToString(),
        request.SerializeToString(),
        audio.SerializeToString(),
        event_payload(debug),
    ]:
        assert apply_remote_payload(state, payload, at=NOW + 99) is state


def test_message_count_counts_only_payloads_that_changed_the_state() -> None:
    state = fold(
        [agent_state(pb.AS_LISTENING), agent_state(pb.AS_LISTENING), agent_state(pb.AS_THINKING)]
    )

    assert state.message_count == 2


def test_an_item_sent_again_with_changes_replaces_the_first_in_place() -> None:
    first = llm.ChatMessage(id="m1", role="assistant", content=["Hel"])
    later = llm.ChatMessage(id="m1", role="assistant", content=["Hello"], interrupted=True)
    other = llm.ChatMessage(id="m2", role="user", content=["hi"])

    state = fold([item_added(first), item_added(other), item_added(later)])

    assert [item.id for item in state.items] == ["m1", "m2"]
    assert isinstance(state.items[0], MessageItem) and state.items[0].text == "Hello"


def test_the_same_payloads_give_equal_hashable_states() -> None:
    payloads = [
        agent_state(pb.AS_SPEAKING),
        item_added(llm.ChatMessage(id="m1", role="assistant", content=["hi"], created_at=5.0)),
        started("a", 1.0),
        b"garbage",
    ]

    a, b = fold(payloads), fold(payloads)

    assert a == b and hash(a) == hash(b)
    assert a != fold(payloads[:-1])


# --- long sessions ------------------------------------------------------------------


def test_a_long_session_keeps_every_item_and_old_snapshots_stay_as_they_were() -> None:
    count = 5000
    state = RemoteSessionState()
    snapshots: list[RemoteSessionState] = []
    for i in range(count):
        message = pb.ChatMessage(id=f"m{i}", role=pb.USER, content=[pb.ChatMessage.ChatContent(text=str(i))])
        payload = event_payload(
            pb.AgentSessionEvent(
                conversation_item_added=pb.AgentSessionEvent.ConversationItemAdded(
                    item=pb.ChatContext.ChatItem(message=message)
                )
            )
        )
        state = apply_remote_payload(state, payload, at=NOW + i)
        if i in (0, count // 2):
            snapshots.append(state)
        if i == 10:
            state = apply_remote_payload(state, started("early", 1.0), at=NOW)

    assert len(state.items) == count
    assert [len(s.items) for s in snapshots] == [1, count // 2 + 1]
    found = state.item(f"m{count - 1}")
    assert isinstance(found, MessageItem) and found.text == str(count - 1)
    state = apply_remote_payload(state, ended("early", pb.TC_DONE, 2.0), at=NOW)
    tool = state.tool_call("early")
    assert tool is not None and tool.status == "done"


# --- seeding from a fetched chat history ----------------------------------------------


def test_a_fetched_history_goes_before_live_items_without_duplicates() -> None:
    live = fold(
        [
            item_added(llm.ChatMessage(id="m3", role="user", content=["third"])),
            item_added(llm.ChatMessage(id="m4", role="assistant", content=["fourth"])),
        ]
    )
    history = [
        AgentHandoffItem(id="h1", new_agent_id="greeter"),
        MessageItem(id="m2", role="assistant", text="second"),
        FunctionCallItem(id="f1", call_id="c1", name="lookup", arguments="{}"),
        MessageItem(id="m3", role="user", text="third"),
    ]

    merged = merge_conversation_items(live, history, at=NOW)

    assert [item.id for item in merged.items] == ["h1", "m2", "f1", "m3", "m4"]
    assert merged.agent_id == "greeter"
    assert merged.tool_call("c1") is not None
    assert merged.item("m4") is not None
    assert merge_conversation_items(merged, history, at=NOW) is merged
