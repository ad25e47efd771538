"""The level meter: what a meter and a voice visualizer read from ``session.levels``.

Real PCM frames go in (a sine of known loudness and pitch); what comes out is
checked against the decibel scale, the bands and the rate cap. The wire tests
(tests/integration/test_levels_wire.py) check the same against a real agent.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from livekit import rtc

from lkstate.media import BAND_EDGES, AudioLevels
from lkstate._media import levels as levels_module
from lkstate._media.levels import LevelMeter, level_of


def sine(frequency: float, amplitude: float, rate: int = 48000, ms: int = 10, phase: int = 0) -> rtc.AudioFrame:
    count = rate * ms // 1000
    t = (np.arange(count) + phase) / rate
    pcm = (amplitude * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    return rtc.AudioFrame(pcm.tobytes(), rate, 1, count)


def test_the_scale_is_decibels_from_minus_60_to_full_scale() -> None:
    assert level_of(1.0) == 1.0
    assert level_of(0.1) == 2 / 3  # -20 dBFS
    assert abs(level_of(0.001) - 0.0) < 1e-9  # -60 dBFS
    assert level_of(0.0) == 0.0 and level_of(1e-9) == 0.0


async def feed(meter: LevelMeter, seconds: float, *, mic: float = 0.0, agent: float = 0.0, hz: float = 330.0) -> None:
    frames = int(seconds * 100)
    for i in range(frames):
        if mic:
            meter.microphone(sine(440.0, mic, phase=i * 480))
        if agent:
            meter.agent(sine(hz, agent, phase=i * 480))
        await asyncio.sleep(0.01)


async def test_levels_follow_the_voices_and_fall_to_silence_at_a_capped_rate() -> None:
    meter = LevelMeter(clock=lambda: 7.0)
    seen: list[AudioLevels] = []
    meter.levels.subscribe(seen.append)
    assert seen == [AudioLevels(at=7.0)], "a subscriber gets the current (silent) value at once"

    meter.start(asyncio.get_running_loop())
    await feed(meter, 0.5, mic=0.5, agent=0.12)
    loud, loud_at = seen[-1], len(seen) - 1
    # a sine of amplitude A has RMS A/√2: 0.5 → -9 dBFS, 0.12 → -21.4 dBFS
    assert abs(loud.microphone - level_of(0.5 / np.sqrt(2))) < 0.02
    assert abs(loud.agent - level_of(0.12 / np.sqrt(2))) < 0.02
    tone_band = next(i for i, (lo, hi) in enumerate(zip(BAND_EDGES, BAND_EDGES[1:])) if lo <= 330 < hi)
    assert loud.agent_bands.index(max(loud.agent_bands)) == tone_band
    assert abs(loud.agent_bands[tone_band] - level_of(0.12)) < 0.03, "a band reads the sine's peak"
    assert all(b < loud.agent_bands[tone_band] - 0.3 for i, b in enumerate(loud.agent_bands) if abs(i - tone_band) > 1)

    await asyncio.sleep(0.6)  # silence: nothing arrives
    assert seen[-1].silent and seen[-1].at == 7.0
    count = len(seen)
    await asyncio.sleep(0.3)
    assert len(seen) == count, "a silent meter sends nothing"
    # 1.1 s at one value per 50 ms at most (plus the first): the cap holds however many frames came
    assert len(seen) <= 1 + 1.4 / 0.05
    tail = [s.agent for s in seen[loud_at:]]
    falling = tail[tail.index(max(tail)) :]  # the last frames may land in the tick after the loop ends
    assert falling == sorted(falling, reverse=True) and len(falling) > 3, "the level falls over several ticks"
    meter.stop()
    assert not meter.running


async def test_a_stopped_meter_ignores_frames_and_says_silence() -> None:
    meter = LevelMeter(clock=lambda: 1.0)
    seen: list[AudioLevels] = []
    meter.levels.subscribe(seen.append)
    meter.agent(sine(330.0, 0.5))
    await asyncio.sleep(0.1)
    assert seen == [AudioLevels(at=1.0)], "not started: nothing measured"
    meter.start(asyncio.get_running_loop())
    await feed(meter, 0.2, agent=0.5)
    assert seen[-1].agent > 0.5
    meter.stop()
    assert seen[-1].silent, "stopping mid-word leaves no frozen bar"
    meter.dispose()


def test_a_replay_has_still_meters_because_levels_are_not_recorded() -> None:
    from lkstate.recording import Replay

    seen: list[AudioLevels] = []
    Replay([]).levels.subscribe(seen.append)
    assert len(seen) == 1 and seen[0].silent


async def test_nobody_watching_means_no_measuring_and_the_next_watcher_starts_from_silence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    measured: list[int] = []
    real_samples = levels_module._samples  # pyright: ignore[reportPrivateUsage]

    def counting(frame: rtc.AudioFrame) -> np.ndarray:  # type: ignore[type-arg]
        measured.append(frame.samples_per_channel)
        return real_samples(frame)

    monkeypatch.setattr(levels_module, "_samples", counting)
    meter = LevelMeter(clock=lambda: 3.0)
    meter.start(asyncio.get_running_loop())
    await feed(meter, 0.2, mic=0.5, agent=0.5)
    assert measured == [], "a server's voice session whose page shows no meter pays nothing for one"

    first: list[AudioLevels] = []
    watching = meter.levels.subscribe(first.append)
    await feed(meter, 0.2, mic=0.5, agent=0.5)
    assert measured and first[-1].microphone > 0.5 and first[-1].agent > 0.5
    watching.dispose()
    await asyncio.sleep(0.12)  # a tick or two with nobody watching

    second: list[AudioLevels] = []
    meter.levels.subscribe(second.append)
    assert second == [AudioLevels(at=3.0)], "not the level from whenever the last watcher left"
    meter.dispose()
