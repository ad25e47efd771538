"""The reducer's fast copy of frozen state objects is indistinguishable from ``attrs.evolve``."""

from __future__ import annotations

import attrs
import pytest

from lkstate import (
    AgentState,
    ConnectionState,
    LocalMedia,
    LocalTrackState,
    Message,
    MessageKind,
    RemoteParticipant,
    Role,
    SessionState,
)
from lkstate._core.reducer import _evolve  # pyright: ignore[reportPrivateUsage]

MESSAGE = Message(
    id="m", role=Role.AGENT, kind=MessageKind.TRANSCRIPT, text="hi", final=False, sender="a",
    first_seen=1.0, updated=1.0,
)


@pytest.mark.parametrize(
    ("instance", "changes"),
    [
        (SessionState(), {"updated_at": 2.0, "requested_agent": "x"}),
        (SessionState(), {}),
        (MESSAGE, {"text": "hi there", "final": True, "error": None}),
        (ConnectionState(), {"room_name": "r", "attempt": 3}),
        (AgentState(), {"identity": "agent", "attributes": (("k", "v"),)}),
        (RemoteParticipant(identity="p", name="P", kind="agent"), {"ready_once": True}),
        (LocalMedia(), {"camera": LocalTrackState(enabled=True)}),
    ],
)
def test_a_fast_copy_equals_attrs_evolve_and_keeps_the_original(instance: object, changes: dict[str, object]) -> None:
    before = attrs.evolve(instance)
    copied = _evolve(instance, **changes)
    expected = attrs.evolve(instance, **changes)
    assert type(copied) is type(expected)
    assert copied == expected and hash(copied) == hash(expected)
    assert attrs.asdict(copied, recurse=False) == attrs.asdict(expected, recurse=False)
    assert instance == before, "the original was changed"
    assert copied is not instance


def test_a_fast_copy_stays_frozen_and_refuses_unknown_fields() -> None:
    copied = _evolve(MESSAGE, text="x")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        copied.text = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        _evolve(MESSAGE, colour="blue")


def test_classes_with_validators_are_copied_by_attrs_evolve_itself() -> None:
    @attrs.frozen(slots=True)
    class Positive:
        value: int = attrs.field(validator=attrs.validators.gt(0))

    assert _evolve(Positive(1), value=2) == Positive(2)
    with pytest.raises(ValueError):
        _evolve(Positive(1), value=-1)
