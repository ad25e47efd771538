"""Switching the microphone and the speaker of a live session, heard over the wire.

What LiveKit's Swift ``LocalMedia.select(audioDevice:)`` and JS
``room.switchActiveDevice`` promise, checked where the other side would
notice: a raw agent-kind participant (``tests/harness/peer.py``) on the real
livekit-server listens to the user's microphone track through one
``rtc.AudioStream`` opened before the switch, and tells the tone it hears by
its spectrum. After ``session.set_audio_input(...)`` it hears the new tone on
the *same* track — same sid, same stream, no new subscription — and the old
tone no more. For the speaker, the peer publishes a tone and the session
plays it into one :class:`WavFileOutput`, then another; the files say what
was played where.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from livekit import rtc

from lkstate import DevelopmentTokenSource, GeneratorInput, Session, SessionOptions, WavFileInput, WavFileOutput
from lkstate.errors import AudioInputError
from tests.harness.peer import Peer, sine, wait_until
from tests.harness.server import LiveKitServer

pytestmark = pytest.mark.serial

RATE = 48000
TONE_A, TONE_B = 440.0, 660.0
WINDOW = 0.5
"""Seconds of the newest audio whose spectrum says which tone is heard."""


def tone(frequency: float, *, rate: int = RATE) -> Iterator[npt.NDArray[np.int16]]:
    """An endless tone in 10 ms chunks, phase continuous."""
    n = 0
    step = rate // 100
    while True:
        t = np.arange(n, n + step) / rate
        yield (0.3 * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
        n += step


def write_tone_wav(path: Path, frequency: float, seconds: float = 2.0) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(sine(seconds, frequency=frequency, sample_rate=RATE).tobytes())
    return path


def band(samples: npt.NDArray[np.float64], rate: int, frequency: float) -> float:
    """The spectrum's magnitude within 15 Hz of ``frequency`` (a Hann window keeps leakage out)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    frequencies = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(spectrum[np.abs(frequencies - frequency) <= 15].max())


