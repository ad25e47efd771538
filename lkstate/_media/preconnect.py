"""Pre-connect audio: keep what the user says before the agent can hear it.

Joining a room, publishing the microphone and waiting for an agent to be
dispatched and subscribe takes a second or several. People start talking as
soon as they press the button, so the client records the microphone from the
start and, once the agent is there, sends that recording as a byte stream the
agent plays into its speech-to-text before the live track. This module holds
the parts that do not depend on the session: the buffer, the Opus encoder it
feeds while recording (so the hand-over sends a sixteenth of the bytes, already
encoded), and the sender.
When to stop recording and when to send is the session's business; why the
buffer and the live track must each get a frame exclusively is explained in
:mod:`lkstate._media.audio`.

The agent side (``livekit/agents/voice/room_io/_pre_connect_audio.py`` and
``_input.py`` in livekit-agents 1.8) is the judge of the format:

* topic ``lk.agent.pre-connect-audio-buffer``, one byte stream per buffer;
* attributes ``trackId`` (the sid of the microphone *publication*; the buffer
  is keyed by it and a stream without it is dropped), ``sampleRate`` and
  ``channels`` (decimal strings; a stream without them fails);
* a mime type of ``audio/opus`` or one containing ``codecs=opus`` means Opus
  in a container PyAV probes (Ogg or WebM; it decodes to ``sampleRate`` and
  ``channels``), anything else is raw interleaved s16 little-endian PCM. We
  send Ogg/Opus as ``audio/ogg;codecs=opus`` (see :class:`OpusEncoder`), or
  PCM as ``application/octet-stream``;
* the agent waits for the buffer only when the publication carries
  ``AudioTrackFeature.TF_PRECONNECT_BUFFER`` (publish with
  ``TrackPublishOptions(preconnect_buffer=True)``), for 3 s by default
  (``RoomInputOptions.pre_connect_audio_timeout``) from the moment it
  subscribes, and it drops a buffer that arrived more than 1 s before it
  asked for it. So: send promptly once the agent has subscribed, and to the
  agent only.

What the reference clients get wrong, and this module does not: Swift caps
its buffer by chunk count (so the cap in bytes depends on the device's chunk
size) — :class:`PreConnectBuffer` caps by bytes and by seconds and keeps the
*start* of the speech when full; Swift once sent an empty ``trackId`` when the
agent was active before the publication completed — :func:`send_preconnect_audio`
refuses an empty track sid or agent identity.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import attrs
from livekit import rtc

from .._core.errors import AudioInputError
from .._core.options import PreConnectCodec, PreConnectLimits

__all__ = [
    "PRECONNECT_TOPIC",
    "AGENT_DEFAULT_WAIT_SECONDS",
    "AGENT_MAX_BUFFER_AGE_SECONDS",
    "OPUS_MIME_TYPE",
    "PCM_MIME_TYPE",
    "OPUS_SAMPLE_RATES",
    "OpusEncoder",
    "OpusUnavailable",
    "PreConnectAudio",
    "PreConnectBuffer",
    "send_preconnect_audio",
]

logger = logging.getLogger(__name__)

PRECONNECT_TOPIC = "lk.agent.pre-connect-audio-buffer"
"""Byte-stream topic the agent's ``PreConnectAudioHandler`` listens on."""

AGENT_DEFAULT_WAIT_SECONDS = 3.0
"""How long a livekit-agents agent waits for the buffer after subscribing (its default)."""

AGENT_MAX_BUFFER_AGE_SECONDS = 1.0
"""A buffer that reached the agent longer ago than this when it asks for it is dropped."""

OPUS_MIME_TYPE = "audio/ogg;codecs=opus"
"""What an Opus recording is sent as; the agent takes any mime type containing ``codecs=opus``."""

PCM_MIME_TYPE = "application/octet-stream"
"""What a raw PCM recording is sent as; the agent reads anything not Opus as s16le PCM."""

OPUS_SAMPLE_RATES = (8000, 12000, 16000, 24000, 48000)
"""The rates Opus codes natively; other inputs are resampled to 48 kHz before encoding."""

_SAMPLE_WIDTH = 2
_WRITE_CHUNK = 64 * 1024
_OPUS_COMPLEXITY = 5
"""libopus effort, 0–10. At 10 (its default) encoding costs about 5 % of a core while
recording; at 5 about 1.5 %, and 10 s of band-limited noise still correlates 0.96 or
better in every 20 ms window at 48 kb/s."""
_OGG_PAGE_MICROSECONDS = 100_000
"""The Ogg muxer writes a page every 100 ms (its default is 1 s), so the encoded
size that the state reports grows smoothly while recording."""


