"""The room source: ``livekit.rtc.Room`` callbacks and streams, turned into events.

This is the only module that listens to the room — participants, tracks, the
connection, and the ``lk.transcription``, ``lk.chat`` and ``lk.agent.session``
streams. It translates what the SDK reports into :mod:`lkstate._core.events`
and hands them to ``emit``; it decides nothing about the state (who may
transcribe, which sender is the agent: the reducer decides, so a recording
replays the same decisions). A few rules from the wire shape it:

- Stream handlers are registered *before* ``connect()`` (early transcripts are
  otherwise dropped) and there is one handler per topic per room. Every room
  callback is registered through one :class:`RoomListeners`, so
  :meth:`RoomSource.aclose` leaves none behind.
- Participants already in the room at connect produce no join events, so
  :meth:`RoomSource.seed` announces them. A stream can also arrive from a
  participant not announced yet; it is announced first.
- Attributes are followed change by change. The SDK's
  ``participant_attributes_changed`` carries the values that changed, but by
  the time the callback runs ``participant.attributes`` may already hold the
  *next* change (two ``lk.agent.state`` updates a few milliseconds apart,
  thinking → speaking, are typical). So the source keeps its own copy of each
  participant's attributes, applies each change to it in order, and emits
  that: every transition the wire carried reaches the state.
- Every stream is read through one capped reading (:class:`_Reading`):
  to its end or closed, also when its content is refused, or the SDK's
  subscription leaks; never holding more than its limit.
- Transcription streams get an arrival number: a user's interim results come
  as one stream each for the same segment, and the newest must win even if an
  older stream's chunk is delivered later.
- What a hostile participant sends is capped (:class:`~lkstate.Limits`) and
  reported. Streams that declare a size over the limit are refused unread,
  floods from participants that are not agents are held to a rate, and a
  stream the SDK could not deliver (too large, not UTF-8) is reported.
- A full reconnect of our own connection makes the SDK drop every remote
  participant and add them back a moment later. Departures without a reason
  are therefore held until the reconnect settles, so the agent is not
  reported as gone (and its message as cut off) when it never left. A
  transcript whose stream the reconnect broke is reported as
  :class:`~lkstate._core.events.TranscriptCut`; the reducer completes it from
  the agent's own record of the turn when that arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from livekit import rtc

from .._core import events as ev
from .._core.copiers import maker_for
from .._core.options import Limits
from .._core.state import TrackSource, attributes_of
from .room_listeners import RoomListeners

__all__ = ["RoomSource", "TOPIC_TRANSCRIPTION", "TOPIC_CHAT", "TOPIC_AGENT_SESSION", "describe_disconnect"]

logger = logging.getLogger(__name__)

TOPIC_TRANSCRIPTION = "lk.transcription"
TOPIC_CHAT = "lk.chat"
TOPIC_AGENT_SESSION = "lk.agent.session"

ANNOUNCE_GRACE = 4.0
"""How long a stream from a participant the room has not announced yet waits for its join (s)."""

TRANSCRIPT_ORDER_GRACE = 1.0
"""How long a transcription stream's first words wait for those of the stream that arrived before it (s)."""

DEPARTURE_GRACE = 1.0
"""How long a departure without a reason waits for a full reconnect to begin (s)."""

_KIND_NAMES: dict[int, str] = {
    rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD: "standard",
    rtc.ParticipantKind.PARTICIPANT_KIND_INGRESS: "ingress",
    rtc.ParticipantKind.PARTICIPANT_KIND_EGRESS: "egress",
    rtc.ParticipantKind.PARTICIPANT_KIND_SIP: "sip",
    rtc.ParticipantKind.PARTICIPANT_KIND_AGENT: "agent",
    rtc.ParticipantKind.PARTICIPANT_KIND_CONNECTOR: "connector",
}

_SOURCES: dict[int, TrackSource] = {
    rtc.TrackSource.SOURCE_MICROPHONE: TrackSource.MICROPHONE,
    rtc.TrackSource.SOURCE_CAMERA: TrackSource.CAMERA,
    rtc.TrackSource.SOURCE_SCREENSHARE: TrackSource.SCREEN_SHARE,
    rtc.TrackSource.SOURCE_SCREENSHARE_AUDIO: TrackSource.SCREEN_SHARE_AUDIO,
}

