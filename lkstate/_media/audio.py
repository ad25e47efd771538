"""Pluggable audio inputs, and the pump that feeds one into a LiveKit track.

A voice session needs a stream of microphone-like audio, but a headless CI box,
a demo recorded for a bug report and a laptop all have different ideas of what
a microphone is. So lkstate never talks to a sound card directly: it reads an
:class:`AudioInput` — anything that yields 10 ms frames of 16-bit PCM — and the
caller picks one:

* :class:`MicrophoneInput` — the real microphone, through PortAudio
  (``sounddevice``). Nothing here imports ``sounddevice`` until you build one,
  and building one on a machine without PortAudio or without an input device
  raises :class:`~lkstate.AudioInputError` saying so, instead of crashing deep
  inside a callback later.
* :class:`WavFileInput` — a 16-bit PCM WAV file, paced in real time by default,
  so a test or a demo "speaks" exactly like a person would.
* :class:`GeneratorInput` — any iterable or async iterable of PCM chunks
  (``bytes`` or numpy ``int16`` arrays), re-cut into exact frames.

Why :class:`MicrophoneInput` opens PortAudio itself rather than calling
``rtc.MediaDevices.open_input()``: that helper pushes each captured frame
straight into an ``rtc.AudioSource`` it creates, and never hands the frame to
the caller. The pre-connect buffer must see every frame *before* it reaches the
track (see below), so we open the input stream the same way MediaDevices does
(int16, 10 ms slices, optional ``rtc.AudioProcessingModule``) and expose the
processing module as :attr:`MicrophoneInput.apm`; give it to
``rtc.media_devices.OutputPlayer(apm_for_reverse=mic.apm)`` to get echo
cancellation against what the speaker plays.

The handover between the pre-connect buffer and the live track
---------------------------------------------------------------

Read ``livekit/agents/voice/room_io/_input.py`` (``_ParticipantAudioInputStream``)
to see what the agent feeds its speech-to-text:

1. When the agent subscribes to the user's microphone it creates the
   ``rtc.AudioStream`` for the track at once; from that moment every frame the
   SFU forwards is queued in that stream.
2. Before reading the stream, and only when the publication carries
   ``TF_PRECONNECT_BUFFER``, it waits (3 s by default) for the pre-connect byte
   stream for that track sid, pushes *all* buffered frames to STT, and only then
   drains the queued live frames.
3. Frames the client put on the track *before* the agent subscribed never reach
   the agent at all: the SFU forwards nothing to a participant that is not
   subscribed.

So the agent hears ``buffer + live-from-its-subscription``. If the client sent
each frame to the track *and* to the buffer, every frame captured between the
agent's subscription and the moment the client stops buffering would reach STT
twice — and the client can only learn of the subscription late (the
``local_track_subscribed`` signal travels back from the server), or much later
if it waits for the agent to become active. Duplicated audio means duplicated
words. Instead, **each captured frame goes to exactly one place**: to the
buffer while it is recording, to the track otherwise. Then every frame reaches
the agent once and in order — buffer first, live after — and a late stop costs
only a stretch of silence on the live stream (nothing was captured into the
track while recording), never repeated speech. Frames that arrive after the
buffer is full go to the track too, so an overlong wait loses the middle of the
speech but never the start.

:func:`pump` implements this with one hook: ``on_frame`` sees every frame first
and returns ``True`` when it *claims* the frame (the pre-connect buffer's
``append`` does exactly that while recording); an unclaimed frame is captured
into the ``rtc.AudioSource``. Both happen on the one event-loop thread, so
stopping the buffer takes effect between two frames: no frame is lost and none
is sent twice. What this module cannot do is receive audio the agent asked for
before it could subscribe; that is why the buffer exists.
"""

from __future__ import annotations

import asyncio
import logging
import os
import wave
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any, Protocol, TypeAlias, cast, runtime_checkable

import attrs
import numpy as np
import numpy.typing as npt
from livekit import rtc

