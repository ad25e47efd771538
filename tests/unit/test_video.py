"""Video inputs: the generated pattern, your own frames, and a camera through OpenCV."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import numpy as np
import pytest
from livekit import rtc

from lkstate.errors import VideoInputError
from lkstate.media import CameraInput, PATTERN_COLOURS, PatternVideoInput, VideoGeneratorInput, VideoInput
from lkstate._media.video import describe_video_input, open_default_camera


async def collect(video: VideoInput, limit: int = 1000) -> list[rtc.VideoFrame]:
    frames: list[rtc.VideoFrame] = []
    async for frame in video.frames():
        frames.append(frame)
        if len(frames) >= limit:
            break
    return frames


def rgba(frame: rtc.VideoFrame) -> np.ndarray[Any, Any]:
    return np.frombuffer(bytes(frame.data), dtype=np.uint8).reshape(frame.height, frame.width, 4)


async def test_the_pattern_has_eight_bars_and_a_block_that_moves_every_frame() -> None:
    pattern = PatternVideoInput(160, 90, realtime=False, max_frames=3)
    assert isinstance(pattern, VideoInput)
    frames = await collect(pattern)
    assert len(frames) == 3 and all((f.width, f.height) == (160, 90) for f in frames)
    first, second = rgba(frames[0]), rgba(frames[1])
    bars = [tuple(int(v) for v in first[10, int((i + 0.5) * 20), :3]) for i in range(8)]
    assert bars == list(PATTERN_COLOURS)
    assert (first[:60] == second[:60]).all(), "the bars never change"
    assert not (first[75:] == second[75:]).all(), "the block moved"
    assert describe_video_input(pattern) == "test pattern 160×90 at 15 fps"


async def test_each_read_of_the_pattern_starts_afresh_until_it_is_closed() -> None:
    pattern = PatternVideoInput(32, 16, realtime=False, max_frames=2)
    assert len(await collect(pattern)) == 2
    assert len(await collect(pattern)) == 2
    await pattern.aclose()
    assert await collect(pattern) == []


def test_the_pattern_refuses_sizes_a_codec_cannot_take() -> None:
    with pytest.raises(ValueError, match="even size"):
        PatternVideoInput(641, 360)


async def test_your_rgb_arrays_become_rgba_frames_of_the_declared_size() -> None:
    picture = np.zeros((4, 6, 3), dtype=np.uint8)
    picture[:, :, 0] = 200
    video = VideoGeneratorInput([picture, picture], width=6, height=4)
    frames = await collect(video)
    assert len(frames) == 2
    assert rgba(frames[0])[0, 0].tolist() == [200, 0, 0, 255]
    with pytest.raises(VideoInputError, match="already read"):
        await collect(video)


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros((5, 6, 4), dtype=np.uint8), "shape"),
        (np.zeros((4, 6, 4), dtype=np.float32), "dtype"),
        (rtc.VideoFrame(8, 8, rtc.VideoBufferType.RGBA, bytes(8 * 8 * 4)), "8×8"),
        ("not a picture", "not str"),
    ],
)
async def test_a_frame_that_is_not_a_picture_of_the_right_size_is_refused_in_words(bad: object, words: str) -> None:
    video = VideoGeneratorInput([bad], width=6, height=4)
    with pytest.raises(VideoInputError, match=words) as refused:
        await collect(video)
    assert refused.value.remedy


async def test_a_paced_source_yields_at_its_frame_rate() -> None:
    picture = np.zeros((4, 6, 4), dtype=np.uint8)
    video = VideoGeneratorInput([picture] * 6, width=6, height=4, fps=50)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert len(await collect(video)) == 6
    assert loop.time() - started >= 5 / 50 * 0.9


def test_without_opencv_the_camera_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(VideoInputError, match="OpenCV") as refused:
        CameraInput()
    assert "pip install lkstate[camera]" in refused.value.remedy
    video, why = open_default_camera()
    assert video is None and why is not None and why.startswith("No camera support")


def test_a_missing_video_file_is_named() -> None:
    pytest.importorskip("cv2")
    with pytest.raises(VideoInputError, match="does not exist"):
        CameraInput("/nonexistent/clip.avi")