class OpusUnavailable(Exception):
    """Opus cannot encode this recording (no PyAV, no libopus, too many channels); send PCM."""


@attrs.frozen
class PreConnectAudio:
    """A pre-connect recording as it is sent: the bytes, how they are coded, and what they hold.

    ``pcm`` is the recording itself (interleaved s16le at ``input_rate``),
    kept so that audio an agent never got to use can be recorded on and sent
    again; ``data`` is what goes on the wire — ``pcm`` itself, or Ogg/Opus
    that the agent decodes to ``sample_rate``.
    """

    data: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    codec: PreConnectCodec
    sample_rate: int
    """The ``sampleRate`` attribute: the rate of ``data`` (PCM) or the rate to decode it to (Opus)."""
    num_channels: int
    pcm: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    input_rate: int

    @property
    def mime_type(self) -> str:
        return OPUS_MIME_TYPE if self.codec == "opus" else PCM_MIME_TYPE

    @property
    def seconds(self) -> float:
        """How long the recording is (its PCM, whatever the coding)."""
        return len(self.pcm) / (_SAMPLE_WIDTH * self.num_channels * self.input_rate)

    @classmethod
    def raw(cls, pcm: bytes, sample_rate: int, num_channels: int) -> PreConnectAudio:
        """``pcm`` sent as it is."""
        return cls(pcm, "pcm", sample_rate, num_channels, pcm, sample_rate)


class OpusEncoder:
    """Ogg/Opus in memory, fed while recording, so the hand-over only flushes the last frame.

    Built on PyAV (FFmpeg's libopus and Ogg muxer). Construction raises
    :class:`OpusUnavailable` when PyAV is not installed, its FFmpeg lacks
    libopus, or the input has more than two channels; the caller then sends
    PCM. An input rate Opus does not code (44.1 kHz, say) is resampled to
    48 kHz, and the agent is told to decode at 48 kHz.

    The stream begins with 20 ms of silence, one Opus frame, before the
    first recorded sample. livekit-agents 1.8.9 opens the stream with
    ``fflags=nobuffer``, which makes FFmpeg drop the packet it probed the
    stream with — the first one — and apply the Opus pre-skip to the next:
    exactly the first 20 ms would be lost (the JS client's WebM/Opus loses
    them too). With the lead-in, what that decoder drops is the silence and
    the agent hears the recording from its first sample; a decoder without
    the flaw hears 20 ms of silence first.
    """

    LEAD_IN_SECONDS = 0.02

    def __init__(self, sample_rate: int, num_channels: int, *, bitrate: int = 48_000) -> None:
        if num_channels not in (1, 2):
            raise OpusUnavailable(f"Opus codes mono or stereo here, not {num_channels} channels")
        try:
            import av
        except ImportError as error:
            raise OpusUnavailable(f"PyAV is not installed ({error}); pip install lkstate[opus]") from error
        if "libopus" not in av.codecs_available:
            raise OpusUnavailable("this PyAV's FFmpeg has no libopus encoder")
        self._av: Any = av
        self.input_rate = sample_rate
        self.num_channels = num_channels
        self.sample_rate = sample_rate if sample_rate in OPUS_SAMPLE_RATES else 48000
        self._layout = "mono" if num_channels == 1 else "stereo"
        self._out = io.BytesIO()
        try:
            self._container: Any = av.open(
                self._out, mode="w", format="ogg", options={"page_duration": str(_OGG_PAGE_MICROSECONDS)}
            )
            stream: Any = self._container.add_stream("libopus", rate=self.sample_rate, layout=self._layout)
            stream.bit_rate = bitrate
            stream.codec_context.options = {"compression_level": str(_OPUS_COMPLEXITY)}
            self._stream = stream
            self._resampler: Any = (
                av.AudioResampler(format="s16", layout=self._layout, rate=self.sample_rate)
                if self.sample_rate != sample_rate
                else None
            )
        except Exception as error:
            raise OpusUnavailable(f"PyAV could not set up an Ogg/Opus encoder: {error}") from error
        self._pts = 0
        self._closed = False
        self._data: bytes | None = None
        lead_in = int(self.sample_rate * self.LEAD_IN_SECONDS)
        self._encode(bytes(lead_in * num_channels * _SAMPLE_WIDTH), self.sample_rate)

    @property
    def size(self) -> int:
        """Bytes of Ogg written so far (the whole stream once :meth:`finish` ran)."""
        return len(self._data) if self._data is not None else self._out.tell()

    def push(self, pcm: bytes) -> None:
        """Encode interleaved s16le PCM at the input rate (any length, whole samples)."""
        if self._closed:
            raise ValueError("the Opus stream is finished")
        if pcm:
            self._encode(pcm, self.input_rate)

    def _encode(self, pcm: bytes, rate: int) -> None:
        samples = len(pcm) // (_SAMPLE_WIDTH * self.num_channels)
        frame: Any = self._av.AudioFrame(format="s16", layout=self._layout, samples=samples)
        frame.planes[0].update(pcm)
        frame.sample_rate = rate
        if self._resampler is not None and rate != self.sample_rate:
            frames: list[Any] = list(self._resampler.resample(frame))
        else:
            frames = [frame]
        for coded in frames:
            coded.pts = self._pts
            self._pts += coded.samples
            for packet in self._stream.encode(coded):
                self._container.mux(packet)

    def finish(self) -> bytes:
        """Flush the encoder and close the stream; the Ogg/Opus file, whole. Idempotent."""
        if self._data is None:
            if self._closed:
                raise ValueError("the Opus stream was dropped; there is nothing to finish")
            self._closed = True
            if self._resampler is not None:
                for coded in self._resampler.resample(None):
                    coded.pts = self._pts
                    self._pts += coded.samples
                    for packet in self._stream.encode(coded):
                        self._container.mux(packet)
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            self._data = self._out.getvalue()
            self._out = io.BytesIO()
        return self._data

    def close(self) -> None:
        """Drop the stream without finishing it (the recording was discarded)."""
        if not self._closed:
            self._closed = True
            try:
                self._container.close()
            except Exception:
                logger.debug("closing an unfinished Opus stream failed", exc_info=True)
        self._out = io.BytesIO()


