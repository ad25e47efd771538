"""The pre-connect buffer: what it keeps, what it refuses, and what it will not send."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import attrs
import numpy as np
import numpy.typing as npt
import pytest
from livekit import rtc

from lkstate._core.errors import AudioInputError
from lkstate._core.options import PreConnectLimits
from lkstate._media.preconnect import PreConnectAudio, PreConnectBuffer, send_preconnect_audio
from tests.harness.audio_compare import RATE, locate, speech


def frame(value: int, *, rate: int = 48000, channels: int = 1, ms: int = 10) -> rtc.AudioFrame:
    samples = rate * ms // 1000
    data = np.full(samples * channels, value, dtype=np.int16).tobytes()
    return rtc.AudioFrame(data, rate, channels, samples)


def test_default_limits_hold_at_least_ten_seconds_of_48khz_mono() -> None:
    limits = PreConnectLimits()

    assert limits.max_bytes >= 10 * 48000 * 2
    assert limits.max_seconds >= 10
    assert limits.agent_wait_timeout == 10.0


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PreConnectLimits(max_bytes=0)
    with pytest.raises(ValueError):
        PreConnectLimits(max_seconds=-1.0)
    with pytest.raises(ValueError):
        PreConnectLimits(agent_wait_timeout=0.0)


def test_limits_are_immutable() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        PreConnectLimits().max_bytes = 1  # type: ignore[misc]


def test_an_empty_buffer_has_no_format_and_no_audio() -> None:
    buffer = PreConnectBuffer()

    assert (buffer.sample_rate, buffer.num_channels) == (None, None)
    assert (buffer.num_frames, buffer.num_bytes, buffer.seconds) == (0, 0, 0.0)
    assert buffer.data() == b""
    assert buffer.recording and not buffer.overflowed


def test_appended_frames_are_kept_in_order_and_counted() -> None:
    buffer = PreConnectBuffer()

    kept = [buffer.append(frame(v)) for v in (1, 2, 3)]

    assert kept == [True, True, True]
    assert (buffer.sample_rate, buffer.num_channels) == (48000, 1)
    assert (buffer.num_frames, buffer.num_bytes) == (3, 3 * 960)
    assert buffer.seconds == pytest.approx(0.030)
    audio = np.frombuffer(buffer.data(), dtype=np.int16)
    assert list(audio[::480]) == [1, 2, 3]


def test_the_byte_cap_keeps_the_first_audio_and_flags_the_overflow() -> None:
    buffer = PreConnectBuffer(PreConnectLimits(max_bytes=960 * 3 + 500))

    kept = [buffer.append(frame(v)) for v in range(1, 7)]

    assert kept == [True, True, True, False, False, False]
    assert buffer.overflowed
    assert buffer.num_bytes == 960 * 3  # whole frames only, never a partial one
    assert list(np.frombuffer(buffer.data(), dtype=np.int16)[::480]) == [1, 2, 3]


def test_once_full_a_smaller_frame_that_would_fit_is_still_refused() -> None:
    buffer = PreConnectBuffer(PreConnectLimits(max_bytes=960 + 500))
    assert buffer.append(frame(1))
    assert not buffer.append(frame(2))

    # 5 ms = 480 bytes would fit, but keeping it would leave a hole where frame 2 was.
    assert not buffer.append(frame(3, ms=5))
    assert buffer.num_frames == 1


def test_the_seconds_cap_applies_even_when_bytes_remain() -> None:
    buffer = PreConnectBuffer(PreConnectLimits(max_seconds=0.05))

    kept = [buffer.append(frame(v)) for v in range(8)]

    assert kept == [True] * 5 + [False] * 3
    assert buffer.seconds == pytest.approx(0.05)
    assert buffer.overflowed


def test_the_byte_cap_counts_bytes_not_frames_so_stereo_fills_twice_as_fast() -> None:
    limits = PreConnectLimits(max_bytes=960 * 4)
    mono, stereo = PreConnectBuffer(limits), PreConnectBuffer(limits)

    mono_kept = sum(mono.append(frame(1)) for _ in range(10))
    stereo_kept = sum(stereo.append(frame(1, channels=2)) for _ in range(10))

    assert (mono_kept, stereo_kept) == (4, 2)


def test_a_frame_in_another_format_is_a_clear_error() -> None:
    buffer = PreConnectBuffer()
    buffer.append(frame(1, rate=48000))

    with pytest.raises(AudioInputError, match="16000 Hz / 1 ch .* 48000 Hz / 1 ch") as caught:
        buffer.append(frame(2, rate=16000))
    assert caught.value.remedy
    with pytest.raises(AudioInputError, match="2 ch"):
        buffer.append(frame(2, channels=2))
    assert buffer.num_frames == 1


def test_after_stop_every_frame_is_refused_and_the_recording_is_final() -> None:
    buffer = PreConnectBuffer()
    buffer.append(frame(1))

    buffer.stop()

    assert not buffer.recording
    assert not buffer.append(frame(2))
    assert not buffer.overflowed  # refused because stopped, not because full
    assert buffer.num_frames == 1


def test_clear_forgets_the_audio_but_a_stopped_buffer_stays_stopped() -> None:
    buffer = PreConnectBuffer(PreConnectLimits(max_bytes=960))
    buffer.append(frame(1))
    buffer.append(frame(2))
    buffer.stop()

    buffer.clear()

    assert (buffer.data(), buffer.num_frames, buffer.overflowed, buffer.sample_rate) == (b"", 0, False, None)
    assert not buffer.append(frame(3))


def test_only_the_frames_samples_are_kept_when_its_memory_is_larger() -> None:
    data = np.arange(1000, dtype=np.int16).tobytes()
    oversized = rtc.AudioFrame(data, 48000, 1, 480)  # the frame uses 480 of 1000 samples

    buffer = PreConnectBuffer()
    buffer.append(oversized)

    assert buffer.num_bytes == 960
    assert np.array_equal(np.frombuffer(buffer.data(), dtype=np.int16), np.arange(480))


# send_preconnect_audio refuses bad arguments before touching the participant, so
# these need no room; the real sending is covered in tests/integration/test_preconnect_wire.py.


class NeverCalled:
    async def stream_bytes(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("nothing may be sent")


@pytest.mark.parametrize("track_sid", ["", "   "])
async def test_sending_with_an_empty_track_sid_is_refused(track_sid: str) -> None:
    with pytest.raises(ValueError, match="track sid"):
        await send_preconnect_audio(
            NeverCalled(),  # type: ignore[arg-type]
            agent_identity="agent-1",
            track_sid=track_sid,
            audio=b"\x00\x00",
            sample_rate=48000,
            num_channels=1,
        )


async def test_sending_without_an_agent_identity_is_refused() -> None:
    with pytest.raises(ValueError, match="agent's identity"):
        await send_preconnect_audio(
            NeverCalled(),  # type: ignore[arg-type]
            agent_identity="",
            track_sid="TR_abc",
            audio=b"\x00\x00",
            sample_rate=48000,
            num_channels=1,
        )


async def test_sending_pcm_cut_mid_sample_is_refused() -> None:
    with pytest.raises(ValueError, match="whole number"):
        await send_preconnect_audio(
            NeverCalled(),  # type: ignore[arg-type]
            agent_identity="agent-1",
            track_sid="TR_abc",
            audio=b"\x00\x00\x00",  # one and a half samples
            sample_rate=48000,
            num_channels=1,
        )


async def test_sending_opus_that_is_not_an_ogg_stream_is_refused() -> None:
    with pytest.raises(ValueError, match="Ogg stream"):
        await send_preconnect_audio(
            NeverCalled(),  # type: ignore[arg-type]
            agent_identity="agent-1",
            track_sid="TR_abc",
            audio=b"\x00\x00\x00\x00",  # PCM labelled Opus
            sample_rate=48000,
            num_channels=1,
            codec="opus",
        )


# ------------------------------------------------------------------------ Opus
#
# The buffer encodes while it records; what it sends is judged by the agent
# framework's own decoder (livekit.agents.utils.codecs.AudioStreamDecoder, the
# one its pre-connect handler uses), not by ours.


def test_opus_is_the_default_and_pcm_can_be_chosen() -> None:
    assert PreConnectLimits().codec == "opus"
    assert PreConnectBuffer(PreConnectLimits(codec="pcm")).codec == "pcm"
    with pytest.raises(ValueError):
        PreConnectLimits(codec="mp3")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PreConnectLimits(opus_bitrate=1000)


def record(samples: npt.NDArray[np.int16], rate: int, limits: PreConnectLimits | None = None) -> PreConnectBuffer:
    buffer = PreConnectBuffer(limits)
    step = rate // 100
    for start in range(0, len(samples), step):
        chunk = samples[start : start + step]
        assert buffer.append(rtc.AudioFrame(chunk.tobytes(), rate, 1, len(chunk)))
    return buffer


async def agent_decodes(audio: PreConnectAudio) -> npt.NDArray[np.int16]:
    """What livekit-agents' pre-connect handler makes of the stream: it decodes to ``sampleRate``."""
    from livekit.agents.utils.codecs import AudioStreamDecoder

    decoder = AudioStreamDecoder(sample_rate=audio.sample_rate, num_channels=audio.num_channels)
    for start in range(0, len(audio.data), 15_000):  # as the byte stream delivers it
        decoder.push(audio.data[start : start + 15_000])
    decoder.end_input()
    frames = [np.frombuffer(f.data.cast("B"), dtype=np.int16) async for f in decoder]
    return np.concatenate(frames)


