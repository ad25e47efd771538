"""Seeing video as a person on the other side would: decode a track, check the pattern's colours.

The camera tests (wire and UI) publish :class:`~lkstate.PatternVideoInput`;
these helpers let a raw peer find the published track, decode a full-size
frame and compare the colour bars with :data:`~lkstate.PATTERN_COLOURS`
within a codec's tolerance.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from livekit import rtc

from lkstate.media import PATTERN_COLOURS

from .peer import Peer, wait_until

__all__ = ["first_picture", "bar_colours", "close_to", "video_of"]


async def first_picture(track: rtc.Track, *, width: int, timeout: float = 15.0) -> np.ndarray[Any, Any]:
    """The first decoded frame of ``track`` at full ``width`` (simulcast may start on a smaller layer), as RGBA."""
    stream = rtc.VideoStream(track, format=rtc.VideoBufferType.RGBA)
    try:
        async with asyncio.timeout(timeout):
            async for event in stream:
                frame = event.frame
                if frame.width == width:
                    return np.frombuffer(bytes(frame.data), dtype=np.uint8).reshape(frame.height, frame.width, 4)
    finally:
        await stream.aclose()
    raise AssertionError("the video stream ended")


def bar_colours(picture: np.ndarray[Any, Any]) -> list[tuple[int, int, int]]:
    """The colour in the middle of each of the eight bars, in the upper half of the picture."""
    height, width = picture.shape[:2]
    centres = [int((i + 0.5) * width / len(PATTERN_COLOURS)) for i in range(len(PATTERN_COLOURS))]
    return [tuple(int(v) for v in picture[height // 4, x, :3]) for x in centres]  # type: ignore[misc]


def close_to(seen: list[tuple[int, int, int]], expected: tuple[tuple[int, int, int], ...], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for s, e in zip(seen, expected, strict=True) for a, b in zip(s, e, strict=True))


async def video_of(peer: Peer, identity: str, source: int) -> rtc.RemoteTrackPublication:
    def find() -> rtc.RemoteTrackPublication | None:
        participant = peer.remote(identity)
        if participant is None:
            return None
        return next(
            (p for p in participant.track_publications.values() if p.source == source and p.track is not None), None
        )

    return await wait_until(find, timeout=15, message=f"a subscribed video track with source {source}")
