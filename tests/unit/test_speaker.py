"""Agent playback without a server: the outputs, whose voice is played, and what the state says.

What the agent's voice sounds like once played is tested over the wire
(``tests/integration/test_speaker_wire.py``). Here: :class:`WavFileOutput`
writes exactly what it is given; the speaker is an error in words on a machine
without one; :func:`agent_voice` picks the right track from a state the reducer
built; and :class:`SpeakerController` reports its output as a UI needs it.
"""

from __future__ import annotations

import sys
import types
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit import rtc

from lkstate._core import events as ev
from lkstate._core.errors import AudioOutputError
from lkstate._core.reducer import reduce
from lkstate._media.speaker import (
    AgentVoice,
    AudioOutput,
    SpeakerController,
    SpeakerOutput,
    WavFileOutput,
    agent_voice,
    default_audio_output,
)
from lkstate._core.state import LocalTrackState, SessionState, TrackSource

RATE = 48000
SAMPLES = RATE // 100


def frame(start: int, *, rate: int = RATE, channels: int = 1) -> rtc.AudioFrame:
    """10 ms of a ramp starting at ``start``: every sample different, so misplaced bytes show."""
    per_channel = rate // 100
    values = (np.arange(per_channel * channels) + start).astype(np.int16)
    return rtc.AudioFrame(values.tobytes(), rate, channels, per_channel)


def pcm_of(f: rtc.AudioFrame) -> bytes:
    return bytes(f.data.cast("B"))


def read_wav(path: Path) -> tuple[tuple[int, int, int], bytes]:
    with wave.open(str(path), "rb") as w:
        return (w.getframerate(), w.getnchannels(), w.getsampwidth()), w.readframes(w.getnframes())


def portaudio_loads() -> bool:
    try:
        import sounddevice  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except (ImportError, OSError):
        return False
    return True


# -- WavFileOutput ----------------------------------------------------------------------


async def test_a_wav_file_output_holds_exactly_the_frames_it_was_given(tmp_path: Path) -> None:
    out = WavFileOutput(tmp_path / "agent.wav")
    frames = [frame(i * 1000) for i in range(5)]
    await out.open(RATE, 1)
    for f in frames:
        out.write(f)
    await out.aclose()

    params, data = read_wav(out.path)
    assert params == (RATE, 1, 2)
    assert data == b"".join(pcm_of(f) for f in frames)
    assert out.seconds_written == pytest.approx(0.05)


async def test_a_wav_file_output_is_a_valid_file_while_it_is_still_being_written(tmp_path: Path) -> None:
    out = WavFileOutput(tmp_path / "agent.wav")
    await out.open(24000, 2)
    out.write(frame(7, rate=24000, channels=2))
    try:
        params, data = read_wav(out.path)
        assert params == (24000, 2, 2)
        assert data == pcm_of(frame(7, rate=24000, channels=2))
    finally:
        await out.aclose()


async def test_opening_a_wav_file_output_again_appends_to_it(tmp_path: Path) -> None:
    out = WavFileOutput(tmp_path / "agent.wav")
    await out.open(RATE, 1)
    out.write(frame(1))
    await out.aclose()
    await out.open(RATE, 1)  # the session started again
    out.write(frame(2))
    await out.aclose()

    assert read_wav(out.path)[1] == pcm_of(frame(1)) + pcm_of(frame(2))


async def test_a_wav_file_output_refuses_audio_it_cannot_hold_in_words(tmp_path: Path) -> None:
    out = WavFileOutput(tmp_path / "agent.wav")
    with pytest.raises(AudioOutputError, match="not open"):
        out.write(frame(0))
    await out.open(RATE, 1)
    with pytest.raises(AudioOutputError, match="48000 Hz / 1 ch but got a frame of 24000 Hz / 1 ch"):
        out.write(frame(0, rate=24000))
    with pytest.raises(AudioOutputError, match="already open"):
        await out.open(RATE, 1)
    await out.aclose()
    with pytest.raises(AudioOutputError, match="cannot take 24000 Hz / 1 ch as well") as caught:
        await out.open(24000, 1)
    assert "new WavFileOutput" in caught.value.remedy


async def test_a_wav_file_output_in_a_missing_folder_says_so(tmp_path: Path) -> None:
    out = WavFileOutput(tmp_path / "no such folder" / "agent.wav")
    with pytest.raises(AudioOutputError, match="could not open .*agent.wav") as caught:
        await out.open(RATE, 1)
    assert "folder exists" in caught.value.remedy


# -- the speaker --------------------------------------------------------------------------


@pytest.mark.skipif(portaudio_loads(), reason="this machine has PortAudio; these tests are about one without")
def test_without_portaudio_there_is_no_default_output_and_the_speaker_says_why() -> None:
    assert default_audio_output() is None
    with pytest.raises(AudioOutputError) as caught:
        SpeakerOutput()
    assert caught.value.message.startswith("no speaker found: the PortAudio library could not be loaded")
    assert "WavFileOutput('agent.wav')" in caught.value.remedy