class PreConnectBuffer:
    """The recording made before the agent can listen; owned by one task.

    :meth:`append` takes a frame and says whether it kept it, which makes it
    the ``on_frame`` hook of :func:`lkstate._media.audio.pump`: a kept frame is
    *not* also sent to the track. It keeps frames while the buffer is
    recording and has room; once a frame would cross ``max_bytes`` or
    ``max_seconds`` the buffer is full for good — later frames are refused
    even if they would fit, so the recording stays one contiguous stretch from
    the first word — and :attr:`overflowed` says audio was turned away.
    :meth:`stop` ends recording; from then on every frame is refused and the
    recording is final.

    With ``limits.codec == "opus"`` each kept frame is also encoded at once
    (:class:`OpusEncoder`), so :meth:`audio` after :meth:`stop` only flushes
    the encoder's last frame. If Opus is unavailable, or the encoder fails
    mid-way, the buffer sends PCM instead (:attr:`codec` says which, the log
    why): nothing recorded is lost to a codec. The caps are on the recorded
    PCM, which the buffer keeps either way.

    All frames must share one sample rate and channel count (the first frame
    sets them); a frame that differs raises :class:`~lkstate.AudioInputError`,
    because mixed formats cannot be described by one ``sampleRate`` attribute.
    """

    def __init__(self, limits: PreConnectLimits | None = None) -> None:
        self._limits = limits if limits is not None else PreConnectLimits()
        self._pcm = bytearray()
        self._samples_per_channel = 0
        self._frames = 0
        self._sample_rate: int | None = None
        self._num_channels: int | None = None
        self._overflowed = False
        self._full = False
        self._stopped = False
        self._encoder: OpusEncoder | None = None
        self._codec: PreConnectCodec = self._limits.codec
        self._codec_note: str | None = None
        self._audio: PreConnectAudio | None = None

    @property
    def limits(self) -> PreConnectLimits:
        return self._limits

    @property
    def recording(self) -> bool:
        """True until :meth:`stop`; a full buffer still counts as recording."""
        return not self._stopped

    @property
    def overflowed(self) -> bool:
        """True once a frame was refused because the buffer was full."""
        return self._overflowed

    @property
    def sample_rate(self) -> int | None:
        return self._sample_rate

    @property
    def num_channels(self) -> int | None:
        return self._num_channels

    @property
    def num_bytes(self) -> int:
        """Bytes of recorded PCM (what the caps count)."""
        return len(self._pcm)

    @property
    def codec(self) -> PreConnectCodec:
        """How the recording will be sent: ``limits.codec``, or ``"pcm"`` once Opus proved unavailable."""
        return self._codec

    @property
    def codec_note(self) -> str | None:
        """Why the recording is sent as PCM although Opus was asked for (``None`` otherwise)."""
        return self._codec_note

    @property
    def encoded_bytes(self) -> int:
        """Bytes that would be sent for what is recorded so far (Ogg pages written, or the PCM)."""
        if self._audio is not None:
            return len(self._audio.data)
        if self._encoder is not None:
            return self._encoder.size
        return len(self._pcm)

    @property
    def num_frames(self) -> int:
        return self._frames

    @property
    def seconds(self) -> float:
        if self._sample_rate is None:
            return 0.0
        return self._samples_per_channel / self._sample_rate

    def __repr__(self) -> str:
        state = "recording" if self.recording else "stopped"
        if self._overflowed:
            state += ", overflowed"
        return (
            f"<PreConnectBuffer {state}: {self._frames} frames, {self.seconds:.2f} s, "
            f"{self.num_bytes} bytes, {self._codec}>"
        )

    def append(self, frame: rtc.AudioFrame) -> bool:
        """Keep ``frame`` if recording and it fits; return whether it was kept."""
        if self._stopped:
            return False
        self._check_format(frame.sample_rate, frame.num_channels)
        if self._full:
            return False
        samples = frame.samples_per_channel
        data = frame.data.cast("B")[: samples * frame.num_channels * _SAMPLE_WIDTH]
        too_many_bytes = len(self._pcm) + len(data) > self._limits.max_bytes
        too_long = (self._samples_per_channel + samples) > self._limits.max_seconds * frame.sample_rate
        if too_many_bytes or too_long:
            self._full = True
            self._overflowed = True
            logger.warning(
                "pre-connect buffer full after %.2f s (%d bytes); later audio goes to the live track only",
                self.seconds,
                len(self._pcm),
            )
            return False
        self._keep(bytes(data), samples, frame.sample_rate, frame.num_channels)
        self._frames += 1
        return True

    def prefill(self, pcm: bytes, sample_rate: int, num_channels: int) -> None:
        """Start the recording with ``pcm`` recorded earlier (audio an agent left without using).

        It counts towards the caps like recorded frames; what does not fit is
        dropped from its end and the buffer is full. Opus-encoding it happens
        here, at once (about 15 ms of CPU per second of audio).
        """
        if self._stopped or self._full or not pcm:
            return
        self._check_format(sample_rate, num_channels)
        frame_bytes = _SAMPLE_WIDTH * num_channels
        room = min(
            self._limits.max_bytes - len(self._pcm),
            int(self._limits.max_seconds * sample_rate - self._samples_per_channel) * frame_bytes,
        )
        room -= room % frame_bytes
        if len(pcm) > room:
            pcm = pcm[: max(0, room)]
            self._full = self._overflowed = True
        if pcm:
            self._keep(pcm, len(pcm) // frame_bytes, sample_rate, num_channels)

    def _keep(self, data: bytes, samples: int, sample_rate: int, num_channels: int) -> None:
        if self._sample_rate is None:
            self._sample_rate = sample_rate
            self._num_channels = num_channels
            if self._codec == "opus":
                self._start_encoder(sample_rate, num_channels)
        self._pcm += data
        self._samples_per_channel += samples
        if self._encoder is not None:
            try:
                self._encoder.push(data)
            except Exception as error:
                self._give_up_opus(f"the Opus encoder failed ({error})")

    def _start_encoder(self, sample_rate: int, num_channels: int) -> None:
        try:
            self._encoder = OpusEncoder(sample_rate, num_channels, bitrate=self._limits.opus_bitrate)
        except OpusUnavailable as error:
            self._give_up_opus(str(error))

    def _give_up_opus(self, why: str) -> None:
        if self._encoder is not None:
            self._encoder.close()
        self._encoder = None
        self._codec = "pcm"
        self._codec_note = why
        logger.warning("pre-connect audio will be sent as raw PCM: %s", why)

    def _check_format(self, sample_rate: int, num_channels: int) -> None:
        if self._sample_rate is None:
            return
        if sample_rate != self._sample_rate or num_channels != self._num_channels:
            raise AudioInputError(
                f"a {sample_rate} Hz / {num_channels} ch frame reached a pre-connect buffer "
                f"recording {self._sample_rate} Hz / {self._num_channels} ch.",
                remedy="Feed one buffer from one audio input; resample or remix before buffering.",
            )

    def stop(self) -> None:
        """End recording: the content is final and every later frame is refused."""
        self._stopped = True

    def data(self) -> bytes:
        """The recorded PCM: interleaved s16 little-endian, frames in order."""
        return bytes(self._pcm)

    def audio(self, sample_rate: int = 48000, num_channels: int = 1) -> PreConnectAudio:
        """The recording as it is sent; stops recording first. The same value on every call.

        ``sample_rate`` and ``num_channels`` describe an empty recording
        (nothing set the format); a recording with frames has its own.
        """
        self.stop()
        if self._audio is None:
            rate = self._sample_rate or sample_rate
            channels = self._num_channels or num_channels
            pcm = bytes(self._pcm)
            audio = PreConnectAudio.raw(pcm, rate, channels)
            if self._encoder is not None:
                try:
                    audio = PreConnectAudio(
                        self._encoder.finish(), "opus", self._encoder.sample_rate, channels, pcm, rate
                    )
                except Exception as error:
                    self._give_up_opus(f"the Opus encoder failed to finish ({error})")
            self._audio = audio
        return self._audio

    def clear(self) -> None:
        """Forget the recorded audio (after sending it, or when it is no longer wanted).

        The recording state is kept: a stopped buffer stays stopped, so a pump
        using it as its hook goes on sending frames to the track.
        """
        if self._encoder is not None:
            self._encoder.close()
        self._encoder = None
        self._audio = None
        self._codec = self._limits.codec
        self._codec_note = None
        self._pcm = bytearray()
        self._samples_per_channel = 0
        self._frames = 0
        self._sample_rate = None
        self._num_channels = None
        self._overflowed = False
        self._full = False


async def send_preconnect_audio(
    local_participant: rtc.LocalParticipant,
    *,
    agent_identity: str,
    track_sid: str,
    audio: bytes,
    sample_rate: int,
    num_channels: int,
    codec: PreConnectCodec = "pcm",
) -> None:
    """Send a pre-connect recording to one agent as the agent framework expects it.

    ``track_sid`` is the sid of the microphone publication the recording
    precedes (the agent pairs them by it). ``audio`` is raw interleaved s16
    little-endian PCM at ``sample_rate`` (``codec="pcm"``) or an Ogg/Opus
    stream the agent is to decode to ``sample_rate`` (``codec="opus"``, as
    :meth:`PreConnectBuffer.audio` makes it). An empty ``audio`` is allowed
    and useful: it tells an agent waiting for the buffer that there is none,
    so it stops waiting (it is always sent as PCM: an empty Ogg stream would
    be a decoding error).

    Raises ``ValueError`` for an empty track sid or agent identity, a
    non-positive format, PCM that is not a whole number of samples, or
    "Opus" that is not an Ogg stream — each would reach the agent as a buffer
    it silently drops or misreads.
    """
    if not track_sid.strip():
        raise ValueError(
            "send_preconnect_audio needs the microphone publication's track sid; got an empty one. "
            "Wait until the track is published (its publication has a sid) before sending."
        )
    if not agent_identity.strip():
        raise ValueError(
            "send_preconnect_audio needs the agent's identity; got an empty one. "
            "Send only once an agent participant is present."
        )
    if sample_rate <= 0 or num_channels <= 0:
        raise ValueError(f"sample_rate and num_channels must be positive, got {sample_rate} and {num_channels}")
    opus = codec == "opus" and len(audio) > 0
    if opus and not audio.startswith(b"OggS"):
        raise ValueError("Opus pre-connect audio must be an Ogg stream (it does not start with 'OggS')")
    if not opus and len(audio) % (_SAMPLE_WIDTH * num_channels):
        raise ValueError(
            f"{len(audio)} bytes is not a whole number of {num_channels}-channel s16 samples; "
            "the buffer was cut mid-sample"
        )
    attributes = {"trackId": track_sid, "sampleRate": str(sample_rate), "channels": str(num_channels)}
    writer = await local_participant.stream_bytes(
        "pre-connect-audio",
        total_size=len(audio),
        mime_type=OPUS_MIME_TYPE if opus else PCM_MIME_TYPE,
        attributes=attributes,
        destination_identities=[agent_identity],
        topic=PRECONNECT_TOPIC,
    )
    view = memoryview(audio)
    try:
        for start in range(0, len(audio), _WRITE_CHUNK):
            await writer.write(bytes(view[start : start + _WRITE_CHUNK]))
    except BaseException as e:
        try:
            await writer.aclose(reason=f"pre-connect audio not sent: {e}")
        except Exception:
            logger.debug("closing the failed pre-connect stream failed too", exc_info=True)
        raise
    await writer.aclose()
    logger.info(
        "sent %d bytes of pre-connect audio (%s) for track %s to %s",
        len(audio),
        "Ogg/Opus" if opus else "PCM",
        track_sid,
        agent_identity,
    )
