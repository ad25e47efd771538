"""The conversation as data: saved, restored, and completed from the agent's own record.

Three roads lead into ``state.messages``, and :class:`~lkstate.MessageOrigin`
on each message says which one it took:

* **live** — what this session heard: transcripts and chat as they arrived.
* **restored** — what the app gave back from an earlier session. Swift and
  Flutter call it ``getMessageHistory`` / ``restoreMessageHistory``; here it is
  :meth:`Session.message_history() <lkstate.Session.message_history>`, which
  returns a :class:`MessageHistory`, and ``Session(history=...)`` or
  :meth:`~lkstate.Session.restore_message_history`. A history is plain,
  versioned JSON, so an app can keep it anywhere and a later lkstate still
  reads it. Restoring is all or nothing: :meth:`MessageHistory.from_json`
  checks everything first and raises :class:`~lkstate.errors.HistoryError`,
  in words, before a single message reaches the state.
* **agent history** — what the agent said (or heard) before the user joined.
  A greeting spoken to an empty room, a handoff, an earlier visit: no
  transcript of those ever reached this session, but the agent's
  ``AgentSession`` keeps them, and its session host answers a
  ``get_chat_history`` request on ``lk.agent.session`` with all of it.

Why merging needs a rule, and which one
----------------------------------------

The agent's history holds the *whole* conversation: what was said before we
joined, and again everything we already have as transcripts. There is no key
shared by the two: livekit-agents 1.8.9 names a transcript's segment
``SG_<random>`` (``voice/room_io/_output.py``, ``_reset_state``) and a chat
item ``item_<random>`` (``llm/chat_context.py``, ``ChatMessage.id``), and puts
neither id on the other (the item's ``extra`` is empty for speech; the stream
attributes carry only the segment id). So the merge matches by text, from the
end: :func:`pre_join_items` walks the history backwards and pairs each
utterance with the newest live message of the same role that says the same
thing (compared as the timeline compares them: markup out, case folded, only
words; a user turn may be several final transcripts in a row; a cut-off turn
may be cut a word apart on the two roads). What precedes the oldest item that
found its transcript was said before we joined; only that part becomes
messages, placed before the live ones, once (a later fetch finds them by id).
Items after a matched one that have no transcript (``run_input``, speech while
transcription was off) are not messages; the timeline shows them as the
agent's rows of its own.

Walking from the end is what makes the edge right: a greeting said before the
join and said again after it is two utterances and two messages — the newer
item pairs with the live transcript, the older one has nothing left to pair
with. Matching from the start would have paired the old greeting with the new
transcript and dropped one of the two.

Everything here is pure: the reducer calls it with what the events carry.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, cast

import attrs

from .errors import HistoryError
from .messages import AgentExpression, DeliveryStatus, Message, MessageKind, MessageOrigin, Role
from .remote_state import ConversationItem, MessageItem
from .timeline import normalize_text

__all__ = [
    "HISTORY_FORMAT",
    "HISTORY_VERSION",
    "LOOKBACK",
    "MessageHistory",
    "agent_history_message",
    "history_message_id",
    "pre_join_items",
]

HISTORY_FORMAT = "lkstate-message-history"
"""The value of ``"format"`` in a saved history."""

HISTORY_VERSION = 1
"""The history format version this lkstate writes. It reads this one and every older one."""

LOOKBACK = 32
"""How many of a role's live messages, back from the last one paired, an item is compared with."""

_REMEDY_DAMAGED = "Restore a history written by MessageHistory.to_json(), unchanged."

# Older versions are read by migrating them one step at a time to the current
# one: version n is turned into version n + 1 by _MIGRATIONS[n]. There is only
# version 1 so far; the next change of meaning adds its step here.
_MIGRATIONS: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


# --- the saved form -----------------------------------------------------------------------


