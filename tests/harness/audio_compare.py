"""Judging what an agent heard against what the user said: nothing missing, nothing doubled.

The wire tests for pre-connect audio make the user "speak" :func:`speech` —
seeded band-limited noise (300–3400 Hz, RMS 5000, loud enough for the
``ScriptedSTT`` voice rule) at 24 kHz mono, the agent's own input rate. No two
stretches of it look alike, so any 20 ms of what the agent heard can be
located in the input by cross-correlation, even after Opus.

How the comparison works
------------------------

What the agent's speech-to-text receives is ``buffer + live``:

* **the buffer, sample for sample** — sent as raw PCM at the agent's rate,
  nothing resamples or codes the recording: the first ``buffer_bytes`` bytes
  the STT received must *equal* the first bytes of the input. That also
  proves the agent heard the buffer first.
* **or, sent as Opus, window by window in place** (``coded=True``) — the
  first ``buffer_bytes`` bytes the STT received (the recording's length as
  PCM) are cut in 20 ms windows (10 ms hop), and every loud one must be found
  in the input *at its own position* (within half a millisecond) with a
  normalised correlation of at least :data:`BUFFER_ALIKE` (0.9; Opus at the
  default 48 kb/s scores 0.96 or better on this noise). Nothing of the
  recording is then missing, shifted, repeated, or heard after the live part.
* **the live part, by position** — the rest went through Opus, the agent's
  jitter buffer and its resampler, so it cannot be compared byte for byte.
  Each 20 ms window of it (10 ms hop) is located in the input; windows whose
  normalised correlation is at least 0.9 are *recognised* (in steady state
  they score about 0.98; windows the jitter buffer synthesised to hide a late
  packet score far lower). Then (:func:`assert_whole_and_once`):

  - the first recognised window comes from no earlier than 5 ms before the
    instant the buffer ended (a window may begin a few samples before the
    first live sample and still be recognised; a repeated 10 ms frame would
    read 10 ms early: nothing the buffer held is heard again live), and at
    most 45 ms later than the time since the live audio began (nothing lost
    at the handover; 45 ms is the most the jitter buffer was seen to stretch
    while a stream starts);
  - every recognised window comes from later in the input than the one
    before (nothing heard twice), no more than 150 ms of input lies between
    two consecutive recognised windows, and the last comes from the last
    50 ms of the input (nothing lost at the end). The 150 ms is the
    receiver's, not ours: on two loaded cores the agent's jitter buffer was
    seen skipping 70 ms to catch up. Losing single frames on the client is
    caught exactly by the client-side check below, not by this one.

On the client, the split itself can be checked exactly: the recording sent
plus every sample the local microphone track carried (read from the track
itself, :func:`without_silence` removing the silence a track plays while its
source is idle) must equal the input — each captured sample took exactly one
path, in order.

``tests/unit/test_audio_compare.py`` shows the judge catches audio heard
twice or lost, so a passing wire test means something.
"""

from __future__ import annotations

import attrs
import numpy as np
import numpy.typing as npt

__all__ = [
    "RATE",
    "RECOGNISED",
    "Located",
    "Verdict",
    "speech",
    "locate",
    "judge",
    "assert_whole_and_once",
    "without_silence",
    "loud_windows",
]

RATE = 24000
"""The agent's input rate; the user speaks at it too, so the buffer arrives unresampled."""
WINDOW = RATE // 50  # 20 ms
HOP = RATE // 100  # 10 ms
RECOGNISED = 0.9
"""Normalised correlation from which a live window counts as found in the input."""
BUFFER_ALIKE = 0.9
"""Normalised correlation every window of an Opus-coded buffer must reach, at its own position."""
_LOUD = 1500.0
"""RMS (int16 units) from which a window counts as speech rather than silence."""


