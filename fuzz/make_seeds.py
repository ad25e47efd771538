"""Capture real ``lk.agent.session`` payloads as the seed corpus for the fuzzers.

Fuzzing the remote-session decoder from random bytes mostly exercises the
protobuf parser's "not a valid message" branch. Starting from what a real
agent sends reaches the decoder's own code: each seed here is one
``AgentSessionMessage`` serialized by the real ``SessionHost`` of
livekit-agents, listening to a real ``AgentSession`` that runs one turn with a
tool call (progress update, deferred reply) and emits every other event kind
the host forwards (user state, transcripts, usage, errors, overlapping speech,
false interruptions, handoffs, config updates).

Run it again after upgrading livekit-agents::

    .venv/bin/python fuzz/make_seeds.py          # rewrites fuzz/corpus/remote_payload/

The hypothesis tests (tests/reliability/test_fuzz.py) mutate the same files.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from livekit import agents  # the tool's annotations are resolved in this module's globals
from livekit.protocol.agent_pb import agent_session as pb

CORPUS = Path(__file__).resolve().parent / "corpus" / "remote_payload"


async def capture() -> list[bytes]:
    """Every payload a real session host sent while a real session ran a scripted conversation."""
    from livekit.agents import llm
    from livekit.agents.inference.interruption import OverlappingSpeechEvent
    from livekit.agents.metrics import AgentSessionUsage, LLMModelUsage, STTModelUsage, TTSModelUsage
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
    from livekit.agents.voice.remote_session import SessionHost, SessionTransport

    class Capture(SessionTransport):
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
        def chat(self, **kwargs: Any) -> Any:
            raise NotImplementedError

    class WeatherAgent(agents.Agent):
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
                            llm.FunctionToolCall(name="lookup_weather", arguments='{"city": "Paris"}', call_id="call_1")
                        ],
                    ),
                )
            else:
                yield "It is sunny in Paris."

    session: Any = agents.AgentSession(llm=NoModel())
    transport = Capture()
    host = SessionHost(transport)
    host.register_session(session)
    await host.start()
    try:
        await session.start(agent=WeatherAgent())
        await session.run(user_input="what's the weather?")
        session.emit("user_state_changed", UserStateChangedEvent(old_state="listening", new_state="speaking"))
        session.emit("user_input_transcribed", UserInputTranscribedEvent(transcript="hel", is_final=False))
        session.emit("user_input_transcribed", UserInputTranscribedEvent(transcript="hello", is_final=True))
        session.emit(
            "overlapping_speech",
            OverlappingSpeechEvent(is_interruption=True, detection_delay=0.25, detected_at=1_700_000_000.0),
        )
        session.emit("agent_false_interruption", AgentFalseInterruptionEvent(resumed=True))
        usage = AgentSessionUsage(
            model_usage=[
                LLMModelUsage(provider="acme", model="big", input_tokens=120, output_tokens=30),
                TTSModelUsage(provider="acme", model="voice", characters_count=400, audio_duration=12.5),
                STTModelUsage(provider="acme", model="ears", audio_duration=20.0),
            ]
        )
        session.emit("session_usage_updated", SessionUsageUpdatedEvent(usage=usage))
        session.emit("error", ErrorEvent(error=RuntimeError("tts quota exceeded"), source=None))
        call = llm.FunctionCall(call_id="slow_1", name="book", arguments="{}")
        session.emit("tool_execution_updated", ToolExecutionUpdatedEvent(update=ToolCallStarted(function_call=call)))
        session.emit(
            "tool_execution_updated",
            ToolExecutionUpdatedEvent(update=ToolCallEnded(id="slow_1", call_id="slow_1", status="cancelled")),
        )
        # Items the turn above does not produce, added the way the framework adds them.
        for item in (
            llm.AgentHandoff(old_agent_id="weather_agent", new_agent_id="billing"),
            llm.AgentConfigUpdate(instructions="be brief", tools_added=["refund"], tools_removed=["lookup_weather"]),
        ):
            # model_construct: the event's pydantic type admits fewer item kinds than the host sends.
            event = agents.ConversationItemAddedEvent.model_construct(item=item, created_at=item.created_at)
            session.emit("conversation_item_added", event)
    finally:
        await host.aclose()  # flushes what was queued
        await session.aclose()
    return transport.sent


def kind_of(payload: bytes) -> str:
    msg = pb.AgentSessionMessage.FromString(payload)
    kind = msg.WhichOneof("message") or "unknown"
    if kind == "event":
        kind = msg.event.WhichOneof("event") or "unknown-event"
    return kind


def main() -> int:
    payloads = asyncio.run(capture())
    CORPUS.mkdir(parents=True, exist_ok=True)
    for old in CORPUS.glob("*.bin"):
        old.unlink()
    seen: set[bytes] = set()
    for index, payload in enumerate(payloads):
        if payload in seen:
            continue
        seen.add(payload)
        digest = hashlib.sha1(payload).hexdigest()[:8]
        (CORPUS / f"{index:03d}-{kind_of(payload)}-{digest}.bin").write_bytes(payload)
    print(f"wrote {len(seen)} payloads to {CORPUS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
