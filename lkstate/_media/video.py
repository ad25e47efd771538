"""Video inputs: where the camera and screen-share tracks get their frames.

The audio side has :class:`~lkstate.AudioInput`; this is its video twin. A
:class:`VideoInput` is anything with a ``width``, a ``height``, an async
``frames()`` iterator of ``rtc.VideoFrame`` and ``aclose()``. lkstate ships
three:

* :class:`CameraInput` — a real camera (or a video file) read through OpenCV,
  the one well-kept capture library that works the same on Linux, macOS and
  Windows. OpenCV is optional (``pip install lkstate[camera]``); without it,
  or without a camera, turning the camera on leaves the session running and
  the state says why in words.
* :class:`PatternVideoInput` — colour bars with a moving block, generated, so
  demos and tests have a camera on machines that have none, and a receiver
  can check what it got (see :data:`PATTERN_COLOURS`).
* :class:`VideoGeneratorInput` — frames you produce (screen grabs from `mss`,
  a game, a rendered chart), as ``rtc.VideoFrame`` or ``numpy`` arrays.

Inputs pace themselves: ``frames()`` yields at the input's frame rate, so the
controller that publishes them (:mod:`lkstate._media.video_track`) only copies
frames into the track.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from types import ModuleType
from typing import Any, Protocol, TypeAlias, cast, runtime_checkable

import numpy as np
import numpy.typing as npt
from livekit import rtc

from .._core.errors import VideoInputError
from .pacing import Pacer, each

__all__ = [
    "VideoInput",
    "CameraInput",
    "PatternVideoInput",
    "VideoGeneratorInput",
    "PATTERN_COLOURS",
    "describe_video_input",
]

logger = logging.getLogger(__name__)

VideoChunk: TypeAlias = rtc.VideoFrame | npt.NDArray[np.uint8]
"""One picture: an ``rtc.VideoFrame``, or a ``(height, width, 4)`` RGBA / ``(height, width, 3)`` RGB array."""


@runtime_checkable
class VideoInput(Protocol):
    """A source of video frames of one size.

    ``frames()`` yields ``rtc.VideoFrame`` objects of ``width`` × ``height``
    at the input's own pace and ends when the input is exhausted or closed.
    ``aclose()`` releases the device or file and makes a running ``frames()``
    end at its next frame; it is safe to call twice.
    """

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    def frames(self) -> AsyncIterator[rtc.VideoFrame]: ...

    async def aclose(self) -> None: ...


def describe_video_input(video_input: VideoInput) -> str:
    """A short name for the state's ``device`` field: what feeds the track."""
    describe = getattr(video_input, "description", None)
    if isinstance(describe, str):
        return describe
    return f"{type(video_input).__name__} {video_input.width}×{video_input.height}"


# --------------------------------------------------------------------------
# Generated: colour bars with a moving block
# --------------------------------------------------------------------------

PATTERN_COLOURS: tuple[tuple[int, int, int], ...] = (
    (235, 235, 235),
    (235, 235, 16),
    (16, 235, 235),
    (16, 235, 16),
    (235, 16, 235),
    (235, 16, 16),
    (16, 16, 235),
    (16, 16, 16),
)
"""The eight vertical bars of :class:`PatternVideoInput`, left to right (RGB).

Broadcast "75 %"-style levels rather than pure 0/255, so a lossy codec's
overshoot does not clip and a receiver can match each bar within a tolerance.
"""


