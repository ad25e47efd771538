"""Publishing a video input as the camera or screen-share track.

A :class:`VideoTrackController` is one of the session's two video switches.
Turning it on opens the input (for ``"default"``, the system camera — opened
off the event loop, since a real camera takes a moment), publishes a track
with the right source (``SOURCE_CAMERA`` or ``SOURCE_SCREENSHARE``, so agents
and other clients know what they are looking at) and copies the input's frames
into it. Turning it off unpublishes the track and, for a camera lkstate opened
itself, releases the device: the camera light goes off, as users expect from
a video call, and the agent stops receiving pictures rather than a frozen one.

Every change is reported as a :class:`~lkstate._core.events.LocalTrackChanged`
carrying the whole new :class:`~lkstate.LocalTrackState`; what went wrong (no
camera, OpenCV missing, publishing refused, the input ending) is its
``error``, in words, and the session keeps running.

The user's wish (``enabled``) outlives a lost connection: the controller
publishes again when it is attached to the next room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal

import attrs
from livekit import rtc

from .._core import events as ev
from .._core.errors import VideoInputError
from .._wire.room_listeners import RoomListeners
from .._core.state import LocalTrackState, TrackSource
from .video import VideoInput, describe_video_input, open_default_camera

__all__ = ["VideoTrackController"]

logger = logging.getLogger(__name__)

_WORDS = {TrackSource.CAMERA: "camera", TrackSource.SCREEN_SHARE: "screen share"}
_RTC_SOURCE = {
    TrackSource.CAMERA: rtc.TrackSource.SOURCE_CAMERA,
    TrackSource.SCREEN_SHARE: rtc.TrackSource.SOURCE_SCREENSHARE,
}


class VideoTrackController:
    """The camera or the screen share: a video input, its published track, on/off.

    ``source`` is :attr:`TrackSource.CAMERA` or :attr:`TrackSource.SCREEN_SHARE`.
    ``video_input`` is a :class:`~lkstate.VideoInput` (kept open across
    off/on: it is yours), or ``"default"`` (the system camera, opened when
    turned on and released when turned off). ``opener`` (for tests) replaces
    how ``"default"`` is opened. Every method runs on the session's event loop.
    """

    def __init__(
        self,
        *,
        source: TrackSource,
        video_input: VideoInput | Literal["default"],
        emit: Callable[[ev.Event], object],
        clock: Callable[[], float],
        enabled: bool = False,
        opener: Callable[[], tuple[VideoInput | None, str | None]] = open_default_camera,
    ) -> None:
        if source not in _RTC_SOURCE:
            raise ValueError(f"a video track is a camera or a screen share, not {source}")
        self._kind = source
        self._words = _WORDS[source]
        self._requested = video_input
        self._emit = emit
        self._clock = clock
        self._opener = opener
        self._enabled = enabled
        self._input: VideoInput | None = None if video_input == "default" else video_input
        self._owns_input = video_input == "default"
        self._room: rtc.Room | None = None
        self._rtc_source: rtc.VideoSource | None = None
        self._track: rtc.LocalVideoTrack | None = None
        self._publication: rtc.LocalTrackPublication | None = None
        self._pump: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._listeners = RoomListeners()
        device = None if self._input is None else describe_video_input(self._input)
        self._track_state = LocalTrackState(enabled=enabled, device=device)
        self._emit_state()

    # -- reading -----------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether the user wants this track on (even while it cannot be)."""
        return self._enabled

    @property
    def track_state(self) -> LocalTrackState:
        return self._track_state

    @property
    def publication(self) -> rtc.LocalTrackPublication | None:
        return self._publication

    # -- commands ----------------------------------------------------------------------

    async def set_enabled(self, enabled: bool) -> None:
        """Turn the track on (open, publish, send frames) or off (stop, unpublish, release)."""
        async with self._lock:
            if self._closed:
                return
            self._enabled = enabled
            if enabled:
                await self._turn_on()
            else:
                await self._turn_off(error=None)

    async def attach(self, room: rtc.Room) -> None:
        """The room is connected: publish now if the user wants the track on."""
        async with self._lock:
            if self._closed or self._room is not None:
                return
            self._room = room
            self._listeners.attach(room, (("local_track_republished", self._on_republished),))
            if self._enabled:
                await self._turn_on()

    async def detach(self) -> None:
        """The room is going away: stop sending; the wish to be on is kept for the next room."""
        async with self._lock:
            room, self._room = self._room, None
            self._listeners.detach()
            await self._stop_sending(room)
            self._set(published=False, track_sid=None)

    async def aclose(self) -> None:
        """Stop everything and release what lkstate opened. Idempotent."""
        if self._closed:
            return
        await self.detach()
        async with self._lock:
            self._closed = True
            await self._release_input()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- on and off --------------------------------------------------------------------

    async def _turn_on(self) -> None:
        if self._input is None:
            opened, why = await asyncio.to_thread(self._opener)
            if opened is None:
                self._enabled = False
                self._set(enabled=False, published=False, track_sid=None, error=why)
                return
            if self._closed:
                await opened.aclose()
                return
            self._input = opened
        video_input = self._input
        self._set(enabled=True, device=describe_video_input(video_input), error=None)
        room = self._room
        if room is None or self._publication is not None:
            return
        rtc_source = rtc.VideoSource(
            video_input.width, video_input.height, is_screencast=self._kind is TrackSource.SCREEN_SHARE
        )
        track = rtc.LocalVideoTrack.create_video_track(self._kind.value, rtc_source)
        options = rtc.TrackPublishOptions(source=_RTC_SOURCE[self._kind])
        self._rtc_source, self._track = rtc_source, track
        pump = asyncio.get_running_loop().create_task(
            self._send(video_input, rtc_source), name=f"lkstate-{self._kind.value}"
        )
        self._pump = pump
        try:
            publication = await room.local_participant.publish_track(track, options)
        except Exception as error:
            logger.warning("publishing the %s failed", self._words, exc_info=True)
            await self._stop_sending(None)
            self._enabled = False
            self._set(enabled=False, published=False, track_sid=None, error=f"Could not publish the {self._words}: {error}")
            return
        self._publication = publication
        pump.add_done_callback(self._pump_ended)
        self._set(published=True, track_sid=publication.sid)

    async def _turn_off(self, *, error: str | None) -> None:
        await self._stop_sending(self._room)
        await self._release_input()
        self._set(enabled=False, published=False, track_sid=None, error=error)

    async def _stop_sending(self, room: rtc.Room | None) -> None:
        pump, self._pump = self._pump, None
        if pump is not None and not pump.done():
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        publication, self._publication = self._publication, None
        if room is not None and publication is not None:
            try:
                await room.local_participant.unpublish_track(publication.sid)
            except Exception:
                logger.info("unpublishing the %s failed (the room is probably gone)", self._words, exc_info=True)
        self._track = None
        rtc_source, self._rtc_source = self._rtc_source, None
        if rtc_source is not None:
            with contextlib.suppress(Exception):
                await rtc_source.aclose()

    async def _release_input(self) -> None:
        if self._owns_input and self._input is not None:
            video_input, self._input = self._input, None
            with contextlib.suppress(Exception):
                await video_input.aclose()

    # -- sending frames ----------------------------------------------------------------

    async def _send(self, video_input: VideoInput, rtc_source: rtc.VideoSource) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        frames = video_input.frames()
        try:
            async for frame in frames:
                if (frame.width, frame.height) != (video_input.width, video_input.height):
                    raise VideoInputError(
                        f"the {self._words} input sent a {frame.width}×{frame.height} frame "
                        f"but said it is {video_input.width}×{video_input.height}.",
                        remedy="Keep every frame at the input's size.",
                    )
                rtc_source.capture_frame(frame, timestamp_us=int((loop.time() - started) * 1_000_000))
        finally:
            aclose = getattr(frames, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def _pump_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._closed or task is not self._pump:
            return
        error = task.exception()
        if error is None:
            logger.info("the %s input ended", self._words)
            words = f"The {self._words} input ended."
        else:
            logger.warning("the %s input failed", self._words, exc_info=error)
            words = str(error) if isinstance(error, VideoInputError) else f"The {self._words} stopped working: {error}"
            words = words[:1].upper() + words[1:]
        self._spawn(self._ended(task, words))

    async def _ended(self, task: asyncio.Task[None], words: str) -> None:
        async with self._lock:
            if self._pump is not task:
                return  # turned off or on again meanwhile
            self._enabled = False
            await self._turn_off(error=words)

    def _on_republished(self, publication: rtc.LocalTrackPublication, previous_sid: str) -> None:
        if publication is not self._publication:
            return
        logger.info("the %s was republished after a full reconnect: %s -> %s", self._words, previous_sid, publication.sid)
        self._set(published=True, track_sid=publication.sid)

    # -- plumbing ----------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"lkstate-{self._kind.value}-ended")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _set(self, **changes: object) -> None:
        track: LocalTrackState = attrs.evolve(self._track_state, **changes)  # type: ignore[arg-type]
        if track != self._track_state:
            self._track_state = track
            self._emit_state()

    def _emit_state(self) -> None:
        self._emit(ev.LocalTrackChanged(at=self._clock(), source=self._kind, track=self._track_state))
