"""One conversation timeline from two reports of the same conversation.

A session hears the conversation twice. ``state.messages`` is what the room
carried: the user's typed chat, shown the instant it is typed, and the
transcripts of both sides' speech, which grow word by word while someone
talks. ``state.remote.items`` is the agent's own record, broadcast by its
session host once each turn is committed: the same utterances again, now with
ids, latencies and an ``interrupted`` flag, plus what the room never carries
as text — tool calls, agent handoffs, and input the agent was given some other
way (``run_input``, or anything said while transcription was off).

Rendering both lists would show every utterance twice; rendering one would
lose either the live text or the tool calls and metrics. :func:`timeline`
merges them into one tuple of :class:`TimelineEntry` a UI can render as is.

The rule
--------

1. **Messages are the rows.** Every message in ``state.messages`` is exactly
   one ``"message"`` entry, in the order of ``state.messages``. Nothing the
   agent reports ever hides, splits or reorders them.
2. **A remote message attaches to the transcript it repeats** — never to a
   restored message (``origin`` ``restored``): that one is from another
   session, which this agent never heard. A remote
   :class:`~lkstate._core.remote_state.MessageItem` of role ``user`` is matched
   against the user's messages, one of role ``assistant`` against the agent's,
   each role in order (a cursor per role that only moves forward). Texts are
   compared *normalized*: angle-bracket markup removed (the agent strips its
   expressive tags from transcripts but not from items), case folded, only
   letters and digits kept, whitespace collapsed. An item matches

   - a message with the same normalized text; or
   - a run of consecutive messages of its role whose texts, joined, are its
     text — a spoken user turn is one item but one transcript per final STT
     result; the item attaches to the *last* message of the run (the one that
     ended the turn, which its end-of-turn metrics describe); or
   - a message that is still streaming (not final) whose text so far begins
     the item's text — the item can arrive before the transcript ends; or
   - when either side is interrupted, a message whose text begins the item's
     text or the other way round — a cut-off turn may be cut at a slightly
     different word on each road.

   The match is looked for among the next :data:`LOOKAHEAD` messages of the
   role from the cursor (messages the agent never recorded, such as chat it
   ignored, are stepped over), and the cursor moves past the matched run. An
   attached item lends the row its ``metrics``, its ``interrupted`` flag and
   its id; it is not a row of its own.
3. **What the room never carried becomes rows of its own.** A remote message
   with no matching message (``run_input``, transcription off) is a
   ``"message"`` entry with ``message=None``. (What the agent's chat history
   holds from before we joined is not among them: the reducer makes those
   utterances messages of origin ``agent_history``, which their items attach
   to like any other.) Every tool call is a ``"tool_call"`` entry and every
   agent handoff a ``"handoff"`` entry. System and developer messages, agent
   configuration updates, and the raw function-call items (their content is in
   the tool call) are not rows.
4. **Those rows are placed by the agent's own order.** The agent's items keep
   their order, and tool calls are slotted among them by the agent's clock (a
   tool call goes before the first item created after it started). Messages
   and remote entries are stamped by two different clocks, so they are never
   compared by time: a row of its own goes right after the latest message
   (in ``state.messages`` order) holding a remote entry matched before it,
   after the rows already placed there; rows with nothing matched before them
   — a handoff when the agent starts, before we joined — go at
   the start of the timeline. Rows of their own therefore keep the agent's
   order among themselves.

Consequences a UI can rely on: every message appears exactly once; every
tool call and handoff exactly once; a remote message at most once, attached
or as a row of its own, never both; and :attr:`TimelineEntry.key` is unique
within one timeline, stable for a message row while the message lives, and
suitable for list diffing. While the conversation grows at its end, rows keep
their order — with one exception by design: an agent message reported before
its transcript arrived is a row of its own until the transcript comes, then it
becomes that transcript's row, and the rows placed after it move along with it.

Cost
----

Built from nothing, a timeline costs time linear in the conversation:
O(messages + items + tool calls), plus for each remote message a look at up to
:data:`LOOKAHEAD` candidate messages. But a UI asks for the timeline of one
snapshot after another, and consecutive snapshots share almost everything, so
:class:`TimelineBuilder` keeps its work and redoes only what a change can
affect: finding what changed is an identity comparison of the three lists run
at C speed (tens of nanoseconds per element), and the Python-level work is
proportional to the part of the conversation after the first change — usually
the last few messages. Asking again for a snapshot whose conversation did not
change (an agent-state or usage update) returns the same tuple after three
identity checks.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from itertools import compress, count
from operator import is_not, itemgetter
from collections.abc import Sequence
from typing import Literal, TypeAlias, TypeGuard

import attrs

from .messages import Message, MessageOrigin, Role
from .remote_state import (
    AgentHandoffItem,
    ConversationItem,
    MessageItem,
    MessageMetrics,
    ToolCall,
)
from .state import SessionState

__all__ = [
    "LOOKAHEAD",
    "EntryKind",
    "TimelineBuilder",
    "TimelineEntry",
    "normalize_text",
    "timeline",
    "timeline_of",
]

LOOKAHEAD = 32
"""How many of a role's messages, from its cursor on, a remote message is compared with."""

