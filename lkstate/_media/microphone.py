"""The microphone: capture before connecting, hand the recording to the agent, then go live.

A :class:`MicrophoneController` is the session's microphone. The session drives
it at four moments — :meth:`~MicrophoneController.start_capture` before
connecting, :meth:`~MicrophoneController.attach` once the room is connected,
:meth:`~MicrophoneController.on_state` with every new snapshot, and
:meth:`~MicrophoneController.detach` / :meth:`~MicrophoneController.aclose` when
the room goes away — and it reports everything it does as events
(:class:`~lkstate._core.events.LocalTrackChanged`,
:class:`~lkstate._core.events.PreConnectChanged`), so the state always says where the
user's first words went.

When to stop recording, and when to send
----------------------------------------

Each captured frame goes to exactly one place: the pre-connect buffer while it
records, the live track afterwards (:mod:`lkstate._media.audio` explains why both
would double the speech). The agent hears ``buffer + live frames from the
moment it subscribed``. So the recording must not stop *before* the agent
subscribed — frames put on the track before that reach nobody — and the buffer
must reach the agent within its wait (3 s after it subscribed; a buffer that
arrived more than 1 s before the agent asked for it is dropped as too old).

The one signal that says "the agent now receives the track" is the server's
``TrackSubscribed`` (``local_track_subscribed``). livekit-server 1.13 sends it
once per publication, when its *first* subscriber's down track is bound and
connected. So the controller stops recording and sends when all of these hold:

* the microphone publication has a sid (never an empty ``trackId``);
* an agent proper (``state.agent.identity``: kind agent, not an avatar) is
  present and the room is connected;
* the publication's first subscription is the agent's: it came after the
  agent appeared, or — the server may report the subscription before it
  announces the subscriber: milliseconds before for an agent that publishes,
  up to 3 s for one that does not yet — it came while nobody was
  announced yet and the agent was the next participant announced. If the
  first subscriber was someone else (the server will not tell us again), the
  controller keeps recording for a short grace (:data:`DELIVERY_GRACE`) after
  the agent appeared, long enough for an auto-subscribing agent to
  subscribe, and then sends.

Recording stops and the buffer is discarded (``expired``) if that has not
happened within ``PreConnectLimits.agent_wait_timeout`` of starting to capture.

Agents that come and go
-----------------------

* *An agent leaves before the send*: nothing was sent; recording goes on, and
  the next agent gets the recording.
* *The agent leaves during the send, or is seen leaving within*
  :data:`SETTLE_WINDOW` *after it* (the server may announce a departure 3 s
  late): an agent that crashed or was removed did not get to use the audio. The
  controller keeps the sent audio, plus every frame that went to the track
  since the handover (the *tail*), and records again, so the next agent hears
  all of it. Because the server reports only the *first* subscriber of a
  publication, the microphone is then unpublished and published again: the
  next agent's subscription to the new publication is a fresh signal. If no
  agent comes within the wait timeout, the state says ``failed`` and why.
  A participant that disappears while the room is reconnecting is not
  treated as gone: a full reconnect removes and re-adds everyone.
* *Full reconnect* (``local_track_republished``: the publication gets a new
  sid): the audio is **never sent twice**. But the publication still carries
  ``TF_PRECONNECT_BUFFER``, so an agent subscribing to it would wait 3 s for a
  buffer keyed by the new sid, holding back the live audio. The controller
  sends it an **empty** buffer for the new sid instead, which the agent takes
  as "no pre-connect audio" at once. The same release goes to any agent that
  becomes the session's agent after the buffer was sent elsewhere (at once,
  even while the send settles), expired or failed — once per agent and
  publication.

The decisions live in :class:`_Handover`, which does no I/O: it takes frames,
facts and the loop time, and returns effects (report this state, send these
bytes, republish, …). :class:`MicrophoneController` performs them on a real
room. That keeps every rule above testable without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

import attrs
from livekit import rtc

from .._core import events as ev
from .audio import LIVE_BACKLOG_SECONDS, AudioInput, MicrophoneInput, WavFileInput, pump
from .push import PushAudioInput
from .._core.errors import AudioInputError, SessionClosedError
from .._core.options import PreConnectCodec, PreConnectLimits
from .preconnect import PreConnectAudio, PreConnectBuffer, send_preconnect_audio
from .._wire.room_listeners import RoomListeners
from .._core.state import (
    ConnectionStatus,
    LocalTrackState,
    PreConnectState,
    PreConnectStatus,
    SessionState,
    TrackSource,
)

__all__ = [
    "MicrophoneController",
    "MicrophoneDevice",
    "PreConnectSender",
    "DELIVERY_GRACE",
    "HANDOVER_DELAY",
    "SETTLE_WINDOW",
    "PROGRESS_INTERVAL",
    "DEPARTURE_CHECK_DELAY",
]

logger = logging.getLogger(__name__)

DELIVERY_GRACE = 0.5
"""Seconds to keep recording for an agent that appeared after the publication's first subscription."""

HANDOVER_DELAY = 0.2
"""Seconds to keep recording after the agent's subscription before handing over to the track.

The server reports the subscription when it has bound the track to the agent,
but the agent reads the track only once its own room has told it and it has
opened an audio stream; frames put on the track before that reach nobody.
Recording on for this long puts them in the buffer, which the agent plays
first. Without it, a loaded machine lost up to 130 ms of speech at the
handover (measured: 2 cores, four busy loops, the agent in the same process).
"""

SETTLE_WINDOW = 4.0
"""After a send, an agent seen leaving within this many seconds is taken not to have used the audio.

Seen, not left: livekit-server announces a participant that publishes no track
(an agent that dies before publishing its voice) only in its next 3 s batch of
participant updates, so the departure can reach us up to 3 s after it happened.
"""

PROGRESS_INTERVAL = 0.25
"""Recording progress (seconds, bytes) is reported at most this often."""

