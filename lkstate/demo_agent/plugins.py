"""Deterministic, offline stand-ins for the three models of a voice agent.

A real :class:`~livekit.agents.AgentSession` needs an STT, an LLM and a TTS.
The hosted ones need network, keys and patience, and never answer the same way
twice, which is the opposite of what a test or a demo on a plane wants. These
three plug into the same base classes the real plugins use, so everything
between them — turn taking, tool execution, transcription streams, agent
state, audio tracks — is the real framework at work:

- :class:`ScriptedLLM` streams configured replies token by token and calls a
  function tool when the user's words match a rule; after the tool returns it
  answers with the tool's output.
- :class:`ToneTTS` "speaks" a soft tone whose length follows the text, so the
  agent really publishes audio and really spends time speaking.
- :class:`ScriptedSTT` hears the user's audio, keeps every PCM byte it was
  given (tests compare them with what was sent) and produces interim and
  final transcripts by a simple energy rule, so no VAD model is needed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, Never

import attrs
import numpy as np
from livekit import rtc
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
    llm,
    stt,
    tts,
    utils,
)
from livekit.agents.language import LanguageCode
from livekit.agents.utils import AudioBuffer

__all__ = [
    "ToolRule",
    "ScriptedLLM",
    "ToneTTS",
    "ScriptedSTT",
    "ReceivedAudio",
    "WEATHER_RULE",
    "echo_reply",
]

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- LLM


@attrs.frozen
class ToolRule:
    """Call ``tool`` when the latest user message matches ``pattern``.

    The named groups of the match become the tool's JSON arguments, so
    ``ToolRule(r"weather in (?P<city>[A-Za-z ]+)", "get_weather")`` turns
    "what's the weather in Paris" into ``get_weather(city="Paris")``.
    """

    pattern: str
    tool: str
    flags: int = re.IGNORECASE

    def match(self, text: str) -> dict[str, str] | None:
        found = re.search(self.pattern, text, self.flags)
        if found is None:
            return None
        return {key: value.strip() for key, value in found.groupdict().items() if value}


WEATHER_RULE = ToolRule(r"weather\s+(?:in|for|at)\s+(?P<city>[A-Za-z][A-Za-z .'-]*[A-Za-z])", "get_weather")

ReplySource = Sequence[str] | Callable[[llm.ChatContext], str]


def echo_reply(chat_ctx: llm.ChatContext) -> str:
    """The default reply: repeat what the user said, so any input gets an answer."""
    text = _last_user_text(chat_ctx)
    return f"You said: {text}" if text else "I am listening."


def _tool_output(output: llm.FunctionCallOutput) -> str:
    return output.output


def _last_user_text(chat_ctx: llm.ChatContext) -> str:
    for item in reversed(chat_ctx.items):
        if item.type == "message" and item.role == "user":
            return (item.text_content or "").strip()
    return ""


def _tokens(text: str) -> list[str]:
    """Word-sized pieces that join back to ``text`` exactly (spaces ride along)."""
    return re.findall(r"\S+\s*|\s+", text)


class ScriptedLLM(llm.LLM[Never]):
    """An LLM that answers from a script.

    ``replies`` is either a sequence — the n-th user turn gets the n-th reply,
    and the last one repeats — or a callable from the chat context to the reply
    text. Before answering, ``tool_rules`` are tried against the latest user
    message; the first rule whose tool is offered to the model produces a
    function call instead of text. When the framework comes back with the tool
    output, ``follow_up`` turns it into the spoken answer (by default the
    output itself).

    ``token_delay`` seconds pass between streamed tokens, like a real model.
    Every chat context the model was asked about is kept in :attr:`requests`.
    """

    def __init__(
        self,
        replies: ReplySource | None = None,
        *,
        tool_rules: Sequence[ToolRule] = (WEATHER_RULE,),
        follow_up: Callable[[llm.FunctionCallOutput], str] | None = None,
        token_delay: float = 0.02,
    ) -> None:
        super().__init__()
        self._replies: ReplySource = replies if replies is not None else echo_reply
        self._tool_rules = tuple(tool_rules)
        self._follow_up: Callable[[llm.FunctionCallOutput], str] = follow_up or _tool_output
        self.token_delay = token_delay
        self._turn = 0
        self._call_counter = 0
        self.requests: list[llm.ChatContext] = []

    @property
    def model(self) -> str:
        return "scripted"

    @property
    def provider(self) -> str:
        return "lkstate"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        self.requests.append(chat_ctx.copy())
        return _ScriptedLLMStream(
            self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options
        )

    def plan(self, chat_ctx: llm.ChatContext, tools: list[llm.Tool]) -> llm.FunctionToolCall | str:
        """Decide the answer to ``chat_ctx``: a tool call or the reply text.

        Called once per LLM request; advances the reply script.
        """
        items = chat_ctx.items
        if items and items[-1].type == "function_call_output":
            return self._follow_up(items[-1])

        user_text = _last_user_text(chat_ctx)
        offered = {tool.id for tool in tools}
        for rule in self._tool_rules:
            arguments = rule.match(user_text) if rule.tool in offered else None
            if arguments is not None:
                self._call_counter += 1
                return llm.FunctionToolCall(
                    name=rule.tool,
                    arguments=json.dumps(arguments),
                    call_id=f"call_{self._call_counter}",
                )

        if callable(self._replies):
            return self._replies(chat_ctx)
        if not self._replies:
            return ""
        reply = self._replies[min(self._turn, len(self._replies) - 1)]
        self._turn += 1
        return reply


class _ScriptedLLMStream(llm.LLMStream):
    _llm: ScriptedLLM

    async def _run(self) -> None:
        request_id = utils.shortuuid("scripted_")
        plan = self._llm.plan(self._chat_ctx, self._tools)
        completion_tokens = 0
        if isinstance(plan, llm.FunctionToolCall):
            self._event_ch.send_nowait(
                llm.ChatChunk(
                    id=request_id,
                    delta=llm.ChoiceDelta(role="assistant", tool_calls=[plan]),
                )
            )
            completion_tokens = 1
        else:
            for index, token in enumerate(_tokens(plan)):
                if index and self._llm.token_delay > 0:
                    await asyncio.sleep(self._llm.token_delay)
                self._event_ch.send_nowait(
                    llm.ChatChunk(
                        id=request_id, delta=llm.ChoiceDelta(role="assistant", content=token)
                    )
                )
                completion_tokens += 1
        prompt_tokens = sum(len(_tokens(item.text_content or "")) for item in self._chat_ctx.messages())
        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=request_id,
                usage=llm.CompletionUsage(
                    completion_tokens=completion_tokens,
                    prompt_tokens=prompt_tokens,
                    total_tokens=completion_tokens + prompt_tokens,
                ),
            )
        )


# --------------------------------------------------------------------------- TTS


class ToneTTS(tts.TTS[Never]):
    """Speech-shaped tones: one soft beep per word, length following the text.

    Each word lasts ``ms_per_char`` per character (at least 80 ms), words are
    separated by short pauses, and one utterance is capped at ``max_duration``
    seconds. The audio is real PCM at ``sample_rate`` Hz, mono, so the agent
    publishes a real track and its speaking time is real. Texts it was asked to
    speak are kept in :attr:`spoken`.

    Non-streaming on purpose: the framework wraps it in ``tts.StreamAdapter``,
    which splits the LLM's text into sentences, as it does for many real TTS.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 24000,
        ms_per_char: float = 60.0,
        max_duration: float = 6.0,
        frequency: float = 330.0,
        amplitude: float = 0.12,
    ) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=sample_rate,
            num_channels=1,
        )
        self._ms_per_char = ms_per_char
        self._max_duration = max_duration
        self._frequency = frequency
        self._amplitude = amplitude
        self.spoken: list[str] = []

    @property
    def model(self) -> str:
        return "tone"

    @property
    def provider(self) -> str:
        return "lkstate"

    def duration_for(self, text: str) -> float:
        """Seconds of audio :meth:`render` makes for ``text``."""
        return len(self.render(text)) / 2 / self.sample_rate

    def render(self, text: str) -> bytes:
        """The PCM (s16le mono) for ``text``; pure, so tests can predict it."""
        rate = self.sample_rate
        gap = np.zeros(int(rate * 0.06), dtype=np.float64)
        pieces: list[np.ndarray[Any, np.dtype[np.float64]]] = []
        budget = int(rate * self._max_duration)
        used = 0
        for index, word in enumerate(text.split()):
            length = int(rate * max(0.08, len(word) * self._ms_per_char / 1000.0))
            # vary the pitch a little per word, deterministically
            frequency = self._frequency * (1.0 + 0.08 * ((index * 7) % 5 - 2) / 2)
            t = np.arange(length, dtype=np.float64) / rate
            envelope = np.sin(np.pi * np.arange(length, dtype=np.float64) / max(1, length - 1))
            pieces.append(self._amplitude * envelope * np.sin(2 * math.pi * frequency * t))
            pieces.append(gap)
            used += length + len(gap)
            if used >= budget:
                break
        if not pieces:
            return b""
        wave = np.concatenate(pieces)[:budget]
        return (wave * 32767.0).astype("<i2").tobytes()

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        self.spoken.append(text)
        return _ToneStream(tts=self, input_text=text, conn_options=conn_options)