from .._core.errors import AudioInputError
from .pacing import Pacer, each
from .sounddevice_probe import AudioDevice, DeviceSide

__all__ = [
    "AudioInput",
    "WavFileInput",
    "GeneratorInput",
    "MicrophoneInput",
    "microphones",
    "LIVE_BACKLOG_SECONDS",
    "PumpCounts",
    "FrameTap",
    "PcmChunk",
    "default_audio_input",
    "pump",
]

logger = logging.getLogger(__name__)

_SAMPLE_WIDTH = 2  # bytes per s16 sample

PcmChunk: TypeAlias = bytes | bytearray | memoryview | npt.NDArray[np.int16]
"""One chunk of interleaved signed 16-bit little-endian PCM, of any length."""

FrameTap: TypeAlias = Callable[[rtc.AudioFrame], bool | None]
"""Sees each frame before the track does; returning ``True`` claims it."""


@runtime_checkable
class AudioInput(Protocol):
    """A source of 10 ms frames of signed 16-bit PCM.

    ``frames()`` yields ``rtc.AudioFrame`` objects whose ``sample_rate`` and
    ``num_channels`` equal the input's properties, and ends when the input is
    exhausted or closed. ``aclose()`` releases the device or file and makes a
    running ``frames()`` end at its next frame; it is safe to call twice.
    """

    @property
    def sample_rate(self) -> int: ...

    @property
    def num_channels(self) -> int: ...

    def frames(self) -> AsyncIterator[rtc.AudioFrame]: ...

    async def aclose(self) -> None: ...


# --------------------------------------------------------------------------
# Shared machinery: cutting PCM into exact frames, and pacing them.
# --------------------------------------------------------------------------


def _samples_per_frame(sample_rate: int, frame_ms: int) -> int:
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if frame_ms <= 0:
        raise ValueError(f"frame_ms must be positive, got {frame_ms}")
    samples, rest = divmod(sample_rate * frame_ms, 1000)
    if rest:
        raise ValueError(
            f"{frame_ms} ms at {sample_rate} Hz is not a whole number of samples; "
            "pick a frame length that divides evenly (10 ms always does for common rates)"
        )
    return samples


class _FrameCutter:
    """Accumulates PCM bytes of any length and hands out exact frames.

    Chunk boundaries never matter — a sample split across two chunks is
    joined again. Only :meth:`flush` pads, with silence, so the last frame is
    as long as every other one.
    """

    def __init__(self, sample_rate: int, num_channels: int, samples_per_frame: int) -> None:
        self._sample_rate = sample_rate
        self._num_channels = num_channels
        self._samples_per_frame = samples_per_frame
        self._frame_bytes = samples_per_frame * num_channels * _SAMPLE_WIDTH
        self._pending = bytearray()

    def push(self, data: bytes | bytearray | memoryview) -> list[rtc.AudioFrame]:
        self._pending += data
        frames: list[rtc.AudioFrame] = []
        while len(self._pending) >= self._frame_bytes:
            chunk = bytes(self._pending[: self._frame_bytes])
            del self._pending[: self._frame_bytes]
            frames.append(self._frame(chunk))
        return frames

    def flush(self) -> rtc.AudioFrame | None:
        if not self._pending:
            return None
        chunk = bytes(self._pending) + bytes(self._frame_bytes - len(self._pending))
        self._pending.clear()
        return self._frame(chunk)

    def _frame(self, chunk: bytes) -> rtc.AudioFrame:
        return rtc.AudioFrame(chunk, self._sample_rate, self._num_channels, self._samples_per_frame)


# --------------------------------------------------------------------------
# WAV files
# --------------------------------------------------------------------------