DEPARTURE_CHECK_DELAY = 0.3
"""A participant that disappeared is looked for again after this long (a full reconnect re-adds it)."""

_SAMPLE_WIDTH = 2


class PreConnectSender(Protocol):
    """Sends one pre-connect recording; :func:`~lkstate._media.preconnect.send_preconnect_audio` is one."""

    def __call__(
        self,
        local_participant: rtc.LocalParticipant,
        *,
        agent_identity: str,
        track_sid: str,
        audio: bytes,
        sample_rate: int,
        num_channels: int,
        codec: PreConnectCodec,
    ) -> Awaitable[None]: ...


# --------------------------------------------------------------------------
# The decisions, without I/O
# --------------------------------------------------------------------------


@attrs.frozen
class _Report:
    """Effect: the pre-connect section of the state is now ``state``."""

    state: PreConnectState


@attrs.frozen
class _Send:
    """Effect: send ``audio`` to ``destination`` for the publication ``track_sid``.

    The recording was encoded while it was recorded; this carries the bytes
    to send (``audio.data``) and the PCM they hold (:attr:`pcm`).
    ``release`` sends are empty buffers that only end an agent's wait; their
    outcome is not reported back.
    """

    destination: str
    track_sid: str
    audio: PreConnectAudio
    release: bool = False

    @property
    def pcm(self) -> bytes:
        """The recording this send carries, as PCM (whatever it is coded as)."""
        return self.audio.pcm

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    @property
    def num_channels(self) -> int:
        return self.audio.num_channels


@attrs.frozen
class _CancelSend:
    """Effect: abandon the send in flight (its destination left)."""


@attrs.frozen
class _Republish:
    """Effect: unpublish the microphone and publish it again, flagged for pre-connect audio."""


_Effect = _Report | _Send | _CancelSend | _Republish


class _Phase(enum.Enum):
    IDLE = "idle"
    """Not recording: pre-connect is off, or there is no input."""
    RECORDING = "recording"
    SENDING = "sending"
    SETTLING = "settling"
    """Sent; watching for a moment whether the destination leaves."""
    DONE = "done"
    """Sent, expired, failed or ended: every frame goes to the track."""


@attrs.define
class _Delivery:
    destination: str
    track_sid: str
    audio: PreConnectAudio

    @property
    def amount(self) -> tuple[int, float]:
        return len(self.audio.data), self.audio.seconds


_NOTHING = (0, 0.0)
"""No audio: (bytes, seconds)."""


def _fmt_seconds(value: float) -> str:
    return f"{value:g} s"


