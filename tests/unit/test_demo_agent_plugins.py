"""The demo agent's offline models behave as documented, without a room.

These are the deterministic parts the wire tests lean on: what the scripted
LLM answers, how long the tone TTS speaks, and when the scripted STT says
what it heard — and that it keeps every byte it was given.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("livekit.agents")

from livekit import rtc  # noqa: E402
from livekit.agents import llm, stt  # noqa: E402

from lkstate.demo_agent import (  # noqa: E402
    DemoAgent,
    ScriptedLLM,
    ScriptedSTT,
    ToneTTS,
    ToolRule,
    weather_report,
)


def chat(*turns: str) -> llm.ChatContext:
    ctx = llm.ChatContext.empty()
    for index, text in enumerate(turns):
        ctx.add_message(role="user" if index % 2 == 0 else "assistant", content=text)
    return ctx


async def collect(model: ScriptedLLM, ctx: llm.ChatContext, tools: list[llm.Tool] | None = None) -> list[llm.ChatChunk]:
    async with model.chat(chat_ctx=ctx, tools=tools or []) as stream:
        return [chunk async for chunk in stream]


def text_of(chunks: list[llm.ChatChunk]) -> str:
    return "".join(c.delta.content or "" for c in chunks if c.delta)


async def test_the_llm_streams_its_reply_in_word_sized_tokens() -> None:
    model = ScriptedLLM(["One two three."], token_delay=0)
    chunks = await collect(model, chat("hi"))
    contents = [c.delta.content for c in chunks if c.delta and c.delta.content]
    assert contents == ["One ", "two ", "three."]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


async def test_the_llm_gives_the_nth_reply_to_the_nth_request_and_then_repeats_the_last() -> None:
    model = ScriptedLLM(["first", "second"], token_delay=0)
    replies = [text_of(await collect(model, chat("x"))) for _ in range(3)]
    assert replies == ["first", "second", "second"]
    assert len(model.requests) == 3


async def test_the_llm_echoes_the_user_by_default() -> None:
    assert text_of(await collect(ScriptedLLM(token_delay=0), chat("good morning"))) == "You said: good morning"


async def test_a_matching_rule_becomes_a_tool_call_only_when_the_tool_is_offered() -> None:
    tools = list(DemoAgent().tools)
    model = ScriptedLLM(["no tool"], token_delay=0)

    offered = await collect(model, chat("what's the weather in New York?"), tools)
    calls = [call for c in offered if c.delta for call in c.delta.tool_calls]
    assert [(call.name, json.loads(call.arguments)) for call in calls] == [("get_weather", {"city": "New York"})]
    assert text_of(offered) == ""

    not_offered = await collect(model, chat("what's the weather in New York?"), [])
    assert text_of(not_offered) == "no tool"


async def test_after_a_tool_ran_the_llm_speaks_its_output() -> None:
    ctx = chat("weather in Oslo?")
    ctx.insert(llm.FunctionCall(call_id="c1", name="get_weather", arguments='{"city": "Oslo"}'))
    ctx.insert(llm.FunctionCallOutput(call_id="c1", name="get_weather", output=weather_report("Oslo"), is_error=False))
    chunks = await collect(ScriptedLLM(["unused"], token_delay=0), ctx, list(DemoAgent().tools))
    assert text_of(chunks) == weather_report("Oslo")


def test_tool_rules_pass_named_groups_as_arguments() -> None:
    rule = ToolRule(r"call (?P<who>\w+) at (?P<when>\d+)", "schedule")
    assert rule.match("please call Ada at 9 tomorrow") == {"who": "Ada", "when": "9"}
    assert rule.match("nothing to see") is None


def test_the_tone_lasts_longer_for_longer_text_and_is_capped() -> None:
    tts = ToneTTS(ms_per_char=60, max_duration=3.0)
    short, longer = tts.duration_for("Hi there."), tts.duration_for("Hi there, how are you doing today?")
    assert 0.3 < short < longer <= 3.0
    assert tts.duration_for(" ".join(["word"] * 200)) == pytest.approx(3.0)
    assert tts.duration_for("") == 0.0


async def test_the_tts_emits_real_audio_of_the_predicted_length() -> None:
    tts = ToneTTS(sample_rate=24000)
    frames = [event.frame async for event in tts.synthesize("Hello world")]
    pcm = b"".join(frame.data.tobytes() for frame in frames)
    assert {frame.sample_rate for frame in frames} == {24000}
    rendered = tts.render("Hello world")
    # the framework's emitter may close the segment with a 10 ms silent marker
    assert pcm[: len(rendered)] == rendered
    assert set(pcm[len(rendered) :]) <= {0} and len(pcm) - len(rendered) <= 2 * 240
    assert np.abs(np.frombuffer(pcm, dtype=np.int16)).max() > 1000, "not silence"
    assert tts.spoken == ["Hello world"]


def frame(level: int, ms: int = 50, rate: int = 24000) -> rtc.AudioFrame:
    n = rate * ms // 1000
    samples = (level * np.sin(np.arange(n) * 2 * np.pi * 440 / rate)).astype(np.int16)
    return rtc.AudioFrame(samples.tobytes(), rate, 1, n)


async def test_the_stt_turns_a_loud_stretch_then_silence_into_one_utterance() -> None:
    model = ScriptedSTT(["alpha beta gamma"], interim_every_ms=100, silence_ms=300)
    stream = model.stream()
    pushed = [frame(0)] * 4 + [frame(8000)] * 8 + [frame(0)] * 8  # 200 ms quiet, 400 ms loud, 400 ms quiet
    for f in pushed:
        stream.push_frame(f)
    stream.end_input()
    events = [event async for event in stream if event.type != stt.SpeechEventType.RECOGNITION_USAGE]
    await stream.aclose()

    kinds = [e.type for e in events]
    assert kinds[0] == stt.SpeechEventType.START_OF_SPEECH
    assert kinds[-2:] == [stt.SpeechEventType.FINAL_TRANSCRIPT, stt.SpeechEventType.END_OF_SPEECH]
    interims = [e.alternatives[0].text for e in events if e.type == stt.SpeechEventType.INTERIM_TRANSCRIPT]
    assert interims == ["alpha", "alpha beta", "alpha beta gamma", "alpha beta gamma"]
    assert events[-2].alternatives[0].text == "alpha beta gamma"
    assert model.utterances == ["alpha beta gamma"]
    assert model.received_pcm() == b"".join(f.data.tobytes() for f in pushed)
    assert model.received_audio().duration == pytest.approx(1.0)


async def test_the_stt_stays_silent_about_silence() -> None:
    model = ScriptedSTT()
    stream = model.stream()
    for _ in range(10):
        stream.push_frame(frame(100))  # below the threshold
    stream.end_input()
    events = [event async for event in stream]
    await stream.aclose()
    assert events == []
    assert model.utterances == []


async def test_the_stt_uses_each_scripted_transcript_once_then_repeats_the_last() -> None:
    model = ScriptedSTT(["one", "two"], silence_ms=100)
    stream = model.stream()
    for _ in range(3):
        for f in [frame(8000)] * 4 + [frame(0)] * 4:
            stream.push_frame(f)
    stream.end_input()
    finals = [e.alternatives[0].text async for e in stream if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT]
    await stream.aclose()
    assert finals == ["one", "two", "two"]
