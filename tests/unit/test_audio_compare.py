"""The judge of the pre-connect wire tests catches what it is there to catch.

A wire test that says "nothing missing, nothing doubled" is only as good as
``tests/harness/audio_compare.py``; here it is shown audio with a stretch
heard twice or lost, at the handover and later on, and must object.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from tests.harness.audio_compare import RATE, Verdict, assert_whole_and_once, judge, loud_windows, speech, without_silence

SPOKEN = speech(2.0)
CUT = RATE  # the buffer holds the first second
BUFFER = SPOKEN[:CUT].tobytes()
SILENCE = np.zeros(RATE // 4, dtype=np.int16)


def heard(live: npt.NDArray[np.int16], buffer: bytes = BUFFER) -> Verdict:
    """What an STT would hear: the buffer, a quarter second of silence, then ``live``."""
    return judge(buffer + np.concatenate([SILENCE, live]).tobytes(), SPOKEN, len(BUFFER))


def test_the_judge_accepts_the_buffer_then_the_rest_of_the_speech() -> None:
    assert_whole_and_once(heard(SPOKEN[CUT:]), 2.0)


def test_the_judge_catches_buffered_audio_heard_again_live() -> None:
    with pytest.raises(AssertionError, match="heard again"):
        assert_whole_and_once(heard(SPOKEN[CUT - RATE // 20 :]), 2.0)  # 50 ms of the buffer again


def test_the_judge_catches_audio_lost_at_the_handover() -> None:
    with pytest.raises(AssertionError, match="lost at the handover"):
        assert_whole_and_once(heard(SPOKEN[CUT + RATE // 10 :]), 2.0)  # 100 ms never heard


def test_the_judge_catches_audio_lost_later_on() -> None:
    half = CUT + RATE // 2
    with pytest.raises(AssertionError, match="audio was lost"):  # 200 ms skipped
        assert_whole_and_once(heard(np.concatenate([SPOKEN[CUT:half], SPOKEN[half + RATE // 5 :]])), 2.0)


def test_the_judge_tolerates_what_a_loaded_receivers_jitter_buffer_skips() -> None:
    half = CUT + RATE // 2
    assert_whole_and_once(heard(np.concatenate([SPOKEN[CUT:half], SPOKEN[half + RATE // 14 :]])), 2.0)  # 70 ms


def test_the_judge_catches_audio_heard_twice_later_on() -> None:
    half = CUT + RATE // 2
    with pytest.raises(AssertionError, match="twice"):
        assert_whole_and_once(heard(np.concatenate([SPOKEN[CUT:half], SPOKEN[half - RATE // 10 :]])), 2.0)


def test_the_judge_catches_a_buffer_that_is_not_the_start_of_the_speech() -> None:
    shifted = SPOKEN[1 : CUT + 1].tobytes()
    with pytest.raises(AssertionError, match="whole and in place"):
        assert_whole_and_once(heard(SPOKEN[CUT:], buffer=shifted), 2.0)


# An Opus-coded buffer is not equal to the input, only alike, window by window and in place.

NOISY = (SPOKEN[:CUT] + np.random.default_rng(3).normal(0, 800, CUT)).astype(np.int16)
"""The buffer as a lossy codec might return it: about 0.99 correlation with what was said."""


def coded(buffer: npt.NDArray[np.int16], live: npt.NDArray[np.int16] = SPOKEN[CUT:]) -> Verdict:
    return judge(buffer.tobytes() + np.concatenate([SILENCE, live]).tobytes(), SPOKEN, CUT * 2, coded=True)


def test_the_judge_accepts_a_coded_buffer_that_is_alike_in_place() -> None:
    verdict = coded(NOISY)

    assert_whole_and_once(verdict, 2.0)
    assert 0.9 <= verdict.buffer_worst < 1.0
    assert not judge(NOISY.tobytes() + SPOKEN[CUT:].tobytes(), SPOKEN, CUT * 2).buffer_exact  # not equal


@pytest.mark.parametrize(
    "buffer",
    [
        pytest.param(np.concatenate([NOISY[480:], NOISY[:480]]), id="its first 20 ms lost"),
        pytest.param(np.concatenate([NOISY[:12], NOISY[:-12]]), id="half a millisecond late"),
        pytest.param((NOISY * 0 + SPOKEN[CUT : 2 * CUT]).astype(np.int16), id="other speech"),
        pytest.param(np.concatenate([NOISY[: CUT // 2], NOISY[CUT // 2 - 2400 : CUT - 2400]]), id="100 ms twice"),
    ],
)
def test_the_judge_catches_a_coded_buffer_that_is_shifted_cut_or_other(buffer: npt.NDArray[np.int16]) -> None:
    with pytest.raises(AssertionError, match="whole and in place"):
        assert_whole_and_once(coded(buffer), 2.0)


def test_the_judge_catches_a_lost_end() -> None:
    with pytest.raises(AssertionError, match="end of the speech"):
        assert_whole_and_once(heard(SPOKEN[CUT : -RATE // 5]), 2.0)


def test_silence_a_track_plays_while_idle_is_removed_and_nothing_else() -> None:
    a, b = SPOKEN[:480].tobytes(), SPOKEN[480:960].tobytes()
    padded = bytes(64) + a + bytes(2 * 240) + b + bytes(32)  # 32, 240 and 16 zero samples
    assert without_silence(padded) == a + b


def test_loud_windows_counts_speech_not_silence() -> None:
    assert loud_windows(bytes(2 * RATE)) == 0
    assert loud_windows(SPOKEN[: RATE // 10].tobytes()) == 5  # 100 ms: five 20 ms windows