class WavFileInput:
    """Plays a 16-bit PCM WAV file as if someone were speaking it.

    The header is checked when you build the input, so a 24-bit or compressed
    file is refused at once with a remedy. Each ``frames()`` call reads the file
    from the start; with ``loop=True`` it wraps around seamlessly (the last
    partial frame continues into the start of the file) and only ends on
    :meth:`aclose`. Without looping, a final partial frame is padded with
    silence so every frame is exactly ``frame_ms`` long.

    ``realtime=True`` paces frames on the event loop's clock (no drift over
    long files); ``realtime=False`` yields as fast as the consumer reads,
    which is what tests usually want.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        realtime: bool = True,
        frame_ms: int = 10,
        loop: bool = False,
    ) -> None:
        self._path = os.fspath(path)
        self._realtime = realtime
        self._loop = loop
        self._closed = False
        try:
            with wave.open(self._path, "rb") as wav:
                sample_width = wav.getsampwidth()
                self._sample_rate = wav.getframerate()
                self._num_channels = wav.getnchannels()
                self._total_samples = wav.getnframes()
        except FileNotFoundError as e:
            raise AudioInputError(
                f"the WAV file {self._path!r} does not exist.",
                remedy="Check the path, or record one with any audio tool.",
            ) from e
        except (wave.Error, EOFError) as e:
            raise AudioInputError(
                f"{self._path!r} is not a readable PCM WAV file ({e}).",
                remedy="Convert it to 16-bit PCM, e.g. `ffmpeg -i in.audio -acodec pcm_s16le out.wav`.",
            ) from e
        if sample_width != _SAMPLE_WIDTH:
            raise AudioInputError(
                f"{self._path!r} holds {sample_width * 8}-bit samples; WavFileInput reads 16-bit PCM only.",
                remedy="Convert it, e.g. `ffmpeg -i in.wav -acodec pcm_s16le out.wav`.",
            )
        self._samples_per_frame = _samples_per_frame(self._sample_rate, frame_ms)
        self._frame_ms = frame_ms

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        return self._num_channels

    @property
    def duration(self) -> float:
        """Length of one pass through the file, in seconds."""
        return self._total_samples / self._sample_rate

    def __repr__(self) -> str:
        return f"WavFileInput({self._path!r}, {self._sample_rate} Hz, {self._num_channels} ch, {self.duration:.2f} s)"

    async def frames(self) -> AsyncGenerator[rtc.AudioFrame, None]:
        cutter = _FrameCutter(self._sample_rate, self._num_channels, self._samples_per_frame)
        pacer = Pacer.for_running_loop(self._frame_ms / 1000) if self._realtime else None
        with wave.open(self._path, "rb") as wav:
            while not self._closed:
                data = wav.readframes(self._samples_per_frame)
                if not data:
                    if self._loop and self._total_samples > 0:
                        wav.rewind()
                        continue
                    break
                for frame in cutter.push(data):
                    if pacer is not None:
                        await pacer.wait()
                    if self._closed:
                        return
                    yield frame
            last = cutter.flush()
            if last is not None and not self._closed:
                if pacer is not None:
                    await pacer.wait()
                yield last

    async def aclose(self) -> None:
        self._closed = True


# --------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------


def _chunk_bytes(chunk: object, num_channels: int) -> bytes | bytearray:
    if isinstance(chunk, bytes | bytearray):
        return chunk
    if isinstance(chunk, memoryview):
        return chunk.tobytes()
    if isinstance(chunk, np.ndarray):
        array = cast("npt.NDArray[Any]", chunk)
        if array.dtype != np.int16:
            raise AudioInputError(
                f"GeneratorInput got a numpy array of {array.dtype}; it needs int16 PCM.",
                remedy="Convert floats with `(x * 32767).clip(-32768, 32767).astype(np.int16)`.",
            )
        if array.ndim == 2 and array.shape[1] != num_channels:
            raise AudioInputError(
                f"GeneratorInput got an array of shape {array.shape} for {num_channels} channel(s).",
                remedy="Pass arrays shaped (samples, channels), or flat interleaved samples.",
            )
        return np.ascontiguousarray(array).astype("<i2", copy=False).tobytes()
    raise AudioInputError(
        f"GeneratorInput got a {type(chunk).__name__}; it needs bytes or int16 numpy arrays.",
        remedy="Yield raw s16 little-endian PCM as bytes, or numpy int16 arrays.",
    )


class GeneratorInput:
    """Audio from your own code: an iterable or async iterable of PCM chunks.

    Chunks may be ``bytes`` (interleaved s16 little-endian) or numpy ``int16``
    arrays (flat interleaved, or shaped ``(samples, channels)``), of any
    length; they are re-cut into exact ``frame_ms`` frames and the last one is
    padded with silence. A plain iterable is read on the event loop, so it must
    not block; wrap blocking producers in an async iterable. The source is
    consumed once: a second ``frames()`` call raises.
    """

    def __init__(
        self,
        source: Iterable[PcmChunk] | AsyncIterable[PcmChunk],
        *,
        sample_rate: int,
        num_channels: int = 1,
        realtime: bool = True,
        frame_ms: int = 10,
    ) -> None:
        if num_channels <= 0:
            raise ValueError(f"num_channels must be positive, got {num_channels}")
        self._source = source
        self._sample_rate = sample_rate
        self._num_channels = num_channels
        self._realtime = realtime
        self._frame_ms = frame_ms
        self._samples_per_frame = _samples_per_frame(sample_rate, frame_ms)
        self._started = False
        self._closed = False

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        return self._num_channels

    async def frames(self) -> AsyncGenerator[rtc.AudioFrame, None]:
        if self._started:
            raise AudioInputError(
                "this GeneratorInput was already read; its source can be consumed once.",
                remedy="Build a new GeneratorInput for each stream of audio.",
            )
        self._started = True
        cutter = _FrameCutter(self._sample_rate, self._num_channels, self._samples_per_frame)
        pacer = Pacer.for_running_loop(self._frame_ms / 1000) if self._realtime else None
        async for chunk in each(self._source):
            for frame in cutter.push(_chunk_bytes(chunk, self._num_channels)):
                if pacer is not None:
                    await pacer.wait()
                if self._closed:
                    return
                yield frame
            if self._closed:
                return
        last = cutter.flush()
        if last is not None and not self._closed:
            if pacer is not None:
                await pacer.wait()
            yield last

    async def aclose(self) -> None:
        self._closed = True


# --------------------------------------------------------------------------
# The microphone
# --------------------------------------------------------------------------

MICROPHONE = DeviceSide(
    noun="microphone",
    direction="input",
    verb="record",
    error=AudioInputError,
    instead="use WavFileInput / GeneratorInput instead",
    without_device=(
        "Connect a microphone, or give lkstate an input that needs no device: "
        "WavFileInput('speech.wav') or GeneratorInput(chunks, sample_rate=48000)."
    ),
    format_remedy="Try sample_rate=48000 and num_channels=1, or choose another device.",
)
"""How the microphone chooses its sound device, and says why it cannot."""


def microphones() -> tuple[AudioDevice, ...]:
    """The microphones this machine offers, for a device picker; the default one is marked.

    Raises :class:`~lkstate.errors.AudioInputError`, with a remedy, when
    PortAudio is not installed or cannot list devices. An empty tuple means
    PortAudio works and there is no microphone.
    """
    return MICROPHONE.listed()


class MicrophoneInput:
    """The real microphone, captured through PortAudio in 10 ms int16 frames.

    Building one checks everything that can be checked without recording:
    that ``sounddevice`` and PortAudio load, that an input device exists (the
    system default unless ``device`` names one by index or by part of its
    name), and that it accepts ``sample_rate`` / ``num_channels``. Any failure
    raises :class:`~lkstate.AudioInputError` with a remedy.

    With ``audio_processing=True`` (the default) each frame goes through an
    ``rtc.AudioProcessingModule`` with echo cancellation, noise suppression,
    high-pass filter and gain control, as ``rtc.MediaDevices`` does. Echo
    cancellation only works if the speaker path feeds the same module: play
    the agent with ``OutputPlayer(apm_for_reverse=mic.apm)``.

    If the event loop falls behind, blocks the callback could not queue are
    dropped (counted in :attr:`dropped_blocks`) rather than stalling PortAudio.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 48000,
        num_channels: int = 1,
        device: int | str | None = None,
        audio_processing: bool = True,
        max_queued_seconds: float = 2.0,
    ) -> None:
        self._samples_per_frame = _samples_per_frame(sample_rate, 10)
        self._sd: Any = MICROPHONE.load()
        self._device_index, self._device_name = MICROPHONE.pick(self._sd, device)
        MICROPHONE.check_format(
            self._sd, self._device_index, self._device_name, sample_rate=sample_rate, num_channels=num_channels
        )
        self._sample_rate = sample_rate
        self._num_channels = num_channels
        self._max_blocks = max(1, int(max_queued_seconds * 100))
        self._apm = (
            rtc.AudioProcessingModule(
                echo_cancellation=True, noise_suppression=True, high_pass_filter=True, auto_gain_control=True
            )
            if audio_processing
            else None
        )
        self._queue: asyncio.Queue[bytes | None] | None = None
        self._running = False
        self._closed = False
        #: Captured blocks dropped because the event loop fell behind (PortAudio never waits).
        self.dropped_blocks = 0

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        return self._num_channels

    @property
    def device_name(self) -> str:
        return self._device_name

    @property
    def apm(self) -> rtc.AudioProcessingModule | None:
        """The processing module applied to captured frames, for the speaker's reverse stream."""
        return self._apm

    def __repr__(self) -> str:
        return f"MicrophoneInput({self._device_name!r}, {self._sample_rate} Hz, {self._num_channels} ch)"

    async def frames(self) -> AsyncGenerator[rtc.AudioFrame, None]:
        if self._running:
            raise AudioInputError(
                "this microphone is already being read.", remedy="Read one MicrophoneInput from one task only."
            )
        if self._closed:
            return
        self._running = True
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=self._max_blocks)
        self._queue = queue

        def enqueue(block: bytes) -> None:  # on the loop thread
            if queue.full():
                self.dropped_blocks += 1
            else:
                queue.put_nowait(block)

        def on_audio(indata: Any, frame_count: int, time_info: Any, status: Any) -> None:  # PortAudio thread
            try:
                loop.call_soon_threadsafe(enqueue, indata.tobytes())
            except RuntimeError:  # the loop is closed; the stream is about to be stopped
                pass

        try:
            stream: Any = self._sd.InputStream(
                samplerate=self._sample_rate,
                channels=self._num_channels,
                dtype="int16",
                device=self._device_index,
                blocksize=self._samples_per_frame,
                callback=on_audio,
            )
            stream.start()
        except Exception as e:
            self._running = False
            raise AudioInputError(
                f"the microphone {self._device_name!r} could not be opened ({e}).",
                remedy="Check that no other program holds it exclusively, or choose another device.",
            ) from e
        logger.info("recording from %r at %d Hz, %d channel(s)", self._device_name, self._sample_rate, self._num_channels)
        cutter = _FrameCutter(self._sample_rate, self._num_channels, self._samples_per_frame)
        try:
            while not self._closed:
                block = await queue.get()
                if block is None:
                    break
                for frame in cutter.push(block):
                    if self._closed:
                        return
                    if self._apm is not None:
                        self._apm.process_stream(frame)
                    yield frame
        finally:
            self._running = False
            try:
                stream.stop()
                stream.close()
            except Exception:
                logger.debug("closing the PortAudio stream failed", exc_info=True)

    async def aclose(self) -> None:
        self._closed = True
        queue = self._queue
        if queue is not None:
            while queue.full():
                queue.get_nowait()
            queue.put_nowait(None)


