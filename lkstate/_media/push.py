"""Audio that arrives from elsewhere: a microphone fed by pushes, from any thread.

:class:`~lkstate.GeneratorInput` pulls audio from an iterable the session
reads. Some audio is not pulled but *arrives*: frames from a browser over a
WebSocket, from a telephony bridge, from a callback of another library. They
come on their own thread or event loop, at their own pace, whether or not the
session is reading yet. :class:`PushAudioInput` takes them there —
:meth:`~PushAudioInput.push` never blocks and may be called from any thread —
and hands them to the session as an ordinary :class:`~lkstate.AudioInput`.

Why a bounded queue, dropping the oldest: the session reads in real time, so
frames only pile up while nobody reads (before ``start()``, after ``end()``)
or when the producer sends faster than real time. Holding on to them would
only make the agent hear stale audio later; dropping the oldest keeps what is
heard current, and :attr:`~PushAudioInput.dropped_frames` counts the loss.

Pre-connect needs nothing special: frames pushed from the moment the user
pressed Connect are waiting in the queue when the session starts reading, and
the session's microphone records them into its pre-connect buffer like any
other input's.

A producer that *cannot* deliver — a browser whose visitor refused the
microphone, a bridge whose call never came — says so with
:meth:`~PushAudioInput.fail`: the reader ends with an
:class:`~lkstate.errors.AudioInputError` carrying its words, so the session's
``local_media.microphone.error`` shows them, as it does for a local
microphone that could not be opened. The state and what the user was told
then agree: no "Mic on" over a microphone that sends nothing.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncGenerator

from livekit import rtc

from .._core.errors import AudioInputError
from .audio import PcmChunk, _chunk_bytes, _FrameCutter, _samples_per_frame  # pyright: ignore[reportPrivateUsage]

__all__ = ["PushAudioInput"]


class PushAudioInput:
    """An :class:`~lkstate.AudioInput` fed by :meth:`push` calls, from any thread.

    Pushed PCM (interleaved s16le ``bytes`` or numpy ``int16``, any length) is
    re-cut into exact ``frame_ms`` frames and queued until the session reads
    it. At most ``max_queued_seconds`` wait; beyond that the oldest frames are
    dropped and counted in :attr:`dropped_frames`. Frames are not paced: they
    are yielded as they arrive, which is real time for a live source.

    Unlike a generator, the input can be read again after a reader stopped (a
    session ended and started again) — one reader at a time. :meth:`clear`
    forgets what is queued (the producer went away mid-frame);
    :meth:`aclose` ends the current reader and refuses later pushes;
    :meth:`fail` ends the current (or next) reader with an error in words.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 48000,
        num_channels: int = 1,
        frame_ms: int = 10,
        max_queued_seconds: float = 1.0,
    ) -> None:
        if num_channels <= 0:
            raise ValueError(f"num_channels must be positive, got {num_channels}")
        if max_queued_seconds <= 0:
            raise ValueError(f"max_queued_seconds must be positive, got {max_queued_seconds}")
        self._sample_rate = sample_rate
        self._num_channels = num_channels
        samples = _samples_per_frame(sample_rate, frame_ms)
        self._cutter = _FrameCutter(sample_rate, num_channels, samples)
        self._max_frames = max(1, round(max_queued_seconds * 1000 / frame_ms))
        self._lock = threading.Lock()
        self._frames: collections.deque[rtc.AudioFrame] = collections.deque()
        self._reader: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._closed = False
        self._failure: AudioInputError | None = None
        self.dropped_frames = 0
        """Frames dropped because the queue was full (nobody read them in time)."""
        self.pushed_frames = 0
        """Frames accepted by :meth:`push` so far."""

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        return self._num_channels

    @property
    def queued_frames(self) -> int:
        """Frames waiting for the reader now."""
        with self._lock:
            return len(self._frames)

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"PushAudioInput({self._sample_rate} Hz, {self._num_channels} ch)"

    def push(self, pcm: PcmChunk) -> bool:
        """Queue ``pcm`` for the reader; never blocks. ``False`` when the input is closed."""
        data = _chunk_bytes(pcm, self._num_channels)
        with self._lock:
            if self._closed:
                return False
            for frame in self._cutter.push(data):
                self._frames.append(frame)
                self.pushed_frames += 1
            while len(self._frames) > self._max_frames:
                self._frames.popleft()
                self.dropped_frames += 1
            reader = self._reader
        if reader is not None:
            _wake(*reader)
        return True

    def clear(self) -> None:
        """Forget the queued frames, any partial frame (not counted as dropped) and a failure not yet read."""
        with self._lock:
            self._frames.clear()
            self._cutter.flush()
            self._failure = None

    def fail(self, message: str, *, remedy: str = "") -> None:
        """The producer cannot deliver audio: end the reader with :class:`~lkstate.errors.AudioInputError`.

        From any thread. The current reader raises it once the frames already
        queued are read; with no reader, the next one does (a session that
        starts after the producer gave up still learns why). Only that one
        reader fails: a session started again afterwards reads normally, so a
        producer that recovered (the visitor allowed the microphone, then
        connected again) just pushes. :meth:`clear` forgets a failure no
        reader has seen yet.
        """
        with self._lock:
            self._failure = AudioInputError(message, remedy=remedy)
            reader = self._reader
        if reader is not None:
            _wake(*reader)

    async def frames(self) -> AsyncGenerator[rtc.AudioFrame, None]:
        event = asyncio.Event()
        with self._lock:
            if self._reader is not None:
                raise AudioInputError(
                    "this PushAudioInput is already being read.", remedy="Read one PushAudioInput from one task only."
                )
            self._reader = (asyncio.get_running_loop(), event)
        try:
            while True:
                with self._lock:
                    frame = self._frames.popleft() if self._frames else None
                    closed = self._closed
                    failure = None
                    if frame is None:
                        event.clear()
                        failure, self._failure = self._failure, None
                if frame is not None:
                    yield frame
                elif failure is not None:
                    raise failure
                elif closed:
                    return
                else:
                    await event.wait()
        finally:
            with self._lock:
                self._reader = None

    async def aclose(self) -> None:
        """End the current reader after the frames already queued; later pushes are refused."""
        with self._lock:
            self._closed = True
            reader = self._reader
        if reader is not None:
            _wake(*reader)


def _wake(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        event.set()
        return
    try:
        loop.call_soon_threadsafe(event.set)
    except RuntimeError:  # the reader's loop is closed: nobody is left to wake
        pass
