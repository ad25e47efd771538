"""Payloads an agent could send on ``lk.agent.session``: real ones, mutated ones, random ones.

Shared by the hypothesis tests in this directory. Three sources, from most to
least realistic:

- :data:`SEEDS`: payloads captured from the real livekit-agents ``SessionHost``
  (``fuzz/make_seeds.py`` writes them to ``fuzz/corpus/remote_payload/``);
- :func:`mutated_payloads`: those seeds with bytes flipped, inserted, deleted,
  truncated, duplicated or spliced together (protobuf merges concatenated
  messages, so a splice is a valid but surprising message);
- :func:`random_events`: ``AgentSessionEvent`` messages filled field by field
  from the schema's own descriptors — every event kind, every field, enum
  numbers the schema does not define, NaN and infinite floats, extreme
  timestamps and ids that collide on purpose.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st
from livekit.protocol.agent_pb import agent_session as pb

CORPUS = Path(__file__).resolve().parents[2] / "fuzz" / "corpus" / "remote_payload"
SEEDS: tuple[bytes, ...] = tuple(p.read_bytes() for p in sorted(CORPUS.glob("*.bin")))

# Ids drawn from a small pool collide, which is where the decoder's
# replace-in-place and tool-call matching code lives.
_IDS = st.sampled_from(["", "item_1", "item_2", "call_1", "call_1_final", "call_1_update_2", "weather_agent"])
_STRINGS = st.one_of(_IDS, st.text(max_size=16))

# Numbers a float field can carry that no measurement produces, drawn often.
_ODD_FLOATS = st.sampled_from([math.nan, -math.nan, math.inf, -math.inf, -0.0, 5e-324])

_INT_RANGES: dict[int, tuple[int, int]] = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _STRINGS
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=16)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return st.one_of(_ODD_FLOATS, st.floats(allow_nan=True, allow_infinity=True))
    if kind == FieldDescriptor.TYPE_FLOAT:
        return st.one_of(_ODD_FLOATS, st.floats(width=32, allow_nan=True, allow_infinity=True))
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 300))  # open enums keep unknown numbers
    low, high = _INT_RANGES[kind]
    return st.one_of(st.integers(low, high), st.integers(-3, 3).filter(lambda n: low <= n <= high))


@st.composite
def _fill(draw: st.DrawFn, descriptor: Descriptor, depth: int) -> Message:
    message = _new(descriptor)
    # Real oneofs get one member (now and then none: an event of no kind);
    # proto3 ``optional`` fields sit in synthetic one-member oneofs named "_<field>"
    # and are set or left unset like any other field.
    real_oneofs = [o for o in descriptor.oneofs if not (len(o.fields) == 1 and o.name.startswith("_"))]
    oneof_members = {f.name for o in real_oneofs for f in o.fields}
    chosen = {draw(st.sampled_from([*(f.name for f in o.fields), ""])) for o in real_oneofs}
    for field in descriptor.fields:
        if field.name in oneof_members and field.name not in chosen:
            continue
        if field.name not in oneof_members and not draw(st.booleans()):
            continue  # leave it unset
        _set(draw, message, field, depth)
    return message


def _new(descriptor: Descriptor) -> Message:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)()


def _set(draw: st.DrawFn, message: Message, field: FieldDescriptor, depth: int) -> None:
    target: Any = getattr(message, field.name)
    sub = field.message_type
    if sub is not None and sub.GetOptions().map_entry:
        key_field, value_field = sub.fields_by_name["key"], sub.fields_by_name["value"]
        for _ in range(draw(st.integers(0, 2))):
            key = draw(_scalar(key_field))
            if value_field.message_type is None:
                target[key] = draw(_scalar(value_field))
            elif depth > 0:
                target[key].CopyFrom(draw(_fill(value_field.message_type, depth - 1)))
        return
    if field.is_repeated:
        for _ in range(draw(st.integers(0, 3))):
            if sub is None:
                target.append(draw(_scalar(field)))
            elif depth > 0:
                target.add().CopyFrom(draw(_fill(sub, depth - 1)))
        return
    if sub is None:
        setattr(message, field.name, draw(_scalar(field)))
    elif depth > 0:
        target.CopyFrom(draw(_fill(sub, depth - 1)))
    else:
        target.SetInParent()


def random_events(depth: int = 6) -> st.SearchStrategy[pb.AgentSessionEvent]:
    """Any ``AgentSessionEvent`` the schema allows, field values anywhere in their ranges."""
    return _fill(pb.AgentSessionEvent.DESCRIPTOR, depth)  # type: ignore[return-value]


def event_payload(event: pb.AgentSessionEvent) -> bytes:
    return pb.AgentSessionMessage(event=event).SerializeToString()


def random_event_payloads() -> st.SearchStrategy[bytes]:
    return random_events().map(event_payload)


@st.composite
def mutated_payloads(draw: st.DrawFn) -> bytes:
    """A real payload, damaged in one to four ways."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "splice", "repeat", "varint"]))
        at = draw(st.integers(0, len(data)))
        if how == "flip" and data:
            i = min(at, len(data) - 1)
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif how == "set" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif how == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif how == "truncate":
            del data[at:]
        elif how == "splice":
            data += draw(st.sampled_from(SEEDS))
        elif how == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 16))]
        elif how == "varint":
            data[at:at] = b"\xff" * draw(st.integers(1, 11))
    return bytes(data)


def any_payloads() -> st.SearchStrategy[bytes]:
    """Real, mutated, random-structured or plain random payloads."""
    return st.one_of(st.sampled_from(SEEDS), mutated_payloads(), random_event_payloads(), st.binary(max_size=64))
