"""The room source: ``livekit.rtc.Room`` callbacks and streams, turned into events.

This is the only module that listens to the room. It translates what the SDK
reports into :mod:`lkstate._core.events` and hands them to ``emit``; it decides
nothing about the state. A few rules from the wire shape it:

- Stream handlers are registered *before* ``connect()`` (early transcripts are
  otherwise dropped) and there is one handler per topic per room.
- Participants already in the room at connect produce no join events, so
  :meth:`RoomSource.seed` announces them. A stream can also arrive from a
  participant not announced yet; it is announced first.
- Every stream reader is read to its end or closed, also when its content is
  refused, or the SDK's subscription leaks.
- Transcription streams get an arrival number: a user's interim results come
  as one stream each for the same segment, and the newest must win even if an
  older stream's chunk is delivered later.
- What a hostile participant sends is capped (:class:`~lkstate.Limits`) and
  reported; it never reaches the conversation as if the agent had said it.
  Streams that declare a size over the limit are refused unread, floods from
  participants that are not agents are held to a rate, and a stream the SDK
  could not deliver (too large, not UTF-8) is reported.
- A full reconnect of our own connection makes the SDK drop every remote
  participant and add them back a moment later. Departures without a reason
  are therefore held until the reconnect settles, so the agent is not
  reported as gone (and its message as cut off) when it never left. A
  transcript whose stream the reconnect broke is completed from the agent's
  own record of the turn when that arrives (:meth:`RoomSource.complete_cut_transcript`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from livekit import rtc

from .._core import events as ev
from .._core.options import Limits
from .._core.state import TrackSource, attributes_of

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

_MAX_CUT_TRANSCRIPTS = 8
"""Broken agent transcripts remembered for completion (the newest are kept)."""

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


Emit = Callable[[ev.Event], None]


async def _after(previous: asyncio.Future[None] | None, grace: float) -> None:
    """Wait until ``previous`` is done, at most ``grace`` seconds (a stalled stream holds no one up)."""
    if previous is None or previous.done():
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace):
            await asyncio.shield(previous)


def _listener_registrar(room: rtc.Room) -> Callable[[str, Callable[..., None]], object]:
    """``room.on``, typed: the SDK's emitter leaves callback types unknown."""
    return room.on  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType, reportReturnType]