class _ToneStream(tts.ChunkedStream):
    _tts: ToneTTS

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(
            request_id=utils.shortuuid("tone_"),
            sample_rate=self._tts.sample_rate,
            num_channels=1,
            mime_type="audio/pcm",
        )
        pcm = self._tts.render(self._input_text)
        if pcm:
            output_emitter.push(pcm)
        output_emitter.flush()


# --------------------------------------------------------------------------- STT


@attrs.frozen
class ReceivedAudio:
    """Audio an STT was given: raw s16le bytes plus their format."""

    pcm: bytes
    sample_rate: int
    num_channels: int

    @property
    def duration(self) -> float:
        if not self.sample_rate or not self.num_channels:
            return 0.0
        return len(self.pcm) / 2 / self.num_channels / self.sample_rate


TranscriptSource = Sequence[str] | Callable[[int], str]


class ScriptedSTT(stt.STT[Never]):
    """A streaming STT that "recognises" configured transcripts by loudness.

    Rule, per stream, on the frames the agent pushes:

    - a frame is *voiced* when its RMS level is at least ``threshold``
      (int16 units; the default, 500, is about -36 dBFS);
    - the first voiced frame starts speech (``START_OF_SPEECH``);
    - every ``interim_every_ms`` of voiced audio an interim transcript is
      emitted: the utterance's transcript revealed word by word;
    - ``silence_ms`` of unvoiced audio after speech — or a flush, or the end of
      input — ends the utterance: ``FINAL_TRANSCRIPT`` with the full text, then
      ``END_OF_SPEECH``.

    The n-th utterance gets ``transcripts[n]`` (the last one repeats), or
    ``transcripts(n)`` when it is a callable. With
    ``turn_detection="stt"`` these events alone drive the agent's turns, so
    no VAD (and no model download) is needed.

    Every frame is recorded, in order, across all streams:
    :meth:`received_pcm` returns them; :attr:`utterances` lists the final
    texts emitted. Thread-safe to read from a test while the agent runs.
    """

    def __init__(
        self,
        transcripts: TranscriptSource = ("Hello there.",),
        *,
        threshold: float = 500.0,
        interim_every_ms: float = 200.0,
        silence_ms: float = 400.0,
        language: str = "en",
    ) -> None:
        super().__init__(
            capabilities=stt.STTCapabilities(
                streaming=True, interim_results=True, offline_recognize=True
            )
        )
        self._transcripts = transcripts
        self.threshold = threshold
        self.interim_every = interim_every_ms / 1000.0
        self.silence = silence_ms / 1000.0
        self.language = LanguageCode(language)
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._format: tuple[int, int] | None = None
        self._format_changes: list[tuple[int, int]] = []
        self._utterance_count = 0
        self.utterances: list[str] = []
        self.streams_opened = 0

    @property
    def model(self) -> str:
        return "scripted"

    @property
    def provider(self) -> str:
        return "lkstate"

    # -- what the STT heard -----------------------------------------------------

    def received_pcm(self) -> bytes:
        """Every PCM byte pushed into any stream of this STT, in order."""
        with self._lock:
            return b"".join(self._chunks)

    def received_audio(self) -> ReceivedAudio:
        """:meth:`received_pcm` with its sample rate and channel count."""
        with self._lock:
            rate, channels = self._format or (0, 0)
            return ReceivedAudio(b"".join(self._chunks), rate, channels)

    @property
    def sample_rate(self) -> int | None:
        """Rate of the frames received so far (None before the first frame)."""
        with self._lock:
            return self._format[0] if self._format else None

    def clear_received(self) -> None:
        with self._lock:
            self._chunks.clear()

    def record(self, frame: rtc.AudioFrame) -> None:
        """Keep ``frame``'s bytes (called by the streams for every frame)."""
        with self._lock:
            fmt = (frame.sample_rate, frame.num_channels)
            if self._format != fmt:
                if self._format is not None:
                    logger.warning("ScriptedSTT input format changed from %s to %s", self._format, fmt)
                self._format = fmt
                self._format_changes.append(fmt)
            self._chunks.append(frame.data.tobytes())

    def next_transcript(self) -> str:
        """The transcript of the next utterance (advances the script)."""
        index = self._utterance_count
        self._utterance_count += 1
        if callable(self._transcripts):
            return self._transcripts(index)
        if not self._transcripts:
            return ""
        return self._transcripts[min(index, len(self._transcripts) - 1)]

    # -- stt.STT ----------------------------------------------------------------

    async def _recognize_impl(
        self,
        buffer: AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        frames = buffer if isinstance(buffer, list) else [buffer]
        for frame in frames:
            self.record(frame)
        text = self.next_transcript()
        self.utterances.append(text)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=utils.shortuuid("stt_"),
            alternatives=[stt.SpeechData(language=self.language, text=text, confidence=1.0)],
        )

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.RecognizeStream:
        self.streams_opened += 1
        return _ScriptedRecognizeStream(stt=self, conn_options=conn_options)