EntryKind: TypeAlias = Literal["message", "tool_call", "handoff"]

_REMOTE_ROLES: dict[str, Role] = {"user": Role.USER, "assistant": Role.AGENT}


@attrs.frozen(slots=True)
class TimelineEntry:
    """One row of the conversation as a UI shows it.

    ``kind`` says which fields are set:

    - ``"message"``: ``message`` is the room's message (``None`` when only the
      agent reported this utterance), ``item`` the agent's record of it
      (``None`` until the agent reported it, or when it never will: chat from
      another participant, chat the agent ignored).
    - ``"tool_call"``: ``tool_call`` is set.
    - ``"handoff"``: ``handoff`` is set.

    ``key`` is unique within one timeline: the message id for a row with a
    message, otherwise derived from the agent's ids (``item/…``, ``tool/…``,
    ``handoff/…``).
    """

    kind: EntryKind
    key: str
    message: Message | None = None
    item: MessageItem | None = None
    tool_call: ToolCall | None = None
    handoff: AgentHandoffItem | None = None

    @property
    def role(self) -> Role | None:
        """Who said it (message rows only)."""
        if self.message is not None:
            return self.message.role
        if self.item is not None and self.item.role is not None:
            return _REMOTE_ROLES.get(self.item.role)
        return None

    @property
    def text(self) -> str:
        """The text to show: the room's (live) text when there is one, else the agent's."""
        if self.message is not None:
            return self.message.text
        if self.item is not None:
            return self.item.text
        return ""

    @property
    def metrics(self) -> MessageMetrics | None:
        """The agent's latencies for this utterance, once it reported them."""
        return self.item.metrics if self.item is not None else None

    @property
    def interrupted(self) -> bool:
        """Cut off: the room says the speaker left mid-message, or the agent says it was interrupted."""
        return (self.message is not None and self.message.interrupted) or (
            self.item is not None and self.item.interrupted
        )

    @property
    def final(self) -> bool:
        """Complete: a final message, or anything the agent itself recorded."""
        if self.message is not None:
            return self.message.final
        return True


# --- normalization -------------------------------------------------------------------

_MARKUP = re.compile(r"<[^<>]*>")
_NOT_WORD = re.compile(r"[\W_]+")


def normalize_text(text: str) -> str:
    """``text`` as the timeline compares it: markup out, case folded, words only.

    ``"<laugh/> Hello,  World!"`` and ``"hello world"`` normalize alike.
    """
    without_markup = _MARKUP.sub(" ", text) if "<" in text else text
    return " ".join(_NOT_WORD.sub(" ", without_markup.casefold()).split())


_NORMALIZED_CACHE_SIZE = 4096


# --- the builder -----------------------------------------------------------------------------

_Key: TypeAlias = tuple[int, int, int]
"""Where a row sorts: ``(message position, slot, remote index)``.

Slot 0 with position -1: a row of its own with nothing matched before it (at
the start). Slot 1: the row of message ``position``. Slot 2: a row of its own
placed after message ``position``, in remote order.
"""

_RemoteEntry: TypeAlias = MessageItem | AgentHandoffItem | ToolCall