class StandInSoundDevice(types.ModuleType):
    """Just enough of ``sounddevice`` to choose a device and run the output callback by hand."""

    def __init__(self, devices: list[dict[str, Any]], default_output: int = -1) -> None:
        super().__init__("sounddevice")
        self.devices = devices
        self.default = types.SimpleNamespace(device=[-1, default_output])
        self.streams: list[StandInStream] = []

    def query_devices(self) -> list[dict[str, Any]]:
        return self.devices

    def check_output_settings(self, **settings: Any) -> None:
        if settings["samplerate"] not in (44100, 48000):
            raise ValueError("Invalid sample rate")

    def OutputStream(self, **settings: Any) -> StandInStream:  # noqa: N802 - sounddevice's name
        stream = StandInStream(settings)
        self.streams.append(stream)
        return stream


class StandInStream:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.started = self.closed = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True

    def pull(self, samples: int) -> np.ndarray[Any, np.dtype[np.int16]]:
        """What PortAudio would play next: run the callback for ``samples`` samples."""
        out = np.full((samples, self.settings["channels"]), 12345, dtype=np.int16)
        self.settings["callback"](out, samples, None, None)
        return out.reshape(-1)


DEVICES = [
    {"name": "USB Mic", "max_input_channels": 1, "max_output_channels": 0},
    {"name": "Built-in Speakers", "max_input_channels": 0, "max_output_channels": 2},
    {"name": "HDMI Output", "max_input_channels": 0, "max_output_channels": 8},
]


@pytest.fixture
def sound_device(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInSoundDevice]:
    module = StandInSoundDevice(DEVICES, default_output=2)
    monkeypatch.setitem(sys.modules, "sounddevice", module)
    yield module


def test_the_speaker_is_the_systems_default_output_or_the_one_named(sound_device: StandInSoundDevice) -> None:
    assert SpeakerOutput().device_name == "HDMI Output"
    assert SpeakerOutput(device="built-in").device_name == "Built-in Speakers"
    with pytest.raises(AudioOutputError, match=r"no speaker matches 'USB'.*\[1\] Built-in Speakers, \[2\] HDMI Output"):
        SpeakerOutput(device="USB")


def test_a_machine_with_only_microphones_has_no_speaker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", StandInSoundDevice(DEVICES[:1]))
    with pytest.raises(AudioOutputError, match="no speaker found: this machine has no audio output device"):
        SpeakerOutput()
    assert default_audio_output() is None


async def test_the_speaker_plays_what_was_written_then_silence(sound_device: StandInSoundDevice) -> None:
    speaker = SpeakerOutput()
    with pytest.raises(AudioOutputError, match="cannot play 16000 Hz"):
        await speaker.open(16000, 1)
    await speaker.open(RATE, 1)
    stream = sound_device.streams[-1]
    assert stream.started and stream.settings["blocksize"] == SAMPLES
    speaker.write(frame(0))
    speaker.write(frame(SAMPLES))

    played = np.concatenate([stream.pull(SAMPLES) for _ in range(3)])

    assert played[: 2 * SAMPLES].tolist() == list(range(2 * SAMPLES))
    assert not played[2 * SAMPLES :].any()
    await speaker.aclose()
    assert stream.closed


async def test_a_speaker_that_falls_behind_drops_the_oldest_audio_not_the_newest(
    sound_device: StandInSoundDevice,
) -> None:
    speaker = SpeakerOutput(max_buffered_seconds=0.02)  # two frames
    await speaker.open(RATE, 1)
    for i in range(3):
        speaker.write(frame(i * SAMPLES))
    played = sound_device.streams[-1].pull(2 * SAMPLES)
    assert played.tolist() == list(range(SAMPLES, 3 * SAMPLES))
    assert speaker.dropped_bytes == SAMPLES * 2
    await speaker.aclose()


# -- whose voice -------------------------------------------------------------------------


def fold(*events: ev.Event) -> SessionState:
    state = SessionState()
    for event in events:
        state = reduce(state, event)
    return state


CONNECTED = (
    ev.StartRequested(at=1.0),
    ev.RoomConnected(at=1.1, room_name="room", local_identity="user", server_url="ws://x"),
)
AGENT = ev.ParticipantJoined(
    at=2.0, identity="agent-1", name="agent", kind="agent", attributes=(("lk.agent.state", "listening"),)
)
AVATAR = ev.ParticipantJoined(
    at=2.1, identity="avatar-1", name="face", kind="agent", attributes=(("lk.publish_on_behalf", "agent-1"),)
)


def track(identity: str, sid: str, *, subscribed: bool = True, kind: str = "audio",
          source: TrackSource = TrackSource.MICROPHONE, at: float = 3.0) -> ev.RemoteTrackUpdated:
    return ev.RemoteTrackUpdated(
        at=at, identity=identity, sid=sid, kind=kind, source=source, subscribed=subscribed, muted=False
    )