async def test_the_agent_decodes_the_opus_recording_whole_in_place_and_alike() -> None:
    spoken = speech(3.0)
    buffer = record(spoken, RATE)
    assert buffer.codec == "opus" and buffer.codec_note is None
    while_recording = buffer.encoded_bytes

    audio = buffer.audio()

    assert not buffer.recording and buffer.audio() is audio
    assert (audio.codec, audio.mime_type, audio.sample_rate, audio.num_channels) == (
        "opus", "audio/ogg;codecs=opus", RATE, 1
    )
    assert audio.data.startswith(b"OggS") and audio.pcm == spoken.tobytes()
    assert audio.seconds == 3.0
    # Encoded while recording: most of it was written before the hand-over asked for it.
    assert 0.8 * len(audio.data) < while_recording <= len(audio.data) < len(audio.pcm) / 6  # 48 kb/s vs 384
    heard = await agent_decodes(audio)
    # Whole: not a sample more or less (the lead-in makes up for the 20 ms its decoder drops)...
    assert len(heard) == len(spoken)
    # ...in place and alike: every 20 ms window is found where it was spoken, correlating >= 0.95.
    located = locate(heard.astype(np.float64), spoken.astype(np.float64))
    assert len(located) >= 3.0 * 100 - 2
    assert all(w.score >= 0.95 and abs(w.instant - w.position) < 0.0005 for w in located), min(
        located, key=lambda w: w.score
    )


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
async def test_other_input_rates_are_coded_and_decoded_to_the_same_length(rate: int) -> None:
    seconds = 1.0
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(int(rate * seconds)) / rate)).astype(np.int16)
    audio = record(tone, rate).audio()

    assert audio.codec == "opus" and audio.input_rate == rate and audio.seconds == seconds
    # 44.1 kHz is no Opus rate: it is resampled to 48 kHz and the agent decodes it at 48 kHz.
    assert audio.sample_rate == (48000 if rate == 44100 else rate)
    heard = await agent_decodes(audio)
    assert len(heard) == int(audio.sample_rate * seconds)
    middle = heard[len(heard) // 4 : 3 * len(heard) // 4].astype(np.float64)
    assert 0.9 < np.sqrt(np.mean(middle**2)) / (8000 / np.sqrt(2)) < 1.1  # the tone, at its level


def test_an_input_opus_cannot_code_is_recorded_and_sent_as_pcm_and_says_why() -> None:
    buffer = PreConnectBuffer()
    quad = rtc.AudioFrame(np.arange(480 * 4, dtype=np.int16).tobytes(), 48000, 4, 480)

    assert buffer.append(quad)

    assert buffer.codec == "pcm" and buffer.codec_note == "Opus codes mono or stereo here, not 4 channels"
    audio = buffer.audio()
    assert (audio.codec, audio.data, audio.sample_rate, audio.num_channels) == ("pcm", buffer.data(), 48000, 4)


def test_without_pyav_the_recording_is_sent_as_pcm() -> None:
    # A fresh interpreter in which importing PyAV fails, as on an install without it.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["av"] = None  # "import av" raises ImportError
        import numpy as np
        from livekit import rtc
        from lkstate._media.preconnect import PreConnectBuffer

        buffer = PreConnectBuffer()
        frame = rtc.AudioFrame(np.arange(480, dtype=np.int16).tobytes(), 48000, 1, 480)
        assert buffer.append(frame)
        audio = buffer.audio()
        print(audio.codec, audio.mime_type, audio.data == frame.data.cast("B").tobytes(), buffer.codec_note)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    codec, mime, same, *why = done.stdout.split()
    assert (codec, mime, same) == ("pcm", "application/octet-stream", "True")
    assert " ".join(why).startswith("PyAV is not installed")


def test_a_prefilled_recording_starts_with_the_kept_audio_and_counts_it_against_the_caps() -> None:
    kept = speech(0.5)
    buffer = PreConnectBuffer(PreConnectLimits(max_seconds=0.6))

    buffer.prefill(kept.tobytes(), RATE, 1)
    later = [buffer.append(rtc.AudioFrame(np.full(240, 7, dtype=np.int16).tobytes(), RATE, 1, 240)) for _ in range(15)]

    assert later == [True] * 10 + [False] * 5 and buffer.overflowed
    assert buffer.data()[: len(kept) * 2] == kept.tobytes()
    assert buffer.audio().codec == "opus" and buffer.audio().seconds == pytest.approx(0.6)


def test_clearing_drops_the_encoded_stream_too() -> None:
    buffer = record(speech(0.2), RATE)
    buffer.stop()
    buffer.clear()

    assert (buffer.num_bytes, buffer.encoded_bytes, buffer.seconds) == (0, 0, 0.0)
    assert buffer.audio().data == b""


class BrokenStream:
    """Stands in for the encoder's PyAV stream once libopus starts failing."""

    def encode(self, frame: object) -> list[object]:
        raise RuntimeError("libopus: internal error")


def test_an_encoder_that_fails_mid_recording_leaves_the_whole_recording_to_go_as_pcm() -> None:
    buffer = PreConnectBuffer()
    first = rtc.AudioFrame(np.arange(480, dtype=np.int16).tobytes(), 48000, 1, 480)
    assert buffer.append(first) and buffer.codec == "opus"
    encoder = buffer._encoder  # pyright: ignore[reportPrivateUsage]
    assert encoder is not None
    encoder._stream = BrokenStream()  # pyright: ignore[reportPrivateUsage]

    kept = [buffer.append(frame(v)) for v in (1, 2)]

    assert kept == [True, True], "the frames are kept though the encoder failed"
    assert buffer.codec == "pcm" and buffer.codec_note == "the Opus encoder failed (libopus: internal error)"
    audio = buffer.audio()
    assert (audio.codec, audio.data) == ("pcm", first.data.cast("B").tobytes() + frame(1).data.cast("B").tobytes()
                                         + frame(2).data.cast("B").tobytes())