class RoomSource:
    """Feeds one room's activity into ``emit`` as events."""

    def __init__(
        self,
        room: rtc.Room,
        emit: Emit,
        *,
        limits: Limits,
        is_ending: Callable[[], bool],
        on_session_payload: Callable[[str, rtc.ByteStreamReader], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._room = room
        self._emit = emit
        self._limits = limits
        self._is_ending = is_ending
        self._on_session_payload = on_session_payload
        self._clock = clock
        self._announced: set[str] = set()
        self._stream_seq = itertools.count(1)
        self._open_streams: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._join_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._attached = False
        self._transcript_turn: asyncio.Future[None] | None = None  # the last admitted stream's first words
        self._buckets: dict[str, tuple[float, float]] = {}  # sender -> (tokens, last refill, monotonic)
        self._held_departures: set[str] = set()
        self._reconnecting = False
        self._departures: Counter[str] = Counter()  # per identity, to tell why a stream broke
        self._reconnects = 0
        self._departure_timer: asyncio.TimerHandle | None = None
        self._cut: dict[tuple[str, str], tuple[int, str]] = {}  # (sender, segment) -> (stream seq, text so far)

    # -- lifecycle ----------------------------------------------------------------

    def attach(self) -> None:
        """Register every callback and stream handler. Call before ``room.connect()``."""
        room = self._room
        on = _listener_registrar(room)
        on("participant_connected", self._on_participant_connected)
        on("participant_disconnected", self._on_participant_disconnected)
        on("participant_attributes_changed", self._on_attributes_changed)
        on("participant_name_changed", self._on_name_changed)
        on("track_published", self._on_track_published)
        on("track_unpublished", self._on_track_unpublished)
        on("track_subscribed", self._on_track_subscribed)
        on("track_unsubscribed", self._on_track_unsubscribed)
        on("track_muted", self._on_track_muted)
        on("track_unmuted", self._on_track_muted)
        on("reconnecting", self._on_reconnecting)
        on("reconnected", self._on_reconnected)
        on("disconnected", self._on_disconnected)
        room.register_text_stream_handler(TOPIC_TRANSCRIPTION, self._on_transcription_stream)
        room.register_text_stream_handler(TOPIC_CHAT, self._on_chat_stream)
        if self._on_session_payload is not None:
            room.register_byte_stream_handler(TOPIC_AGENT_SESSION, self._on_session_stream)
        self._attached = True

    def seed(self) -> None:
        """Announce the participants (and their tracks) already in the room at connect."""
        for participant in list(self._room.remote_participants.values()):
            self._announce(participant)

    async def aclose(self) -> None:
        """Stop reading: cancel stream readers and wait for them to finish."""
        if self._attached:
            with contextlib.suppress(Exception):
                self._room.unregister_text_stream_handler(TOPIC_TRANSCRIPTION)
                self._room.unregister_text_stream_handler(TOPIC_CHAT)
                if self._on_session_payload is not None:
                    self._room.unregister_byte_stream_handler(TOPIC_AGENT_SESSION)
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

    def _announce(self, participant: rtc.RemoteParticipant) -> None:
        self._announced.add(participant.identity)
        self._emit(
            ev.ParticipantJoined(
                at=self._clock(),
                identity=participant.identity,
                name=participant.name,
                kind=kind_name(participant.kind),
                attributes=attributes_of(participant.attributes),
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
        self._announce(participant)
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
        for key in [key for key in self._cut if key[0] == identity]:
            del self._cut[key]  # gone for good: its broken transcripts stay as they are
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
        del changed
        if isinstance(participant, rtc.RemoteParticipant):
            self._ensure_announced(participant.identity)
            self._emit(
                ev.ParticipantAttributesChanged(
                    at=self._clock(),
                    identity=participant.identity,
                    attributes=attributes_of(participant.attributes),
                )
            )

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

    def _admit_stream(self, sender: str, topic: str, declared_size: int | None = None) -> bool:
        if declared_size is not None and declared_size > self._limits.max_stream_bytes:
            self._problem(
                topic,
                f"Refused a stream of {declared_size} bytes from {sender!r} "
                f"(limit {self._limits.max_stream_bytes}).",
            )
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

    def _within_rate(self, sender: str) -> bool:
        """A token bucket per participant that is not an agent (agents are not limited)."""
        participant = self._room.remote_participants.get(sender)
        if sender == self._room.local_participant.identity or (
            participant is not None and participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        ):
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

    def _may_transcribe(self, sender: str) -> bool:
        if sender == self._room.local_participant.identity:
            return True  # the agent transcribing the user, on the user's behalf
        participant = self._room.remote_participants.get(sender)
        return participant is not None and participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT

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
        if not self._may_transcribe(sender):
            reader.close()
            self._problem(
                TOPIC_TRANSCRIPTION,
                f"Ignored a transcription from {sender!r}: only the agent may send transcriptions.",
            )
            return
        if not self._admit_stream(sender, TOPIC_TRANSCRIPTION, reader.info.size):
            reader.close()
            return
        # Streams are admitted in arrival order, but the SDK delivers each
        # stream's chunks on its own: the first words of the next segment can
        # overtake this one's, and the transcript would show them in the wrong
        # order. So each stream's first words wait for the previous stream's.
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
        received = 0
        cut = False
        text: list[str] = []  # kept for completion if the stream breaks
        since = self._disruptions(sender)
        try:
            async for chunk in reader:
                if cut:
                    continue  # keep draining so the reader ends cleanly
                received += len(chunk.encode("utf-8", "surrogatepass"))
                if received > self._limits.max_stream_bytes:
                    cut = True
                    self._problem(
                        TOPIC_TRANSCRIPTION,
                        f"A transcription from {sender!r} exceeded "
                        f"{self._limits.max_stream_bytes} bytes; the rest was dropped.",
                    )
                    continue
                text.append(chunk)
                if turn is not None and not turn.done():
                    await _after(previous, TRANSCRIPT_ORDER_GRACE)
                    turn.set_result(None)
                self._emit(
                    ev.TranscriptReceived(
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
        except rtc.StreamError as error:
            self._stream_failed(TOPIC_TRANSCRIPTION, "A transcription", sender, error, since)
            if text and not cut and not final_in_header and sender != self._room.local_participant.identity:
                self._remember_cut(sender, segment_id, seq, "".join(text))
        finally:
            if turn is not None and not turn.done():
                turn.set_result(None)
            reader.close()
            self._release_stream(sender)

    def _remember_cut(self, sender: str, segment_id: str, seq: int, text: str) -> None:
        self._cut.pop((sender, segment_id), None)
        self._cut[(sender, segment_id)] = (seq, text)
        while len(self._cut) > _MAX_CUT_TRANSCRIPTS:
            del self._cut[next(iter(self._cut))]

    def complete_cut_transcript(self, sender: str, text: str) -> bool:
        """Finish a transcript of ``sender`` whose stream broke, with the full ``text``.

        The agent reports each finished utterance on ``lk.agent.session``. When
        our connection was rebuilt while it spoke, the SDK broke the stream
        carrying its words, and the rest never reaches us. If the words we
        did get begin ``text``, the rest is delivered now as the end of that
        same stream (and marked final), so the message reads as the agent said
        it, once. Returns whether a transcript was completed.
        """
        for key, (seq, received) in reversed(list(self._cut.items())):
            if key[0] != sender or not text.startswith(received):
                continue
            del self._cut[key]
            self._emit(
                ev.TranscriptReceived(
                    at=self._clock(),
                    sender=sender,
                    segment_id=key[1],
                    stream_seq=seq,
                    text=text[len(received) :],
                    final=True,
                    closed=True,
                )
            )
            return True
        return False

    def _on_chat_stream(self, reader: rtc.TextStreamReader, sender: str) -> None:
        self._ensure_announced(sender)
        if sender == self._room.local_participant.identity or not self._admit_stream(
            sender, TOPIC_CHAT, reader.info.size
        ):
            reader.close()
            return
        self._spawn(self._read_chat(reader, sender), f"lkstate-chat-{reader.info.stream_id}")

    async def _read_chat(self, reader: rtc.TextStreamReader, sender: str) -> None:
        parts: list[str] = []
        received = 0
        cut = False
        since = self._disruptions(sender)
        try:
            async for chunk in reader:
                if cut:
                    continue
                received += len(chunk.encode("utf-8", "surrogatepass"))
                if received > self._limits.max_stream_bytes:
                    cut = True
                    self._problem(
                        TOPIC_CHAT,
                        f"A chat message from {sender!r} was too long; the rest was dropped.",
                    )
                    continue
                parts.append(chunk)
        except rtc.StreamError as error:
            self._stream_failed(TOPIC_CHAT, "A chat message", sender, error, since)
        finally:
            reader.close()
            self._release_stream(sender)
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

    def _on_session_stream(self, reader: rtc.ByteStreamReader, sender: str) -> None:
        assert self._on_session_payload is not None
        self._ensure_announced(sender)
        self._on_session_payload(sender, reader)