_FLOAT_FIELDS = ("first_seen", "updated")
_OPTIONAL_STR_FIELDS = ("error", "segment_id")
_KNOWN_FIELDS = frozenset(
    {
        "id",
        "role",
        "kind",
        "text",
        "final",
        "sender",
        "first_seen",
        "updated",
        "delivery",
        "error",
        "interrupted",
        "segment_id",
        "attributes",
        "expression",
        "origin",
    }
)


def _message_to_dict(message: Message) -> dict[str, object]:
    return {
        "id": message.id,
        "role": message.role.value,
        "kind": message.kind.value,
        "text": message.text,
        "final": message.final,
        "sender": message.sender,
        "first_seen": message.first_seen if math.isfinite(message.first_seen) else 0.0,
        "updated": message.updated if math.isfinite(message.updated) else 0.0,
        "delivery": None if message.delivery is None else message.delivery.value,
        "error": message.error,
        "interrupted": message.interrupted,
        "segment_id": message.segment_id,
        "attributes": [[key, value] for key, value in message.attributes],
        "expression": None
        if message.expression is None
        else {"label": message.expression.label, "mood": message.expression.mood},
        "origin": message.origin.value,
    }


def _fail(where: str, what: str) -> HistoryError:
    return HistoryError(f"The message history is damaged: {where} {what}.", where=where, remedy=_REMEDY_DAMAGED)


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _string(data: Mapping[str, object], name: str, where: str, *, default: str | None = None) -> str:
    value = data.get(name, default)
    if not isinstance(value, str):
        if value is None and name not in data:
            raise _fail(where, f"has no {name!r}")
        raise _fail(f"{where}.{name}", f"must be a string, not {_json_kind(value)}")
    return value


def _enum(
    data: Mapping[str, object], name: str, where: str, kind: type[enum.StrEnum], default: object = None
) -> Any:
    value = data.get(name, default)
    if value is None and name not in data and default is None:
        raise _fail(where, f"has no {name!r}")
    try:
        return kind(value)
    except (ValueError, TypeError):
        allowed = ", ".join(repr(member.value) for member in cast(Iterable[enum.StrEnum], kind))
        raise _fail(f"{where}.{name}", f"must be one of {allowed}, not {value!r}") from None


def _message_from_dict(data: object, where: str) -> Message:
    if not isinstance(data, dict):
        raise _fail(where, f"must be an object, not {_json_kind(data)}")
    fields = cast(dict[str, object], data)
    unknown = sorted(set(fields) - _KNOWN_FIELDS)
    if unknown:
        raise _fail(where, f"has unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}")
    message_id = _string(fields, "id", where)
    if not message_id:
        raise _fail(f"{where}.id", "is empty")
    role: Role = _enum(fields, "role", where, Role)
    kind: MessageKind = _enum(fields, "kind", where, MessageKind)
    text = _string(fields, "text", where)
    sender = _string(fields, "sender", where, default="")
    times: dict[str, float] = {}
    for name in _FLOAT_FIELDS:
        value = fields.get(name, times.get("first_seen", 0.0))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _fail(f"{where}.{name}", f"must be a finite number of seconds, not {value!r}")
        times[name] = float(value)
    flags: dict[str, bool] = {}
    for name, default in (("final", True), ("interrupted", False)):
        value = fields.get(name, default)
        if not isinstance(value, bool):
            raise _fail(f"{where}.{name}", f"must be true or false, not {_json_kind(value)}")
        flags[name] = value
    optional: dict[str, str | None] = {}
    for name in _OPTIONAL_STR_FIELDS:
        value = fields.get(name)
        if value is not None and not isinstance(value, str):
            raise _fail(f"{where}.{name}", f"must be a string or null, not {_json_kind(value)}")
        optional[name] = value
    delivery_value = fields.get("delivery")
    delivery: DeliveryStatus | None = (
        None if delivery_value is None else _enum(fields, "delivery", where, DeliveryStatus)
    )
    raw_attributes = fields.get("attributes", [])
    if not isinstance(raw_attributes, list):
        raise _fail(f"{where}.attributes", f"must be an array of [key, value] pairs, not {_json_kind(raw_attributes)}")
    attributes: list[tuple[str, str]] = []
    for index, pair in enumerate(cast(list[object], raw_attributes)):
        if (
            not isinstance(pair, list)
            or len(cast(list[object], pair)) != 2
            or not all(isinstance(part, str) for part in cast(list[object], pair))
        ):
            raise _fail(f"{where}.attributes[{index}]", "must be a [key, value] pair of strings")
        key, value = cast(list[str], pair)
        attributes.append((key, value))
    expression: AgentExpression | None = None
    raw_expression = fields.get("expression")
    if raw_expression is not None:
        if not isinstance(raw_expression, dict):
            raise _fail(f"{where}.expression", f"must be an object or null, not {_json_kind(raw_expression)}")
        parts = cast(dict[str, object], raw_expression)
        label, mood = parts.get("label"), parts.get("mood")
        if not isinstance(label, str) or (mood is not None and not isinstance(mood, str)) or set(parts) - {"label", "mood"}:
            raise _fail(f"{where}.expression", "must be {\"label\": text, \"mood\": text or null}")
        expression = AgentExpression(label=label, mood=mood)
    origin: MessageOrigin = _enum(fields, "origin", where, MessageOrigin, default=MessageOrigin.LIVE.value)
    return Message(
        id=message_id,
        role=role,
        kind=kind,
        text=text,
        final=flags["final"],
        sender=sender,
        first_seen=times["first_seen"],
        updated=times["updated"],
        delivery=delivery,
        error=optional["error"],
        interrupted=flags["interrupted"],
        segment_id=optional["segment_id"],
        attributes=tuple(sorted(attributes)),
        expression=expression,
        origin=origin,
    )