class _ScriptedRecognizeStream(stt.RecognizeStream):

    def __init__(self, *, stt: ScriptedSTT, conn_options: APIConnectOptions) -> None:
        super().__init__(stt=stt, conn_options=conn_options)  # pyright: ignore[reportUnknownMemberType]
        self._owner = stt
        self._request_id = utils.shortuuid("stt_")
        self._speaking = False
        self._voiced = 0.0  # seconds of voiced audio in this utterance
        self._quiet = 0.0  # seconds of unvoiced audio since the last voiced frame
        self._interims = 0
        self._transcript = ""

    def _emit(self, kind: stt.SpeechEventType, text: str | None = None) -> None:
        alternatives = (
            [stt.SpeechData(language=self._owner.language, text=text, confidence=1.0)]
            if text is not None
            else []
        )
        self._event_ch.send_nowait(
            stt.SpeechEvent(type=kind, request_id=self._request_id, alternatives=alternatives)
        )

    def _end_utterance(self) -> None:
        if not self._speaking:
            return
        self._speaking = False
        self._owner.utterances.append(self._transcript)
        self._emit(stt.SpeechEventType.FINAL_TRANSCRIPT, self._transcript)
        self._emit(stt.SpeechEventType.END_OF_SPEECH)
        self._emit_usage()
        self._request_id = utils.shortuuid("stt_")

    def _emit_usage(self) -> None:
        self._event_ch.send_nowait(
            stt.SpeechEvent(
                type=stt.SpeechEventType.RECOGNITION_USAGE,
                request_id=self._request_id,
                recognition_usage=stt.RecognitionUsage(audio_duration=self._voiced + self._quiet),
            )
        )

    def _on_frame(self, frame: rtc.AudioFrame) -> None:
        self._owner.record(frame)
        samples = np.frombuffer(frame.data, dtype=np.int16).astype(np.float64)
        level = float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0
        duration = frame.duration
        if level >= self._owner.threshold:
            if not self._speaking:
                self._speaking = True
                self._voiced = 0.0
                self._interims = 0
                self._transcript = self._owner.next_transcript()
                self._emit(stt.SpeechEventType.START_OF_SPEECH)
            self._voiced += duration
            self._quiet = 0.0
            every = self._owner.interim_every
            due = int(self._voiced / every + 1e-6) if every > 0 else 0
            if due > self._interims:
                self._interims = due
                words = self._transcript.split()
                shown = " ".join(words[: min(len(words), due)]) if words else ""
                self._emit(stt.SpeechEventType.INTERIM_TRANSCRIPT, shown)
        elif self._speaking:
            self._quiet += duration
            if self._quiet >= self._owner.silence:
                self._end_utterance()

    async def _run(self) -> None:
        async for item in self._input_ch:
            if isinstance(item, self._FlushSentinel):
                self._end_utterance()
            else:
                self._on_frame(item)
        self._end_utterance()