def test_the_agents_own_subscribed_audio_is_its_voice() -> None:
    assert agent_voice(fold(*CONNECTED, AGENT, track("agent-1", "TR_a"))) == AgentVoice("agent-1", "TR_a")


def test_there_is_no_voice_before_the_audio_is_subscribed_or_without_an_agent() -> None:
    assert agent_voice(fold(*CONNECTED)) is None
    assert agent_voice(fold(*CONNECTED, AGENT)) is None
    assert agent_voice(fold(*CONNECTED, AGENT, track("agent-1", "TR_a", subscribed=False))) is None
    assert agent_voice(fold(*CONNECTED, AGENT, track("agent-1", "TR_v", kind="video"))) is None
    standard = ev.ParticipantJoined(at=2.0, identity="bob", name="Bob", kind="standard")
    assert agent_voice(fold(*CONNECTED, standard, track("bob", "TR_b"))) is None


def test_an_avatar_speaks_for_its_agent() -> None:
    state = fold(*CONNECTED, AGENT, AVATAR, track("avatar-1", "TR_face_voice"))
    assert state.agent.avatar_identity == "avatar-1"
    assert agent_voice(state) == AgentVoice("avatar-1", "TR_face_voice")
    both = fold(*CONNECTED, AGENT, AVATAR, track("agent-1", "TR_a"), track("avatar-1", "TR_face_voice"))
    assert agent_voice(both) == AgentVoice("avatar-1", "TR_face_voice")


def test_a_shared_screens_sound_is_not_taken_for_the_voice() -> None:
    state = fold(
        *CONNECTED, AGENT,
        track("agent-1", "TR_screen", source=TrackSource.SCREEN_SHARE_AUDIO),
        track("agent-1", "TR_voice", at=3.1),
    )  # fmt: skip
    assert agent_voice(state) == AgentVoice("agent-1", "TR_voice")


def test_the_voice_goes_with_the_connection() -> None:
    state = fold(*CONNECTED, AGENT, track("agent-1", "TR_a"),
                 ev.RoomDisconnected(at=9.0, reason="You ended the session.", expected=True))
    assert agent_voice(state) is None


# -- the state -----------------------------------------------------------------------------


def test_the_reducer_keeps_the_speakers_state_and_nothing_else_changes() -> None:
    before = fold(*CONNECTED)
    speaker = LocalTrackState(enabled=True, published=True, track_sid="TR_a", device="WavFileOutput('x.wav')")
    after = reduce(before, ev.LocalOutputChanged(at=5.0, speaker=speaker))
    assert after.local_media.speaker == speaker
    assert after.local_media.microphone is before.local_media.microphone
    assert after.updated_at == 5.0
    assert reduce(after, ev.LocalOutputChanged(at=6.0, speaker=speaker)) is after


class Recorder:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def __call__(self, event: ev.Event) -> None:
        self.events.append(event)

    @property
    def speaker(self) -> list[LocalTrackState]:
        return [e.speaker for e in self.events if isinstance(e, ev.LocalOutputChanged)]


@pytest.mark.skipif(portaudio_loads(), reason="this machine has PortAudio; the test is about one without")
async def test_a_controller_with_no_speaker_reports_why_and_ignores_the_toggle() -> None:
    emitted = Recorder()
    controller = SpeakerController(audio_output="default", emit=emitted, clock=lambda: 7.0)
    await controller.start()
    controller.set_enabled(False)
    controller.set_enabled(True)
    await controller.aclose()

    [state] = emitted.speaker
    assert (state.enabled, state.published, state.device) == (False, False, None)
    assert state.error is not None and state.error.startswith("No speaker found: the PortAudio library")
    assert controller.output is None


async def test_a_controller_reports_its_output_and_the_users_mute(tmp_path: Path) -> None:
    emitted = Recorder()
    out = WavFileOutput(tmp_path / "agent.wav")
    controller = SpeakerController(audio_output=out, emit=emitted, clock=lambda: 7.0)
    await controller.start()
    assert isinstance(out, AudioOutput) and controller.output is out
    controller.set_enabled(False)
    controller.set_enabled(True)
    await controller.aclose()

    device = f"WavFileOutput({str(out.path)!r})"
    assert emitted.speaker == [
        LocalTrackState(enabled=True, device=device),
        LocalTrackState(enabled=False, muted=True, device=device),
        LocalTrackState(enabled=True, device=device),
    ]
    assert read_wav(out.path)[1] == b""  # opened, and closed as a valid, empty file


async def test_an_output_that_will_not_open_is_an_error_in_words(tmp_path: Path) -> None:
    emitted = Recorder()
    out = WavFileOutput(tmp_path / "missing" / "agent.wav")
    controller = SpeakerController(audio_output=out, emit=emitted, clock=lambda: 7.0)
    await controller.start()
    await controller.aclose()

    [state] = emitted.speaker
    assert not state.enabled and state.error is not None
    assert state.error.startswith("Could not open") and "folder exists" in state.error
