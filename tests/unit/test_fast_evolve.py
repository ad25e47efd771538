"""The reducer's fast copy of frozen state objects is indistinguishable from ``attrs.evolve``, and readable in a traceback."""

from __future__ import annotations

import inspect
import traceback

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
from lkstate._core.copiers import copier_for, maker_for
from lkstate._core.copiers import evolve as _evolve

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


def test_a_traceback_through_a_copier_shows_the_generated_line() -> None:
    copy = copier_for(Message)

    with pytest.raises(AttributeError) as caught:
        copy(SessionState(), text="x")  # not a Message: reading its ``id`` fails inside the copier

    shown = "".join(traceback.format_exception(caught.value))
    # Named by the class's public path (``lkstate.Message``).
    assert f'File "<lkstate copier {Message.__module__}.Message>", line 3, in copy' in shown
    assert "_set_id(_obj, _old.id if id is _KEEP else id)" in shown


def test_the_copiers_source_can_be_read_like_any_functions() -> None:
    source = inspect.getsource(copier_for(SessionState))

    assert source.startswith("def copy(_old, *, ")
    assert "_set_messages(_obj, _old.messages if messages is _KEEP else messages)" in source


def test_two_classes_of_one_name_each_show_their_own_copier() -> None:
    def make(field: str) -> type:
        return attrs.make_class("Twin", {field: attrs.field()}, frozen=True, slots=True)

    first, second = copier_for(make("left")), copier_for(make("right"))

    assert "_old.left" in inspect.getsource(first) and "_old.right" not in inspect.getsource(first)
    assert "_old.right" in inspect.getsource(second)
    assert first.__code__.co_filename != second.__code__.co_filename


@pytest.mark.parametrize(
    ("cls", "fields"),
    [
        (Message, {"id": "m", "role": Role.AGENT, "kind": MessageKind.TRANSCRIPT, "text": "hi", "final": False,
                   "sender": "a", "first_seen": 1.0, "updated": 1.0}),
        (Message, {"id": "c", "role": Role.USER, "kind": MessageKind.CHAT, "text": "yo", "final": True, "sender": "u",
                   "first_seen": 2.0, "updated": 3.0, "error": "Cut.", "segment_id": "S", "stream_seq": 4,
                   "attributes": (("k", "v"),)}),
        (SessionState, {}),
        (SessionState, {"updated_at": 5.0, "requested_agent": "bob"}),
    ],
)
def test_a_fast_maker_builds_what_the_class_itself_builds(cls: type, fields: dict[str, object]) -> None:
    made = maker_for(cls)(**fields)
    expected = cls(**fields)

    assert type(made) is cls
    assert made == expected and hash(made) == hash(expected)
    assert attrs.asdict(made, recurse=False) == attrs.asdict(expected, recurse=False)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.updated_at = 1.0  # type: ignore[attr-defined]


def test_a_fast_maker_calls_each_factory_per_object_and_insists_on_required_fields() -> None:
    make = maker_for(SessionState)

    first, second = make(), make()
    assert first.messages == second.messages == ()
    assert first.messages is not second.messages  # a fresh Messages each, as SessionState() gives
    with pytest.raises(TypeError):
        maker_for(Message)(id="m")  # role, kind, text… are required, as for Message(...)


def test_classes_with_validators_are_made_by_the_class_itself() -> None:
    @attrs.frozen(slots=True)
    class Positive:
        value: int = attrs.field(validator=attrs.validators.gt(0))

    assert maker_for(Positive) is Positive
    with pytest.raises(ValueError):
        maker_for(Positive)(value=-1)