_DISCONNECT_WORDS: dict[int, str] = {
    rtc.DisconnectReason.CLIENT_INITIATED: "You left the session.",
    rtc.DisconnectReason.DUPLICATE_IDENTITY: "Someone else joined with the same identity.",
    rtc.DisconnectReason.SERVER_SHUTDOWN: "The LiveKit server shut down.",
    rtc.DisconnectReason.PARTICIPANT_REMOVED: "You were removed from the room.",
    rtc.DisconnectReason.ROOM_DELETED: "The room was deleted.",
    rtc.DisconnectReason.STATE_MISMATCH: "The server lost track of this connection.",
    rtc.DisconnectReason.JOIN_FAILURE: "Joining the room failed.",
    rtc.DisconnectReason.MIGRATION: "The session moved to another server.",
    rtc.DisconnectReason.SIGNAL_CLOSE: "The connection to the server was lost.",
    rtc.DisconnectReason.ROOM_CLOSED: "The room was closed.",
    rtc.DisconnectReason.CONNECTION_TIMEOUT: "The connection timed out.",
    rtc.DisconnectReason.MEDIA_FAILURE: "Audio/video transport failed.",
}


def describe_disconnect(reason: int) -> str:
    """A disconnect reason from the SDK, in words."""
    return _DISCONNECT_WORDS.get(reason, "The connection to the server was lost.")


def kind_name(kind: int) -> str:
    return _KIND_NAMES.get(kind, "standard")


Emit = Callable[[ev.Event], object]

_transcript_received = maker_for(ev.TranscriptReceived)
"""Builds a transcript chunk's event, the one event made for every chunk: about twice as fast as
the frozen class's ``__init__``, and the same object."""


async def _after(previous: asyncio.Future[None] | None, grace: float) -> None:
    """Wait until ``previous`` is done, at most ``grace`` seconds (a stalled stream holds no one up)."""
    if previous is None or previous.done():
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace):
            await asyncio.shield(previous)


_ChunkOut = TypeVar("_ChunkOut", str, bytes, covariant=True)


class _StreamReader(Protocol[_ChunkOut]):
    """What ``rtc.TextStreamReader`` (of ``str``) and ``rtc.ByteStreamReader`` (of ``bytes``) share."""

    def __aiter__(self) -> AsyncIterator[_ChunkOut]: ...

    def close(self) -> None: ...


class _Reading:
    """One capped read of a stream: its chunks up to ``limit`` bytes, the rest drained unkept.

    The one way a stream is read. The reading loop iterates the SDK's reader
    itself, inside ``with _Reading(...)``, and asks :meth:`keep` about each
    chunk. (It used to be an async generator wrapping the reader: every chunk
    then went through two more generator frames on its way to the snapshot,
    which on the wire-to-snapshot path — the loop just woken by the network,
    nothing in the CPU's caches — cost more than the state update itself.)

    Going over the limit is reported once, when it happens; a stream the SDK
    broke (``rtc.StreamError`` out of the loop) is recorded in ``error``,
    ends the reading quietly and is reported after a grace, unless a
    departure or reconnect explains it. Whatever happens, including
    cancellation, leaving the ``with`` closes the reader and releases its
    sender's open-stream count.
    """

    __slots__ = ("_source", "_reader", "_sender", "_topic", "_what", "_limit", "_since", "_received", "oversized", "error")

    def __init__(
        self, source: RoomSource, reader: _StreamReader[Any], sender: str, topic: str, what: str, limit: int
    ) -> None:
        self._source = source
        self._reader = reader
        self._sender = sender
        self._topic = topic
        self._what = what
        self._limit = limit
        self._since = source._disruptions(sender)  # pyright: ignore[reportPrivateUsage]
        self._received = 0
        self.oversized = False
        """The limit cut the stream: what came after it was drained unkept."""
        self.error: rtc.StreamError | None = None
        """How the SDK broke the stream, if it did."""

    def __enter__(self) -> _Reading:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> bool:
        source = self._source
        try:
            if isinstance(error, rtc.StreamError):
                self.error = error
                source._stream_failed(self._topic, self._what, self._sender, error, self._since)  # pyright: ignore[reportPrivateUsage]
                return True
            return False
        finally:
            self._reader.close()
            source._release_stream(self._sender)  # pyright: ignore[reportPrivateUsage]

    def keep(self, chunk: str | bytes) -> bool:
        """Whether to keep ``chunk``; false once the stream went over its limit (keep draining it)."""
        if self.oversized:
            return False
        self._received += len(chunk) if isinstance(chunk, bytes) else len(chunk.encode("utf-8", "surrogatepass"))
        if self._received > self._limit:
            self.oversized = True
            self._source._problem(  # pyright: ignore[reportPrivateUsage]
                self._topic, f"{self._what} from {self._sender!r} exceeded {self._limit} bytes; the rest was dropped."
            )
            return False
        return True


