"""End-to-end encryption: the key a session joins with, and what the room says about it.

LiveKit encrypts each audio and video frame with a key the participants share
and the server never sees (``rtc.RoomOptions.encryption``, AES-GCM). With
livekit 1.1.21 the same option also encrypts text and byte streams — a peer
without the key receives none of our chat, and only noise from our
microphone; this was measured over the wire (tests/integration/test_encryption_wire.py),
and :func:`data_streams_are_encrypted` checks that the installed SDK's
stream information carries an encryption type before the state claims it.

What goes wrong is per participant. With a key, the SDK reports each remote
participant's decryption state (``e2ee_state_changed``): a peer whose key
differs shows as ``DECRYPTION_FAILED`` once ``failure_tolerance`` frames
failed. Without a key the SDK says nothing, but each remote publication
carries its encryption type, so a track that arrives encrypted is a missing
key. :class:`EncryptionWatcher` turns both into one
:class:`~lkstate.EncryptionState` with the trouble in words, emitted as
:class:`~lkstate._core.events.EncryptionChanged`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs
from livekit import rtc

from .._core import events as ev
from .._core.errors import LkstateError
from .._core.state import EncryptionState
from .room_listeners import RoomListeners

__all__ = ["Encryption", "EncryptionWatcher", "as_encryption", "data_streams_are_encrypted"]

logger = logging.getLogger(__name__)

DEFAULT_FAILURE_TOLERANCE = 10
"""Frames that may fail to decrypt before a participant is reported as unreadable.

The SDK's own default (-1) never reports a failure; a few are normal while
keys settle at the start, so ten frames (100 ms of audio) is where a wrong key
becomes a fact.
"""


def _key(value: bytes | str) -> bytes:
    key = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if not key:
        raise ValueError("the encryption key is empty: give every participant the same non-empty key")
    return key


@attrs.frozen
class Encryption:
    """End-to-end encryption with a key shared by everyone in the room.

    Pass it (or just the key, as ``bytes`` or ``str``) as
    ``Session(..., encryption=...)``. The agent needs the same key — with
    livekit-agents, ``await ctx.connect(encryption=rtc.E2EEOptions(
    key_provider_options=rtc.KeyProviderOptions(shared_key=key)))`` — or it
    hears noise and the session cannot hear it; the state says so in words.
    The key never appears in a repr, a log or a recording.
    """

    shared_key: bytes = attrs.field(converter=_key, repr=False)
    failure_tolerance: int = DEFAULT_FAILURE_TOLERANCE
    """Frames that may fail to decrypt before the state reports a participant's key as wrong."""

    def room_options(self) -> rtc.E2EEOptions:
        """The SDK's options for this key (``rtc.RoomOptions.encryption``)."""
        return rtc.E2EEOptions(
            key_provider_options=rtc.KeyProviderOptions(
                shared_key=self.shared_key, failure_tolerance=self.failure_tolerance
            )
        )


def as_encryption(value: Encryption | bytes | str | None) -> Encryption | None:
    """``Session``'s ``encryption`` argument as an :class:`Encryption` (or ``None``)."""
    if value is None or isinstance(value, Encryption):
        return value
    return Encryption(value)


def data_streams_are_encrypted() -> bool:
    """Whether this livekit SDK encrypts text and byte streams along with media.

    The stream information its core reports carries an encryption type from
    the version that encrypts streams (1.1.21 does); an SDK without that field sends data in the
    clear even when media is encrypted, and the state must not claim otherwise.
    """
    try:
        from livekit.rtc._proto import data_stream_pb2  # the only place the SDK shows it

        return "encryption_type" in data_stream_pb2.TextStreamInfo.DESCRIPTOR.fields_by_name
    except (ImportError, AttributeError):
        return False


_NONE = rtc.EncryptionType.NONE


def _failure_words(identity: str, code: rtc.EncryptionState.ValueType) -> str | None:
    if code == rtc.EncryptionState.DECRYPTION_FAILED:
        return (
            f"Cannot decrypt {identity}'s audio and video: its encryption key is not this session's. "
            "Give both the same key."
        )
    if code == rtc.EncryptionState.MISSING_KEY:
        return f"Cannot decrypt {identity}'s audio and video: there is no key for it yet."
    if code == rtc.EncryptionState.ENCRYPTION_FAILED:
        return "Could not encrypt your audio and video, so nobody can hear you. Check the encryption key."
    if code == rtc.EncryptionState.INTERNAL_ERROR:
        return f"End-to-end encryption failed inside LiveKit for {identity}."
    return None


