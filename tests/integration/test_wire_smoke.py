"""Smoke tests of the harness itself: a real server, a real agent, a raw user.

These pin down the wire facts the rest of the project builds on, observed
from a plain ``livekit.rtc`` participant — no lkstate code involved:

- the agent publishes its state in the ``lk.agent.state`` attribute;
- a chat message on ``lk.chat`` makes the agent answer with a transcription
  stream on ``lk.transcription``, closed with the trailer attribute
  ``lk.transcription_final = "true"``;
- a function tool runs and its result is spoken;
- audio the user sends reaches the agent's STT: byte for byte through the
  pre-connect buffer, and similar in shape through the (Opus-coded) track;
- a worker registered under an agent name is dispatched into a room whose
  creating token names it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from livekit import api, rtc

from lkstate.demo_agent import ScriptedLLM, ScriptedSTT, weather_report
from tests.harness.agent import InProcessAgent
from tests.harness.peer import Peer, speech_like, wait_until

pytestmark = pytest.mark.serial

AgentFactory = Any  # (room, **kwargs) -> Awaitable[InProcessAgent]
PeerFactory = Any  # (room, identity=None, **kwargs) -> Awaitable[Peer]

STATE = "lk.agent.state"
FINAL = "lk.transcription_final"


def is_subsequence(wanted: list[str], seen: list[str]) -> bool:
    position = iter(seen)
    return all(any(value == item for item in position) for value in wanted)


async def test_the_agent_publishes_its_state_listening_then_thinking_speaking_listening(
    room_name: str, agent_factory: AgentFactory, peer_factory: PeerFactory
) -> None:
    user: Peer = await peer_factory(room_name, "user")
    agent: InProcessAgent = await agent_factory(room_name, llm=ScriptedLLM(["Fine, thanks."]))

    await user.wait_for_attribute(agent.identity, STATE, "listening")
    await user.send_text("How are you?", topic="lk.chat")
    await user.wait_for_text("lk.transcription", lambda t: t.sender == agent.identity)
    await user.wait_for_attribute(agent.identity, STATE, "listening")

    seen = user.attribute_history(agent.identity, STATE)
    assert is_subsequence(["listening", "thinking", "speaking", "listening"], seen), seen
    # The session itself starts in "initializing", but that state is never
    # published: RoomIO only mirrors *changes*, and it subscribes after the
    # session is already initializing. The first value on the wire is "listening".
    assert agent.states[0] == "initializing"
    assert seen[0] == "listening"
    remote = user.remote(agent.identity)
    assert remote is not None
    assert remote.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    assert remote.attributes.get("lk.agent.name") == "lkstate-demo"


async def test_a_chat_message_is_answered_by_a_final_agent_transcription(
    room_name: str, agent_factory: AgentFactory, peer_factory: PeerFactory
) -> None:
    reply = "Hello from the scripted model."
    agent: InProcessAgent = await agent_factory(room_name, llm=ScriptedLLM([reply]))
    user: Peer = await peer_factory(room_name, "user")
    await user.wait_for_attribute(agent.identity, STATE, "listening")
    # The agent drops chat from participants it has not seen join, and the server
    # announces a participant that publishes nothing only in its next 3-second
    # batch. A (silent) microphone makes the user a publisher, announced at once.
    await user.publish_audio(None)
    await agent.wait_for_participant("user")

    await user.send_text("hi agent", topic="lk.chat")
    received = await user.wait_for_text("lk.transcription", lambda t: t.sender == agent.identity)

    assert received.text == reply
    assert len(received.chunks) > 1, "agent speech arrives as deltas"
    assert received.header_attributes.get(FINAL) == "false"
    assert received.attributes.get(FINAL) == "true", "final comes only in the trailer"
    assert received.attributes.get("lk.segment_id")
    # the model saw the user's text as the last user message
    assert agent.llm.requests[-1].messages()[-1].text_content == "hi agent"
    assert agent.tts.spoken, "the reply was synthesized"


async def test_a_weather_question_runs_the_tool_and_speaks_its_result(
    room_name: str, agent_factory: AgentFactory, peer_factory: PeerFactory
) -> None:
    agent: InProcessAgent = await agent_factory(room_name)
    user: Peer = await peer_factory(room_name, "user")
    await user.wait_for_attribute(agent.identity, STATE, "listening")
    await user.publish_audio(None)
    await agent.wait_for_participant("user")

    await user.send_text("What is the weather in Paris?", topic="lk.chat")
    received = await user.wait_for_text(
        "lk.transcription", lambda t: t.sender == agent.identity, timeout=15.0
    )

    assert received.text == weather_report("Paris")
    items = agent.session.history.items
    calls = [item for item in items if item.type == "function_call"]
    outputs = [item for item in items if item.type == "function_call_output"]
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", '{"city": "Paris"}')]
    assert [o.output for o in outputs] == [weather_report("Paris")]


async def test_preconnect_audio_reaches_the_stt_byte_for_byte(
    room_name: str, agent_factory: AgentFactory, peer_factory: PeerFactory
) -> None:
    """The pre-connect buffer is raw PCM end to end: when its sample rate is the
    agent's input rate (24 kHz) nothing resamples or re-encodes it, so the STT
    must receive exactly the bytes the user recorded, before any live audio."""
    stt = ScriptedSTT(["I spoke before you joined."])
    agent: InProcessAgent = await agent_factory(room_name, stt=stt)
    user: Peer = await peer_factory(room_name, "user")
    rate = 24000
    recorded = speech_like([(0.05, False), (0.6, True), (0.5, False)], sample_rate=rate).tobytes()

    # publish first (the live track stays silent), then send the buffer for that track
    mic = await user.publish_audio(None, sample_rate=rate, preconnect_buffer=True)
    await user.send_preconnect_audio(recorded, agent_identity=agent.identity, track_sid=mic.sid, sample_rate=rate)

    await wait_until(lambda: len(stt.received_pcm()) >= len(recorded), message="the STT to receive the buffer")
    heard = stt.received_audio()
    assert heard.sample_rate == rate and heard.num_channels == 1
    assert heard.pcm[: len(recorded)] == recorded

    # ...and what the STT "recognised" comes back as the user's transcription,
    # published by the agent on behalf of the user (sender = the user's identity)
    transcript = await user.wait_for_text(
        "lk.transcription", lambda t: t.sender == "user" and t.attributes.get(FINAL) == "true"
    )
    assert transcript.text == "I spoke before you joined."


def envelope(pcm: np.ndarray[Any, np.dtype[np.int16]], rate: int, window: float = 0.02) -> np.ndarray[Any, np.dtype[np.float64]]:
    """RMS level per ``window`` seconds."""
    size = int(rate * window)
    usable = len(pcm) // size * size
    blocks = pcm[:usable].astype(np.float64).reshape(-1, size)
    return np.sqrt((blocks * blocks).mean(axis=1))


def best_alignment(
    sent: np.ndarray[Any, np.dtype[np.float64]], heard: np.ndarray[Any, np.dtype[np.float64]]
) -> tuple[float, int]:
    """Highest Pearson correlation of ``sent`` against any equally long stretch of ``heard``."""
    best = (-1.0, -1)
    for lag in range(0, len(heard) - len(sent) + 1):
        window = heard[lag : lag + len(sent)]
        if window.std() == 0:
            continue
        best = max(best, (float(np.corrcoef(sent, window)[0, 1]), lag))
    return best


def dominant_frequency(pcm: np.ndarray[Any, np.dtype[np.int16]], rate: int) -> float:
    """Peak of the (Hann-windowed) spectrum of one contiguous stretch of audio."""
    samples = pcm.astype(np.float64) * np.hanning(len(pcm))
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[int(np.argmax(spectrum))])


async def test_live_microphone_audio_reaches_the_stt_with_the_same_shape(
    room_name: str, agent_factory: AgentFactory, peer_factory: PeerFactory
) -> None:
    """Over the track the audio is Opus-coded and resampled (48 kHz sent, 24 kHz
    heard), so bytes cannot match. What must survive: the loudness envelope
    (Pearson correlation of 20 ms RMS levels at the best alignment, > 0.9)
    and the pitch (dominant frequency within 10 Hz of the 440 Hz sent)."""
    stt = ScriptedSTT(["Live audio."])
    agent: InProcessAgent = await agent_factory(room_name, stt=stt)
    user: Peer = await peer_factory(room_name, "user")
    await user.wait_for_attribute(agent.identity, STATE, "listening")
    sent_rate = 48000
    pattern = [(0.2, False), (0.5, True), (0.3, False), (0.7, True), (0.6, False)]
    speak = asyncio.Event()
    mic = await user.publish_audio(speech_like(pattern, sample_rate=sent_rate), sample_rate=sent_rate, start=speak)
    await user.wait_for_subscription(mic.sid)  # audio sent before the agent subscribes is lost
    speak.set()
    sent_pcm = np.frombuffer(await mic.wait_sent(), dtype=np.int16)

    # the remote track keeps delivering (silent) frames, so wait for the whole
    # pattern's worth of audio plus some slack for the jitter buffer
    sent_seconds = len(sent_pcm) / sent_rate
    await wait_until(
        lambda: stt.received_audio().duration >= sent_seconds + 0.6,
        message=lambda: f"{sent_seconds + 0.6:.1f} s of audio at the STT (got {stt.received_audio().duration:.2f} s)",
    )
    heard = stt.received_audio()
    assert heard.sample_rate == 24000
    heard_pcm = np.frombuffer(heard.pcm, dtype=np.int16)

    window = 0.02
    correlation, lag = best_alignment(
        envelope(sent_pcm, sent_rate, window), envelope(heard_pcm, heard.sample_rate, window)
    )
    assert correlation > 0.9, f"loudness envelopes differ (r={correlation:.3f} at lag {lag})"
    # the middle of the second burst (sent from 1.0 s to 1.7 s), found in what was heard
    start = int((lag * window + 1.1) * heard.sample_rate)
    middle = heard_pcm[start : start + heard.sample_rate // 2]
    assert abs(dominant_frequency(middle, heard.sample_rate) - 440.0) < 10.0
    # two bursts 300 ms apart are one utterance (the STT ends one after 400 ms of quiet)
    await wait_until(lambda: stt.utterances, message="the STT to finish the utterance")
    assert stt.utterances == ["Live audio."]


async def test_a_registered_worker_is_dispatched_into_the_room_its_name_is_in(
    room_name: str, worker_factory: Any, peer_factory: PeerFactory
) -> None:
    worker = await worker_factory()
    dispatch = api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name=worker.agent_name)])
    user: Peer = await peer_factory(room_name, "user", room_config=dispatch)
    await user.publish_audio(None)  # a publisher's leave is announced at once: quick teardown

    agent = await user.wait_for_agent(timeout=20.0)
    assert agent.attributes.get("lk.agent.name") == worker.agent_name
    await user.wait_for_attribute(agent.identity, STATE, "listening", timeout=20.0)
    assert user.attribute_history(agent.identity, STATE)[0] == "listening"

    await user.send_text("ping", topic="lk.chat")
    reply = await user.wait_for_text("lk.transcription", lambda t: t.sender == agent.identity)
    assert reply.text == "You said: ping"


@pytest.mark.parametrize("how", ["disconnect", "kick"])
async def test_an_agent_can_leave_abruptly_and_the_user_sees_it_go(
    room_name: str, agent_factory: AgentFactory, peer_factory: PeerFactory, how: str
) -> None:
    agent: InProcessAgent = await agent_factory(room_name)
    user: Peer = await peer_factory(room_name, "user")
    await user.wait_for_attribute(agent.identity, STATE, "listening")
    # Publishers' comings and goings are announced at once, others' in 3-second
    # batches: the agent publishes its voice once it has linked to the user, and
    # the user becomes visible (hence linkable) at once by publishing a mic.
    await user.publish_audio(None)
    await user.wait_for_track(agent.identity)

    await agent.leave_abruptly(how)  # type: ignore[arg-type]

    await wait_until(lambda: agent.identity not in user.room.remote_participants, message="the agent to leave")
    assert [identity for identity, _reason in user.left] == [agent.identity]


async def test_only_an_agent_token_may_speak_for_someone_else_and_trailers_arrive_merged(
    room_name: str, peer_factory: PeerFactory
) -> None:
    user: Peer = await peer_factory(room_name, "user")
    scripted_agent: Peer = await peer_factory(room_name, "agent-fake", kind="agent")
    impostor: Peer = await peer_factory(room_name, "impostor")

    header = {"lk.segment_id": "SG_1", FINAL: "false"}
    for peer, chunks in ((scripted_agent, ["said ", "by ", "the agent"]), (impostor, ["said ", "by ", "the impostor"])):
        await peer.stream_text(
            chunks,
            topic="lk.transcription",
            attributes=header,
            close_attributes={FINAL: "true"},
            sender_identity="user",
        )

    by_agent = await user.wait_for_text("lk.transcription", lambda t: t.text == "said by the agent")
    by_impostor = await user.wait_for_text("lk.transcription", lambda t: t.text == "said by the impostor")
    assert by_agent.sender == "user", "an agent may publish on behalf of the user"
    assert by_impostor.sender == "impostor", "anyone else is named as themselves"
    for received in (by_agent, by_impostor):
        assert received.chunks[:2] == ["said ", "by "], "written chunks arrive as written"
        assert received.header_attributes == header
        assert received.attributes == {**header, FINAL: "true"}, "trailer merged at the end"