def speech(seconds: float, *, seed: int = 7) -> npt.NDArray[np.int16]:
    """Band-limited noise at :data:`RATE`: every 20 ms of it is unlike any other."""
    n = int(RATE * seconds)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    frequencies = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(frequencies < 300) | (frequencies > 3400)] = 0
    x = np.fft.irfft(spectrum, n)
    return (x / np.std(x) * 5000).clip(-32000, 32000).astype(np.int16)


@attrs.frozen
class Located:
    position: float
    """Seconds into the live audio (window start)."""
    instant: float
    """Seconds into the input it was found at (window start)."""
    score: float


class _Search:
    """Normalised cross-correlation of 20 ms windows against the input, over all of it or a stretch."""

    def __init__(self, spoken: npt.NDArray[np.float64]) -> None:
        self.spoken = spoken
        energy = np.concatenate([[0.0], np.cumsum(spoken * spoken)])
        self.norms = np.sqrt(np.maximum(energy[WINDOW:] - energy[:-WINDOW], 0.0))

    def best(self, chunk: npt.NDArray[np.float64], lo: int = 0, hi: int | None = None) -> tuple[int, float]:
        hi = len(self.norms) if hi is None else min(hi, len(self.norms))
        lo = max(0, lo)
        stretch = self.spoken[lo : hi + WINDOW - 1]
        size = 1 << int(np.ceil(np.log2(len(stretch) + WINDOW)))
        correlation = np.fft.irfft(np.fft.rfft(stretch, size) * np.conj(np.fft.rfft(chunk, size)), size)
        scores = correlation[: hi - lo] / (self.norms[lo:hi] * np.sqrt(np.sum(chunk * chunk)) + 1e-9)
        index = int(np.argmax(scores))
        return lo + index, float(scores[index])


def locate(live: npt.NDArray[np.float64], spoken: npt.NDArray[np.float64]) -> list[Located]:
    """Find every loud 20 ms window of ``live`` in ``spoken``.

    Each window is first looked for within 250 ms of where the previous one
    points (fast); if it is not recognised there, in the whole input.
    """
    search = _Search(spoken)
    reach = RATE // 4
    found: list[Located] = []
    guess: int | None = None
    for start in range(0, len(live) - WINDOW, HOP):
        chunk = live[start : start + WINDOW]
        if np.sqrt(np.mean(chunk * chunk)) < _LOUD:
            continue  # silence: the track carried nothing while the buffer recorded
        best, score = (0, 0.0) if guess is None else search.best(chunk, guess - reach, guess + reach)
        if score < RECOGNISED:
            best, score = search.best(chunk)
        found.append(Located(start / RATE, best / RATE, score))
        if score >= RECOGNISED:
            guess = best + HOP
        elif guess is not None:
            guess += HOP
    return found


