"""PushAudioInput: audio pushed from any thread becomes a session's microphone, in order, bounded."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from lkstate.errors import AudioInputError
from lkstate.media import PushAudioInput


def ramp(start: int, samples: int) -> bytes:
    return (np.arange(start, start + samples) % 30000).astype("<i2").tobytes()


async def take(source: PushAudioInput, count: int) -> bytes:
    out = bytearray()
    frames = source.frames()
    for _ in range(count):
        frame = await asyncio.wait_for(anext(frames), 2)
        assert frame.samples_per_channel == source.sample_rate // 100
        out += frame.data.cast("B")
    await frames.aclose()
    return bytes(out)


async def test_pushes_from_another_thread_come_out_as_exact_10_ms_frames_in_order() -> None:
    source = PushAudioInput(sample_rate=48000)
    # 20 ms chunks from a browser, and one odd-sized chunk: re-cut across their borders.
    chunks = [ramp(0, 960), ramp(960, 700), ramp(1660, 260), ramp(1920, 960)]
    worker = threading.Thread(target=lambda: [source.push(c) for c in chunks])
    reading = asyncio.ensure_future(take(source, 6))
    await asyncio.sleep(0.05)  # the reader waits before anything was pushed
    worker.start()
    assert await reading == ramp(0, 2880)
    worker.join()


async def test_audio_pushed_before_anyone_reads_waits_and_the_oldest_goes_beyond_the_bound() -> None:
    source = PushAudioInput(sample_rate=48000, max_queued_seconds=0.05)
    for n in range(8):
        source.push(ramp(n * 480, 480))
    assert source.queued_frames == 5 and source.dropped_frames == 3
    assert await take(source, 5) == ramp(3 * 480, 5 * 480)


async def test_it_can_be_read_again_one_reader_at_a_time_and_closing_ends_the_reader() -> None:
    source = PushAudioInput(sample_rate=16000)
    source.push(ramp(0, 320))
    assert await take(source, 2) == ramp(0, 320)
    source.push(ramp(320, 160))
    first = source.frames()
    assert (await anext(first)).data.tobytes() == ramp(320, 160)
    with pytest.raises(AudioInputError, match="already being read"):
        await anext(source.frames())
    waiting = asyncio.ensure_future(anext(first))
    await asyncio.sleep(0.01)
    await source.aclose()
    with pytest.raises(StopAsyncIteration):
        await waiting
    assert source.push(ramp(0, 160)) is False


async def test_a_producer_that_cannot_deliver_fails_one_reader_in_words_and_the_next_reads_normally() -> None:
    source = PushAudioInput(sample_rate=16000)
    # The producer gave up before anyone read: the first reader still learns why, after what was queued.
    source.push(ramp(0, 160))
    source.fail("the browser was not allowed to use the microphone.", remedy="Allow it, then connect again.")
    first = source.frames()
    assert (await anext(first)).data.tobytes() == ramp(0, 160)
    with pytest.raises(AudioInputError, match="not allowed to use the microphone") as raised:
        await anext(first)
    assert raised.value.remedy == "Allow it, then connect again."
    # A reader that is waiting is woken by the failure, from another thread.
    second = source.frames()
    waiting = asyncio.ensure_future(anext(second))
    await asyncio.sleep(0.01)
    threading.Thread(target=lambda: source.fail("no microphone was found.")).start()
    with pytest.raises(AudioInputError, match="no microphone was found"):
        await asyncio.wait_for(waiting, 2)
    # The producer recovered: the next reader gets its audio; a failure nobody read is forgotten by clear().
    source.fail("stale")
    source.clear()
    source.push(ramp(160, 160))
    assert await take(source, 1) == ramp(160, 160)