_Decision: TypeAlias = tuple[_Key | None, int, int, int, int, int, int, int, int]
"""What one remote entry became, and the matching state right after it:
``(own row key or None, message it attached to or -1, anchor, next item,
next tool call, user reach, agent reach, user cursor, agent cursor)``.
A reach is the highest index into that role's messages any decision so far
looked at (the list's length when it looked to the end, as more may come)."""
_REACH_USER, _REACH_AGENT = 5, 6


def _first_difference(old: Sequence[object], new: Sequence[object]) -> int:
    """The first index where ``old`` and ``new`` hold different objects (or one ends).

    Identity, not equality: snapshots share every untouched element, and the
    comparison runs at C speed (``map``/``compress``), tens of nanoseconds each.
    """
    found = next(compress(count(), map(is_not, old, new)), None)
    return min(len(old), len(new)) if found is None else found


def _tool_time(call: ToolCall) -> float | None:
    return call.started_at if call.started_at is not None else call.ended_at


def _is_row_item(item: ConversationItem) -> TypeGuard[MessageItem | AgentHandoffItem]:
    if isinstance(item, MessageItem):
        return item.role in _REMOTE_ROLES
    return isinstance(item, AgentHandoffItem)


def _own_row(index: int, entry: _RemoteEntry) -> TimelineEntry:
    if isinstance(entry, ToolCall):
        return TimelineEntry(kind="tool_call", key=f"tool/{entry.call_id}", tool_call=entry)
    name = entry.id or f"#{index}"
    if isinstance(entry, AgentHandoffItem):
        return TimelineEntry(kind="handoff", key=f"handoff/{name}", handoff=entry)
    return TimelineEntry(kind="message", key=f"item/{name}", item=entry)


