"""Agent audio playback: the agent's voice, played to a speaker or into a file.

A voice agent is only half heard if the client does not play it. Like the
microphone (:mod:`lkstate._media.audio`), the speaker is pluggable, because a laptop,
a headless CI box and a bug report each want something different:

* :class:`SpeakerOutput` — the real speaker, through PortAudio
  (``sounddevice``), imported only when you build one. Building one on a
  machine without PortAudio or without an output device raises
  :class:`~lkstate.AudioOutputError` saying so.
* :class:`WavFileOutput` — a 16-bit PCM WAV file holding exactly what a speaker
  would have played. Tests listen to the agent with it; apps offer it as
  ``--audio-out FILE``.
* Your own :class:`AudioOutput`: three methods.

:class:`SpeakerController` is the session's speaker. It owns one output for one
``start()``…``end()``, watches the state for the agent's voice — the primary
agent's subscribed audio track, or its avatar worker's, which speaks for it —
and plays it through one ``rtc.AudioStream`` (48 kHz mono by default, resampled
by LiveKit). When the primary agent changes, playback follows; when the room
goes away, the stream is closed. What it does is reported as
:class:`~lkstate._core.events.LocalOutputChanged` events, so
``state.local_media.speaker`` always says whether the agent can be heard and,
if not, why — "No speaker found: …" on a machine without one, in words a
person can act on.

Muting (:meth:`SpeakerController.set_enabled`) keeps the stream and the device
open and plays silence instead, so unmuting is instant and a
:class:`WavFileOutput` keeps its timeline: a muted stretch is a silent stretch
of the same length. Between two voices (no agent, or before its track is
subscribed) nothing is written, so a file holds only the time the agent could
be heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import attrs
import numpy as np
from livekit import rtc

from .._core import events as ev
from .._core.errors import AudioOutputError, SessionClosedError
from .._core.state import ConnectionStatus, LocalTrackState, SessionState, TrackSource
from .sounddevice_probe import AudioDevice, DeviceSide

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "AudioOutput",
    "SilentOutput",
    "SpeakerOutput",
    "speakers",
    "WavFileOutput",
    "default_audio_output",
    "AgentVoice",
    "agent_voice",
    "SpeakerController",
    "PLAYBACK_SAMPLE_RATE",
    "PLAYBACK_CHANNELS",
]

logger = logging.getLogger(__name__)

PLAYBACK_SAMPLE_RATE = 48000
"""The rate the agent's voice is played at unless the controller is told otherwise."""

PLAYBACK_CHANNELS = 1

_SAMPLE_WIDTH = 2  # bytes per s16 sample

_STREAM_CLOSE_TIMEOUT = 2.0
"""Seconds to wait for LiveKit to end an audio stream before giving up on it."""


@runtime_checkable
class AudioOutput(Protocol):
    """Somewhere to play 16-bit PCM: a speaker, a file, your own sink.

    The session calls :meth:`open` once when it starts (with the format every
    frame will have), :meth:`write` for each 10 ms frame of the agent's voice,
    on the event loop — so it must not block — and :meth:`aclose` when it ends.
    An output may be opened again after it was closed (a session started
    again). Failures raise :class:`~lkstate.AudioOutputError` with words.
    """

    async def open(self, sample_rate: int, num_channels: int) -> None: ...

    def write(self, frame: rtc.AudioFrame) -> None: ...

    async def aclose(self) -> None: ...


def _frame_bytes(frame: rtc.AudioFrame) -> bytes:
    """The frame's interleaved s16le PCM."""
    size = frame.samples_per_channel * frame.num_channels * _SAMPLE_WIDTH
    return bytes(frame.data.cast("B")[:size])


def _check_frame(frame: rtc.AudioFrame, sample_rate: int, num_channels: int, what: str) -> None:
    if frame.sample_rate != sample_rate or frame.num_channels != num_channels:
        raise AudioOutputError(
            f"{what} was opened for {sample_rate} Hz / {num_channels} ch but got a frame of "
            f"{frame.sample_rate} Hz / {frame.num_channels} ch.",
            remedy="Open the output with the format of the frames you write.",
        )


