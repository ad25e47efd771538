"""The pre-connect buffer: what it keeps, what it refuses, and what it will not send."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from livekit import rtc

from lkstate._core.errors import AudioInputError
from lkstate._core.options import PreConnectLimits
from lkstate._media.preconnect import PreConnectBuffer, send_preconnect_audio


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
            pcm=b"\x00\x00",
            sample_rate=48000,
            num_channels=1,
        )


async def test_sending_without_an_agent_identity_is_refused() -> None:
    with pytest.raises(ValueError, match="agent's identity"):
        await send_preconnect_audio(
            NeverCalled(),  # type: ignore[arg-type]
            agent_identity="",
            track_sid="TR_abc",
            pcm=b"\x00\x00",
            sample_rate=48000,
            num_channels=1,
        )


async def test_sending_pcm_cut_mid_sample_is_refused() -> None:
    with pytest.raises(ValueError, match="whole number"):
        await send_preconnect_audio(
            NeverCalled(),  # type: ignore[arg-type]
            agent_identity="agent-1",
            track_sid="TR_abc",
            pcm=b"\x00\x00\x00",  # one and a half samples
            sample_rate=48000,
            num_channels=1,
        )