class TimelineBuilder:
    """Computes timelines, reusing the work done for the previous snapshot.

    :func:`timeline` uses one shared builder; a UI that follows several
    sessions at once can give each its own, so they do not evict each other's
    work. Results depend only on the lists given, never on what was asked
    before. Thread-safe (one computation at a time).

    How the work is reused: the rows are kept sorted by a key (see ``_Key``),
    and every remote entry is one *decision* (attach to a message, or a row of
    its own at a key) recorded with the matching cursors after it and how far
    into each role's messages it looked. A new snapshot is compared with the
    previous one by identity to find the first message, item and tool call that
    changed; decisions that neither consumed a changed entry nor looked at a
    changed message stand, the rest are undone and made again, and only the
    rows they touch, plus the rows of changed messages, are rebuilt.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._normalized: dict[str, str] = {}
        self._reset()

    def _reset(self) -> None:
        self._messages: Sequence[Message] = ()
        self._items: Sequence[ConversationItem] = ()
        self._tools: Sequence[ToolCall] = ()
        self._result: tuple[TimelineEntry, ...] = ()
        self._rows: list[TimelineEntry] = []
        self._keys: list[_Key] = []
        self._positions: dict[Role, list[int]] = {Role.USER: [], Role.AGENT: []}
        self._attached: dict[int, MessageItem] = {}
        # one decision per remote entry, in remote order
        self._decisions: list[_Decision] = []
        # where each item and tool call went in the remote order
        self._decisions_after_item: list[int] = []
        self._decision_of_tool: list[int] = []

    def __call__(self, state: SessionState) -> tuple[TimelineEntry, ...]:
        return self.of(state.messages, state.remote.items, state.remote.tool_calls)

    def of(
        self,
        messages: Sequence[Message],
        items: Sequence[ConversationItem] = (),
        tool_calls: Sequence[ToolCall] = (),
    ) -> tuple[TimelineEntry, ...]:
        """The timeline of these three lists (see the module documentation for the rule)."""
        with self._lock:
            if messages is self._messages and items is self._items and tool_calls is self._tools:
                return self._result
            try:
                self._update(messages, items, tool_calls)
            except BaseException:
                self._reset()  # never leave half-updated bookkeeping behind
                raise
            return self._result

    # -- text -------------------------------------------------------------------------------

    def _normalize(self, text: str) -> str:
        found = self._normalized.get(text)
        if found is None:
            if len(self._normalized) >= _NORMALIZED_CACHE_SIZE:
                self._normalized.clear()
            found = self._normalized[text] = normalize_text(text)
        return found

    # -- matching ---------------------------------------------------------------------------

    def _run_end(
        self, messages: Sequence[Message], positions: list[int], start: int, target: str, interrupted: bool
    ) -> tuple[int | None, int]:
        """``(end, reach)``: where a run from ``start`` matches ``target`` (or ``None``), and
        the last index looked at (``len(positions)`` when the run reached the end)."""
        joined = ""
        end = start
        for end in range(start, len(positions)):
            message = messages[positions[end]]
            text = self._normalize(message.text)
            if text:
                joined = f"{joined} {text}" if joined else text
            if joined == target:
                return end, end
            if joined and not message.final and target.startswith(joined):
                return end, end  # still streaming, and so far it says what the item says
            if joined and (interrupted or message.interrupted):
                if target.startswith(joined) or joined.startswith(target):
                    return end, end  # cut off on one road a word earlier than on the other
            if joined and not target.startswith(joined + " "):
                return None, end  # the run can no longer grow into the target
        return None, len(positions)

    def _match(
        self, messages: Sequence[Message], positions: list[int], cursor: int, item: MessageItem
    ) -> tuple[int | None, int]:
        """``(end, reach)`` of the first matching run among the next ``LOOKAHEAD`` starts."""
        if cursor < len(positions) and messages[positions[cursor]].text == item.text:
            return cursor, cursor  # the usual case, decided without normalizing anything
        target = self._normalize(item.text)
        stop = cursor + LOOKAHEAD
        reach = cursor - 1
        for start in range(cursor, min(stop, len(positions))):
            end, looked = self._run_end(messages, positions, start, target, item.interrupted)
            reach = max(reach, looked)
            if end is not None:
                return end, reach
        if stop >= len(positions):
            reach = len(positions)  # more messages may yet arrive within reach
        return None, reach

    # -- the update ---------------------------------------------------------------------------

    def _update(
        self, messages: Sequence[Message], items: Sequence[ConversationItem], tools: Sequence[ToolCall]
    ) -> None:
        m0 = _first_difference(self._messages, messages)
        i0 = _first_difference(self._items, items)
        t0 = _first_difference(self._tools, tools)
        decisions = self._decisions

        # 1. the first decision that consumed, or was placed by, a changed item or tool call
        k1 = len(decisions)
        if i0 < max(len(self._items), len(items)):
            k1 = min(k1, self._decisions_after_item[i0 - 1] if i0 > 0 else 0)
        if t0 < max(len(self._tools), len(tools)):
            k1 = min(k1, self._decision_of_tool[t0 - 1] + 1 if t0 > 0 else 0)

        # 2. each role's messages: keep those before m0, read the rest again; and the
        #    first decision that looked at a changed one
        changed = messages[m0:]
        grown: dict[Role, list[int]] = {Role.USER: [], Role.AGENT: []}
        for offset, message in enumerate(changed):
            bucket = grown.get(message.role)
            if bucket is not None and message.origin is not MessageOrigin.RESTORED:
                bucket.append(m0 + offset)  # a restored message is another session's: the agent never said it
        for role, field in ((Role.USER, _REACH_USER), (Role.AGENT, _REACH_AGENT)):
            positions = self._positions[role]
            cut = bisect_left(positions, m0)
            if cut < len(positions) or grown[role]:
                k1 = min(k1, bisect_left(decisions, cut, key=itemgetter(field)))
            del positions[cut:]
            positions.extend(grown[role])

        # 3. undo the decisions from k1 on, and drop the rows of changed messages
        refresh: set[int] = set()
        horizon: _Key = (m0, 0, 0)
        cut_rows = bisect_left(self._keys, horizon)
        del self._rows[cut_rows:]
        del self._keys[cut_rows:]
        for decision in decisions[k1:]:
            key, attach = decision[0], decision[1]
            if key is not None:
                if key < horizon:
                    at = bisect_left(self._keys, key)
                    del self._rows[at]
                    del self._keys[at]
            else:
                del self._attached[attach]
                if attach < m0:
                    refresh.add(attach)
        if k1 > 0:
            _, _, anchor, next_item, next_tool, reach_user, reach_agent, cursor_user, cursor_agent = decisions[k1 - 1]
        else:
            anchor, next_item, next_tool, reach_user, reach_agent, cursor_user, cursor_agent = -1, 0, 0, -1, -1, 0, 0
        del decisions[k1:]
        del self._decisions_after_item[next_item:]
        del self._decision_of_tool[next_tool:]

        # 4. make the decisions again from k1, in remote order
        tail: list[tuple[_Key, TimelineEntry]] = []
        users, agents = self._positions[Role.USER], self._positions[Role.AGENT]

        def decide(index: int, entry: _RemoteEntry) -> None:
            nonlocal anchor, reach_user, reach_agent, cursor_user, cursor_agent
            attach = -1
            matched: MessageItem | None = None
            if isinstance(entry, MessageItem) and entry.role is not None:
                if entry.role == "user":
                    end, looked = self._match(messages, users, cursor_user, entry)
                    reach_user = max(reach_user, looked)
                    if end is not None:
                        cursor_user, attach, matched = end + 1, users[end], entry
                else:
                    end, looked = self._match(messages, agents, cursor_agent, entry)
                    reach_agent = max(reach_agent, looked)
                    if end is not None:
                        cursor_agent, attach, matched = end + 1, agents[end], entry
            key: _Key | None = None
            if matched is not None:
                anchor = max(anchor, attach)  # the two roles' matches may cross
                self._attached[attach] = matched
                refresh.add(attach)
            else:
                key = (-1, 0, len(decisions)) if anchor < 0 else (anchor, 2, len(decisions))
                row = _own_row(index, entry)
                if key < horizon:
                    at = bisect_left(self._keys, key)
                    self._rows.insert(at, row)
                    self._keys.insert(at, key)
                else:
                    tail.append((key, row))
            decisions.append(
                (key, attach, anchor, next_item, next_tool, reach_user, reach_agent, cursor_user, cursor_agent)
            )

        for index in range(next_item, len(items)):
            item = items[index]
            next_item = index + 1
            if _is_row_item(item):
                created = item.created_at
                if created is not None:
                    while next_tool < len(tools):
                        call = tools[next_tool]
                        when = _tool_time(call)
                        if when is None or when >= created:
                            break
                        next_tool += 1
                        self._decision_of_tool.append(len(decisions))
                        next_item = index  # this item is still to come
                        decide(-1, call)
                        next_item = index + 1
                decide(index, item)
            self._decisions_after_item.append(len(decisions))
        while next_tool < len(tools):
            call = tools[next_tool]
            next_tool += 1
            self._decision_of_tool.append(len(decisions))
            decide(-1, call)

        # 5. rows of messages whose attachment changed, and the rows from m0 on
        for position in refresh:
            if position < m0:
                at = bisect_left(self._keys, (position, 1, 0))
                message = self._rows[at].message
                assert message is not None
                self._rows[at] = TimelineEntry(
                    kind="message", key=message.id, message=message, item=self._attached.get(position)
                )
        attached = self._attached
        for offset, message in enumerate(changed):
            position = m0 + offset
            row = TimelineEntry(kind="message", key=message.id, message=message, item=attached.get(position))
            tail.append(((position, 1, 0), row))
        tail.sort(key=itemgetter(0))
        self._keys.extend(key for key, _ in tail)
        self._rows.extend(row for _, row in tail)

        self._messages, self._items, self._tools = messages, items, tools
        self._result = tuple(self._rows)


_shared = TimelineBuilder()


def timeline_of(
    messages: Sequence[Message],
    items: Sequence[ConversationItem] = (),
    tool_calls: Sequence[ToolCall] = (),
) -> tuple[TimelineEntry, ...]:
    """The timeline of these three lists, for replays and tests without a whole state."""
    return _shared.of(messages, items, tool_calls)


def timeline(state: SessionState) -> tuple[TimelineEntry, ...]:
    """The conversation in ``state`` as rows a UI renders top to bottom.

    Merges ``state.messages`` with the agent's conversation items and tool
    calls (``state.remote``) so that no utterance is shown twice; the rule is
    in this module's documentation. Pure in effect — the result depends on the
    state alone — while the work for the previous state is reused; a state
    whose conversation did not change gets the very same tuple back.
    """
    return _shared(state)
