"""Pre-connect audio: keep what the user says before the agent can hear it.

Joining a room, publishing the microphone and waiting for an agent to be
dispatched and subscribe takes a second or several. People start talking as
soon as they press the button, so the client records the microphone from the
start and, once the agent is there, sends that recording as a byte stream the
agent plays into its speech-to-text before the live track. This module holds
the two parts that do not depend on the session: the buffer and the sender.
When to stop recording and when to send is the session's business; why the
buffer and the live track must each get a frame exclusively is explained in
:mod:`lkstate._media.audio`.

The agent side (``livekit/agents/voice/room_io/_pre_connect_audio.py`` and
``_input.py`` in livekit-agents 1.8) is the judge of the format:

* topic ``lk.agent.pre-connect-audio-buffer``, one byte stream per buffer;
* attributes ``trackId`` (the sid of the microphone *publication*; the buffer
  is keyed by it and a stream without it is dropped), ``sampleRate`` and
  ``channels`` (decimal strings; a stream without them fails);
* a mime type of ``audio/opus`` or one containing ``codecs=opus`` means Opus,
  anything else is raw interleaved s16 little-endian PCM — we send
  ``application/octet-stream``;
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

import logging

from livekit import rtc

from .._core.errors import AudioInputError
from .._core.options import PreConnectLimits

__all__ = [
    "PRECONNECT_TOPIC",
    "AGENT_DEFAULT_WAIT_SECONDS",
    "AGENT_MAX_BUFFER_AGE_SECONDS",
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

_SAMPLE_WIDTH = 2
_WRITE_CHUNK = 64 * 1024


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
        return f"<PreConnectBuffer {state}: {self._frames} frames, {self.seconds:.2f} s, {self.num_bytes} bytes>"

    def append(self, frame: rtc.AudioFrame) -> bool:
        """Keep ``frame`` if recording and it fits; return whether it was kept."""
        if self._stopped:
            return False
        self._check_format(frame)
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
        if self._sample_rate is None:
            self._sample_rate = frame.sample_rate
            self._num_channels = frame.num_channels
        self._pcm += data
        self._samples_per_channel += samples
        self._frames += 1
        return True

    def _check_format(self, frame: rtc.AudioFrame) -> None:
        if self._sample_rate is None:
            return
        if frame.sample_rate != self._sample_rate or frame.num_channels != self._num_channels:
            raise AudioInputError(
                f"a {frame.sample_rate} Hz / {frame.num_channels} ch frame reached a pre-connect buffer "
                f"recording {self._sample_rate} Hz / {self._num_channels} ch.",
                remedy="Feed one buffer from one audio input; resample or remix before buffering.",
            )

    def stop(self) -> None:
        """End recording: the content is final and every later frame is refused."""
        self._stopped = True

    def data(self) -> bytes:
        """The recorded PCM: interleaved s16 little-endian, frames in order."""
        return bytes(self._pcm)

    def clear(self) -> None:
        """Forget the recorded audio (after sending it, or when it is no longer wanted).

        The recording state is kept: a stopped buffer stays stopped, so a pump
        using it as its hook goes on sending frames to the track.
        """
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
    pcm: bytes,
    sample_rate: int,
    num_channels: int,
) -> None:
    """Send a pre-connect recording to one agent as the agent framework expects it.

    ``track_sid`` is the sid of the microphone publication the recording
    precedes (the agent pairs them by it); ``pcm`` is raw interleaved s16
    little-endian audio. An empty ``pcm`` is allowed and useful: it tells an
    agent waiting for the buffer that there is none, so it stops waiting.

    Raises ``ValueError`` for an empty track sid or agent identity, a
    non-positive format, or PCM that is not a whole number of samples — each
    would reach the agent as a buffer it silently drops or misreads.
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
    if len(pcm) % (_SAMPLE_WIDTH * num_channels):
        raise ValueError(
            f"{len(pcm)} bytes is not a whole number of {num_channels}-channel s16 samples; "
            "the buffer was cut mid-sample"
        )
    attributes = {"trackId": track_sid, "sampleRate": str(sample_rate), "channels": str(num_channels)}
    writer = await local_participant.stream_bytes(
        "pre-connect-audio",
        total_size=len(pcm),
        mime_type="application/octet-stream",
        attributes=attributes,
        destination_identities=[agent_identity],
        topic=PRECONNECT_TOPIC,
    )
    view = memoryview(pcm)
    try:
        for start in range(0, len(pcm), _WRITE_CHUNK):
            await writer.write(bytes(view[start : start + _WRITE_CHUNK]))
    except BaseException as e:
        try:
            await writer.aclose(reason=f"pre-connect audio not sent: {e}")
        except Exception:
            logger.debug("closing the failed pre-connect stream failed too", exc_info=True)
        raise
    await writer.aclose()
    seconds = len(pcm) / (_SAMPLE_WIDTH * num_channels * sample_rate)
    logger.info("sent %.2f s of pre-connect audio for track %s to %s", seconds, track_sid, agent_identity)
