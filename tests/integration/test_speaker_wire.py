"""Agent audio playback, end to end through ``lkstate.Session``.

The agent is livekit-agents' own ``AgentSession`` (in process, offline demo
plugins): its ``ToneTTS`` speaks each word as a soft tone around 330 Hz, so
what the user should hear is known exactly — ``agent.tts.render(text)`` is the
PCM it published. The session plays the agent into a :class:`WavFileOutput`,
and the tests listen to that file: how long it is loud, at what pitch, and
when — and read ``state.local_media.speaker`` as a UI would.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from livekit import rtc

from lkstate import AgentStatus, DevelopmentTokenSource, Role, Session, SessionOptions, SessionState
from lkstate._media.speaker import WavFileOutput
from tests.harness.server import LiveKitServer

pytestmark = pytest.mark.serial

SessionFactory = Callable[..., Session]

TONE_HZ = 330.0
"""``ToneTTS``'s base frequency; each word is within ±8 % of it."""

_WINDOW = 0.01
_LOUD_RMS = 400.0
"""A 10 ms window this loud (RMS, s16) holds speech; the tones peak near 3900."""


@pytest.fixture
async def make_session(livekit_server: LiveKitServer, room_name: str) -> AsyncIterator[SessionFactory]:
    sessions: list[Session] = []

    def factory(**kwargs: Any) -> Session:
        kwargs.setdefault("room_name", room_name)
        kwargs.setdefault("audio_input", None)
        tokens = DevelopmentTokenSource(livekit_server.url, livekit_server.api_key, livekit_server.api_secret)
        session = Session(tokens, **kwargs)
        sessions.append(session)
        return session

    yield factory
    for session in sessions:
        await session.end()


def history_of(session: Session) -> list[SessionState]:
    seen: list[SessionState] = []
    session.states.subscribe(seen.append)
    return seen


async def say_and_wait_for_reply(session: Session, agent: Any, text: str) -> str:
    """Send chat, wait until the agent has spoken its reply and listens again; the reply's text."""
    await agent.wait_for_participant(session.state.connection.local_identity)
    before = len(agent.tts.spoken)
    spoke = len([s for s in agent.states if s == "speaking"])
    await session.send_text(text)
    for _ in range(400):
        if len([s for s in agent.states if s == "speaking"]) > spoke and agent.states[-1] == "listening":
            break
        await asyncio.sleep(0.025)
    else:
        raise AssertionError(f"the agent did not finish speaking a reply; states {agent.states}")
    await asyncio.sleep(0.4)  # the last packets travel to the user
    return " ".join(agent.tts.spoken[before:])


def samples_of(path: Path) -> tuple[npt.NDArray[np.float64], int]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64), w.getframerate()


def loud_seconds(samples: npt.NDArray[np.float64], rate: int) -> float:
    size = int(rate * _WINDOW)
    count = len(samples) // size
    if count == 0:
        return 0.0
    windows = samples[: count * size].reshape(count, size)
    rms = np.sqrt((windows**2).mean(axis=1))
    return float((rms > _LOUD_RMS).sum()) * _WINDOW


def dominant_frequency(samples: npt.NDArray[np.float64], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    frequencies = np.fft.rfftfreq(len(samples), 1 / rate)
    band = (frequencies > 50) & (frequencies < 4000)
    return float(frequencies[band][np.argmax(spectrum[band])])


def expected_loud_seconds(agent: Any, text: str) -> float:
    pcm = np.frombuffer(agent.tts.render(text), dtype="<i2").astype(np.float64)
    return loud_seconds(pcm, agent.tts.sample_rate)


def agent_track_sid(agent: Any) -> str | None:
    """The sid of the agent's voice track (``None`` until it publishes it, once it has seen the user)."""
    publications = agent.room.local_participant.track_publications.values()
    sids = [p.sid for p in publications if p.kind == rtc.TrackKind.KIND_AUDIO]
    assert len(sids) <= 1, sids
    return sids[0] if sids else None


def plays(agent: Any) -> Callable[[SessionState], bool]:
    """The state says the session plays ``agent``'s voice."""

    def check(state: SessionState) -> bool:
        speaker = state.local_media.speaker
        return speaker.published and speaker.track_sid is not None and speaker.track_sid == agent_track_sid(agent)

    return check


def speaker_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("lkstate-speaker") and not t.done()]


async def test_the_agents_reply_is_played_whole_at_the_tones_pitch(
    make_session: SessionFactory, room_name: str, agent_factory: Any, tmp_path: Path
) -> None:
    agent = await agent_factory(room_name)
    out = WavFileOutput(tmp_path / "agent.wav")
    session = make_session(audio_output=out)
    history = history_of(session)

    await session.start()
    await session.wait_until(plays(agent), timeout=10)
    reply = await say_and_wait_for_reply(session, agent, "hello there")
    await session.end()

    assert reply and any(m.role is Role.AGENT and m.final for m in session.state.messages)
    speaking = [s for s in history if s.agent.status is AgentStatus.SPEAKING]
    assert speaking, "the session saw the agent speak"
    assert all(s.local_media.speaker.published for s in speaking), "it played while the agent spoke"
    assert {s.local_media.speaker.track_sid for s in speaking} == {agent_track_sid(agent)}
    speaker = session.state.local_media.speaker
    assert (speaker.enabled, speaker.muted, speaker.published, speaker.track_sid) == (True, False, False, None)
    assert speaker.device == repr(out) and speaker.error is None
    assert speaker_tasks() == [], "no playback task outlives the session"

    samples, rate = samples_of(out.path)
    assert rate == 48000
    heard, expected = loud_seconds(samples, rate), expected_loud_seconds(agent, reply)
    assert expected > 0.5
    assert 0.85 * expected <= heard <= 1.15 * expected, (heard, expected, reply)
    assert TONE_HZ * 0.92 * 0.98 <= dominant_frequency(samples, rate) <= TONE_HZ * 1.08 * 1.02
    # the file holds the time the agent could be heard, in real time, not just its words
    assert len(samples) / rate > heard