class EncryptionWatcher:
    """Follows the room's encryption and reports it as :class:`~lkstate.EncryptionState`.

    ``encryption`` is the session's (``None``: no key). :meth:`attach` after
    the room is created (it reports the session's own state at once),
    :meth:`detach` when it goes. Runs on the session's loop.
    """

    def __init__(
        self, encryption: Encryption | None, emit: Callable[[ev.Event], object], clock: Callable[[], float]
    ) -> None:
        self._encryption = encryption
        self._emit = emit
        self._clock = clock
        self._listeners = RoomListeners()
        self._problems: dict[str, str] = {}
        self._on = encryption is not None
        self._room: rtc.Room | None = None
        self._state = EncryptionState()

    @property
    def state(self) -> EncryptionState:
        return self._state

    def room_options(self) -> rtc.E2EEOptions | None:
        return self._encryption.room_options() if self._encryption is not None else None

    def set_enabled(self, enabled: bool) -> None:
        """Turn encryption on or off for the room (Swift's ``setEncryptionEnabled``).

        Only a session built with a key can: without one there is nothing to
        encrypt with, which is said as an :class:`~lkstate.LkstateError` with
        the remedy. The choice outlives a restart, like the microphone's:
        before the room exists it is applied as soon as the room connects.
        """
        if self._encryption is None:
            raise LkstateError(
                "This session has no encryption key, so end-to-end encryption cannot be turned on or off.",
                remedy="Create the Session with encryption=<the room's shared key>.",
            )
        self._on = enabled
        self._apply()
        self._report()

    def _apply(self) -> None:
        room = self._room
        if room is not None and self._encryption is not None and room.isconnected():
            room.e2ee_manager.set_enabled(self._on)

    def attach(self, room: rtc.Room) -> None:
        self._room = room
        self._problems.clear()
        self._listeners.attach(
            room,
            (
                ("e2ee_state_changed", self._on_e2ee_state),
                ("track_published", self._on_track_published),
                ("participant_disconnected", self._on_participant_disconnected),
            ),
        )
        self._report()

    def connected(self, room: rtc.Room) -> None:
        """The room is connected: apply an earlier choice to turn encryption off, look at the tracks already there."""
        if not self._on:
            self._apply()
        for participant in room.remote_participants.values():
            for publication in participant.track_publications.values():
                self._on_track_published(publication, participant)

    def detach(self) -> None:
        self._room = None
        self._listeners.detach()

    def _on_e2ee_state(self, participant: rtc.Participant, code: rtc.EncryptionState.ValueType) -> None:
        identity = participant.identity
        words = _failure_words(identity, code)
        logger.info("encryption state of %s: %s", identity, rtc.EncryptionState.Name(code))
        if words is None:
            self._problems.pop(identity, None)
        else:
            self._problems[identity] = words
        self._report()

    def _on_track_published(self, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
        if self._encryption is not None or publication.encryption_type == _NONE:
            return
        self._problems[participant.identity] = (
            f"{participant.identity}'s audio and video are end-to-end encrypted and this session has no key, "
            "so it cannot hear or see them. Start the session with the room's key (encryption=…)."
        )
        self._report()

    def _on_participant_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        if self._problems.pop(participant.identity, None) is not None:
            self._report()

    def _report(self) -> None:
        has_key = self._encryption is not None
        enabled = has_key and self._on
        failing = tuple(sorted(self._problems))
        state = EncryptionState(
            enabled=enabled,
            has_key=has_key,
            media=enabled,
            # Measured over the wire with livekit 1.1.21: turning encryption off leaves
            # text and byte streams encrypted (a peer without the key logs "Failed to
            # decrypt data packet"), so with a key data stays encrypted either way.
            data=has_key and data_streams_are_encrypted(),
            error=self._problems[failing[0]] if failing else None,
            failing=failing,
        )
        if state != self._state:
            self._state = state
            self._emit(ev.EncryptionChanged(at=self._clock(), encryption=state))
