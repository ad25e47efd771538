"""The level meter behind ``session.levels``: loudness and voice bands, a few times a second.

The microphone's frames pass through the microphone controller and the
agent's voice through the speaker controller; each hands its frames to one
:class:`LevelMeter` as they go by (a sum of squares and, for the agent, the
samples of the last window). On a timer every :data:`LEVELS_INTERVAL` seconds
the meter turns what it saw since the last tick into an
:class:`~lkstate._core.levels.AudioLevels`: the RMS level of each side and the
agent's voice in log-spaced bands (a Hann-windowed FFT), all on a 0..1
decibel scale. The timer is the rate cap: however many frames arrive, at most
one value goes out per tick, and only when it differs from the last one, so a
silent session sends nothing at all.

While nobody subscribes to the levels the meter does no work on the frames
(each costs a numpy pass, and the agent's side an FFT per tick): a server
holding a hundred voice sessions whose pages show no meter should not pay
for them. The first subscriber gets the last value (silent, once the meter has
idled a tick) and a measured one a tick later.

Levels rise at once and fall by :data:`RELEASE_PER_SECOND` of the scale per
second, as meters do, so a bar does not flicker between two words and reaches
exactly 0 a moment after the voice stops.

It needs numpy, which ``livekit`` itself depends on (and so does lkstate).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import numpy as np
from livekit import rtc
from reactivex import Observable
from reactivex.subject import BehaviorSubject

from .._core.levels import BAND_COUNT, SILENT_BANDS, AudioLevels

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["LevelMeter", "LEVELS_INTERVAL", "RELEASE_PER_SECOND", "BAND_EDGES", "level_of"]

logger = logging.getLogger(__name__)

LEVELS_INTERVAL = 0.05
"""Seconds between two measurements: at most 20 values a second reach a subscriber."""

RELEASE_PER_SECOND = 3.0
"""How fast a level falls when the sound stops (in 0..1 units a second): from full to 0 in a third of a second."""

FLOOR_DB = -60.0
"""The quietest level a meter shows above 0."""

BAND_EDGES: tuple[float, ...] = tuple(float(f) for f in np.geomspace(100.0, 8000.0, BAND_COUNT + 1))
"""The edges (Hz) of the agent's bands: 100 Hz to 8 kHz in equal steps on a log scale."""

_MAX_WINDOW = 4096
"""At most this many of the agent's latest samples go into one spectrum."""

_MIN_WINDOW = 128


def level_of(amplitude: float) -> float:
    """An amplitude (RMS or peak, full scale = 1) on the meters' 0..1 decibel scale."""
    if amplitude <= 0.0:
        return 0.0
    db = 20.0 * math.log10(amplitude)
    return min(1.0, max(0.0, (db - FLOOR_DB) / -FLOOR_DB))


def _samples(frame: rtc.AudioFrame) -> npt.NDArray[np.float64]:
    """The frame mixed down to mono, as floats in -1..1."""
    count = frame.samples_per_channel * frame.num_channels
    data = np.frombuffer(frame.data.cast("B"), dtype=np.int16, count=count).astype(np.float64) / 32768.0
    if frame.num_channels > 1:
        data = data.reshape(-1, frame.num_channels).mean(axis=1)
    return data


def _bands(samples: npt.NDArray[np.float64], sample_rate: int) -> tuple[float, ...]:
    """The peak amplitude in each band, on the 0..1 scale (a sine at full scale reads 1)."""
    if len(samples) < _MIN_WINDOW:
        return SILENT_BANDS
    window = np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(samples * window)) * (2.0 / float(window.sum()))
    frequencies = np.fft.rfftfreq(len(samples), 1.0 / sample_rate)
    out: list[float] = []
    for low, high in zip(BAND_EDGES, BAND_EDGES[1:]):
        inside = spectrum[(frequencies >= low) & (frequencies < high)]
        out.append(level_of(float(inside.max())) if inside.size else 0.0)
    return tuple(out)