class _Handover:
    """Where each frame goes, and when the recording is sent. Pure: no I/O, no clock.

    Every input carries ``now``, the event loop's time; every decision comes
    out of :meth:`drain` as an effect. :meth:`next_deadline` says when
    :meth:`tick` must be called next.
    """

    def __init__(
        self,
        limits: PreConnectLimits,
        *,
        grace: float = DELIVERY_GRACE,
        handover_delay: float = HANDOVER_DELAY,
        settle: float = SETTLE_WINDOW,
        progress_interval: float = PROGRESS_INTERVAL,
    ) -> None:
        self._limits = limits
        self._grace = grace
        self._handover_delay = handover_delay
        self._settle = settle
        self._progress_interval = progress_interval
        self._outbox: list[_Effect] = []
        self._phase = _Phase.IDLE
        self._format: tuple[int, int] = (48000, 1)
        self._buffer: PreConnectBuffer | None = None
        self._tail = bytearray()
        """Frames that went to the track since the handover, kept until the send is settled."""
        self._delivery: _Delivery | None = None
        self._served: set[tuple[str, str]] = set()
        self._sid: str | None = None
        self._flagged = False
        self._subscribed: tuple[str, float, str | None] | None = None
        """(publication sid, when, who if known) of the publication's first subscription."""
        self._agent: str | None = None
        self._agent_since = 0.0
        self._connected = False
        self._wait_deadline: float | None = None
        self._grace_deadline: float | None = None
        self._handover_deadline: float | None = None
        self._settle_deadline: float | None = None
        self._departed_during_send = False
        self._suspect = False
        self._left: str | None = None
        """The agent that left with our audio, while recording again for the next one."""
        self._last_progress = float("-inf")
        self._overflow_note: str | None = None
        self._unavailable: str | None = None
        """Why nothing was recorded (the input failed first): an empty recording is then reported as none."""
        self._state = PreConnectState()

    # -- what the shell reads ----------------------------------------------------------

    @property
    def state(self) -> PreConnectState:
        """The last reported pre-connect state."""
        return self._state

    @property
    def recording(self) -> bool:
        return self._phase is _Phase.RECORDING

    @property
    def destination(self) -> str | None:
        """The agent the recording is being (or was just) sent to."""
        if self._phase in (_Phase.SENDING, _Phase.SETTLING) and self._delivery is not None:
            return self._delivery.destination
        return None

    def drain(self) -> list[_Effect]:
        effects, self._outbox = self._outbox, []
        return effects

    def next_deadline(self) -> float | None:
        deadlines: list[float] = []
        if self._phase is _Phase.RECORDING:
            deadlines += [
                d for d in (self._wait_deadline, self._grace_deadline, self._handover_deadline) if d is not None
            ]
        if self._phase is _Phase.SETTLING and not self._suspect and self._settle_deadline is not None:
            deadlines.append(self._settle_deadline)
        return min(deadlines) if deadlines else None

    # -- inputs ------------------------------------------------------------------------

    def start(
        self, *, record: bool, sample_rate: int, num_channels: int, now: float, idle_detail: str | None = None
    ) -> None:
        """Capture begins: record (pre-connect on) or pass every frame to the track."""
        self._format = (sample_rate, num_channels)
        if record:
            self._phase = _Phase.RECORDING
            self._buffer = PreConnectBuffer(self._limits)
            self._wait_deadline = now + self._limits.agent_wait_timeout
            self._last_progress = now
            self._report(PreConnectStatus.RECORDING, _NOTHING, force=True)
        else:
            self._phase = _Phase.IDLE
            self._report(PreConnectStatus.IDLE, _NOTHING, detail=idle_detail, force=True)

    def frame(self, frame: rtc.AudioFrame, now: float) -> bool:
        """Route one frame: ``True`` if the recording took it, ``False`` if it goes to the track."""
        if self._phase is _Phase.RECORDING:
            assert self._buffer is not None
            kept = self._buffer.append(frame)
            if not kept and self._buffer.overflowed and self._overflow_note is None:
                seconds = self._buffer.seconds
                self._overflow_note = (
                    f"The pre-connect buffer is full after {seconds:.1f} s; "
                    "later speech is not kept until the agent listens."
                )
                self._last_progress = now
                self._report_recording()
            elif now - self._last_progress >= self._progress_interval:
                self._last_progress = now
                self._report_recording()
            return kept
        if self._phase in (_Phase.SENDING, _Phase.SETTLING) and self._delivery is not None:
            data = frame.data.cast("B")[: frame.samples_per_channel * frame.num_channels * _SAMPLE_WIDTH]
            if len(self._delivery.audio.pcm) + len(self._tail) + len(data) <= self._limits.max_bytes:
                self._tail += data
        return False

    def input_ended(self, now: float) -> None:
        """The input gave its last frame: report what the recording holds now.

        Progress is reported at most every :data:`PROGRESS_INTERVAL`, on the
        next frame; a file or generator that ends leaves no next frame, and the
        state would show the recording a quarter second short until the send.
        """
        if self._phase is _Phase.RECORDING:
            self._last_progress = now
            self._report_recording()

    def input_failed(self, now: float) -> None:
        """The input failed (a microphone the browser could not open, a device gone).

        If nothing was recorded (yet, or in what was handed over), the state
        says there is no early speech (idle) rather than recording, or "0.0 s
        handed over": the microphone's own error says why. The empty recording is still handed
        over, so an agent waiting for a flagged track's buffer is released.
        """
        # Also after an empty hand-over: a browser's note that it could not open the microphone may come
        # after the agent was already given the (empty) recording.
        state = self._state
        if state.status is not PreConnectStatus.IDLE and state.seconds == 0 and self._recorded()[1] == 0:
            self._unavailable = "Nothing was recorded before the agent was ready: the microphone was unavailable."
            self._report(PreConnectStatus.IDLE, _NOTHING, detail=self._unavailable)

    def published(self, sid: str, *, flagged: bool, now: float) -> None:
        self._sid, self._flagged = sid, flagged
        self._evaluate(now)

    def unpublished(self, now: float) -> None:
        self._sid = None
        self._evaluate(now)

    def subscribed(self, sid: str, now: float, *, subscriber: str | None = None) -> None:
        """The server says the publication ``sid`` has its first subscriber (``subscriber``, if known)."""
        self._subscribed = (sid, now, subscriber)
        self._evaluate(now)

    def republished(self, sid: str, now: float) -> None:
        """A full reconnect gave the publication a new sid; the audio is not sent again."""
        self._sid = sid
        self._evaluate(now)

    def observe(self, agent: str | None, *, connected: bool, now: float) -> None:
        """The session's agent (an agent proper, present) and whether the room is connected."""
        if agent != self._agent:
            self._agent, self._agent_since = agent, now
        self._connected = connected
        self._evaluate(now)

    def send_finished(self, error: str | None, now: float) -> None:
        """The send of the recording ended (``error`` in words, or ``None``)."""
        if self._phase is not _Phase.SENDING or self._delivery is None:
            return
        delivery = self._delivery
        if self._departed_during_send:
            self._retry(delivery.destination, now)
        elif error is not None:
            self._finish()
            self._report(
                PreConnectStatus.FAILED,
                delivery.amount,
                destination=delivery.destination,
                detail=f"Could not send the buffered audio to {delivery.destination}: {error}",
            )
        else:
            self._phase = _Phase.SETTLING
            self._settle_deadline = now + self._settle
            self._report(
                PreConnectStatus.SENT, delivery.amount, destination=delivery.destination, detail=self._overflow_note
            )
        self._evaluate(now)

    def suspect(self, identity: str, now: float) -> None:
        """``identity`` disappeared from the room; :meth:`departed` or :meth:`cleared` follows."""
        del now
        if identity == self.destination:
            self._suspect = True

    def departed(self, identity: str, now: float) -> None:
        """``identity`` really left (the room is connected and it is not there)."""
        if identity != self.destination:
            return
        self._suspect = False
        if self._phase is _Phase.SENDING:
            self._departed_during_send = True
            self._outbox.append(_CancelSend())
        else:
            self._retry(identity, now)
            self._evaluate(now)

    def cleared(self, identity: str, now: float) -> None:
        """``identity`` is back (a reconnect re-added it): it did not leave."""
        if identity == self.destination:
            self._suspect = False
        self.tick(now)

    def tick(self, now: float) -> None:
        """Act on the deadlines that have passed."""
        if self._phase is _Phase.RECORDING and self._wait_deadline is not None and now >= self._wait_deadline:
            self._expire()
        elif self._phase is _Phase.SETTLING and not self._suspect and self._settle_deadline is not None:
            if now >= self._settle_deadline:
                self._finish()
        self._evaluate(now)

    def publish_failed(self, error: str, now: float) -> None:
        """The microphone could not be published: the recording cannot be paired with a track."""
        del now
        if self._phase is _Phase.RECORDING:
            size = self._recorded()
            self._finish()
            self._report(
                PreConnectStatus.FAILED,
                size,
                detail=f"The microphone could not be published ({error}); the buffered audio was discarded.",
            )

    def end(self, detail: str, *, failed: bool, now: float) -> None:
        """Capture stops for good (the session ended or the connection was lost)."""
        del now
        if self._phase is _Phase.RECORDING:
            size = self._recorded()
            self._finish()
            status = PreConnectStatus.FAILED if failed else PreConnectStatus.IDLE
            self._report(status, size, detail=f"{detail}; the buffered audio was discarded.")
        elif self._phase is _Phase.SENDING and self._delivery is not None:
            delivery = self._delivery
            self._outbox.append(_CancelSend())
            self._finish()
            self._report(
                PreConnectStatus.FAILED,
                delivery.amount,
                destination=delivery.destination,
                detail=f"{detail} while the buffered audio was being sent to {delivery.destination}.",
            )
        else:
            self._finish()
        self._sid = None
        self._agent = None

    # -- the rules ---------------------------------------------------------------------

    def _evaluate(self, now: float) -> None:
        agent, sid = self._agent, self._sid
        if not self._connected or agent is None or sid is None:
            self._grace_deadline = self._handover_deadline = None
            return
        if self._phase is _Phase.RECORDING:
            subscribed = self._subscribed
            if subscribed is None or subscribed[0] != sid:
                self._grace_deadline = self._handover_deadline = None  # the agent will be the first subscriber
            elif subscribed[2] == agent or (subscribed[2] is None and subscribed[1] >= self._agent_since):
                self._handover_deadline = subscribed[1] + self._handover_delay
                if now >= self._handover_deadline:
                    self._deliver(agent, sid)
            else:
                self._grace_deadline = self._agent_since + self._grace
                if now >= self._grace_deadline:
                    self._deliver(agent, sid)
        elif self._phase in (_Phase.SETTLING, _Phase.DONE) and self._flagged and (agent, sid) not in self._served:
            self._served.add((agent, sid))
            rate, channels = self._format
            self._outbox.append(_Send(agent, sid, PreConnectAudio.raw(b"", rate, channels), release=True))

    def _deliver(self, agent: str, sid: str) -> None:
        assert self._buffer is not None
        if self._buffer.sample_rate is not None and self._buffer.num_channels is not None:
            self._format = (self._buffer.sample_rate, self._buffer.num_channels)
        rate, channels = self._format
        audio = self._buffer.audio(rate, channels)  # stops recording; Opus: flushes the last frame
        self._buffer = None
        self._tail = bytearray()
        self._left = None
        self._delivery = _Delivery(agent, sid, audio)
        self._served.add((agent, sid))
        self._phase = _Phase.SENDING
        self._departed_during_send = False
        self._suspect = False
        self._wait_deadline = self._grace_deadline = self._handover_deadline = None
        self._outbox.append(_Send(agent, sid, audio))
        self._report(PreConnectStatus.SENDING, self._delivery.amount, destination=agent, detail=self._overflow_note)

    def _retry(self, left: str, now: float) -> None:
        """The destination left: keep what it was sent plus the tail, and record for the next agent."""
        assert self._delivery is not None
        kept = self._delivery.audio.pcm + bytes(self._tail)
        rate, channels = self._format
        frame_bytes = _SAMPLE_WIDTH * channels
        kept = kept[: len(kept) - len(kept) % frame_bytes]
        # The next agent hears it all from the start: the recording begins with what was kept
        # (encoded again here, in one go, if it is sent as Opus).
        self._buffer = PreConnectBuffer(self._limits)
        self._buffer.prefill(kept, rate, channels)
        self._tail = bytearray()
        self._delivery = None
        self._departed_during_send = self._suspect = False
        self._settle_deadline = None
        self._subscribed = None  # that agent's subscription is spent; the republish gives a fresh one
        self._phase = _Phase.RECORDING
        self._left = left
        self._wait_deadline = now + self._limits.agent_wait_timeout
        self._last_progress = now
        self._outbox.append(_Republish())
        self._report_recording()

    def _expire(self) -> None:
        size = self._recorded()
        left = self._left
        present = self._agent if self._connected and self._sid is not None else None
        timeout = _fmt_seconds(self._limits.agent_wait_timeout)
        self._finish()
        if left is not None:
            self._report(
                PreConnectStatus.FAILED,
                size,
                detail=(
                    f"The agent {left} left before it could use the buffered audio, and no other agent "
                    f"was ready within {timeout}; the audio was discarded."
                ),
            )
        elif present is not None:
            # An agent is here but never subscribed to the microphone: a text-only agent, or
            # one linked to another participant. "No agent" would be false.
            self._report(
                PreConnectStatus.EXPIRED,
                size,
                detail=(
                    f"The agent {present} did not listen to the microphone within {timeout}; "
                    "the buffered audio was discarded."
                ),
            )
        else:
            self._report(
                PreConnectStatus.EXPIRED,
                size,
                detail=f"No agent was ready within {timeout}; the buffered audio was discarded.",
            )

    def _finish(self) -> None:
        """Stop recording and forget every byte; frames go to the track from now on."""
        if self._buffer is not None:
            self._buffer.stop()
            self._buffer.clear()
        self._buffer = None
        self._tail = bytearray()
        self._delivery = None
        self._phase = _Phase.DONE
        self._left = None
        self._wait_deadline = self._grace_deadline = self._handover_deadline = self._settle_deadline = None
        self._departed_during_send = self._suspect = False

    # -- reporting ---------------------------------------------------------------------

    def _recorded(self) -> tuple[int, float]:
        """(bytes that would be sent, seconds) of what is recorded now."""
        if self._buffer is None:
            return _NOTHING
        return self._buffer.encoded_bytes, self._buffer.seconds

    def _report_recording(self) -> None:
        detail = self._overflow_note
        if self._left is not None:
            kept = "keeping the audio for the next agent"
            detail = f"The agent {self._left} left before it could use the buffered audio; {kept}."
        self._report(PreConnectStatus.RECORDING, self._recorded(), detail=detail)

    def _report(
        self,
        status: PreConnectStatus,
        amount: tuple[int, float],
        *,
        destination: str | None = None,
        detail: str | None = None,
        force: bool = False,
    ) -> None:
        if self._unavailable is not None and amount[1] == 0:
            status, destination, detail = PreConnectStatus.IDLE, None, self._unavailable
        state = PreConnectState(
            status=status,
            seconds=round(amount[1], 3),
            bytes=amount[0],
            destination=destination,
            detail=detail,
        )
        if force or state != self._state:
            self._state = state
            self._outbox.append(_Report(state))