def default_audio_input() -> AudioInput | None:
    """The default microphone if this machine has one, else ``None``; never raises."""
    try:
        return MicrophoneInput()
    except AudioInputError as e:
        logger.info("no default audio input: %s", e)
    except Exception:
        logger.warning("opening the default microphone failed unexpectedly", exc_info=True)
    return None


# --------------------------------------------------------------------------
# Feeding an input into a track
# --------------------------------------------------------------------------


@attrs.frozen
class PumpCounts:
    """What :func:`pump` did with the frames it read."""

    to_source: int
    """Frames captured into the ``rtc.AudioSource`` (the live track)."""
    claimed: int
    """Frames the ``on_frame`` hook claimed (the pre-connect buffer)."""
    skipped_silence: int = 0
    """Silent frames left out to bring a live input's backlog in the track source down (see :func:`pump`)."""


LIVE_BACKLOG_SECONDS = 0.03
"""Audio a live input may have waiting in its track source before silent frames are left out.

Above the 10-20 ms a steady live input leaves there (a browser's frames come
two 10 ms frames at a time)."""

SILENT_RMS = 104
"""A frame whose RMS is below this (about -50 dBFS of 16-bit audio) is silence that may be left out."""


def _is_silent(frame: rtc.AudioFrame) -> bool:
    samples = np.frombuffer(frame.data.cast("B"), dtype=np.int16).astype(np.float32)
    return samples.size == 0 or float(np.sqrt(np.mean(samples * samples))) < SILENT_RMS


