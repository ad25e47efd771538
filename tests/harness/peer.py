"""Raw ``livekit.rtc`` participants for tests: the user, a bystander, an impostor.

A :class:`Peer` is one ``rtc.Room`` connection with helpers around what a test
needs to do and see on the wire:

- join with any identity and kind (a standard user, or a participant minted
  as an agent, which the server lets publish on behalf of others);
- set attributes; send text streams with any topic, header attributes and
  trailer ("close") attributes, in one piece or as deltas; send byte streams;
- publish audio from a generator, a numpy array or a WAV file — optionally
  flagged as pre-connect buffered, the way JS/Swift clients do;
- record what arrives: text streams (fully read, trailer attributes merged),
  byte streams, attribute changes, participants joining and leaving;
- wait until a condition over those records holds.

Handlers for the recorded topics are registered before ``connect()`` so that
streams sent right after joining are not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import wave
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import attrs
import numpy as np
from livekit import api, rtc

from .server import LiveKitServer

__all__ = [
    "Peer",
    "ReceivedText",
    "ReceivedBytes",
    "AttributeChange",
    "AudioPublication",
    "wait_until",
    "sine",
    "speech_like",
    "frames_from_array",
    "read_wav",
    "PRECONNECT_TOPIC",
]

T = TypeVar("T")

PRECONNECT_TOPIC = "lk.agent.pre-connect-audio-buffer"
DEFAULT_TEXT_TOPICS = ("lk.transcription", "lk.chat")


async def wait_until(
    condition: Callable[[], T | None | Literal[False]],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that.

    Raises ``TimeoutError`` naming ``message`` (a string, or a callable for a
    description of the state at the time of failure).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {text}")
        await asyncio.sleep(interval)


@attrs.define
class ReceivedText:
    """One text stream as this peer received it."""

    topic: str
    sender: str
    stream_id: str
    header_attributes: dict[str, str]
    text: str = ""
    chunks: list[str] = attrs.field(factory=list)
    attributes: dict[str, str] = attrs.field(factory=dict)
    """Header attributes updated by trailer attributes (known once ``done``)."""
    done: bool = False
    received_at: float = 0.0
    error: str | None = None
    """Why the stream ended before its trailer, if it did."""


@attrs.define
class ReceivedBytes:
    topic: str
    sender: str
    stream_id: str
    name: str
    mime_type: str
    header_attributes: dict[str, str]
    data: bytes = b""
    attributes: dict[str, str] = attrs.field(factory=dict)
    done: bool = False
    error: str | None = None


@attrs.frozen
class AttributeChange:
    identity: str
    changed: dict[str, str]
    at: float


@attrs.define
class AudioPublication:
    """A published audio track fed by a background task."""

    publication: rtc.LocalTrackPublication
    track: rtc.LocalAudioTrack
    source: rtc.AudioSource
    task: asyncio.Task[None]
    sent: bytearray = attrs.field(factory=bytearray)
    """Every PCM byte captured into the source so far (s16le)."""
    sample_rate: int = 48000
    num_channels: int = 1

    @property
    def sid(self) -> str:
        return self.publication.sid

    async def wait_sent(self, timeout: float = 30.0) -> bytes:
        """Wait until the generator is exhausted and the source has played it out."""
        await asyncio.wait_for(asyncio.shield(self.task), timeout)
        await self.source.wait_for_playout()
        return bytes(self.sent)


# --------------------------------------------------------------------------- audio sources


def sine(
    duration: float, *, frequency: float = 440.0, sample_rate: int = 48000, amplitude: float = 0.3
) -> np.ndarray[Any, np.dtype[np.int16]]:
    """A pure tone as int16 samples."""
    t = np.arange(int(duration * sample_rate)) / sample_rate
    return (amplitude * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def speech_like(
    pattern: Sequence[tuple[float, bool]],
    *,
    frequency: float = 440.0,
    sample_rate: int = 48000,
    amplitude: float = 0.3,
) -> np.ndarray[Any, np.dtype[np.int16]]:
    """Bursts of tone and silence: ``[(0.6, True), (0.5, False)]`` is 600 ms of
    tone then 500 ms of silence. Bursts fade in and out over 10 ms (no clicks,
    which Opus would smear into the silence)."""
    parts: list[np.ndarray[Any, np.dtype[np.int16]]] = []
    for seconds, voiced in pattern:
        n = int(seconds * sample_rate)
        if voiced:
            tone = sine(seconds, frequency=frequency, sample_rate=sample_rate, amplitude=amplitude).astype(np.float64)
            ramp = min(n // 2, int(0.01 * sample_rate))
            if ramp:
                fade = np.linspace(0.0, 1.0, ramp)
                tone[:ramp] *= fade
                tone[n - ramp :] *= fade[::-1]
            parts.append(tone.astype(np.int16))
        else:
            parts.append(np.zeros(n, dtype=np.int16))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def frames_from_array(
    samples: np.ndarray[Any, np.dtype[np.int16]],
    *,
    sample_rate: int = 48000,
    num_channels: int = 1,
    frame_ms: int = 10,
) -> list[rtc.AudioFrame]:
    """Split interleaved int16 samples into ``frame_ms`` frames (last one may be short)."""
    per_frame = sample_rate * frame_ms // 1000 * num_channels
    frames: list[rtc.AudioFrame] = []
    for start in range(0, len(samples), per_frame):
        chunk = samples[start : start + per_frame]
        frames.append(
            rtc.AudioFrame(
                data=chunk.tobytes(),
                sample_rate=sample_rate,
                num_channels=num_channels,
                samples_per_channel=len(chunk) // num_channels,
            )
        )
    return frames


def read_wav(path: str | Path) -> tuple[np.ndarray[Any, np.dtype[np.int16]], int, int]:
    """(int16 samples, sample rate, channels) of a 16-bit PCM WAV file."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        data = wav.readframes(wav.getnframes())
        return np.frombuffer(data, dtype=np.int16).copy(), wav.getframerate(), wav.getnchannels()