class _Side:
    """What one side (microphone or agent) sent since the last tick."""

    def __init__(self, keep_samples: bool) -> None:
        self.keep_samples = keep_samples
        self.squares = 0.0
        self.count = 0
        self.rate = 48000
        self.recent: list[npt.NDArray[np.float64]] = []
        self.recent_count = 0

    def add(self, frame: rtc.AudioFrame) -> None:
        samples = _samples(frame)
        self.squares += float(np.dot(samples, samples))
        self.count += len(samples)
        if self.keep_samples:
            if frame.sample_rate != self.rate:
                self.recent, self.recent_count, self.rate = [], 0, frame.sample_rate
            self.recent.append(samples)
            self.recent_count += len(samples)
            while self.recent and self.recent_count - len(self.recent[0]) >= _MAX_WINDOW:
                self.recent_count -= len(self.recent.pop(0))

    def take(self) -> tuple[float, tuple[float, ...]]:
        """The level and bands since the last call, and forget them."""
        level = level_of(math.sqrt(self.squares / self.count)) if self.count else 0.0
        bands = SILENT_BANDS
        if self.keep_samples and self.recent:
            bands = _bands(np.concatenate(self.recent)[-_MAX_WINDOW:], self.rate)
        self.squares, self.count = 0.0, 0
        self.recent, self.recent_count = [], 0
        return level, bands


def _release(previous: float, new: float, step: float) -> float:
    return round(max(new, previous - step, 0.0), 3)


class LevelMeter:
    """Measures the microphone and the agent and publishes :class:`~lkstate._core.levels.AudioLevels`.

    One meter serves a session for its whole life: :attr:`levels` is the same
    observable across ``start()``/``end()``. :meth:`start` begins ticking on
    the session's loop, :meth:`microphone` and :meth:`agent` take frames (on
    that loop), :meth:`stop` ends the ticking and sends one silent value, so a
    visualizer never freezes mid-word when a session ends. ``clock`` stamps
    each value (the session's event clock).
    """

    def __init__(self, *, clock: Callable[[], float], interval: float = LEVELS_INTERVAL) -> None:
        if interval <= 0:
            raise ValueError(f"the levels interval must be positive, not {interval}")
        self._clock = clock
        self._interval = interval
        self._subject: BehaviorSubject[AudioLevels] = BehaviorSubject(AudioLevels(at=clock()))
        self._mic = _Side(keep_samples=False)
        self._agent = _Side(keep_samples=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._next_at = 0.0

    @property
    def levels(self) -> Observable[AudioLevels]:
        """The latest value on subscribe, then each change, at most once per interval."""
        return self._subject

    @property
    def current(self) -> AudioLevels:
        return self._subject.value

    @property
    def running(self) -> bool:
        return self._timer is not None

    def microphone(self, frame: rtc.AudioFrame) -> None:
        """A frame the microphone sends (or records for the agent)."""
        if self._timer is not None and self._subject.observers:
            self._mic.add(frame)

    def agent(self, frame: rtc.AudioFrame) -> None:
        """A frame of the agent's voice as received."""
        if self._timer is not None and self._subject.observers:
            self._agent.add(frame)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin measuring on ``loop`` (the session's). Idempotent."""
        if self._timer is not None:
            return
        self._loop = loop
        self._next_at = loop.time() + self._interval
        self._timer = loop.call_at(self._next_at, self._tick)

    def stop(self) -> None:
        """Stop measuring and say that all is silent. Idempotent."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self._mic.take()
        self._agent.take()
        if not self.current.silent:
            self._publish(AudioLevels(at=self._clock()))

    def dispose(self) -> None:
        """Stop, and complete the observable: the session is gone for good."""
        self.stop()
        self._subject.on_completed()

    def _tick(self) -> None:
        loop = self._loop
        if self._timer is None or loop is None:
            return
        last = self.current
        if not self._subject.observers:
            # Nobody looks: measure nothing, and leave silence for the next subscriber
            # rather than a level from whenever the last one left.
            self._mic.take()
            self._agent.take()
            if not last.silent:
                self._subject.on_next(AudioLevels(at=self._clock()))
        else:
            step = RELEASE_PER_SECOND * self._interval
            mic, _ = self._mic.take()
            agent, bands = self._agent.take()
            value = AudioLevels(
                microphone=_release(last.microphone, mic, step),
                agent=_release(last.agent, agent, step),
                agent_bands=tuple(_release(a, b, step) for a, b in zip(last.agent_bands, bands)),
                at=last.at,
            )
            if value != last:
                self._publish(attrs.evolve(value, at=self._clock()))
        # the next tick on the grid, skipping ticks a busy loop missed
        now = loop.time()
        self._next_at += self._interval
        if self._next_at <= now:
            self._next_at = now + self._interval
        self._timer = loop.call_at(self._next_at, self._tick)

    def _publish(self, value: AudioLevels) -> None:
        try:
            self._subject.on_next(value)
        except Exception:  # a subscriber's failure must not stop the meter
            logger.exception("a levels subscriber failed")