class FrameSizes(WavFileOutput):
    """A WAV file that also remembers how many samples each write carried."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.sizes: list[int] = []

    def write(self, frame: rtc.AudioFrame) -> None:
        self.sizes.append(frame.samples_per_channel)
        super().write(frame)


async def test_longer_agent_frames_play_the_reply_whole_in_fewer_writes(
    make_session: SessionFactory, room_name: str, agent_factory: Any, tmp_path: Path
) -> None:
    """``agent_audio_frame_ms``: what a server holding many sessions sets to cut the SDK's per-frame work."""
    agent = await agent_factory(room_name)
    out = FrameSizes(tmp_path / "agent.wav")
    session = make_session(audio_output=out, options=SessionOptions(agent_audio_frame_ms=50))

    await session.start()
    await session.wait_until(plays(agent), timeout=10)
    reply = await say_and_wait_for_reply(session, agent, "hello there")
    await session.end()

    frame = 48000 * 50 // 1000
    assert len(out.sizes) > 10 and set(out.sizes[:-1]) == {frame}, "every write is one 50 ms frame"
    assert out.sizes[-1] <= frame  # the stream's end may flush a shorter one
    samples, rate = samples_of(out.path)
    heard, expected = loud_seconds(samples, rate), expected_loud_seconds(agent, reply)
    assert expected > 0.5
    assert 0.85 * expected <= heard <= 1.15 * expected, (heard, expected, reply)
    assert TONE_HZ * 0.92 * 0.98 <= dominant_frequency(samples, rate) <= TONE_HZ * 1.08 * 1.02


async def test_a_muted_speaker_plays_silence_in_the_agents_place_and_unmuting_brings_it_back(
    make_session: SessionFactory, room_name: str, agent_factory: Any, tmp_path: Path
) -> None:
    agent = await agent_factory(room_name)
    out = WavFileOutput(tmp_path / "agent.wav")
    session = make_session(audio_output=out)
    await session.start()
    await session.wait_until(plays(agent), timeout=10)

    await session.set_speaker_enabled(False)
    muted = session.state.local_media.speaker
    assert (muted.enabled, muted.muted, muted.published) == (False, True, True)
    await say_and_wait_for_reply(session, agent, "hello there")
    muted_until = out.seconds_written

    await session.set_speaker_enabled(True)
    assert (session.state.local_media.speaker.enabled, session.state.local_media.speaker.muted) == (True, False)
    reply = await say_and_wait_for_reply(session, agent, "and again")
    await session.end()

    samples, rate = samples_of(out.path)
    cut = int(muted_until * rate)
    assert cut > rate, "the muted reply took its time in the file, as silence"
    assert loud_seconds(samples[:cut], rate) == 0.0
    heard, expected = loud_seconds(samples[cut:], rate), expected_loud_seconds(agent, reply)
    assert 0.85 * expected <= heard <= 1.15 * expected, (heard, expected, reply)


async def test_playback_follows_the_agent_when_another_agent_takes_over(
    make_session: SessionFactory, room_name: str, agent_factory: Any, tmp_path: Path
) -> None:
    first = await agent_factory(room_name)
    out = WavFileOutput(tmp_path / "agent.wav")
    session = make_session(audio_output=out)
    await session.start()
    await session.wait_until(plays(first), timeout=10)

    await first.aclose()
    gone = await session.wait_until(lambda s: s.agent.identity != first.identity, timeout=10)
    assert not gone.local_media.speaker.published and gone.local_media.speaker.track_sid is None
    switched_at = out.seconds_written

    second = await agent_factory(room_name)
    await session.wait_until(plays(second), timeout=10)
    reply = await say_and_wait_for_reply(session, second, "hello there")
    await session.end()

    samples, rate = samples_of(out.path)
    heard, expected = loud_seconds(samples[int(switched_at * rate):], rate), expected_loud_seconds(second, reply)
    assert 0.85 * expected <= heard <= 1.15 * expected, (heard, expected, reply)
    assert speaker_tasks() == []


async def test_the_default_speaker_on_a_machine_without_one_is_an_error_in_words_and_the_session_works(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    try:
        import sounddevice  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except OSError:
        pass  # no PortAudio: the case under test
    else:
        pytest.skip("this machine has PortAudio; the test is about one without")
    agent = await agent_factory(room_name)
    session = make_session(audio_output="default")

    state = await session.start()

    speaker = state.local_media.speaker
    assert (speaker.enabled, speaker.published, speaker.track_sid, speaker.device) == (False, False, None, None)
    assert speaker.error is not None and speaker.error.startswith("No speaker found:")
    assert "WavFileOutput" in speaker.error  # the remedy, in the same words
    assert state.problems == ()
    await session.set_speaker_enabled(True)  # asking changes nothing and breaks nothing
    assert session.state.local_media.speaker == speaker
    reply = await say_and_wait_for_reply(session, agent, "hello there")
    assert reply
    assert any(m.role is Role.AGENT and m.final for m in session.state.messages)
    assert session.state.local_media.speaker == speaker