AudioInput = (
    np.ndarray[Any, np.dtype[np.int16]]
    | str
    | Path
    | Iterable[rtc.AudioFrame]
    | AsyncIterable[rtc.AudioFrame]
)


# --------------------------------------------------------------------------- the peer


class Peer:
    """One raw participant. Create with :meth:`join`; close with :meth:`disconnect`."""

    def __init__(
        self,
        server: LiveKitServer,
        room_name: str,
        identity: str,
        *,
        text_topics: Iterable[str] = DEFAULT_TEXT_TOPICS,
        byte_topics: Iterable[str] = (),
    ) -> None:
        self.server = server
        self.room_name = room_name
        self.identity = identity
        self.room = rtc.Room()
        self.texts: list[ReceivedText] = []
        self.byte_streams: list[ReceivedBytes] = []
        self.attribute_changes: list[AttributeChange] = []
        self.joined: list[str] = []
        self.left: list[tuple[str, int]] = []
        self.publications: list[AudioPublication] = []
        self.subscribed_tracks: list[str] = []
        """Sids of our tracks that someone subscribed to (``local_track_subscribed``)."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._text_topics = tuple(text_topics)
        self._byte_topics = tuple(byte_topics)
        for topic in self._text_topics:
            self.room.register_text_stream_handler(topic, self._on_text_stream)
        for topic in self._byte_topics:
            self.room.register_byte_stream_handler(topic, self._on_byte_stream)
        self.room.on("participant_attributes_changed", self._on_attributes_changed)
        self.room.on("participant_connected", self._on_participant_connected)
        self.room.on("participant_disconnected", self._on_participant_disconnected)
        self.room.on("local_track_subscribed", self._on_local_track_subscribed)

    @classmethod
    async def join(
        cls,
        server: LiveKitServer,
        room_name: str,
        identity: str | None = None,
        *,
        kind: Literal["standard", "agent"] = "standard",
        name: str | None = None,
        attributes: Mapping[str, str] | None = None,
        metadata: str | None = None,
        room_config: api.RoomConfiguration | None = None,
        token: str | None = None,
        text_topics: Iterable[str] = DEFAULT_TEXT_TOPICS,
        byte_topics: Iterable[str] = (),
        auto_subscribe: bool = True,
        encryption: rtc.E2EEOptions | None = None,
    ) -> Peer:
        """Connect a new participant to ``room_name`` and return it.

        ``kind="agent"`` mints an agent token (kind AGENT, ``agent`` grant).
        ``token`` overrides the generated one entirely. ``encryption`` joins
        with end-to-end encryption (``rtc.RoomOptions.encryption``).
        """
        identity = identity or f"peer-{uuid.uuid4().hex[:8]}"
        peer = cls(server, room_name, identity, text_topics=text_topics, byte_topics=byte_topics)
        jwt = token or server.token(
            room_name,
            identity,
            kind=kind,
            name=name,
            attributes=attributes,
            metadata=metadata,
            room_config=room_config,
        )
        await peer.room.connect(server.url, jwt, options=rtc.RoomOptions(auto_subscribe=auto_subscribe, encryption=encryption))
        # participants already present emit no participant_connected: seed from the room
        for participant in peer.room.remote_participants.values():
            peer._on_participant_connected(participant)
        return peer

    # -- state ------------------------------------------------------------------------

    @property
    def local(self) -> rtc.LocalParticipant:
        return self.room.local_participant

    def remote(self, identity: str) -> rtc.RemoteParticipant | None:
        return self.room.remote_participants.get(identity)

    def agents(self) -> list[rtc.RemoteParticipant]:
        """Remote participants of kind AGENT that do not publish on behalf of another."""
        return [
            p
            for p in self.room.remote_participants.values()
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
            and "lk.publish_on_behalf" not in p.attributes
        ]

    def attribute_history(self, identity: str, key: str) -> list[str]:
        """Values ``key`` took on ``identity``, in order, including the value seen
        when the participant was first observed. Consecutive repeats are dropped."""
        values: list[str] = []
        for change in self.attribute_changes:
            if change.identity == identity and key in change.changed:
                value = change.changed[key]
                if not values or values[-1] != value:
                    values.append(value)
        return values

    def texts_on(self, topic: str, *, sender: str | None = None, done: bool | None = None) -> list[ReceivedText]:
        return [
            t
            for t in self.texts
            if t.topic == topic
            and (sender is None or t.sender == sender)
            and (done is None or t.done == done)
        ]

    # -- waiting ----------------------------------------------------------------------

    async def wait_for_participant(
        self, identity: str | None = None, *, kind: int | None = None, timeout: float = 10.0
    ) -> rtc.RemoteParticipant:
        def find() -> rtc.RemoteParticipant | None:
            for p in self.room.remote_participants.values():
                if (identity is None or p.identity == identity) and (kind is None or p.kind == kind):
                    return p
            return None

        return await wait_until(
            find, timeout=timeout, message=f"participant {identity or '(any)'} kind={kind} in {self.room_name}"
        )

    async def wait_for_agent(self, timeout: float = 15.0) -> rtc.RemoteParticipant:
        return await wait_until(
            lambda: next(iter(self.agents()), None),
            timeout=timeout,
            message=f"an agent to join {self.room_name}",
        )

    async def wait_for_attribute(
        self, identity: str, key: str, value: str | Callable[[str], bool], *, timeout: float = 10.0
    ) -> str:
        def check() -> str | None:
            participant = self.remote(identity)
            current = participant.attributes.get(key) if participant else None
            if current is None:
                return None
            ok = value(current) if callable(value) else current == value
            return current if ok else None

        return await wait_until(
            check,
            timeout=timeout,
            message=lambda: f"{identity}.{key} == {value!r} (history {self.attribute_history(identity, key)})",
        )

    async def wait_for_track(
        self, identity: str, *, kind: int = rtc.TrackKind.KIND_AUDIO, timeout: float = 10.0
    ) -> rtc.RemoteTrackPublication:
        """Wait until ``identity`` has published a track of ``kind``."""

        def find() -> rtc.RemoteTrackPublication | None:
            participant = self.remote(identity)
            if participant is None:
                return None
            return next((p for p in participant.track_publications.values() if p.kind == kind), None)

        return await wait_until(find, timeout=timeout, message=f"a track of kind {kind} from {identity}")

    async def wait_for_subscription(self, track_sid: str, timeout: float = 10.0) -> None:
        """Wait until another participant subscribed to our track ``track_sid``
        (what JS clients wait for before sending a pre-connect buffer)."""
        await wait_until(
            lambda: track_sid in self.subscribed_tracks,
            timeout=timeout,
            message=f"a subscriber to track {track_sid}",
        )

    async def wait_for_text(
        self,
        topic: str,
        predicate: Callable[[ReceivedText], bool] = lambda t: True,
        *,
        done: bool = True,
        timeout: float = 10.0,
    ) -> ReceivedText:
        """The first text stream on ``topic`` (finished, by default) matching ``predicate``."""
        return await wait_until(
            lambda: next((t for t in self.texts if t.topic == topic and (t.done or not done) and predicate(t)), None),
            timeout=timeout,
            message=lambda: f"a text stream on {topic!r}; got {[(t.sender, t.text, t.attributes) for t in self.texts_on(topic)]}",
        )

    # -- acting -----------------------------------------------------------------------

    async def set_attributes(self, attributes: Mapping[str, str]) -> None:
        await self.local.set_attributes(dict(attributes))

    async def send_text(
        self,
        text: str,
        *,
        topic: str = "lk.chat",
        attributes: Mapping[str, str] | None = None,
        destination_identities: Sequence[str] | None = None,
    ) -> rtc.TextStreamInfo:
        """One complete text stream (what a chat box sends)."""
        return await self.local.send_text(
            text,
            topic=topic,
            attributes=dict(attributes) if attributes else None,
            destination_identities=list(destination_identities) if destination_identities else None,
        )

    async def stream_text(
        self,
        chunks: Iterable[str],
        *,
        topic: str,
        attributes: Mapping[str, str] | None = None,
        close_attributes: Mapping[str, str] | None = None,
        destination_identities: Sequence[str] | None = None,
        sender_identity: str | None = None,
        stream_id: str | None = None,
        delay: float = 0.0,
    ) -> str:
        """A text stream written chunk by chunk, closed with trailer attributes.

        ``sender_identity`` claims another sender (the server keeps it only for
        agent participants). Returns the stream id.
        """
        writer = await self.local.stream_text(
            topic=topic,
            attributes=dict(attributes) if attributes else None,
            destination_identities=list(destination_identities) if destination_identities else None,
            sender_identity=sender_identity,
            stream_id=stream_id,
        )
        for index, chunk in enumerate(chunks):
            if index and delay:
                await asyncio.sleep(delay)
            await writer.write(chunk)
        await writer.aclose(attributes=dict(close_attributes) if close_attributes else None)
        return writer.info.stream_id

    async def send_bytes(
        self,
        data: bytes,
        *,
        topic: str,
        attributes: Mapping[str, str] | None = None,
        name: str | None = None,
        mime_type: str = "application/octet-stream",
        destination_identities: Sequence[str] | None = None,
        chunked: bool = False,
        close_attributes: Mapping[str, str] | None = None,
    ) -> None:
        """A byte stream. ``chunked=True`` writes through a stream writer (so
        trailer attributes can be attached); otherwise one ``send_bytes`` call."""
        if not chunked and not close_attributes:
            await self.local.send_bytes(
                data,
                topic=topic,
                name=name,
                mime_type=mime_type,
                attributes=dict(attributes) if attributes else None,
                destination_identities=list(destination_identities) if destination_identities else None,
            )
            return
        writer = await self.local.stream_bytes(
            name or "data",
            total_size=len(data),
            mime_type=mime_type,
            attributes=dict(attributes) if attributes else None,
            destination_identities=list(destination_identities) if destination_identities else None,
            topic=topic,
        )
        step = 15_000
        for start in range(0, len(data), step):
            await writer.write(data[start : start + step])
        await writer.aclose(attributes=dict(close_attributes) if close_attributes else None)

    async def send_preconnect_audio(
        self,
        pcm: bytes,
        *,
        agent_identity: str,
        track_sid: str,
        sample_rate: int,
        num_channels: int = 1,
    ) -> None:
        """Send a pre-connect buffer as JS/Swift clients do: raw s16le PCM to the
        agent only, with ``trackId``, ``sampleRate`` and ``channels``."""
        await self.send_bytes(
            pcm,
            topic=PRECONNECT_TOPIC,
            name="preconnect-audio",
            attributes={"trackId": track_sid, "sampleRate": str(sample_rate), "channels": str(num_channels)},
            destination_identities=[agent_identity],
            chunked=True,
        )

    async def publish_audio(
        self,
        audio: AudioInput | None = None,
        *,
        sample_rate: int = 48000,
        num_channels: int = 1,
        track_name: str = "microphone",
        preconnect_buffer: bool = False,
        source: rtc.TrackSource.ValueType = rtc.TrackSource.SOURCE_MICROPHONE,
        frame_ms: int = 10,
        start: asyncio.Event | None = None,
    ) -> AudioPublication:
        """Publish a microphone-like track and feed it from ``audio`` in real time.

        ``audio`` is int16 samples (at ``sample_rate``), a WAV path, or an
        (async) iterable of ``rtc.AudioFrame``; None publishes a silent track
        that stays quiet. Feeding waits for ``start`` when given, so a test can
        publish first and speak later. The bytes actually captured are kept in
        ``AudioPublication.sent``.
        """
        frames: Iterable[rtc.AudioFrame] | AsyncIterable[rtc.AudioFrame]
        if audio is None:
            frames = ()
        elif isinstance(audio, (str, Path)):
            samples, sample_rate, num_channels = read_wav(audio)
            frames = frames_from_array(samples, sample_rate=sample_rate, num_channels=num_channels, frame_ms=frame_ms)
        elif isinstance(audio, np.ndarray):
            frames = frames_from_array(audio, sample_rate=sample_rate, num_channels=num_channels, frame_ms=frame_ms)
        else:
            frames = audio

        audio_source = rtc.AudioSource(sample_rate, num_channels)
        track = rtc.LocalAudioTrack.create_audio_track(track_name, audio_source)
        options = rtc.TrackPublishOptions(source=source)
        if preconnect_buffer:
            options.preconnect_buffer = True
        publication = await self.local.publish_track(track, options)

        sent = bytearray()

        async def feed() -> None:
            if start is not None:
                await start.wait()
            if isinstance(frames, AsyncIterable):
                async for frame in frames:
                    sent.extend(frame.data.tobytes())
                    await audio_source.capture_frame(frame)
            else:
                for frame in frames:
                    sent.extend(frame.data.tobytes())
                    await audio_source.capture_frame(frame)

        task = asyncio.create_task(feed(), name=f"peer-audio-{self.identity}")
        handle = AudioPublication(
            publication=publication,
            track=track,
            source=audio_source,
            task=task,
            sent=sent,
            sample_rate=sample_rate,
            num_channels=num_channels,
        )
        self.publications.append(handle)
        return handle

    async def disconnect(self) -> None:
        """Leave the room and stop every background task. Safe to call twice."""
        for pub in self.publications:
            pub.task.cancel()
        for pub in self.publications:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pub.task
        if self.room.isconnected():
            await self.room.disconnect()
        for pub in self.publications:
            with contextlib.suppress(Exception):
                await pub.source.aclose()
        self.publications.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- event handlers (plain functions, as livekit.rtc requires) ----------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_text_stream(self, reader: rtc.TextStreamReader, sender: str) -> None:
        info = reader.info
        record = ReceivedText(
            topic=info.topic,
            sender=sender,
            stream_id=info.stream_id,
            header_attributes=dict(info.attributes or {}),
            attributes=dict(info.attributes or {}),
            received_at=time.monotonic(),
        )
        self.texts.append(record)

        async def read() -> None:
            try:
                async for chunk in reader:
                    record.chunks.append(chunk)
                    record.text += chunk
            except rtc.StreamError as exc:  # the sender left mid-stream, or we did
                record.error = str(exc)
                return
            record.attributes = dict(reader.info.attributes or {})
            record.done = True

        self._spawn(read())

    def _on_byte_stream(self, reader: rtc.ByteStreamReader, sender: str) -> None:
        info = reader.info
        record = ReceivedBytes(
            topic=info.topic,
            sender=sender,
            stream_id=info.stream_id,
            name=info.name,
            mime_type=info.mime_type,
            header_attributes=dict(info.attributes or {}),
            attributes=dict(info.attributes or {}),
        )
        self.byte_streams.append(record)

        async def read() -> None:
            buffer = bytearray()
            try:
                async for chunk in reader:
                    buffer.extend(chunk)
            except rtc.StreamError as exc:
                record.error = str(exc)
                return
            record.data = bytes(buffer)
            record.attributes = dict(reader.info.attributes or {})
            record.done = True

        self._spawn(read())

    def _on_attributes_changed(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        self.attribute_changes.append(AttributeChange(participant.identity, dict(changed), time.monotonic()))

    def _on_participant_connected(self, participant: rtc.RemoteParticipant) -> None:
        self.joined.append(participant.identity)
        if participant.attributes:
            self.attribute_changes.append(
                AttributeChange(participant.identity, dict(participant.attributes), time.monotonic())
            )

    def _on_local_track_subscribed(self, track: rtc.LocalTrack) -> None:
        self.subscribed_tracks.append(track.sid)

    def _on_participant_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        self.left.append((participant.identity, int(participant.disconnect_reason or 0)))