# --------------------------------------------------------------------------
# The controller: the decisions above, performed on a real room
# --------------------------------------------------------------------------


def _describe_input(audio_input: AudioInput) -> str:
    if isinstance(audio_input, MicrophoneInput):
        return audio_input.device_name
    if isinstance(audio_input, WavFileInput):
        return repr(audio_input)
    return type(audio_input).__name__


@attrs.frozen
class MicrophoneDevice:
    """A system microphone chosen by index or by part of its name (``None``: the default), in a format.

    What a session keeps when the user picks a device
    (:meth:`~lkstate.Session.set_audio_input` with an ``int`` or ``str``)
    rather than an input object: a :class:`MicrophoneInput` can be read once
    and is closed at ``end()``, so each ``start()`` opens the choice anew, and
    the controller that opened it closes it.
    """

    device: int | str | None = None
    sample_rate: int = 48000
    num_channels: int = 1

    def open(self) -> MicrophoneInput:
        """The microphone itself; :class:`~lkstate.AudioInputError` with a remedy when it cannot be."""
        return MicrophoneInput(device=self.device, sample_rate=self.sample_rate, num_channels=self.num_channels)


def _open_default_microphone(choice: MicrophoneDevice | None = None) -> tuple[AudioInput | None, str | None]:
    """The chosen (default: the system default) microphone, or ``None`` and why not (in words); never raises."""
    try:
        return (choice or MicrophoneDevice()).open(), None
    except AudioInputError as error:
        return None, error.sentence()
    except Exception as error:  # a broken driver must not stop the session
        logger.warning("opening the microphone failed unexpectedly", exc_info=True)
        return None, f"No microphone found: opening it failed ({error})."