class RoomSource:
    """Feeds one room's activity into ``emit`` as events."""

    def __init__(
        self,
        room: rtc.Room,
        emit: Emit,
        *,
        limits: Limits,
        is_ending: Callable[[], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._room = room
        self._emit = emit
        self._limits = limits
        self._is_ending = is_ending
        self._clock = clock
        self._listeners = RoomListeners()
        self._announced: set[str] = set()
        self._attributes: dict[str, dict[str, str]] = {}  # identity -> attributes as the changes so far made them
        self._stream_seq = itertools.count(1)
        self._open_streams: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._join_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._attached = False
        self._transcript_turn: asyncio.Future[None] | None = None  # the last admitted stream's first words
        self._session_turns: dict[str, asyncio.Future[None]] = {}  # sender -> its last session stream, emitted
        self._buckets: dict[str, tuple[float, float]] = {}  # sender -> (tokens, last refill, monotonic)
        self._held_departures: set[str] = set()
        self._reconnecting = False
        self._departures: Counter[str] = Counter()  # per identity, to tell why a stream broke
        self._reconnects = 0
        self._departure_timer: asyncio.TimerHandle | None = None

    # -- lifecycle ----------------------------------------------------------------

    def attach(self) -> None:
        """Register every callback and stream handler. Call before ``room.connect()``."""
        room = self._room
        self._listeners.attach(
            room,
            [
                ("participant_connected", self._on_participant_connected),
                ("participant_disconnected", self._on_participant_disconnected),
                ("participant_attributes_changed", self._on_attributes_changed),
                ("participant_name_changed", self._on_name_changed),
                ("track_published", self._on_track_published),
                ("track_unpublished", self._on_track_unpublished),
                ("track_subscribed", self._on_track_subscribed),
                ("track_unsubscribed", self._on_track_unsubscribed),
                ("track_muted", self._on_track_muted),
                ("track_unmuted", self._on_track_muted),
                ("reconnecting", self._on_reconnecting),
                ("reconnected", self._on_reconnected),
                ("disconnected", self._on_disconnected),
            ],
        )
        room.register_text_stream_handler(TOPIC_TRANSCRIPTION, self._on_transcription_stream)
        room.register_text_stream_handler(TOPIC_CHAT, self._on_chat_stream)
        room.register_byte_stream_handler(TOPIC_AGENT_SESSION, self._on_session_stream)
        self._attached = True

    def seed(self) -> None:
        """Announce the participants (and their tracks) already in the room at connect."""
        for participant in list(self._room.remote_participants.values()):
            self._announce(participant)

    async def aclose(self) -> None:
        """Stop listening: remove every callback and handler, cancel stream readers and wait for them."""
        self._listeners.detach()
        if self._attached:
            for unregister, topic in (
                (self._room.unregister_text_stream_handler, TOPIC_TRANSCRIPTION),
                (self._room.unregister_text_stream_handler, TOPIC_CHAT),
                (self._room.unregister_byte_stream_handler, TOPIC_AGENT_SESSION),
            ):
                with contextlib.suppress(Exception):
                    unregister(topic)
            self._attached = False
        if self._departure_timer is not None:
            self._departure_timer.cancel()
            self._departure_timer = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- participants ---------------------------------------------------------------

    def _announce(self, participant: rtc.RemoteParticipant, attributes: dict[str, str] | None = None) -> None:
        """Emit the participant's join (again) with the attributes its changes so far add up to.

        ``attributes`` starts the copy afresh (a participant that just
        connected); otherwise the copy already kept wins over
        ``participant.attributes``, which may be ahead of the changes
        delivered so far.
        """
        identity = participant.identity
        if attributes is not None:
            self._attributes[identity] = attributes
        kept = self._attributes.setdefault(identity, dict(participant.attributes))
        self._announced.add(identity)
        self._emit(
            ev.ParticipantJoined(
                at=self._clock(),
                identity=identity,
                name=participant.name,
                kind=kind_name(participant.kind),
                attributes=attributes_of(kept),
            )
        )
        for publication in list(participant.track_publications.values()):
            self._emit_track(participant, publication)

    def _ensure_announced(self, identity: str) -> None:
        if identity in self._announced:
            return
        participant = self._room.remote_participants.get(identity)
        if participant is not None:
            self._announce(participant)

    def _on_participant_connected(self, participant: rtc.RemoteParticipant) -> None:
        self._held_departures.discard(participant.identity)
        # A new participant object: its attributes are those it joined with.
        self._announce(participant, dict(participant.attributes))
        for waiter in self._join_waiters.pop(participant.identity, []):
            if not waiter.done():
                waiter.set_result(None)

    def is_known(self, identity: str) -> bool:
        """The room knows this participant (or it is the local one)."""
        return identity == self._room.local_participant.identity or identity in self._room.remote_participants

    async def wait_known(self, identity: str, timeout: float = ANNOUNCE_GRACE) -> bool:
        """Wait until the room knows ``identity``; False after ``timeout`` seconds.

        The server announces a participant that publishes no track in periodic
        batches (about every 3 s), while its data streams flow at once; a
        stream can therefore arrive before its sender's join. Deciding about
        such a stream waits for the join instead of refusing a real agent.
        """
        if self.is_known(identity):
            self._ensure_announced(identity)
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._join_waiters.setdefault(identity, []).append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            return False
        finally:
            waiters = self._join_waiters.get(identity, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._join_waiters.pop(identity, None)
        return True

    def _on_participant_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        self._announced.discard(participant.identity)
        self._attributes.pop(participant.identity, None)
        self._departures[participant.identity] += 1
        if participant.disconnect_reason is None and not self._is_ending():
            # No reason: most likely our own full reconnect, which drops everyone
            # just before it says it is reconnecting. Decide once that is clear.
            self._held_departures.add(participant.identity)
            if self._departure_timer is None:
                loop = asyncio.get_running_loop()
                self._departure_timer = loop.call_later(DEPARTURE_GRACE, self._release_departures)
            return
        self._leave(participant.identity)

    def _leave(self, identity: str) -> None:
        self._buckets.pop(identity, None)
        self._emit(ev.ParticipantLeft(at=self._clock(), identity=identity))

    def _release_departures(self) -> None:
        """Report the held departures of participants that did not come back."""
        self._departure_timer = None
        if self._reconnecting:
            return  # decided when the reconnect ends
        held, self._held_departures = self._held_departures, set()
        for identity in sorted(held):
            if identity not in self._room.remote_participants:
                self._leave(identity)

    def _on_attributes_changed(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        """Apply the change itself to our copy: ``participant.attributes`` may already be a later one."""
        if not isinstance(participant, rtc.RemoteParticipant):
            return
        identity = participant.identity
        kept = self._attributes.get(identity)
        if kept is None or identity not in self._announced:
            # Not announced yet: announce it as of this change (the keys this
            # change set are as it set them; any others are as the SDK has them).
            merged = {**participant.attributes, **changed}
            self._announce(participant, {key: value for key, value in merged.items() if value})
            return
        for key, value in changed.items():
            if value:
                kept[key] = value
            else:
                kept.pop(key, None)  # the SDK reports a removed attribute as set to ""
        self._emit(ev.ParticipantAttributesChanged(at=self._clock(), identity=identity, attributes=attributes_of(kept)))

    def _on_name_changed(self, participant: rtc.Participant, old_name: str, new_name: str) -> None:
        del old_name, new_name
        if isinstance(participant, rtc.RemoteParticipant):
            self._announce(participant)
    # -- tracks -------------------------------------------------------------------

    def _emit_track(
        self,
        participant: rtc.RemoteParticipant,
        publication: rtc.RemoteTrackPublication,
        *,
        subscribed: bool | None = None,
    ) -> None:
        """Emit the publication's current facts (``subscribed`` overrides what the SDK still shows)."""
        kind = "video" if publication.kind == rtc.TrackKind.KIND_VIDEO else "audio"
        self._emit(
            ev.RemoteTrackUpdated(
                at=self._clock(),
                identity=participant.identity,
                sid=publication.sid,
                kind=kind,
                source=_SOURCES.get(publication.source, TrackSource.UNKNOWN),
                subscribed=publication.track is not None if subscribed is None else subscribed,
                muted=publication.muted,
            )
        )

    def _on_track_published(self, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
        self._ensure_announced(participant.identity)
        self._emit_track(participant, publication)

    def _on_track_unpublished(
        self, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        self._emit(ev.RemoteTrackRemoved(at=self._clock(), identity=participant.identity, sid=publication.sid))

    def _on_track_subscribed(
        self, track: rtc.Track, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        del track
        self._ensure_announced(participant.identity)
        self._emit_track(participant, publication)

    def _on_track_unsubscribed(
        self, track: rtc.Track, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        del track
        if participant.identity in self._announced and publication.sid in participant.track_publications:
            self._emit_track(participant, publication, subscribed=False)

    def _on_track_muted(self, participant: rtc.Participant, publication: rtc.TrackPublication) -> None:
        if isinstance(participant, rtc.RemoteParticipant) and isinstance(publication, rtc.RemoteTrackPublication):
            self._emit_track(participant, publication)

    # -- connection ---------------------------------------------------------------

    def _on_reconnecting(self) -> None:
        self._reconnecting = True
        self._reconnects += 1
        self._emit(ev.RoomReconnecting(at=self._clock()))

    def _on_reconnected(self) -> None:
        self._reconnecting = False
        self._emit(ev.RoomReconnected(at=self._clock()))
        # A full reconnect re-adds participants through join events; a resume
        # keeps them. Either way, make sure everyone present is known.
        self.seed()
        self._release_departures()

    def _on_disconnected(self, reason: int) -> None:
        self._held_departures.clear()  # the disconnect removes everyone anyway
        expected = self._is_ending()
        words = "You ended the session." if expected else describe_disconnect(reason)
        self._emit(ev.RoomDisconnected(at=self._clock(), reason=words, expected=expected))

    # -- streams ------------------------------------------------------------------

    def _problem(self, source: str, message: str) -> None:
        """Tell the state what was refused or went wrong, in words."""
        self._emit(ev.ProblemObserved(at=self._clock(), source=source, message=message))

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _admit_stream(self, sender: str, topic: str, declared_size: int | None, limit: int) -> bool:
        if declared_size is not None and declared_size > limit:
            self._problem(topic, f"Refused a stream of {declared_size} bytes from {sender!r} (limit {limit}).")
            return False
        if not self._within_rate(sender):
            self._problem(
                topic,
                f"Refused streams from {sender!r}: more than "
                f"{self._limits.max_streams_per_second:g} a second.",
            )
            return False
        if self._open_streams[sender] >= self._limits.max_open_streams_per_sender:
            self._problem(
                topic,
                f"Refused a stream from {sender!r}: more than "
                f"{self._limits.max_open_streams_per_sender} open at once.",
            )
            return False
        self._open_streams[sender] += 1
        return True

    def _is_agent_kind(self, sender: str) -> bool:
        """``sender`` is ourselves or an agent-kind participant: trusted with a higher cost, not with a role."""
        participant = self._room.remote_participants.get(sender)
        return sender == self._room.local_participant.identity or (
            participant is not None and participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        )

    def _within_rate(self, sender: str) -> bool:
        """A token bucket per participant that is not an agent (agents are not limited)."""
        if self._is_agent_kind(sender):
            return True
        now = time.monotonic()
        burst = float(self._limits.stream_burst)
        tokens, last = self._buckets.get(sender, (burst, now))
        tokens = min(burst, tokens + (now - last) * self._limits.max_streams_per_second)
        if tokens < 1.0:
            self._buckets[sender] = (tokens, now)
            return False
        self._buckets[sender] = (tokens - 1.0, now)
        return True

    def _disruptions(self, sender: str) -> tuple[int, int]:
        """How often ``sender`` left and our connection was rebuilt: read before and after a stream."""
        return self._departures[sender], self._reconnects

    def _stream_failed(
        self, topic: str, what: str, sender: str, error: rtc.StreamError, since: tuple[int, int]
    ) -> None:
        """A stream broke. Report it unless its sender's departure or our reconnect or disconnect explains it."""
        logger.info("%s stream from %s ended abnormally: %s", topic, sender, error)

        def judge() -> None:
            if self._attached and self._disruptions(sender) == since and self._room.isconnected():
                self._problem(
                    topic,
                    f"{what} from {sender!r} could not be read ({error}); it was cut off there.",
                )

        # The SDK breaks a stream before it reports the departure or the reconnect
        # that explains it: judge once those have had time to arrive.
        asyncio.get_running_loop().call_later(DEPARTURE_GRACE, judge)

    def _release_stream(self, sender: str) -> None:
        self._open_streams[sender] -= 1
        if self._open_streams[sender] <= 0:
            del self._open_streams[sender]

    # transcriptions

    def _on_transcription_stream(self, reader: rtc.TextStreamReader, sender: str) -> None:
        seq = next(self._stream_seq)  # arrival order, fixed now even if the decision waits
        if self.is_known(sender):
            self._ensure_announced(sender)
            self._admit_transcription(reader, sender, seq)
        else:
            self._spawn(self._admit_when_known(reader, sender, seq), f"lkstate-transcription-{seq}-wait")

    async def _admit_when_known(self, reader: rtc.TextStreamReader, sender: str, seq: int) -> None:
        try:
            await self.wait_known(sender)
        finally:
            if not self._attached:
                reader.close()
        if self._attached:
            self._admit_transcription(reader, sender, seq)

    def _admit_transcription(self, reader: rtc.TextStreamReader, sender: str, seq: int) -> None:
        if not self._admit_stream(sender, TOPIC_TRANSCRIPTION, reader.info.size, self._limits.max_stream_bytes):
            reader.close()
            return
        # Streams are admitted in arrival order, but the SDK delivers each
        # stream's chunks on its own: the first words of the next segment can
        # overtake this one's, and the transcript would show them in the wrong
        # order. So each stream's first words wait for the previous stream's.
        # Only the agent's streams (its words and the user's, which it sends
        # from our identity) take part: nobody else can hold them up.
        if not self._is_agent_kind(sender):
            self._spawn(self._read_transcription(reader, sender, seq), f"lkstate-transcription-{seq}")
            return
        previous, turn = self._transcript_turn, asyncio.get_running_loop().create_future()
        self._transcript_turn = turn
        self._spawn(self._read_transcription(reader, sender, seq, previous, turn), f"lkstate-transcription-{seq}")

    async def _read_transcription(
        self,
        reader: rtc.TextStreamReader,
        sender: str,
        seq: int,
        previous: asyncio.Future[None] | None = None,
        turn: asyncio.Future[None] | None = None,
    ) -> None:
        info = reader.info
        attributes = info.attributes or {}
        segment_id = attributes.get("lk.segment_id") or info.stream_id
        final_in_header = attributes.get("lk.transcription_final") == "true"
        header = attributes_of(attributes)  # sent with the first words; the trailer may add to it
        reading = _Reading(self, reader, sender, TOPIC_TRANSCRIPTION, "A transcription", self._limits.max_stream_bytes)
        received_any = False
        try:
            with reading:
                async for chunk in reader:
                    if not reading.keep(chunk):
                        continue
                    if turn is not None and not turn.done():
                        await _after(previous, TRANSCRIPT_ORDER_GRACE)
                        turn.set_result(None)
                    received_any = received_any or bool(chunk)
                    self._emit(
                        _transcript_received(
                            at=self._clock(),
                            sender=sender,
                            segment_id=segment_id,
                            stream_seq=seq,
                            text=chunk,
                            final=final_in_header,
                            attributes=header,
                        )
                    )
                    header = ()  # unchanged until the close
        finally:
            if turn is not None and not turn.done():
                turn.set_result(None)
        if reading.error is None:
            final = (info.attributes or {}).get("lk.transcription_final") == "true" or final_in_header
            self._emit(
                ev.TranscriptReceived(
                    at=self._clock(),
                    sender=sender,
                    segment_id=segment_id,
                    stream_seq=seq,
                    text="",
                    final=final,
                    closed=True,
                    attributes=attributes_of(info.attributes),
                )
            )
        elif received_any and not reading.oversized and not final_in_header:
            # Broken before its trailer (our reconnect, usually): the reducer
            # completes it from the agent's own record of the turn, if that comes.
            self._emit(ev.TranscriptCut(at=self._clock(), sender=sender, segment_id=segment_id, stream_seq=seq))

    # chat

    def _on_chat_stream(self, reader: rtc.TextStreamReader, sender: str) -> None:
        self._ensure_announced(sender)
        if sender == self._room.local_participant.identity or not self._admit_stream(
            sender, TOPIC_CHAT, reader.info.size, self._limits.max_stream_bytes
        ):
            reader.close()
            return
        self._spawn(self._read_chat(reader, sender), f"lkstate-chat-{reader.info.stream_id}")

    async def _read_chat(self, reader: rtc.TextStreamReader, sender: str) -> None:
        parts: list[str] = []
        with _Reading(self, reader, sender, TOPIC_CHAT, "A chat message", self._limits.max_stream_bytes) as reading:
            async for chunk in reader:
                if reading.keep(chunk):
                    parts.append(chunk)
        if parts and await self.wait_known(sender):
            self._emit(
                ev.ChatReceived(
                    at=self._clock(),
                    sender=sender,
                    stream_id=reader.info.stream_id,
                    text="".join(parts),
                    attributes=attributes_of(reader.info.attributes),
                )
            )

    # the agent's session messages

    def _on_session_stream(self, reader: rtc.ByteStreamReader, sender: str) -> None:
        """Read an ``lk.agent.session`` message; the reducer decides whether its sender is the agent.

        Responses (a long chat history) may legitimately be large, so an
        agent-kind sender gets ``max_session_response_bytes``; anyone else,
        who cannot be the agent, costs no more than an event may hold.
        Messages of one sender are emitted in the order their streams arrived:
        the protocol's events must stay in order.
        """
        self._ensure_announced(sender)
        limits = self._limits
        limit = (
            max(limits.max_session_message_bytes, limits.max_session_response_bytes)
            if self._is_agent_kind(sender) or not self.is_known(sender)
            else limits.max_session_message_bytes
        )
        if not self._admit_stream(sender, TOPIC_AGENT_SESSION, reader.info.size, limit):
            reader.close()
            return
        previous = self._session_turns.get(sender)
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._session_turns[sender] = turn
        self._spawn(
            self._read_session(reader, sender, limit, previous, turn),
            f"lkstate-agent-session-{reader.info.stream_id}",
        )

    async def _read_session(
        self,
        reader: rtc.ByteStreamReader,
        sender: str,
        limit: int,
        previous: asyncio.Future[None] | None,
        turn: asyncio.Future[None],
    ) -> None:
        try:
            parts: list[bytes] = []
            with _Reading(self, reader, sender, TOPIC_AGENT_SESSION, "An agent-session message", limit) as reading:
                async for chunk in reader:
                    if reading.keep(chunk):
                        parts.append(chunk)
            if previous is not None and not previous.done():
                await asyncio.shield(previous)
            if reading.error is not None or reading.oversized:
                return  # reported by the reader
            if not self.is_known(sender):
                await self.wait_known(sender)  # its first events can beat its join
            self._emit(ev.AgentSessionPayload(at=self._clock(), sender=sender, payload=b"".join(parts)))
        finally:
            if not turn.done():
                turn.set_result(None)
            if self._session_turns.get(sender) is turn:
                del self._session_turns[sender]
