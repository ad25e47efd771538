"""End-to-end encryption in the state: one event, folded and recorded like any other.

The wire side (who can decrypt whom) is tested over the wire in
tests/integration/test_encryption_wire.py; here the pure parts: the key
handling, and that an encryption change reaches the snapshot, the problems
and a recording exactly.
"""

from __future__ import annotations

import pytest

from lkstate import EncryptionState, SessionState
from lkstate._core import events as ev
from lkstate._session.recording import decode_event, encode_event
from lkstate.lowlevel import reduce
from lkstate.tokens import Encryption
from lkstate._wire.encryption import EncryptionWatcher, as_encryption, data_streams_are_encrypted
from lkstate.errors import LkstateError
from lkstate import Limits

WRONG = EncryptionState(
    enabled=True,
    media=True,
    data=True,
    error="Cannot decrypt dave's audio and video: its encryption key is not this session's. Give both the same key.",
    failing=("dave",),
)


def test_a_key_may_be_text_or_bytes_never_empty_and_never_shown() -> None:
    assert as_encryption("secret") == Encryption(b"secret")
    assert as_encryption(b"secret") == Encryption("secret")
    assert as_encryption(None) is None
    assert "secret" not in repr(Encryption("secret"))
    with pytest.raises(ValueError, match="empty"):
        Encryption("")
    options = Encryption("secret", failure_tolerance=4).room_options()
    assert (options.key_provider_options.shared_key, options.key_provider_options.failure_tolerance) == (b"secret", 4)


def test_the_installed_sdk_encrypts_data_streams() -> None:
    assert data_streams_are_encrypted(), "livekit 1.1.21's stream info carries an encryption type"


def test_a_wrong_key_shows_in_the_connection_and_once_among_the_problems() -> None:
    state = reduce(SessionState(), ev.EncryptionChanged(at=1.0, encryption=WRONG), Limits())
    assert state.connection.encryption == WRONG
    assert [p.message for p in state.problems] == [WRONG.error]
    same = reduce(state, ev.EncryptionChanged(at=2.0, encryption=WRONG), Limits())
    assert same is state, "the same state again changes nothing"
    fixed = reduce(state, ev.EncryptionChanged(at=3.0, encryption=EncryptionState(True, True, True)), Limits())
    assert fixed.connection.encryption.error is None and len(fixed.problems) == 1


def test_an_encryption_change_survives_a_recording() -> None:
    event = ev.EncryptionChanged(at=1.5, encryption=WRONG)
    assert decode_event(encode_event(event)) == event


def _watcher(key: str | None) -> tuple[EncryptionWatcher, list[ev.Event]]:
    emitted: list[ev.Event] = []
    return EncryptionWatcher(as_encryption(key), emitted.append, lambda: 7.0), emitted


def test_encryption_turned_off_at_runtime_says_so_keeps_the_key_and_replays() -> None:
    watcher, emitted = _watcher("secret")
    watcher.set_enabled(False)
    off = EncryptionState(enabled=False, media=False, data=True, has_key=True)
    assert emitted == [ev.EncryptionChanged(at=7.0, encryption=off)]
    watcher.set_enabled(True)
    on = EncryptionState(enabled=True, media=True, data=True, has_key=True)
    assert emitted[-1] == ev.EncryptionChanged(at=7.0, encryption=on)
    state = SessionState()
    for event in emitted:
        state = reduce(state, decode_event(encode_event(event)), Limits())
    assert state.connection.encryption == on
    assert reduce(SessionState(), emitted[0], Limits()).connection.encryption == off


def test_encryption_cannot_be_toggled_without_a_key_and_the_error_says_how_to_get_one() -> None:
    watcher, emitted = _watcher(None)
    with pytest.raises(LkstateError, match="no encryption key") as raised:
        watcher.set_enabled(True)
    assert "encryption=" in raised.value.remedy
    assert emitted == []