async def pump(
    input: AudioInput,
    source: rtc.AudioSource,
    *,
    on_frame: FrameTap | None = None,
    live_backlog: float | None = None,
) -> PumpCounts:
    """Read ``input`` until it ends and send each frame to exactly one place.

    ``on_frame`` (if given) sees every frame first; if it returns ``True`` it
    has claimed the frame and the track does not get it, otherwise the frame
    is captured into ``source``. Pass ``buffer.append`` of a
    :class:`~lkstate._media.preconnect.PreConnectBuffer` to record the pre-connect
    audio: it claims frames while recording and has room, and declines them
    after :meth:`~lkstate._media.preconnect.PreConnectBuffer.stop`, so the handover
    happens between two frames (see the module docstring for why one place,
    not both). A hook that only observes returns ``None``.

    ``live_backlog`` (seconds) is for a *live* input, one that delivers at the
    pace of the world (a device, a browser over a socket), not at the pace it
    is read: while more than that is waiting in ``source`` (its
    ``queued_duration``), silent frames are left out (counted in
    ``skipped_silence``). Why: ``rtc.AudioSource`` queues what it is given
    (up to a second) and sends it in real time, so any burst — the frames a
    live input held while nobody read it, a socket's jitter, two frames at
    once — leaves a cushion there that a live input, delivering exactly in
    real time, never drains: the agent would hear the user that much later
    for the rest of the session (40-200 ms was measured behind a browser).
    Leaving out 10 ms of silence between words is inaudible; speech is never
    left out. A paced file or generator is not live (its frames wait for the
    source by design) and keeps every frame.

    Returns the counts when the input ends; cancel the task to stop early
    (the input's frame iterator is closed either way, the input itself is not).
    """
    if source.sample_rate != input.sample_rate or source.num_channels != input.num_channels:
        raise AudioInputError(
            f"the audio input gives {input.sample_rate} Hz / {input.num_channels} ch but the track source "
            f"expects {source.sample_rate} Hz / {source.num_channels} ch.",
            remedy="Create the rtc.AudioSource with the input's sample_rate and num_channels.",
        )
    to_source = claimed = skipped = 0
    frames = input.frames()
    try:
        async for frame in frames:
            if on_frame is not None and on_frame(frame) is True:
                claimed += 1
                continue
            if live_backlog is not None and source.queued_duration > live_backlog and _is_silent(frame):
                if skipped == 0:
                    logger.info(
                        "%.0f ms of live audio waits in the track source; leaving out silent frames until it is "
                        "under %.0f ms",
                        source.queued_duration * 1000,
                        live_backlog * 1000,
                    )
                skipped += 1
                continue
            await source.capture_frame(frame)
            to_source += 1
    finally:
        if skipped:
            logger.info("left out %d silent frames of live audio to keep the agent hearing it on time", skipped)
        if isinstance(frames, AsyncGenerator):
            await frames.aclose()
    return PumpCounts(to_source=to_source, claimed=claimed, skipped_silence=skipped)