# --------------------------------------------------------------------------
# A file
# --------------------------------------------------------------------------

_WAV_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")


def _wav_header(sample_rate: int, num_channels: int, data_bytes: int) -> bytes:
    block = num_channels * _SAMPLE_WIDTH
    return _WAV_HEADER.pack(
        b"RIFF", 36 + data_bytes, b"WAVE",
        b"fmt ", 16, 1, num_channels, sample_rate, sample_rate * block, block, 8 * _SAMPLE_WIDTH,
        b"data", data_bytes,
    )  # fmt: skip


class WavFileOutput:
    """A 16-bit PCM WAV file of everything a speaker would have played.

    The file is created (or replaced) by the first :meth:`open`; opening the
    same output again after :meth:`aclose` — a session started again —
    appends to it, so one output holds a whole run of sessions. Its header is
    kept up to date after every frame, so the file is a valid WAV at any
    moment, even if the process dies. Frames are written on the event loop;
    at 48 kHz mono that is under 100 kB a second, which a local disk takes in
    its stride.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._file: IO[bytes] | None = None
        self._format: tuple[int, int] | None = None
        self._data_bytes = 0

    @property
    def path(self) -> Path:
        return self._path

    @property
    def sample_rate(self) -> int | None:
        """The rate the file was opened with (``None`` until first opened)."""
        return self._format[0] if self._format is not None else None

    @property
    def num_channels(self) -> int | None:
        return self._format[1] if self._format is not None else None

    @property
    def seconds_written(self) -> float:
        """How much audio the file holds."""
        if self._format is None:
            return 0.0
        rate, channels = self._format
        return self._data_bytes / (rate * channels * _SAMPLE_WIDTH)

    def __repr__(self) -> str:
        return f"WavFileOutput({str(self._path)!r})"

    async def open(self, sample_rate: int, num_channels: int) -> None:
        if sample_rate <= 0 or num_channels <= 0:
            raise ValueError(f"bad format: {sample_rate} Hz / {num_channels} ch")
        if self._file is not None:
            raise AudioOutputError(
                f"{self!r} is already open.", remedy="Give each session its own output, or close it first."
            )
        fmt = (sample_rate, num_channels)
        if self._format is not None and self._format != fmt:
            raise AudioOutputError(
                f"{self!r} holds {self._format[0]} Hz / {self._format[1]} ch audio and cannot take "
                f"{sample_rate} Hz / {num_channels} ch as well.",
                remedy="Use a new WavFileOutput for audio of another format.",
            )
        try:
            if self._format is None:
                file = self._path.open("wb")
                file.write(_wav_header(sample_rate, num_channels, 0))
                self._data_bytes = 0
            else:
                file = self._path.open("r+b")
                file.seek(0, os.SEEK_END)
        except OSError as e:
            raise AudioOutputError(
                f"could not open {str(self._path)!r} to write the agent's audio ({e}).",
                remedy="Check that its folder exists and is writable.",
            ) from e
        self._file, self._format = file, fmt
        logger.info("writing the agent's audio to %s (%d Hz, %d ch)", self._path, sample_rate, num_channels)

    def write(self, frame: rtc.AudioFrame) -> None:
        file, fmt = self._file, self._format
        if file is None or fmt is None:
            raise AudioOutputError(f"{self!r} is not open.", remedy="Call open() before write().")
        _check_frame(frame, fmt[0], fmt[1], repr(self))
        data = _frame_bytes(frame)
        try:
            file.write(data)
            self._data_bytes += len(data)
            file.seek(0)
            file.write(_wav_header(fmt[0], fmt[1], self._data_bytes))
            file.seek(0, os.SEEK_END)
        except OSError as e:
            raise AudioOutputError(
                f"could not write the agent's audio to {str(self._path)!r} ({e}).",
                remedy="Check the free space and permissions of that disk.",
            ) from e

    async def aclose(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()


# --------------------------------------------------------------------------
# The speaker
# --------------------------------------------------------------------------

SPEAKER = DeviceSide(
    noun="speaker",
    direction="output",
    verb="play",
    error=AudioOutputError,
    instead="play into a file with WavFileOutput('agent.wav')",
    without_device="Connect a speaker or headphones, or play the agent into a file: WavFileOutput('agent.wav').",
    format_remedy="Choose another device.",
)
"""How the speaker chooses its sound device, and says why it cannot."""


def speakers() -> tuple[AudioDevice, ...]:
    """The speakers (and headphones) this machine offers, for a device picker; the default one is marked.

    Raises :class:`~lkstate.errors.AudioOutputError`, with a remedy, when
    PortAudio is not installed or cannot list devices. An empty tuple means
    PortAudio works and there is no speaker.
    """
    return SPEAKER.listed()


class SpeakerOutput:
    """The real speaker, played through PortAudio.

    Building one checks what can be checked without playing: that
    ``sounddevice`` and PortAudio load and that an output device exists (the
    system default unless ``device`` names one by index or by part of its
    name); :meth:`open` checks the format and starts the device. Failures
    raise :class:`~lkstate.AudioOutputError` with a remedy.

    Frames written wait in a small buffer that PortAudio's callback drains; a
    missing frame plays as silence. If the network delivers faster than the
    device plays, the buffer is held to ``max_buffered_seconds`` by dropping
    the oldest audio (counted in :attr:`dropped_bytes`), so the agent never
    drifts further and further behind.

    Pass a microphone's processing module as ``apm_for_reverse``
    (:attr:`~lkstate.MicrophoneInput.apm`) to feed it what the speaker plays:
    its echo cancellation then keeps the agent from hearing itself.
    """

    def __init__(
        self,
        *,
        device: int | str | None = None,
        max_buffered_seconds: float = 0.5,
        apm_for_reverse: rtc.AudioProcessingModule | None = None,
    ) -> None:
        if max_buffered_seconds <= 0:
            raise ValueError(f"max_buffered_seconds must be positive, got {max_buffered_seconds}")
        self._sd: Any = SPEAKER.load()
        self._device_index, self._device_name = SPEAKER.pick(self._sd, device)
        self._max_buffered_seconds = max_buffered_seconds
        self._apm = apm_for_reverse
        self._lock = threading.Lock()
        self._buffer = bytearray()
        self._max_bytes = 0
        self._format: tuple[int, int] | None = None
        self._stream: Any = None
        #: Bytes of the oldest audio dropped to keep the buffer within ``max_buffered_seconds``.
        self.dropped_bytes = 0

    @property
    def device_name(self) -> str:
        return self._device_name

    def __repr__(self) -> str:
        return f"SpeakerOutput({self._device_name!r})"

    async def open(self, sample_rate: int, num_channels: int) -> None:
        if self._stream is not None:
            raise AudioOutputError(f"the speaker {self._device_name!r} is already open.", remedy="Close it first.")
        SPEAKER.check_format(
            self._sd, self._device_index, self._device_name, sample_rate=sample_rate, num_channels=num_channels
        )
        frame_bytes = num_channels * _SAMPLE_WIDTH
        with self._lock:
            self._buffer.clear()
            self._max_bytes = max(frame_bytes, int(sample_rate * self._max_buffered_seconds) * frame_bytes)
        self._format = (sample_rate, num_channels)
        try:
            stream: Any = self._sd.OutputStream(
                samplerate=sample_rate,
                channels=num_channels,
                dtype="int16",
                device=self._device_index,
                blocksize=sample_rate // 100,
                callback=self._fill,
            )
            stream.start()
        except Exception as e:
            raise AudioOutputError(
                f"the speaker {self._device_name!r} could not be opened ({e}).",
                remedy="Check that no other program holds it exclusively, or choose another device.",
            ) from e
        self._stream = stream
        logger.info("playing the agent on %r at %d Hz, %d channel(s)", self._device_name, sample_rate, num_channels)

    def write(self, frame: rtc.AudioFrame) -> None:
        fmt = self._format
        if self._stream is None or fmt is None:
            raise AudioOutputError(f"the speaker {self._device_name!r} is not open.", remedy="Call open() first.")
        _check_frame(frame, fmt[0], fmt[1], f"the speaker {self._device_name!r}")
        data = _frame_bytes(frame)
        block = fmt[1] * _SAMPLE_WIDTH
        with self._lock:
            self._buffer += data
            excess = len(self._buffer) - self._max_bytes
            if excess > 0:
                excess += (-excess) % block  # whole samples only
                del self._buffer[:excess]
                self.dropped_bytes += excess

    def _fill(self, outdata: npt.NDArray[np.int16], frame_count: int, time_info: Any, status: Any) -> None:
        """PortAudio's callback, on its own thread: play what is buffered, silence for the rest."""
        flat = outdata.reshape(-1)
        wanted = flat.size * _SAMPLE_WIDTH
        with self._lock:
            chunk = bytes(self._buffer[:wanted])
            del self._buffer[:wanted]
        samples = len(chunk) // _SAMPLE_WIDTH
        if samples:
            flat[:samples] = np.frombuffer(chunk, dtype=np.int16, count=samples)
        flat[samples:] = 0
        apm, fmt = self._apm, self._format
        if apm is not None and fmt is not None:
            rate, channels = fmt
            per_frame = rate // 100
            for start in range(0, frame_count - per_frame + 1, per_frame):
                piece = outdata[start : start + per_frame].tobytes()
                with contextlib.suppress(Exception):  # echo cancellation is best effort
                    apm.process_reverse_stream(rtc.AudioFrame(piece, rate, channels, per_frame))

    async def aclose(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:
                logger.debug("closing the PortAudio output stream failed", exc_info=True)
        with self._lock:
            self._buffer.clear()


class SilentOutput:
    """An output that plays nothing: the agent's voice is received and dropped.

    For an app that shows the agent's voice (``session.levels``) but plays
    it elsewhere or not at all. With ``audio_output=None`` the session does
    not even receive the agent's audio, so ``levels.agent`` stays 0; with a
    ``SilentOutput`` it is received (and decoded) for the meter alone.
    """

    def __repr__(self) -> str:
        return "SilentOutput()"

    async def open(self, sample_rate: int, num_channels: int) -> None:
        if sample_rate <= 0 or num_channels <= 0:
            raise ValueError(f"bad format: {sample_rate} Hz / {num_channels} ch")

    def write(self, frame: rtc.AudioFrame) -> None:
        pass

    async def aclose(self) -> None:
        pass


def default_audio_output() -> AudioOutput | None:
    """The default speaker if this machine has one, else ``None``; never raises."""
    output, error = _open_default_speaker()
    if output is None:
        logger.info("no default audio output: %s", error)
    return output


def _open_default_speaker() -> tuple[AudioOutput | None, str | None]:
    """The default speaker, or ``None`` and why not (in words); never raises."""
    try:
        return SpeakerOutput(), None
    except AudioOutputError as error:
        return None, error.sentence()
    except Exception as error:  # a broken driver must not stop the session
        logger.warning("opening the default speaker failed unexpectedly", exc_info=True)
        return None, f"No speaker found: opening it failed ({error})."


def _describe_output(output: AudioOutput) -> str:
    if isinstance(output, SpeakerOutput):
        return output.device_name
    if isinstance(output, WavFileOutput | SilentOutput):
        return repr(output)
    return type(output).__name__


# --------------------------------------------------------------------------
# Whose voice to play
# --------------------------------------------------------------------------


@attrs.frozen
class AgentVoice:
    """The track that carries the agent's voice: its own, or its avatar worker's."""

    identity: str
    """The participant that publishes it (the agent, or the avatar speaking for it)."""
    track_sid: str


def agent_voice(state: SessionState) -> AgentVoice | None:
    """The agent's voice to play in ``state``, or ``None`` when there is none to play.

    The primary agent's avatar speaks for it when it has a subscribed audio
    track; otherwise the agent's own subscribed audio track. A microphone-like
    track is preferred over other audio (a shared screen's sound). Muted
    tracks still count: they play silence until unmuted.
    """
    if state.connection.status is ConnectionStatus.DISCONNECTED:
        return None
    agent = state.agent
    if agent.identity is None:
        return None
    speakers = [i for i in (agent.avatar_identity, agent.identity) if i is not None]
    for identity in speakers:
        participant = next((p for p in agent.agents if p.identity == identity), None)
        if participant is None:
            continue
        audio = [t for t in participant.tracks if t.kind == "audio" and t.subscribed]
        if audio:
            track = min(audio, key=lambda t: t.source is not TrackSource.MICROPHONE)
            return AgentVoice(identity=identity, track_sid=track.sid)
    return None


# --------------------------------------------------------------------------
# The controller
# --------------------------------------------------------------------------


@attrs.define(eq=False)
class _Playback:
    voice: AgentVoice
    track: rtc.Track
    stream: rtc.AudioStream
    task: asyncio.Task[None] | None = None
    ended: bool = False
    """No more frames are written from it."""
    closed: bool = False
    """Its stream was closed (or is being closed)."""


class SpeakerController:
    """The session's speaker: plays the agent's voice into an :class:`AudioOutput`.

    ``audio_output`` is an output, or ``"default"`` (the system speaker, if
    there is one). ``emit`` receives :class:`~lkstate._core.events.LocalOutputChanged`
    events stamped with ``clock()``. The session drives it: :meth:`start` when
    it starts (opens the output; never raises), :meth:`attach` once the room
    is connected, :meth:`on_state` with every snapshot (which voice to play),
    :meth:`set_enabled` for the user's mute toggle, and :meth:`aclose` when the
    room goes away. Every method runs on the session's event loop.

    The controller opens its output and closes it again in :meth:`aclose`,
    whether it built the output (``"default"``) or was given it; the same
    holds for an output swapped in with :meth:`set_output` while it plays.

    ``on_level`` sees every frame of the agent's voice as received, muted or
    not (for the level meter: a muted agent still moves a visualizer).
    """

    def __init__(
        self,
        *,
        audio_output: AudioOutput | Literal["default"],
        emit: Callable[[ev.Event], object],
        clock: Callable[[], float],
        sample_rate: int = PLAYBACK_SAMPLE_RATE,
        num_channels: int = PLAYBACK_CHANNELS,
        on_level: Callable[[rtc.AudioFrame], object] | None = None,
        frame_ms: int | None = None,
    ) -> None:
        self._on_level = on_level
        self._frame_ms = frame_ms
        self._requested = audio_output
        self._emit = emit
        self._clock = clock
        self._sample_rate = sample_rate
        self._num_channels = num_channels
        self._output: AudioOutput | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room: rtc.Room | None = None
        self._playback: _Playback | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._enabled = True
        self._broken = False
        self._silence: rtc.AudioFrame | None = None
        self._state = LocalTrackState()
        self._last: SessionState | None = None
        self._started = False
        self._closed = False
        self._switching = asyncio.Lock()

    @property
    def track_state(self) -> LocalTrackState:
        """What the controller last reported as ``state.local_media.speaker``."""
        return self._state

    @property
    def output(self) -> AudioOutput | None:
        """The open output, or ``None`` (none found, failed, or closed)."""
        return self._output

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, *, strict: bool = False) -> None:
        """Open the output and report it; a missing or broken output is reported, not raised.

        ``strict`` raises the output's failure instead (nothing is reported
        then, and the controller can be started again): a user's command to
        play into this output says why it cannot, rather than a session's
        start that must go on without sound.
        """
        if self._started or self._closed:
            return
        self._loop = asyncio.get_running_loop()
        requested = self._requested
        error: str | None = None
        output: AudioOutput | None
        if isinstance(requested, str):  # "default"
            output, error = _open_default_speaker()
        else:
            output = requested
        if output is not None:
            try:
                await output.open(self._sample_rate, self._num_channels)
            except Exception as failure:
                if strict:
                    raise
                logger.warning("opening the audio output failed", exc_info=True)
                error = (
                    failure.sentence()
                    if isinstance(failure, AudioOutputError)
                    else f"The speaker could not be opened: {failure}"
                )
                output = None
        self._started = True
        if output is None:
            self._set(LocalTrackState(enabled=False, error=error))
            return
        self._output = output
        self._set(LocalTrackState(enabled=self._enabled, muted=not self._enabled, device=_describe_output(output)))

    def attach(self, room: rtc.Room) -> None:
        """The room is connected: play the agent's voice as soon as the state shows it."""
        if self._closed:
            return
        self._room = room
        if self._last is not None:
            self._follow(self._last)

    def on_state(self, state: SessionState) -> None:
        """A new snapshot: start, switch or stop playback to match the agent's voice."""
        self._last = state
        if self._room is not None and not self._closed:
            self._follow(state)

    def set_enabled(self, enabled: bool) -> None:
        """Unmute or mute the agent: muted, silence is played in its place and the stream stays open."""
        self._enabled = enabled
        if self._output is not None:
            self._set(attrs.evolve(self._state, enabled=enabled, muted=not enabled))

    async def set_output(self, output: AudioOutput | None) -> None:
        """Play the agent's voice into another output from now on (a device picker's choice).

        The new output is opened first, with the format the voice is played
        in: if it cannot be (no such device, a format it refuses), its
        :class:`~lkstate.AudioOutputError` is raised and the current output
        goes on playing. Then the next frame goes to the new output, and the
        old one is closed (the controller opened it, so the controller closes
        it — as it does at the end). The agent's audio stream is not touched:
        no frame is received twice or lost to a new subscription. A speaker
        that had failed, or was missing, plays again. ``None`` closes the
        output and plays nothing until another is set.
        """
        if self._closed:
            raise SessionClosedError(
                "The speaker is closed: the session ended.", remedy="Choose the output before the next start()."
            )
        async with self._switching:
            if not self._started:  # start() opens it
                if output is not None:
                    self._requested = output
                return
            if output is not None and output is not self._output:
                await output.open(self._sample_rate, self._num_channels)  # raises: the old output plays on
            old, self._output = self._output, output
            if old is not None and old is not output:
                try:
                    await old.aclose()
                except Exception:
                    logger.warning("closing the previous audio output failed", exc_info=True)
            if output is None:
                self._broken = False
                playback, self._playback = self._playback, None
                if playback is not None:
                    self._stop(playback)
                self._set(LocalTrackState(enabled=False))
                return
            logger.info("playing the agent's voice into %s", _describe_output(output))
            repaired = self._broken
            self._broken = False
            if repaired:  # its playback ended when the old output failed: the next _follow starts a new one
                playback, self._playback = self._playback, None
                if playback is not None:
                    self._stop(playback)
            self._set(
                LocalTrackState(
                    enabled=self._enabled,
                    muted=not self._enabled,
                    published=self._state.published and not repaired,
                    track_sid=self._state.track_sid if not repaired else None,
                    device=_describe_output(output),
                )
            )
            if self._room is not None and self._last is not None:
                self._follow(self._last)

    async def detach(self) -> None:
        """The room is going away: stop playing and close the stream; the output stays open."""
        self._room = None
        self._last = None
        playback, self._playback = self._playback, None
        if playback is not None:
            self._stop(playback)
        tasks = list(self._tasks)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._state.published or self._state.track_sid is not None:
            self._set(attrs.evolve(self._state, published=False, track_sid=None))

    async def aclose(self) -> None:
        """Stop playing and close the output. Idempotent."""
        if self._closed:
            return
        await self.detach()
        self._closed = True
        output, self._output = self._output, None
        if output is not None:
            try:
                await output.aclose()
            except Exception:
                logger.warning("closing the audio output failed", exc_info=True)

    # -- following the agent -----------------------------------------------------------

    def _follow(self, state: SessionState) -> None:
        voice = agent_voice(state) if self._output is not None and not self._broken else None
        track = self._find_track(voice) if voice is not None else None
        current = self._playback
        if current is not None and current.voice == voice and current.track is track:
            return  # playing it (or it ended: the track will go from the state soon)
        if current is not None:
            self._playback = None
            self._stop(current)  # at once: not one more frame of the old voice is written
        if voice is not None and track is not None:
            self._play(voice, track)
        self._report()

    def _find_track(self, voice: AgentVoice) -> rtc.Track | None:
        room = self._room
        participant = room.remote_participants.get(voice.identity) if room is not None else None
        if participant is None:
            return None
        publication = participant.track_publications.get(voice.track_sid)
        track = publication.track if publication is not None else None
        return track if isinstance(track, rtc.RemoteAudioTrack) else None

    def _play(self, voice: AgentVoice, track: rtc.Track) -> None:
        loop = self._loop
        assert loop is not None
        try:
            stream = rtc.AudioStream(
                track,
                loop=loop,
                sample_rate=self._sample_rate,
                num_channels=self._num_channels,
                frame_size_ms=self._frame_ms,
            )
        except Exception as failure:
            logger.warning("could not open the agent's audio stream", exc_info=True)
            self._set(attrs.evolve(self._state, error=f"Could not play the agent's voice: {failure}"))
            return
        playback = _Playback(voice=voice, track=track, stream=stream)
        playback.task = task = loop.create_task(self._pump(playback), name="lkstate-speaker")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._playback = playback
        if self._state.error is not None:  # an earlier stream that would not open
            self._set(attrs.evolve(self._state, error=None))
        logger.info("playing the agent's voice from %s (%s)", voice.identity, voice.track_sid)

    async def _pump(self, playback: _Playback) -> None:
        try:
            async for event in playback.stream:
                self._write(event.frame)
        except AudioOutputError as failure:
            self._fail(failure.sentence())
        except Exception as failure:
            logger.warning("the audio output failed", exc_info=True)
            self._fail(f"The speaker stopped working: {failure}")
        finally:
            playback.ended = True
            if not playback.closed:
                playback.closed = True
                await _close_stream(playback.stream)
            if self._playback is playback:
                self._report()

    def _write(self, frame: rtc.AudioFrame) -> None:
        output = self._output
        if output is None:
            return
        if self._on_level is not None:
            self._on_level(frame)
        if not self._enabled:
            silence = self._silence
            if silence is None or silence.samples_per_channel != frame.samples_per_channel:
                silence = self._silence = rtc.AudioFrame.create(
                    frame.sample_rate, frame.num_channels, frame.samples_per_channel
                )
            frame = silence
        output.write(frame)

    def _fail(self, words: str) -> None:
        self._broken = True
        self._set(attrs.evolve(self._state, published=False, track_sid=None, error=words))

    def _stop(self, playback: _Playback) -> None:
        """Stop a playback now and close its stream soon (awaited by :meth:`detach`).

        Cancelling is immediate, so no frame of the old voice is written after
        this; a task cancelled before it ever ran never reaches its ``finally``,
        so the stream is closed here unless the task did so itself.
        """
        playback.ended = True
        task = playback.task
        if task is not None:
            task.cancel()
        loop = self._loop
        assert loop is not None

        async def close() -> None:
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
            if not playback.closed:
                playback.closed = True
                await _close_stream(playback.stream)

        closing = loop.create_task(close(), name="lkstate-speaker-close")
        self._tasks.add(closing)
        closing.add_done_callback(self._tasks.discard)

    def _report(self) -> None:
        playback = self._playback
        playing = playback is not None and not playback.ended
        sid = playback.voice.track_sid if playing and playback is not None else None
        if self._output is None or self._broken:
            playing, sid = False, None
        self._set(attrs.evolve(self._state, published=playing, track_sid=sid))

    def _set(self, state: LocalTrackState) -> None:
        if state == self._state:
            return
        self._state = state
        self._emit(ev.LocalOutputChanged(at=self._clock(), speaker=state))


async def _close_stream(stream: rtc.AudioStream) -> None:
    """Close a LiveKit audio stream, bounded: a stream that will not end is given up on."""
    try:
        async with asyncio.timeout(_STREAM_CLOSE_TIMEOUT):
            await stream.aclose()
    except Exception:  # TimeoutError included
        logger.debug("closing the agent's audio stream failed", exc_info=True)
