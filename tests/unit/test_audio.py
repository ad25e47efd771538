"""Audio inputs and the pump: what a session feeds into the microphone track."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from livekit import rtc

from lkstate._media.audio import (
    AudioInput,
    GeneratorInput,
    MicrophoneInput,
    PumpCounts,
    WavFileInput,
    default_audio_input,
    pump,
)
from lkstate._core.errors import AudioInputError
from lkstate._media.pacing import Pacer
from lkstate._media.preconnect import PreConnectBuffer


def write_wav(path: Path, samples: npt.NDArray[np.int16], *, rate: int = 48000, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.ascontiguousarray(samples).tobytes())
    return path


def ramp(n: int, start: int = 1) -> npt.NDArray[np.int16]:
    """Distinct sample values, so any reordering, loss or duplication shows."""
    return ((np.arange(n) + start) % 30000).astype(np.int16)


async def collect(input: AudioInput, limit: int | None = None) -> list[rtc.AudioFrame]:
    frames: list[rtc.AudioFrame] = []
    async for frame in input.frames():
        frames.append(frame)
        if limit is not None and len(frames) >= limit:
            break
    return frames


def pcm(frames: list[rtc.AudioFrame]) -> npt.NDArray[np.int16]:
    if not frames:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate([np.frombuffer(f.data.cast("B"), dtype=np.int16) for f in frames])


# --------------------------------------------------------------------------- WAV


async def test_wav_input_yields_the_whole_file_as_exact_10ms_frames_padding_the_last(tmp_path: Path) -> None:
    samples = ramp(480 * 2 + 243)
    wav = WavFileInput(write_wav(tmp_path / "a.wav", samples), realtime=False)

    frames = await collect(wav)

    assert (wav.sample_rate, wav.num_channels) == (48000, 1)
    assert [f.samples_per_channel for f in frames] == [480, 480, 480]
    assert all(f.sample_rate == 48000 and f.num_channels == 1 for f in frames)
    expected = np.concatenate([samples, np.zeros(480 - 243, dtype=np.int16)])
    assert np.array_equal(pcm(frames), expected)


async def test_stereo_wav_frames_stay_interleaved(tmp_path: Path) -> None:
    left, right = ramp(160 * 3, start=1), -ramp(160 * 3, start=1)
    interleaved = np.stack([left, right], axis=1)
    wav = WavFileInput(write_wav(tmp_path / "s.wav", interleaved, rate=16000, channels=2), realtime=False)

    frames = await collect(wav)

    assert [(f.samples_per_channel, f.num_channels, f.sample_rate) for f in frames] == [(160, 2, 16000)] * 3
    assert np.array_equal(pcm(frames), interleaved.reshape(-1))


async def test_each_frames_call_reads_the_wav_from_the_start(tmp_path: Path) -> None:
    wav = WavFileInput(write_wav(tmp_path / "a.wav", ramp(960)), realtime=False)

    assert np.array_equal(pcm(await collect(wav)), pcm(await collect(wav)))


async def test_looping_wav_wraps_around_without_a_seam(tmp_path: Path) -> None:
    samples = ramp(720)  # 15 ms: every other frame straddles the wrap
    wav = WavFileInput(write_wav(tmp_path / "a.wav", samples), realtime=False, loop=True)

    frames = await collect(wav, limit=7)

    assert np.array_equal(pcm(frames), np.tile(samples, 5)[: 7 * 480])


async def test_closing_a_looping_wav_ends_its_frames(tmp_path: Path) -> None:
    wav = WavFileInput(write_wav(tmp_path / "a.wav", ramp(480)), realtime=False, loop=True)
    count = 0
    async for _ in wav.frames():
        count += 1
        if count == 3:
            await wav.aclose()

    assert count == 3


async def test_realtime_wav_input_still_yields_every_frame(tmp_path: Path) -> None:
    samples = ramp(480 * 5)
    wav = WavFileInput(write_wav(tmp_path / "a.wav", samples), realtime=True)

    frames = await collect(wav)

    assert np.array_equal(pcm(frames), samples)


def test_a_24_bit_wav_is_refused_with_a_conversion_remedy(tmp_path: Path) -> None:
    path = tmp_path / "deep.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(3)
        w.setframerate(48000)
        w.writeframes(bytes(300))

    with pytest.raises(AudioInputError, match="24-bit") as caught:
        WavFileInput(path)
    assert "pcm_s16le" in caught.value.remedy


def test_a_missing_wav_raises_audio_input_error(tmp_path: Path) -> None:
    with pytest.raises(AudioInputError, match="does not exist"):
        WavFileInput(tmp_path / "nope.wav")


def test_a_file_that_is_not_a_wav_raises_audio_input_error(tmp_path: Path) -> None:
    path = tmp_path / "fake.wav"
    path.write_bytes(b"this is not RIFF data at all" * 4)

    with pytest.raises(AudioInputError, match="not a readable PCM WAV"):
        WavFileInput(path)


def test_frame_lengths_that_are_not_whole_samples_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="whole number of samples"):
        WavFileInput(write_wav(tmp_path / "a.wav", ramp(100), rate=44100), frame_ms=3)


# ---------------------------------------------------------------------- pacing


class FakeClock:
    """A clock whose every sleep oversleeps, as a busy scheduler would."""

    def __init__(self, oversleep: float) -> None:
        self.now = 100.0
        self.oversleep = oversleep
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> Awaitable[None]:
        self.sleeps.append(seconds)
        self.now += seconds + self.oversleep

        async def done() -> None:
            return None

        return done()


async def test_pacing_absorbs_lateness_instead_of_accumulating_drift() -> None:
    clock = FakeClock(oversleep=0.004)
    pacer = Pacer(0.010, clock=clock.time, sleep=clock.sleep)

    releases: list[float] = []
    for _ in range(1000):
        await pacer.wait()
        releases.append(clock.now)

    start = releases[0]
    # Frame n leaves at its deadline plus at most one oversleep, however long the stream is.
    lateness = [t - (start + n * 0.010) for n, t in enumerate(releases)]
    assert max(lateness) == pytest.approx(0.004)
    assert releases[-1] - start == pytest.approx(999 * 0.010 + 0.004)
    # ...because each sleep is shortened by the previous frame's lateness.
    assert clock.sleeps[1:] == pytest.approx([0.006] * 998)


async def test_pacing_reanchors_after_a_long_stall_instead_of_bursting() -> None:
    clock = FakeClock(oversleep=0.0)
    pacer = Pacer(0.010, clock=clock.time, sleep=clock.sleep, max_lag=1.0)
    for _ in range(10):
        await pacer.wait()
    clock.now += 5.0  # the laptop slept

    sleeps_before = len(clock.sleeps)
    for _ in range(3):
        await pacer.wait()

    # No burst of 500 overdue frames: after the first frame the 10 ms rhythm resumes.
    assert clock.sleeps[sleeps_before:] == pytest.approx([0.010, 0.010])


# ------------------------------------------------------------------ generators


async def test_generator_bytes_of_any_length_are_recut_into_exact_frames() -> None:
    samples = ramp(480 * 4 + 100)
    raw = samples.tobytes()
    cuts = [0, 7, 340, 341, 2000, 3001, len(raw)]  # odd sizes split samples in half
    chunks = [raw[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    gen = GeneratorInput(chunks, sample_rate=48000, realtime=False)

    frames = await collect(gen)

    assert [f.samples_per_channel for f in frames] == [480] * 5
    assert np.array_equal(pcm(frames)[: len(samples)], samples)
    assert not pcm(frames)[len(samples) :].any()


async def test_generator_accepts_an_async_iterable_of_numpy_arrays() -> None:
    samples = ramp(160 * 6)

    async def source() -> AsyncIterator[npt.NDArray[np.int16]]:
        for part in np.array_split(samples, 4):
            yield part

    frames = await collect(GeneratorInput(source(), sample_rate=16000, realtime=False))

    assert np.array_equal(pcm(frames), samples)


async def test_generator_takes_two_dimensional_arrays_as_samples_by_channels() -> None:
    stereo = np.stack([ramp(480), -ramp(480)], axis=1)

    frames = await collect(GeneratorInput([stereo], sample_rate=48000, num_channels=2, realtime=False))

    assert [(f.samples_per_channel, f.num_channels) for f in frames] == [(480, 2)]
    assert np.array_equal(pcm(frames), stereo.reshape(-1))


async def test_generator_refuses_float_arrays_with_a_conversion_remedy() -> None:
    floats = [np.zeros(480, dtype=np.float32)]
    gen = GeneratorInput(floats, sample_rate=48000, realtime=False)  # pyright: ignore[reportArgumentType]

    with pytest.raises(AudioInputError, match="float32") as caught:
        await collect(gen)
    assert "astype(np.int16)" in caught.value.remedy


async def test_generator_refuses_arrays_with_the_wrong_channel_count() -> None:
    gen = GeneratorInput([np.zeros((480, 2), dtype=np.int16)], sample_rate=48000, num_channels=1, realtime=False)

    with pytest.raises(AudioInputError, match="1 channel"):
        await collect(gen)


async def test_a_generator_input_can_be_read_only_once() -> None:
    gen = GeneratorInput([ramp(480).tobytes()], sample_rate=48000, realtime=False)
    await collect(gen)

    with pytest.raises(AudioInputError, match="already read"):
        await collect(gen)


async def test_realtime_generator_yields_every_frame() -> None:
    samples = ramp(480 * 4)

    frames = await collect(GeneratorInput([samples], sample_rate=48000, realtime=True))

    assert np.array_equal(pcm(frames), samples)


def test_the_inputs_satisfy_the_audio_input_protocol(tmp_path: Path) -> None:
    wav = WavFileInput(write_wav(tmp_path / "a.wav", ramp(480)))
    gen = GeneratorInput([], sample_rate=48000)

    assert isinstance(wav, AudioInput)
    assert isinstance(gen, AudioInput)
    assert not isinstance(object(), AudioInput)


# ------------------------------------------------------------------ microphone


def test_importing_the_audio_module_does_not_load_sounddevice() -> None:
    probe = "import sys, lkstate._media.audio; print('sounddevice' in sys.modules)"

    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "False"


def _machine_has_a_microphone() -> bool:
    try:
        import sounddevice as sd  # pyright: ignore[reportMissingTypeStubs]
    except (ImportError, OSError):
        return False
    devices = sd.query_devices()  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    return any(d.get("max_input_channels", 0) > 0 for d in devices)  # pyright: ignore


no_microphone = pytest.mark.skipif(_machine_has_a_microphone(), reason="this machine has a real microphone")


@no_microphone
def test_microphone_input_without_a_device_explains_and_suggests_file_input() -> None:
    with pytest.raises(AudioInputError) as caught:
        MicrophoneInput()

    assert str(caught.value.message).startswith("no microphone found")
    assert "WavFileInput" in caught.value.remedy
    assert "WavFileInput" in str(caught.value)  # a bare print() already tells the user what to do


@no_microphone
def test_default_audio_input_is_none_without_a_microphone() -> None:
    assert default_audio_input() is None


# ------------------------------------------------------------------------ pump


async def read_track(track: rtc.LocalAudioTrack, count: int) -> npt.NDArray[np.int16]:
    stream = rtc.AudioStream.from_track(track=track, sample_rate=48000, num_channels=1)
    got: list[rtc.AudioFrame] = []
    try:
        async for event in stream:
            if not np.frombuffer(event.frame.data, dtype=np.int16).any():
                # Silence the track plays out while its source runs dry: before the first
                # captured frame, or between two when a loaded machine delays the pump (both
                # seen on busy runs). The inputs here are ramps, never a frame of zeros.
                continue
            got.append(event.frame)
            if len(got) >= count:
                break
    finally:
        await stream.aclose()
    return pcm(got)


async def run_pump_into_track(
    input: AudioInput, on_frame: Callable[[rtc.AudioFrame], bool | None] | None, expect_on_track: int
) -> tuple[PumpCounts, npt.NDArray[np.int16]]:
    source = rtc.AudioSource(48000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("mic", source)
    try:
        reader = asyncio.create_task(read_track(track, expect_on_track))
        await asyncio.sleep(0)  # the stream is attached before the first frame
        counts = await pump(input, source, on_frame=on_frame)
        on_track = await asyncio.wait_for(reader, 10)
    finally:
        await source.aclose()
    return counts, on_track


async def test_pump_captures_every_frame_into_the_track_source() -> None:
    samples = ramp(480 * 20)

    counts, on_track = await run_pump_into_track(
        GeneratorInput([samples], sample_rate=48000, realtime=False), None, expect_on_track=20
    )

    assert counts == PumpCounts(to_source=20, claimed=0)
    assert np.array_equal(on_track, samples)


async def test_pump_hands_each_frame_to_the_buffer_or_the_track_never_both_nor_neither() -> None:
    samples = ramp(480 * 30)
    buffer = PreConnectBuffer()
    seen = 0

    def buffer_then_handover(frame: rtc.AudioFrame) -> bool:
        nonlocal seen
        seen += 1
        if seen == 13:  # the agent subscribed: stop between frame 12 and 13
            buffer.stop()
        return buffer.append(frame)

    counts, on_track = await run_pump_into_track(
        GeneratorInput([samples], sample_rate=48000, realtime=False), buffer_then_handover, expect_on_track=18
    )

    assert counts == PumpCounts(to_source=18, claimed=12)
    buffered = np.frombuffer(buffer.data(), dtype=np.int16)
    assert np.array_equal(np.concatenate([buffered, on_track]), samples)


async def test_a_hook_that_only_observes_does_not_take_frames_from_the_track() -> None:
    observed: list[int] = []

    counts, on_track = await run_pump_into_track(
        GeneratorInput([ramp(480 * 5)], sample_rate=48000, realtime=False),
        lambda frame: observed.append(frame.samples_per_channel),
        expect_on_track=5,
    )

    assert observed == [480] * 5
    assert counts == PumpCounts(to_source=5, claimed=0)
    assert np.array_equal(on_track, ramp(480 * 5))


async def test_pump_refuses_a_source_of_another_format() -> None:
    source = rtc.AudioSource(16000, 1)
    try:
        with pytest.raises(AudioInputError, match="48000 Hz") as caught:
            await pump(GeneratorInput([], sample_rate=48000, realtime=False), source)
        assert "AudioSource" in caught.value.remedy
    finally:
        await source.aclose()


async def test_a_live_input_s_backlog_in_the_track_source_is_worked_off_in_its_silences_never_in_speech() -> None:
    # A browser's microphone arrives in a burst (the 200 ms it held while its channel opened), then live:
    # the source would keep that cushion for good. Silent frames are left out until it is under 30 ms.
    from lkstate._media.push import PushAudioInput

    silence, speech = np.zeros(480 * 10, dtype=np.int16), ramp(480 * 5) | 1000
    burst = np.concatenate([silence, speech, silence])
    kept: dict[bool, PumpCounts] = {}
    for live in (False, True):
        source = rtc.AudioSource(48000, 1)
        input = PushAudioInput(sample_rate=48000)
        input.push(burst)
        await input.aclose()
        captured: list[rtc.AudioFrame] = []
        capture = source.capture_frame

        async def keep(frame: rtc.AudioFrame) -> None:
            captured.append(frame)
            await capture(frame)

        source.capture_frame = keep  # type: ignore[method-assign]
        try:
            kept[live] = await pump(input, source, live_backlog=0.03 if live else None)
        finally:
            await source.aclose()
        loud = [frame for frame in captured if np.frombuffer(frame.data, dtype=np.int16).any()]
        assert np.array_equal(pcm(loud), speech), "speech was left out or changed"

    assert kept[False] == PumpCounts(to_source=25, claimed=0, skipped_silence=0)
    assert kept[True].skipped_silence > 0
    assert kept[True].to_source + kept[True].skipped_silence == 25