def loud_windows(pcm: bytes) -> int:
    """How many 20 ms windows of ``pcm`` (s16 mono) are speech rather than silence."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype=np.int16).astype(np.float64)
    count = 0
    for start in range(0, len(samples) - WINDOW + 1, WINDOW):
        chunk = samples[start : start + WINDOW]
        if np.sqrt(np.mean(chunk * chunk)) >= _LOUD:
            count += 1
    return count


@attrs.frozen
class Verdict:
    buffer_bytes: int
    buffer_exact: bool
    """PCM: equal, sample for sample. Opus: every loud window alike and in place."""
    buffer_worst: float
    """The lowest correlation of a buffer window with the input at its position (1.0 for equal PCM)."""
    first_instant_ms: float
    """Input instant of the first recognised live window, minus the instant the buffer ended."""
    live_began_ms: float
    """Time from the first loud live window to the first recognised one."""
    repeats: int
    """Recognised windows that came from no later in the input than the one before."""
    worst_gap_ms: float
    last_instant: float
    recognised: int
    windows: int


def buffer_alike(heard: bytes, spoken: npt.NDArray[np.int16]) -> tuple[bool, float]:
    """Whether every loud 20 ms window of ``heard`` (s16 mono) is ``spoken`` at the same position.

    Returns (all windows alike and in place, the lowest correlation seen).
    """
    samples = np.frombuffer(heard[: len(heard) - len(heard) % 2], dtype=np.int16).astype(np.float64)
    reference = spoken.astype(np.float64)
    worst, ok, windows = 1.0, True, 0
    for start in range(0, len(samples) - WINDOW + 1, HOP):
        chunk = samples[start : start + WINDOW]
        if np.sqrt(np.mean(chunk * chunk)) < _LOUD:
            continue
        windows += 1
        target = reference[start : start + WINDOW]
        if len(target) < WINDOW:
            return False, 0.0  # heard more than was spoken
        score = float(np.dot(chunk, target) / (np.linalg.norm(chunk) * np.linalg.norm(target) + 1e-9))
        worst = min(worst, score)
        ok = ok and score >= BUFFER_ALIKE
    return ok and windows > 0, worst


def judge(heard: bytes, spoken: npt.NDArray[np.int16], buffer_bytes: int, *, coded: bool = False) -> Verdict:
    """Compare what the STT heard with what was spoken (see the module docstring).

    ``buffer_bytes`` is the length of the recording as PCM at :data:`RATE`;
    ``coded`` says it was sent as Opus (compared window by window, not byte by byte).
    """
    if coded:
        exact, worst = buffer_alike(heard[:buffer_bytes], spoken)
    else:
        exact = heard[:buffer_bytes] == spoken.tobytes()[:buffer_bytes]
        worst = 1.0 if exact else 0.0
    live = np.frombuffer(heard[buffer_bytes:], dtype=np.int16).astype(np.float64)
    located = locate(live, spoken.astype(np.float64))
    good = [w for w in located if w.score >= RECOGNISED]
    assert good, f"nothing live was recognised in {len(located)} loud windows"
    instants = [w.instant for w in good]
    return Verdict(
        buffer_bytes=buffer_bytes,
        buffer_exact=exact,
        buffer_worst=round(worst, 4),
        first_instant_ms=(good[0].instant - buffer_bytes / 2 / RATE) * 1000,
        live_began_ms=(good[0].position - located[0].position) * 1000,
        repeats=sum(1 for a, b in zip(instants, instants[1:]) if b <= a),
        worst_gap_ms=max((b - a - HOP / RATE for a, b in zip(instants, instants[1:])), default=0.0) * 1000,
        last_instant=instants[-1] + WINDOW / RATE,
        recognised=len(good),
        windows=len(located),
    )


def assert_whole_and_once(verdict: Verdict, seconds: float) -> None:
    """The buffer first and exact, then the live part with nothing lost or repeated."""
    assert verdict.buffer_bytes > 0
    assert verdict.buffer_exact, f"the agent's STT did not hear the buffer first, whole and in place: {verdict}"
    assert verdict.first_instant_ms >= -5, f"audio from the buffer was heard again live: {verdict}"
    assert verdict.first_instant_ms <= verdict.live_began_ms + 45, f"audio was lost at the handover: {verdict}"
    assert verdict.repeats == 0, f"audio was heard twice: {verdict}"
    assert verdict.worst_gap_ms <= 150, f"audio was lost: {verdict}"
    assert verdict.last_instant >= seconds - 0.05, f"the end of the speech was lost: {verdict}"


def without_silence(pcm: bytes | bytearray) -> bytes:
    """``pcm`` minus every run of 16 or more zero samples.

    A local track plays silence whenever its source has nothing queued: before
    the first live frame, after the last, and for 10 ms when a frame comes a
    little late. :func:`speech` never holds 16 exact zeros in a row, so what
    remains is exactly the audio that was captured into the track.
    """
    samples = np.frombuffer(bytes(pcm), dtype=np.int16)
    zero = np.concatenate([[False], samples == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    keep = np.ones(len(samples), dtype=bool)
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start >= 16:
            keep[start:stop] = False
    return samples[keep].tobytes()