def dominant(samples: npt.NDArray[np.float64], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    frequencies = np.fft.rfftfreq(len(samples), 1 / rate)
    keep = (frequencies > 50) & (frequencies < 4000)
    return float(frequencies[keep][np.argmax(spectrum[keep])])


class Listener:
    """Everything one ``rtc.AudioStream`` of a remote track delivered, in order."""

    def __init__(self, track: rtc.Track) -> None:
        self.pcm = bytearray()
        self.stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self.stream:
            self.pcm += bytes(event.frame.data.cast("B"))

    def newest(self, seconds: float = WINDOW) -> npt.NDArray[np.float64]:
        samples = np.frombuffer(bytes(self.pcm), dtype="<i2").astype(np.float64)
        return samples[-int(seconds * RATE) :]

    async def heard_for(self, seconds: float) -> None:
        """Wait until ``seconds`` more audio arrived (not wall time: a loaded machine delivers late)."""
        target = len(self.pcm) + int(seconds * RATE) * 2
        await wait_until(lambda: len(self.pcm) >= target, timeout=seconds + 10, message=f"{seconds} s more audio")

    async def aclose(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.stream.aclose()


SessionFactory = Callable[..., Session]


@pytest.fixture
async def make_session(livekit_server: LiveKitServer, room_name: str) -> AsyncIterator[SessionFactory]:
    sessions: list[Session] = []

    def factory(**kwargs: Any) -> Session:
        tokens = DevelopmentTokenSource(livekit_server.url, livekit_server.api_key, livekit_server.api_secret)
        kwargs.setdefault("audio_input", None)
        kwargs.setdefault("audio_output", None)
        session = Session(
            tokens,
            room_name=room_name,
            participant_identity="user",
            video_input=None,
            options=SessionOptions(preconnect_audio=False),
            **kwargs,
        )
        sessions.append(session)
        return session

    yield factory
    for session in sessions:
        await session.end()


async def test_a_switched_microphone_is_heard_on_the_same_track_and_a_mismatched_one_is_refused(
    make_session: SessionFactory, room_name: str, peer_factory: Any, tmp_path: Path
) -> None:
    agent = await peer_factory(room_name, "agent-listener", kind="agent")
    unpublished: list[str] = []
    agent.room.on("track_unpublished", lambda publication, participant: unpublished.append(publication.sid))
    session = make_session(audio_input=GeneratorInput(tone(TONE_A), sample_rate=RATE))
    await session.start(wait_for_agent=False)
    state = await session.wait_until(lambda s: s.local_media.microphone.published, timeout=10)
    sid = state.local_media.microphone.track_sid
    assert sid is not None and state.local_media.microphone.device == "GeneratorInput"
    publication = await agent.wait_for_track("user")
    assert publication.sid == sid
    track = await wait_until(lambda: publication.track, timeout=10, message="the agent to subscribe")
    ears = Listener(track)
    try:
        await ears.heard_for(1.0)
        assert abs(dominant(ears.newest(), RATE) - TONE_A) < 5, "the agent hears tone A"

        # Another format cannot go into the published track: refused in words, A goes on.
        with pytest.raises(AudioInputError) as caught:
            await session.set_audio_input(GeneratorInput(tone(TONE_B, rate=24000), sample_rate=24000))
        assert caught.value.message == (
            "GeneratorInput gives 24000 Hz / 1 ch, but the microphone track carries 48000 Hz / 1 ch and cannot "
            "change format while it is published; the current input keeps running."
        )
        assert "sample_rate=48000" in caught.value.remedy
        await ears.heard_for(1.0)
        assert abs(dominant(ears.newest(), RATE) - TONE_A) < 5, "tone A keeps flowing after the refusal"
        assert session.state.local_media.microphone == state.local_media.microphone

        # The switch: tone B on the same track, heard by the stream opened before it.
        file_b = WavFileInput(write_tone_wav(tmp_path / "tone-b.wav", TONE_B), loop=True)
        await session.set_audio_input(file_b)
        microphone = session.state.local_media.microphone
        assert microphone.device == repr(file_b)
        assert (microphone.published, microphone.track_sid, microphone.enabled, microphone.muted) == (
            True,
            sid,
            True,
            False,
        )
        await ears.heard_for(0.6)  # what was on its way when it switched
        await ears.heard_for(1.0)
        newest = ears.newest()
        assert abs(dominant(newest, RATE) - TONE_B) < 5, "the agent hears tone B"
        assert band(newest, RATE, TONE_A) < 0.02 * band(newest, RATE, TONE_B), "and tone A no more"

        user = agent.remote("user")
        assert user is not None and list(user.track_publications) == [sid], "the same track, not a new one"
        assert unpublished == []
        assert publication.track is track, "the agent's subscription is the one it had"
    finally:
        await ears.aclose()


async def test_a_switched_speaker_plays_the_agent_into_the_new_output_and_closes_the_old_one(
    make_session: SessionFactory, room_name: str, peer_factory: Any, tmp_path: Path
) -> None:
    agent = await peer_factory(room_name, "agent-speaker", kind="agent")
    await agent.publish_audio(sine(60.0, frequency=TONE_A, sample_rate=RATE))
    first, second = WavFileOutput(tmp_path / "first.wav"), WavFileOutput(tmp_path / "second.wav")
    session = make_session(audio_output=first)
    await session.start(wait_for_agent=False)
    state = await session.wait_until(lambda s: s.local_media.speaker.published, timeout=10)
    playing = state.local_media.speaker.track_sid
    await wait_until(lambda: first.seconds_written >= 1.0, timeout=10, message="1 s played into the first output")

    await session.set_audio_output(second)
    kept = first.seconds_written
    await wait_until(lambda: second.seconds_written >= 1.5, timeout=10, message="1.5 s played into the second output")

    assert first.seconds_written == kept, "not one frame more went to the old output"
    with pytest.raises(Exception, match="is not open"):
        first.write(rtc.AudioFrame.create(RATE, 1, RATE // 100))
    speaker = session.state.local_media.speaker
    assert (speaker.device, speaker.published, speaker.track_sid, speaker.enabled) == (
        repr(second),
        True,
        playing,
        True,
    )
    await session.end()
    with wave.open(str(second.path), "rb") as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    assert abs(dominant(samples[-RATE:], RATE) - TONE_A) < 5, "the new output holds the agent's tone"
    with wave.open(str(first.path), "rb") as w:
        assert w.getnframes() == round(kept * RATE), "the old file was closed whole, header and all"


async def test_a_session_started_without_microphone_or_speaker_gets_them_live_and_can_drop_the_microphone(
    make_session: SessionFactory, room_name: str, peer_factory: Any, tmp_path: Path
) -> None:
    agent = await peer_factory(room_name, "agent-late", kind="agent")
    await agent.publish_audio(sine(60.0, frequency=TONE_B, sample_rate=RATE))
    session = make_session()  # audio_input=None, audio_output=None
    await session.start(wait_for_agent=False)
    assert not session.state.local_media.microphone.published and session.state.local_media.speaker.device is None

    await session.set_audio_input(GeneratorInput(tone(TONE_A), sample_rate=RATE))
    state = await session.wait_until(lambda s: s.local_media.microphone.published, timeout=10)
    sid = state.local_media.microphone.track_sid
    publication = await agent.wait_for_track("user")
    assert publication.sid == sid and state.local_media.microphone.device == "GeneratorInput"
    track = await wait_until(lambda: publication.track, timeout=10, message="the agent to subscribe")
    ears = Listener(track)
    try:
        await ears.heard_for(1.0)
        assert abs(dominant(ears.newest(), RATE) - TONE_A) < 5, "the agent hears the microphone added late"
    finally:
        await ears.aclose()

    output = WavFileOutput(tmp_path / "late.wav")
    await session.set_audio_output(output)
    await session.wait_until(lambda s: s.local_media.speaker.published, timeout=10)
    await wait_until(lambda: output.seconds_written >= 1.0, timeout=10, message="the agent played into the late output")
    assert session.state.local_media.speaker.device == repr(output)

    await session.set_audio_input(None)
    assert session.state.local_media.microphone.published is False
    await wait_until(lambda: not (p := agent.remote("user")) or not p.track_publications, timeout=10,
                     message="the agent to see the microphone unpublished")


async def test_an_input_chosen_before_start_is_what_start_publishes(
    make_session: SessionFactory, room_name: str, peer_factory: Any, tmp_path: Path
) -> None:
    agent = await peer_factory(room_name, "agent-early", kind="agent")
    session = make_session(audio_input=GeneratorInput(tone(TONE_A), sample_rate=RATE))
    file_b = WavFileInput(write_tone_wav(tmp_path / "tone-b.wav", TONE_B), loop=True)

    await session.set_audio_input(file_b)
    await session.start(wait_for_agent=False)

    state = await session.wait_until(lambda s: s.local_media.microphone.published, timeout=10)
    assert state.local_media.microphone.device == repr(file_b)
    publication = await agent.wait_for_track("user")
    track = await wait_until(lambda: publication.track, timeout=10, message="the agent to subscribe")
    ears = Listener(track)
    try:
        await ears.heard_for(1.0)
        assert abs(dominant(ears.newest(), RATE) - TONE_B) < 5
    finally:
        await ears.aclose()