class MicrophoneController:
    """The session's microphone: pre-connect recording, the published track, mute.

    ``audio_input`` is an :class:`~lkstate._media.audio.AudioInput`, ``"default"``
    (the system microphone, if there is one) or ``None`` (no microphone).
    ``emit`` receives :class:`~lkstate._core.events.LocalTrackChanged` and
    :class:`~lkstate._core.events.PreConnectChanged` events stamped with
    ``clock()``; timers run on the event loop's clock. With ``preconnect``
    the input is recorded from :meth:`start_capture` until the agent
    listens (see the module docstring for exactly when).

    One controller serves one ``start()``…``end()`` of a session; every method
    runs on the session's event loop. Inputs the controller opened itself
    (``"default"``, a :class:`MicrophoneDevice`) are closed by :meth:`aclose`;
    an input you passed in is only stopped being read. :meth:`set_input`
    swaps the input while it runs, on the same track.

    ``on_level`` sees every frame the microphone sends or records (not while
    muted), for the level meter.

    ``sender`` (for tests) replaces :func:`~lkstate._media.preconnect.send_preconnect_audio`.
    """

    def __init__(
        self,
        *,
        audio_input: AudioInput | Literal["default"] | MicrophoneDevice | None,
        emit: Callable[[ev.Event], object],
        clock: Callable[[], float],
        preconnect: bool,
        limits: PreConnectLimits,
        track_name: str = "microphone",
        sender: PreConnectSender = send_preconnect_audio,
        on_level: Callable[[rtc.AudioFrame], object] | None = None,
    ) -> None:
        self._on_level = on_level
        self._requested_input = audio_input
        self._emit = emit
        self._clock = clock
        self._preconnect = preconnect
        self._track_name = track_name
        self._sender = sender
        self._handover = _Handover(limits)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._input: AudioInput | None = None
        self._owns_input = False
        self._source: rtc.AudioSource | None = None
        self._pump: asyncio.Task[object] | None = None
        self._room: rtc.Room | None = None
        self._track: rtc.LocalAudioTrack | None = None
        self._publication: rtc.LocalTrackPublication | None = None
        self._enabled = True
        self._track_state = LocalTrackState()
        self._input_error: str | None = None
        """Why the input stopped delivering, in words; a later publish must not hide it."""
        self._send_task: asyncio.Task[str | None] | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._suspects: dict[str, asyncio.TimerHandle | None] = {}
        self._republishing = False
        self._unattributed: tuple[str, float] | None = None
        self._applying = False
        self._started = False
        self._closed = False
        self._switching = asyncio.Lock()
        self._listeners = RoomListeners()

    # -- reading -----------------------------------------------------------------------

    @property
    def preconnect_state(self) -> PreConnectState:
        return self._handover.state

    @property
    def track_state(self) -> LocalTrackState:
        return self._track_state

    @property
    def publication(self) -> rtc.LocalTrackPublication | None:
        return self._publication

    @property
    def format(self) -> tuple[int, int] | None:
        """(sample rate, channels) of the track source, which every later input must match; ``None`` without one."""
        source = self._source
        return (source.sample_rate, source.num_channels) if source is not None else None

    # -- lifecycle ---------------------------------------------------------------------

    async def start_capture(self) -> None:
        """Open the input and start capturing; with pre-connect, record. Never raises for a missing device."""
        if self._started or self._closed:
            return
        self._started = True
        loop = self._loop = asyncio.get_running_loop()
        requested = self._requested_input
        error: str | None = None
        if isinstance(requested, str | MicrophoneDevice):  # "default", or a device the user picked
            self._input, error = _open_default_microphone(requested if isinstance(requested, MicrophoneDevice) else None)
            self._owns_input = self._input is not None
        else:
            self._input = requested
        audio_input = self._input
        if audio_input is None:
            self._set_track(LocalTrackState(enabled=False, error=error), force=True)
            detail = None
            if self._preconnect:
                detail = "There is no microphone, so nothing is recorded before the agent listens."
            self._handover.start(record=False, sample_rate=48000, num_channels=1, now=loop.time(), idle_detail=detail)
            self._apply()
            return
        self._source = rtc.AudioSource(audio_input.sample_rate, audio_input.num_channels, loop=loop)
        self._set_track(
            LocalTrackState(enabled=self._enabled, muted=not self._enabled, device=_describe_input(audio_input)),
            force=True,
        )
        self._handover.start(
            record=self._preconnect,
            sample_rate=audio_input.sample_rate,
            num_channels=audio_input.num_channels,
            now=loop.time(),
        )
        self._apply()
        self._start_pump(audio_input)

    def _start_pump(self, audio_input: AudioInput) -> None:
        loop, source = self._loop, self._source
        assert loop is not None and source is not None
        self._pump = loop.create_task(
            pump(
                audio_input,
                source,
                on_frame=self._on_frame,
                # Live inputs deliver at the world's pace: a backlog in the source would never drain.
                live_backlog=LIVE_BACKLOG_SECONDS if isinstance(audio_input, (PushAudioInput, MicrophoneInput)) else None,
            ),
            name="lkstate-microphone",
        )
        self._pump.add_done_callback(self._pump_ended)

    async def attach(self, room: rtc.Room) -> None:
        """The room is connected: listen to it and publish the microphone."""
        if self._closed or self._room is not None:
            return
        self._room = room
        self._listeners.attach(
            room,
            (
                ("local_track_subscribed", self._on_local_track_subscribed),
                ("participant_connected", self._on_participant_connected),
                ("local_track_republished", self._on_local_track_republished),
                ("local_track_unpublished", self._on_local_track_unpublished),
                ("participant_disconnected", self._on_participant_disconnected),
                ("reconnected", self._on_reconnected),
            ),
        )
        if self._source is not None:
            await self._publish(room)
        self._apply()

    def on_state(self, state: SessionState) -> None:
        """A new snapshot: maybe the agent is here now, or gone."""
        loop = self._loop
        if loop is None or self._closed:
            return
        self._handover.observe(
            state.agent.identity, connected=state.connection.status is ConnectionStatus.CONNECTED, now=loop.time()
        )
        self._apply()

    async def set_enabled(self, enabled: bool) -> None:
        """Mute or unmute the microphone.

        Muted, captured frames are dropped — neither recorded nor sent — and
        the published track is muted; the device stays open so unmuting is
        instant. Before :meth:`attach` this only sets how the track starts.
        """
        self._enabled = enabled
        track = self._track
        if track is not None:
            if enabled:
                track.unmute()
            else:
                track.mute()
        if self._input is not None:
            self._set_track(attrs.evolve(self._track_state, enabled=enabled, muted=not enabled))

    async def set_input(self, audio_input: AudioInput | None, *, owned: bool = False) -> None:
        """Feed the microphone from another input while the session runs (a device picker's choice).

        The published track stays: the new input is pumped into the *same*
        ``rtc.AudioSource``, so the track keeps its sid, the agent keeps its
        subscription and hears the new input from the next frame on, and
        nothing is unpublished or published again (which would cost the agent
        a new subscription and, on a flagged track, a pre-connect wait). For
        the same reason a recording still waiting for the agent goes on with
        the new input's frames, and the mute choice is kept.

        A source's format is fixed once it is created, so an input of another
        sample rate or channel count is refused with
        :class:`~lkstate.AudioInputError` before anything is stopped: the
        old input keeps running. The old input is closed if the controller
        opened it (``"default"``, a picked device, or an earlier ``owned``
        input), else only no longer read. ``owned`` hands ``audio_input``'s
        closing to the controller.

        With no microphone so far (``None``, or no default device), a source
        is created for the new input and published if the room is attached;
        no pre-connect recording starts then (the agent may already be
        listening). ``None`` removes the microphone: the track is unpublished
        and a recording not yet sent is discarded. A previous input's failure
        (``state.local_media.microphone.error``) is cleared once the new input
        starts.
        """
        if self._closed:
            raise SessionClosedError(
                "The microphone is closed: the session ended.", remedy="Choose the input before the next start()."
            )
        async with self._switching:
            if not self._started:  # start_capture opens it
                self._requested_input, self._owns_input = audio_input, owned
                return
            if audio_input is self._input:
                return  # already reading it (and an input such as a generator cannot be read twice)
            source = self._source
            if audio_input is not None and source is not None:
                given = (audio_input.sample_rate, audio_input.num_channels)
                if given != (source.sample_rate, source.num_channels):
                    raise AudioInputError(
                        f"{_describe_input(audio_input)} gives {given[0]} Hz / {given[1]} ch, but the microphone "
                        f"track carries {source.sample_rate} Hz / {source.num_channels} ch and cannot change "
                        "format while it is published; the current input keeps running.",
                        remedy=(
                            f"Build the input with sample_rate={source.sample_rate} and "
                            f"num_channels={source.num_channels}, or end() the session and start() it with this input."
                        ),
                    )
            old, old_owned, old_error = self._input, self._owns_input, self._input_error
            await self._stop_capture()
            if old is not None and old_owned and old is not audio_input:
                try:
                    await old.aclose()
                except Exception:
                    logger.warning("closing the previous audio input failed", exc_info=True)
            self._input, self._owns_input, self._input_error = audio_input, owned, None
            if audio_input is None:
                await self._remove_source()
                return
            device = _describe_input(audio_input)
            logger.info("the microphone now reads %s", device)
            if source is not None:
                error = self._track_state.error
                self._set_track(
                    attrs.evolve(self._track_state, device=device, error=None if error == old_error else error)
                )
                self._start_pump(audio_input)
                return
            assert self._loop is not None
            self._source = rtc.AudioSource(audio_input.sample_rate, audio_input.num_channels, loop=self._loop)
            self._set_track(LocalTrackState(enabled=self._enabled, muted=not self._enabled, device=device))
            self._start_pump(audio_input)
            room = self._room
            if room is not None:
                await self._publish(room)
            self._apply()

    async def _remove_source(self) -> None:
        """No input any more: discard a recording not yet sent, unpublish the track, release the source."""
        loop = self._loop
        assert loop is not None
        if self._handover.recording:
            self._handover.end("The microphone was removed before an agent was ready", failed=False, now=loop.time())
        room, publication = self._room, self._publication
        self._publication, self._track = None, None
        if publication is not None:
            self._handover.unpublished(loop.time())
            if room is not None:
                try:
                    await room.local_participant.unpublish_track(publication.sid)
                except Exception:
                    logger.warning("unpublishing the microphone failed", exc_info=True)
        source, self._source = self._source, None
        if source is not None:
            with contextlib.suppress(Exception):
                await source.aclose()
        self._set_track(LocalTrackState(enabled=False))
        self._apply()

    async def detach(self, *, expected: bool = True, reason: str | None = None) -> None:
        """The room is going away: stop listening to it and stop capturing.

        A recording not yet sent is discarded and the state says so:
        ``idle`` when ``expected`` (the user ended the session), ``failed``
        otherwise. ``reason`` replaces the default words ("The session ended
        before an agent was ready").
        """
        self._room = None
        self._listeners.detach()
        self._unattributed = None
        for handle in self._suspects.values():
            if handle is not None:
                handle.cancel()
        self._suspects.clear()
        await self._stop_capture()
        if self._loop is not None:
            if reason is None:
                reason = (
                    "The session ended before an agent was ready"
                    if expected
                    else "The connection was lost before an agent was ready"
                )
            self._handover.end(reason.rstrip("."), failed=not expected, now=self._loop.time())
            self._apply()
        if self._input is not None and self._track_state.published:
            self._set_track(attrs.evolve(self._track_state, published=False, track_sid=None))
        self._track = None
        self._publication = None

    async def aclose(self) -> None:
        """Stop everything: capture, sends, timers, the track source. Idempotent."""
        if self._closed:
            return
        await self.detach()
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        send_task, self._send_task = self._send_task, None
        if send_task is not None:
            send_task.cancel()
            await asyncio.gather(send_task, return_exceptions=True)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        source, self._source = self._source, None
        if source is not None:
            with contextlib.suppress(Exception):
                await source.aclose()
        if self._owns_input and self._input is not None:
            with contextlib.suppress(Exception):
                await self._input.aclose()

    # -- capture -----------------------------------------------------------------------

    def _on_frame(self, frame: rtc.AudioFrame) -> bool:
        if not self._enabled:
            return True  # muted: the frame goes nowhere
        if self._on_level is not None:
            self._on_level(frame)
        loop = self._loop
        assert loop is not None
        claimed = self._handover.frame(frame, loop.time())
        self._apply()
        return claimed

    def _pump_ended(self, task: asyncio.Task[object]) -> None:
        if task.cancelled() or task is not self._pump:
            return  # stopped, or an input already replaced: what it did no longer describes the microphone
        if self._loop is not None and not self._closed:
            self._handover.input_ended(self._loop.time())
            self._apply()
        error = task.exception()
        if error is None:
            logger.info("the audio input ended: %s", task.result())
            return
        logger.warning("the audio input failed", exc_info=error)
        if self._loop is not None and not self._closed:
            self._handover.input_failed(self._loop.time())
            self._apply()
        words = str(error) if isinstance(error, AudioInputError) else f"The audio input stopped working: {error}"
        self._input_error = words
        self._set_track(attrs.evolve(self._track_state, error=words))

    async def _stop_capture(self) -> None:
        pump_task, self._pump = self._pump, None
        if pump_task is not None and not pump_task.done():
            pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump_task

    # -- publishing --------------------------------------------------------------------

    async def _publish(self, room: rtc.Room) -> None:
        source = self._source
        assert source is not None and self._loop is not None
        flagged = self._handover.recording
        track = rtc.LocalAudioTrack.create_audio_track(self._track_name, source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, preconnect_buffer=flagged)
        self._track = track
        try:
            publication = await room.local_participant.publish_track(track, options)
        except Exception as error:
            logger.warning("publishing the microphone failed", exc_info=True)
            if self._track is track:
                self._track = None
            self._set_track(
                attrs.evolve(
                    self._track_state,
                    published=False,
                    track_sid=None,
                    error=f"Could not publish the microphone: {error}",
                )
            )
            self._handover.publish_failed(str(error), self._loop.time())
            return
        if self._track is not track or self._room is not room:
            return  # detached meanwhile
        if not self._enabled:
            track.mute()
        self._publication = publication
        self._set_track(
            attrs.evolve(
                self._track_state,
                published=True,
                muted=not self._enabled,
                track_sid=publication.sid,
                error=self._input_error,  # clears a failed publish, never an input that stopped
            )
        )
        self._handover.published(publication.sid, flagged=flagged, now=self._loop.time())

    async def _republish(self) -> None:
        """Unpublish and publish again, so the next agent's subscription is reported to us."""
        room, publication = self._room, self._publication
        if room is None or self._source is None or self._republishing:
            return
        self._republishing = True
        try:
            if publication is not None:
                self._publication = None
                self._track = None
                assert self._loop is not None
                self._handover.unpublished(self._loop.time())
                with contextlib.suppress(Exception):
                    await room.local_participant.unpublish_track(publication.sid)
                self._set_track(attrs.evolve(self._track_state, published=False, track_sid=None))
            if self._room is room:
                await self._publish(room)
        finally:
            self._republishing = False
            self._apply()

    # -- room events (plain functions, as livekit.rtc requires) -------------------------

    def _on_local_track_subscribed(self, track: rtc.Track) -> None:
        room, loop = self._room, self._loop
        if room is None or loop is None or track is not self._track:
            return
        if not room.remote_participants:
            # Nobody announced yet: the server told us of the subscription before the
            # subscriber's arrival (it happens). It is whoever is announced next.
            self._unattributed = (track.sid, loop.time())
            return
        self._handover.subscribed(track.sid, loop.time())
        self._apply()

    def _on_participant_connected(self, participant: rtc.RemoteParticipant) -> None:
        pending, self._unattributed = self._unattributed, None
        if pending is None or self._loop is None:
            return
        sid, at = pending
        is_agent = (
            participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
            and not participant.attributes.get("lk.publish_on_behalf")
        )
        self._handover.subscribed(sid, at, subscriber=participant.identity if is_agent else None)
        self._apply()

    def _on_local_track_republished(self, publication: rtc.LocalTrackPublication, previous_sid: str) -> None:
        if self._loop is None or publication is not self._publication:
            return
        logger.info("the microphone was republished after a full reconnect: %s -> %s", previous_sid, publication.sid)
        self._set_track(attrs.evolve(self._track_state, published=True, track_sid=publication.sid))
        self._handover.republished(publication.sid, self._loop.time())
        self._apply()

    def _on_local_track_unpublished(self, publication: rtc.LocalTrackPublication) -> None:
        if self._loop is None or publication is not self._publication or self._republishing:
            return
        self._publication = None
        self._set_track(attrs.evolve(self._track_state, published=False, track_sid=None))
        self._handover.unpublished(self._loop.time())
        self._apply()

    def _on_participant_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        loop = self._loop
        identity = participant.identity
        if loop is None or identity != self._handover.destination:
            return
        self._handover.suspect(identity, loop.time())
        previous = self._suspects.get(identity)
        if previous is not None:
            previous.cancel()
        self._suspects[identity] = loop.call_later(DEPARTURE_CHECK_DELAY, self._check_departure, identity)
        self._apply()

    def _on_reconnected(self) -> None:
        for identity in list(self._suspects):
            self._check_departure(identity)

    def _check_departure(self, identity: str) -> None:
        """Decide whether a vanished participant left, once no reconnect can explain it."""
        room, loop = self._room, self._loop
        if room is None or loop is None or identity not in self._suspects:
            return
        self._suspects[identity] = None
        if room.connection_state != rtc.ConnectionState.CONN_CONNECTED:
            return  # a reconnect is under way; "reconnected" checks again
        del self._suspects[identity]
        if identity in room.remote_participants:
            self._handover.cleared(identity, loop.time())
        else:
            logger.info("the agent %s left before it could use the pre-connect audio", identity)
            self._handover.departed(identity, loop.time())
        self._apply()

    # -- performing the decisions -------------------------------------------------------

    def _apply(self) -> None:
        """Carry out the handover's effects, then re-arm the timer. Re-entrant calls fold in."""
        if self._applying:
            return
        self._applying = True
        try:
            while effects := self._handover.drain():
                for effect in effects:
                    self._perform(effect)
            self._arm_timer()
        finally:
            self._applying = False

    def _perform(self, effect: _Effect) -> None:
        loop = self._loop
        assert loop is not None
        if isinstance(effect, _Report):
            self._emit(ev.PreConnectChanged(at=self._clock(), preconnect=effect.state))
        elif isinstance(effect, _Send):
            room = self._room
            if room is None:
                if not effect.release:
                    self._handover.send_finished("the room is gone", loop.time())
                return
            task = loop.create_task(self._send(room, effect), name="lkstate-preconnect-send")
            if effect.release:
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                self._send_task = task
                task.add_done_callback(self._send_done)
        elif isinstance(effect, _CancelSend):
            if self._send_task is not None:
                self._send_task.cancel()
        else:
            self._spawn(self._republish())

    def _spawn(self, coro: Awaitable[None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(_run(coro), name="lkstate-microphone-republish")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, room: rtc.Room, send: _Send) -> str | None:
        """Send, and say what went wrong in words (``None``: it went out)."""
        try:
            await self._sender(
                room.local_participant,
                agent_identity=send.destination,
                track_sid=send.track_sid,
                audio=send.audio.data,
                sample_rate=send.audio.sample_rate,
                num_channels=send.audio.num_channels,
                codec=send.audio.codec,
            )
        except Exception as failure:
            logger.warning("sending pre-connect audio to %s failed", send.destination, exc_info=True)
            return str(failure) or type(failure).__name__
        if send.release:
            logger.info("told %s there is no pre-connect audio for %s", send.destination, send.track_sid)
        return None

    def _send_done(self, task: asyncio.Task[str | None]) -> None:
        if task is self._send_task:
            self._send_task = None
        if self._closed or self._loop is None:
            return
        error = "the send was cancelled" if task.cancelled() else task.result()
        self._handover.send_finished(error, self._loop.time())
        self._apply()

    def _arm_timer(self) -> None:
        loop = self._loop
        if loop is None:
            return
        deadline = None if self._closed else self._handover.next_deadline()
        if deadline == self._timer_at and (deadline is None or self._timer is not None):
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, None
        if self._loop is None or self._closed:
            return
        self._handover.tick(self._loop.time())
        self._apply()

    def _set_track(self, track: LocalTrackState, *, force: bool = False) -> None:
        if track == self._track_state and not force:
            return
        self._track_state = track
        self._emit(ev.LocalTrackChanged(at=self._clock(), source=TrackSource.MICROPHONE, track=track))


async def _run(coro: Awaitable[None]) -> None:
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("a microphone task failed")