def _unique(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    seen: set[str] = set()
    for index, message in enumerate(messages):
        if message.id in seen:
            raise HistoryError(
                f"The message history holds two messages with the id {message.id!r} "
                f"(the second is messages[{index}]).",
                where=f"messages[{index}].id",
                remedy="Give every message its own id; a history from to_json() always does.",
            )
        seen.add(message.id)
    return messages


@attrs.frozen
class MessageHistory:
    """The conversation, as data an app can keep and give back to a new session.

    ``messages`` are :class:`~lkstate.Message` values, oldest first, exactly as
    the state held them. :meth:`to_json` / :meth:`from_json` (and
    :meth:`to_dict` / :meth:`from_dict` for apps that store JSON themselves)
    write and read a small versioned document (``...`` marks the optional fields):

    .. code-block:: text

        {"format": "lkstate-message-history", "version": 1,
         "messages": [{"id": "...", "role": "agent", "kind": "transcript",
                       "text": "Hello!", "final": true, "sender": "agent-AJ_x",
                       "first_seen": 1764781234.5, ...}]}

    Only ``id``, ``role``, ``kind`` and ``text`` are required in a message
    written by hand; the rest default (final, not interrupted, live, time 0).
    Reading is strict — a wrong type, an unknown field, two messages with one
    id, a newer version — and says what is wrong and where, in a
    :class:`~lkstate.errors.HistoryError`, so a damaged file is never half
    restored. Why versioned: a history outlives the lkstate that wrote it; a
    later lkstate reads every older version (migrating it), and refuses a newer
    one by saying to upgrade rather than guessing.

    Message ids must be unique (they are in any state). ``stream_seq``, which
    only orders the pieces of a live stream, is not kept.
    """

    FORMAT: ClassVar[str] = HISTORY_FORMAT
    VERSION: ClassVar[int] = HISTORY_VERSION

    messages: tuple[Message, ...] = attrs.field(default=(), converter=lambda m: _unique(tuple(m)))

    @classmethod
    def of(cls, messages: Iterable[Message]) -> MessageHistory:
        """The history of these messages (``state.messages``, or any selection of them)."""
        return cls(messages=tuple(messages))

    def __len__(self) -> int:
        return len(self.messages)

    def to_dict(self) -> dict[str, object]:
        """The history as plain JSON values (dicts, lists, strings, numbers, booleans, ``None``)."""
        return {
            "format": HISTORY_FORMAT,
            "version": HISTORY_VERSION,
            "messages": [_message_to_dict(message) for message in self.messages],
        }

    def to_json(self, *, indent: int | None = None) -> str:
        """The history as one JSON document (UTF-8 text; a lone surrogate is escaped, not lost)."""
        data = self.to_dict()
        text = json.dumps(data, ensure_ascii=False, allow_nan=False, indent=indent)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate a hostile peer sent: keep it, escaped
            text = json.dumps(data, ensure_ascii=True, allow_nan=False, indent=indent)
        return text

    @classmethod
    def from_dict(cls, data: object) -> MessageHistory:
        """Read a history from plain JSON values; :class:`~lkstate.errors.HistoryError` if it is not one."""
        if not isinstance(data, dict):
            raise HistoryError(
                f"This is not a message history: expected a JSON object, got {_json_kind(data)}.",
                remedy="Pass what MessageHistory.to_json() or to_dict() produced.",
            )
        document = cast(dict[str, Any], data)
        if document.get("format") != HISTORY_FORMAT:
            raise HistoryError(
                f'This is not a message history: its "format" is {document.get("format")!r}, '
                f"not {HISTORY_FORMAT!r}.",
                where="format",
                remedy="Pass what MessageHistory.to_json() or to_dict() produced.",
            )
        version = document.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise HistoryError(
                f'The message history is damaged: its "version" is {version!r}; lkstate has written '
                f"versions 1 to {HISTORY_VERSION} only.",
                where="version",
                remedy=_REMEDY_DAMAGED,
            )
        if version > HISTORY_VERSION:
            raise HistoryError(
                f"The message history was written in format version {version}, by a newer lkstate; "
                f"this lkstate reads versions up to {HISTORY_VERSION}.",
                where="version",
                remedy="Upgrade lkstate to restore it.",
            )
        while version < HISTORY_VERSION:
            document = dict(_MIGRATIONS[version](document))
            version += 1
        raw = document.get("messages")
        if not isinstance(raw, list):
            raise _fail("messages", f"must be an array, not {_json_kind(raw)}")
        unknown = sorted(set(document) - {"format", "version", "messages"})
        if unknown:
            raise _fail("the document", f"has unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}")
        items = cast(list[object], raw)
        return cls(messages=tuple(_message_from_dict(item, f"messages[{i}]") for i, item in enumerate(items)))

    @classmethod
    def from_json(cls, text: str | bytes) -> MessageHistory:
        """Read a history written by :meth:`to_json`; :class:`~lkstate.errors.HistoryError` if it is not one."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as error:  # JSONDecodeError and bad UTF-8 are ValueErrors
            raise HistoryError(
                f"This is not a message history: it is not JSON ({error}).",
                remedy="Pass the text MessageHistory.to_json() produced, unchanged.",
            ) from None
        return cls.from_dict(data)


# --- the agent's record of what came before ------------------------------------------------

_TAG = re.compile(r"</?[A-Za-z][\w:.-]*(?:\s[^<>]*)?/?>")


def _talk(items: Iterable[ConversationItem]) -> list[MessageItem]:
    """The utterances in ``items``: user and assistant messages with words in them."""
    return [
        item
        for item in items
        if isinstance(item, MessageItem) and item.role in ("user", "assistant") and normalize_text(item.text)
    ]


def history_message_id(item: MessageItem, index: int) -> str:
    """The id of the message showing history item ``item`` (at ``index`` among the utterances).

    The agent's item id when it gave one (it always does), so a second fetch
    finds the message it made the first time; else a digest of position,
    role and text, which is as stable as the history itself.
    """
    if item.id:
        return f"history/{item.id}"
    digest = hashlib.sha256(f"{index}\0{item.role}\0{item.text}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"history/#{index}/{digest[:16]}"


def _match_back(texts: Sequence[tuple[str, Message]], cursor: int, target: str, interrupted: bool) -> int | None:
    """Where the run of live messages saying ``target`` starts, among the ``LOOKBACK`` before ``cursor``.

    A run is one message, or consecutive messages whose texts, joined, are the
    target (a spoken user turn is one item but one transcript per final STT
    result). The newest message of a run may still be streaming (its text so
    far begins the target), and when either side was cut off, one text may
    begin the other.
    """
    for end in range(cursor - 1, max(cursor - 1 - LOOKBACK, -1), -1):
        text, message = texts[end]
        if not text:
            continue
        if text == target:
            return end
        cut = interrupted or message.interrupted
        if (not message.final or cut) and target.startswith(text):
            return end
        if cut and text.startswith(target):
            return end
        joined, start = text, end
        while start > 0 and joined != target and target.endswith(" " + joined):
            start -= 1
            before = texts[start][0]
            if before:
                joined = f"{before} {joined}"
        if joined == target:
            return start
    return None


def pre_join_items(
    messages: Sequence[Message], items: Sequence[ConversationItem], *, since: float | None = None
) -> list[tuple[int, MessageItem]]:
    """The utterances of the agent's history said before this session heard any of it.

    Returns ``(index among the utterances, item)`` pairs, oldest first, leaving
    out those already shown (by id). Restored messages are never compared:
    they are another session's; nor are live messages first seen before
    ``since`` (our clock, like theirs): a conversation kept from an earlier room.
    """
    talk = _talk(items)
    shown = {message.id for message in messages if message.origin is MessageOrigin.AGENT_HISTORY}
    live: dict[Role, list[tuple[str, Message]]] = {Role.USER: [], Role.AGENT: []}
    for message in messages:
        bucket = live.get(message.role)
        if bucket is not None and message.origin is MessageOrigin.LIVE and (since is None or message.first_seen >= since):
            bucket.append((normalize_text(message.text), message))
    cursors = {role: len(bucket) for role, bucket in live.items()}
    first = len(talk)
    for index in range(len(talk) - 1, -1, -1):
        item = talk[index]
        if history_message_id(item, index) in shown:
            first = index
            continue
        role = Role.USER if item.role == "user" else Role.AGENT
        start = _match_back(live[role], cursors[role], normalize_text(item.text), item.interrupted)
        if start is not None:
            cursors[role] = start
            first = index
    return [(index, talk[index]) for index in range(first) if history_message_id(talk[index], index) not in shown]


def agent_history_message(
    index: int,
    item: MessageItem,
    *,
    agent: str,
    user: str,
    at: float,
    cap: Callable[[str], tuple[str, str | None]],
) -> Message:
    """The message that shows history item ``item``: final, marked ``AGENT_HISTORY``.

    The agent keeps its text with the delivery markup its LLM wrote
    (``<expression value="warm"/>``); its transcripts never show it, so the
    tags are taken out here too. A user item with a transcript confidence was
    spoken (a transcript), one without was typed (chat), as the framework
    records them. Times are the agent's ``created_at`` (when it was said) when
    it sent one, else ``at``.
    """
    agent_side = item.role == "assistant"
    text = item.text
    if agent_side and "<" in text:
        text = " ".join(_TAG.sub(" ", text).split())
    text, error = cap(text)
    created = item.created_at if item.created_at is not None and math.isfinite(item.created_at) else at
    if agent_side:
        role, kind, sender = Role.AGENT, MessageKind.TRANSCRIPT, agent
    else:
        kind = MessageKind.TRANSCRIPT if item.transcript_confidence is not None else MessageKind.CHAT
        role, sender = Role.USER, user
    return Message(
        id=history_message_id(item, index),
        role=role,
        kind=kind,
        text=text,
        final=True,
        sender=sender,
        first_seen=created,
        updated=created,
        error=error,
        interrupted=item.interrupted,
        origin=MessageOrigin.AGENT_HISTORY,
    )