class PatternVideoInput:
    """Eight colour bars (:data:`PATTERN_COLOURS`) with a white block moving across the bottom fifth.

    Every frame differs (the block moves one step per frame), so an encoder
    really encodes and a receiver can tell frames apart; the bars above the
    block never change, so a receiver can check the colours it got. Each
    ``frames()`` call starts a fresh, endless stream (or ``max_frames`` long);
    ``realtime=False`` yields without pacing, for tests and benchmarks.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 360,
        *,
        fps: float = 15.0,
        realtime: bool = True,
        max_frames: int | None = None,
    ) -> None:
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ValueError(f"the pattern needs an even size of at least 16×16, got {width}×{height}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self._width, self._height, self._fps = width, height, fps
        self._realtime = realtime
        self._max_frames = max_frames
        self._closed = False
        bars = np.empty((height, width, 4), dtype=np.uint8)
        bars[:, :, 3] = 255
        edges = np.linspace(0, width, len(PATTERN_COLOURS) + 1).astype(int)
        for (left, right), colour in zip(zip(edges[:-1], edges[1:]), PATTERN_COLOURS, strict=True):
            bars[:, left:right, :3] = colour
        self._bars = bars
        self._band_top = height - height // 5
        self._block = max(8, height // 5) // 2 * 2

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def description(self) -> str:
        return f"test pattern {self._width}×{self._height} at {self._fps:g} fps"

    def picture(self, n: int) -> npt.NDArray[np.uint8]:
        """Frame ``n`` as an RGBA array (what :meth:`frames` sends)."""
        image = self._bars.copy()
        image[self._band_top :, :, :3] = 16
        span = max(1, self._width - self._block)
        left = (n * 4) % span
        image[self._band_top :, left : left + self._block, :3] = 235
        return image

    async def frames(self) -> AsyncGenerator[rtc.VideoFrame, None]:
        pacer = Pacer.for_running_loop(1 / self._fps) if self._realtime else None
        n = 0
        while not self._closed and (self._max_frames is None or n < self._max_frames):
            if pacer is not None:
                await pacer.wait()
            else:
                await asyncio.sleep(0)
            if self._closed:
                return
            yield rtc.VideoFrame(self._width, self._height, rtc.VideoBufferType.RGBA, self.picture(n).tobytes())
            n += 1

    async def aclose(self) -> None:
        self._closed = True

    def __repr__(self) -> str:
        return f"PatternVideoInput({self._width}, {self._height}, fps={self._fps:g})"


# --------------------------------------------------------------------------
# Frames you produce
# --------------------------------------------------------------------------


def _to_frame(chunk: object, width: int, height: int) -> rtc.VideoFrame:
    if isinstance(chunk, rtc.VideoFrame):
        if (chunk.width, chunk.height) != (width, height):
            raise VideoInputError(
                f"a video frame is {chunk.width}×{chunk.height} but this input is {width}×{height}.",
                remedy="Give every frame the size the input was built with.",
            )
        return chunk
    if isinstance(chunk, np.ndarray):
        array = cast("npt.NDArray[Any]", chunk)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[:2] != (height, width) or array.shape[2] not in (3, 4):
            raise VideoInputError(
                f"a video frame array has shape {array.shape} and dtype {array.dtype}; "
                f"this input takes uint8 arrays of shape ({height}, {width}, 4) RGBA or ({height}, {width}, 3) RGB.",
                remedy="Convert the picture to RGBA or RGB uint8 of the input's size.",
            )
        if array.shape[2] == 3:
            rgba = np.empty((height, width, 4), dtype=np.uint8)
            rgba[:, :, :3] = array
            rgba[:, :, 3] = 255
            array = rgba
        return rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, np.ascontiguousarray(array).tobytes())
    raise VideoInputError(
        f"a video frame must be an rtc.VideoFrame or a numpy array, not {type(chunk).__name__}.",
        remedy="Yield rtc.VideoFrame objects or uint8 RGBA/RGB arrays.",
    )


class VideoGeneratorInput:
    """Frames you produce, from an iterable or async iterable, read once.

    Each item is an ``rtc.VideoFrame`` or a ``uint8`` array of shape
    ``(height, width, 4)`` (RGBA) or ``(height, width, 3)`` (RGB); a frame of
    another size or type ends the stream with a :class:`~lkstate.VideoInputError`
    that the state shows. With ``fps`` the frames are paced at that rate;
    without, they go as fast as the source yields them (an async source that
    paces itself, such as a screen grabber).
    """

    def __init__(
        self,
        source: Iterable[VideoChunk] | AsyncIterable[VideoChunk],
        *,
        width: int,
        height: int,
        fps: float | None = None,
        description: str | None = None,
    ) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"width and height must be positive, got {width}×{height}")
        self._source = source
        self._width, self._height, self._fps = width, height, fps
        self._description = description or f"generated video {width}×{height}"
        self._started = False
        self._closed = False

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def description(self) -> str:
        return self._description

    async def frames(self) -> AsyncGenerator[rtc.VideoFrame, None]:
        if self._started:
            raise VideoInputError(
                "this VideoGeneratorInput was already read; its source can be consumed once.",
                remedy="Build a new VideoGeneratorInput each time the track is turned on.",
            )
        self._started = True
        pacer = Pacer.for_running_loop(1 / self._fps) if self._fps else None
        async for chunk in each(self._source):
            if pacer is not None:
                await pacer.wait()
            if self._closed:
                return
            yield _to_frame(chunk, self._width, self._height)

    async def aclose(self) -> None:
        self._closed = True


# --------------------------------------------------------------------------
# A camera (or a video file) through OpenCV
# --------------------------------------------------------------------------

_CAMERA_REMEDY = (
    "Connect a camera and check that this program may use it (on Linux: a /dev/video* device you can read), "
    "or pass video_input=PatternVideoInput() / VideoGeneratorInput(...) instead."
)


def _import_cv2() -> ModuleType:
    # OpenCV reports a missing camera on stderr unless told otherwise, which would
    # scribble over a terminal UI; lkstate reports it in the state instead.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    try:
        cv2 = importlib.import_module("cv2")
    except ImportError as e:
        raise VideoInputError(
            "no camera support: OpenCV (the `cv2` module) is not installed.",
            remedy="Install it with `pip install lkstate[camera]` (opencv-python-headless), "
            "or pass video_input=PatternVideoInput() / VideoGeneratorInput(...) instead.",
        ) from e
    with contextlib.suppress(Exception):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    return cv2


class CameraInput:
    """A camera, or a video file, read through OpenCV and sent as RGBA frames.

    ``device`` is a camera index (``0`` is the system's first camera) or a
    path or URL OpenCV can open (a video file, an RTSP stream). Building one
    opens the device and reads a first frame, which is slow for a real camera
    (call it off the event loop: :class:`~lkstate.Session` does), and raises
    :class:`~lkstate.VideoInputError` with a remedy when OpenCV is missing or
    nothing can be read. ``width`` / ``height`` / ``fps`` ask the camera for a
    mode; what it grants is what the track gets. A file plays at its own frame
    rate and ends; a camera runs until :meth:`aclose`, which releases it (the
    camera's light goes off).
    """

    def __init__(
        self,
        device: int | str | os.PathLike[str] = 0,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
    ) -> None:
        cv2: Any = _import_cv2()
        self._cv2 = cv2
        target: int | str = device if isinstance(device, int) else os.fspath(device)
        self._is_file = not isinstance(device, int)
        what = f"camera {device}" if isinstance(device, int) else f"video {target}"
        if self._is_file and "://" not in str(target) and not os.path.exists(target):
            raise VideoInputError(f"no video at {what}: the file does not exist.", remedy="Check the path.")
        capture: Any = cv2.VideoCapture(target)
        if not capture.isOpened():
            capture.release()
            raise VideoInputError(f"no camera found: OpenCV could not open {what}.", remedy=_CAMERA_REMEDY)
        if width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            capture.set(cv2.CAP_PROP_FPS, fps)
        ok, first = capture.read()
        if not ok or first is None:
            capture.release()
            raise VideoInputError(f"{what} was opened but gave no picture.", remedy=_CAMERA_REMEDY)
        self._capture: Any = capture
        self._first: npt.NDArray[np.uint8] | None = first
        self._height, self._width = int(first.shape[0]), int(first.shape[1])
        reported = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self._fps = reported if 0 < reported <= 240 else (fps or 30.0)
        self._description = f"{what} {self._width}×{self._height} at {self._fps:g} fps"
        self._closed = False
        self._reading = False
        self._lock = asyncio.Lock()

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def description(self) -> str:
        return self._description

    def _rgba(self, bgr: npt.NDArray[np.uint8]) -> rtc.VideoFrame:
        if bgr.shape[0] != self._height or bgr.shape[1] != self._width:
            bgr = self._cv2.resize(bgr, (self._width, self._height))
        rgba = self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGBA)
        return rtc.VideoFrame(self._width, self._height, rtc.VideoBufferType.RGBA, rgba.tobytes())

    def _read(self) -> npt.NDArray[np.uint8] | None:
        capture = self._capture
        if capture is None:
            return None
        ok, image = capture.read()
        return image if ok else None

    async def frames(self) -> AsyncGenerator[rtc.VideoFrame, None]:
        if self._closed:
            return
        if self._reading:
            raise VideoInputError("this camera is already being read.", remedy="Read a CameraInput from one place.")
        self._reading = True
        # A file is read as fast as the disk allows, so it is paced at its frame
        # rate; a camera's read() already waits for the next frame.
        pacer = Pacer.for_running_loop(1 / self._fps) if self._is_file else None
        try:
            while not self._closed:
                first, self._first = self._first, None
                if first is not None:
                    image: npt.NDArray[np.uint8] | None = first
                else:
                    async with self._lock:
                        image = None if self._closed else await asyncio.to_thread(self._read)
                if image is None:
                    return
                if pacer is not None:
                    await pacer.wait()
                if self._closed:
                    return
                yield self._rgba(image)
        finally:
            self._reading = False

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._lock:  # never release the device under a read in progress
            capture, self._capture = self._capture, None
            if capture is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(capture.release)

    def __repr__(self) -> str:
        return f"CameraInput({self._description!r})"


def open_default_camera() -> tuple[VideoInput | None, str | None]:
    """The system's first camera, or ``None`` and why not, in words; never raises. Blocking."""
    try:
        return CameraInput(), None
    except VideoInputError as error:
        return None, error.sentence()
    except Exception as error:  # a broken driver must not stop the session
        logger.warning("opening the default camera failed unexpectedly", exc_info=True)
        return None, f"The camera could not be opened: {error}"
