"""What the agent's session host tells us, folded into one immutable value.

A LiveKit Agents agent runs a *session host*: on the byte-stream topic
``lk.agent.session`` it broadcasts one ``AgentSessionMessage`` per stream —
state changes, conversation items, tool-call progress, usage, errors — and
answers requests. This module turns those raw payloads into a
:class:`RemoteSessionState` with one pure function::

    state = apply_remote_payload(state, payload, at=received_at)

Why raw bytes go in, and not decoded messages: recordings keep the payloads
exactly as the agent sent them, so a replay exercises this decoder too, and a
newer lkstate replays an old recording through its newer decoder.

Rules this module keeps:

* **Pure.** No I/O, no clock, no randomness. ``at`` (seconds since the epoch,
  our clock) is used only when the agent's event carries no ``created_at`` of
  its own; every other time in the state is the agent's clock, as the agent
  reported it, so times inside one conversation are comparable.
* **Never raises.** A payload that cannot be used becomes a sentence in
  :attr:`RemoteSessionState.problems`, and nothing else changes.
* **Unchanged means identical.** When a payload changes nothing (a response,
  a duplicate state change, a debug message), the very same object comes
  back, so the store can skip a snapshot with an ``is`` check.
* **Cheap for long sessions.** Conversation items and tool calls live in the
  state's persistent vector (:class:`ConversationItems` and :class:`ToolCalls`,
  the same structure as the transcript's ``Messages``) with an id → position
  index, so appending an item or updating a tool call by ``call_id`` costs
  about the same at 100 items as at 100 000; untouched parts are shared
  between snapshots.
* **Bounded.** Conversation items and tool calls are never dropped (they are
  the conversation). Everything that can repeat without limit is capped:
  problems and errors keep the last :data:`MAX_PROBLEMS` / :data:`MAX_ERRORS`
  with a running total beside them, a tool call keeps its last
  :data:`MAX_TOOL_PROGRESS` progress messages, overlapping speech and false
  interruptions keep a count and the latest one.

Responses to requests are not state: :class:`lkstate._wire.remote_client.RemoteSessionClient`
matches them to the caller who asked, and this module ignores them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, TypeAlias

import attrs
from google.protobuf import unknown_fields
from google.protobuf.message import DecodeError, Message
from livekit.protocol.agent_pb import agent_session as pb

from .vector import Vector

__all__ = [
    "MAX_ERRORS",
    "MAX_PAYLOAD_BYTES",
    "MAX_PROBLEMS",
    "MAX_TOOL_PROGRESS",
    "AgentConfigUpdateItem",
    "AgentHandoffItem",
    "AgentStateName",
    "ChatHistoryAnswer",
    "ChatRoleName",
    "ConversationItem",
    "ConversationItems",
    "EotUsage",
    "FalseInterruption",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "InterruptionUsage",
    "LLMUsage",
    "MessageItem",
    "MessageMetrics",
    "ModelUsage",
    "OverlappingSpeech",
    "RemoteSessionState",
    "STTUsage",
    "SessionUsage",
    "TTSUsage",
    "ToolCall",
    "ToolCallStatus",
    "ToolCalls",
    "ToolReplyStatus",
    "UserStateName",
    "agent_state_name",
    "apply_remote_payload",
    "chat_history_answer",
    "decode_chat_item",
    "decode_session_usage",
    "merge_conversation_items",
    "timestamp_seconds",
    "user_state_name",
]

MAX_PAYLOAD_BYTES = 1 << 20
"""Default size limit for one payload. The framework's own TCP transport uses the
same limit; an event larger than this is not something a session host sends."""

MAX_PROBLEMS = 20
"""How many of our own decoding problems are kept (the most recent)."""

MAX_ERRORS = 20
"""How many agent-reported errors are kept (the most recent)."""

MAX_TOOL_PROGRESS = 20
"""How many progress messages one tool call keeps (the most recent)."""

AgentStateName: TypeAlias = Literal["initializing", "idle", "listening", "thinking", "speaking"]
UserStateName: TypeAlias = Literal["speaking", "listening", "away"]
ChatRoleName: TypeAlias = Literal["developer", "system", "user", "assistant"]
ToolCallStatus: TypeAlias = Literal["started", "running", "done", "error", "cancelled"]
ToolReplyStatus: TypeAlias = Literal["scheduled", "completed", "interrupted", "skipped"]

_AGENT_STATES: Mapping[int, AgentStateName] = {
    pb.AS_INITIALIZING: "initializing",
    pb.AS_IDLE: "idle",
    pb.AS_LISTENING: "listening",
    pb.AS_THINKING: "thinking",
    pb.AS_SPEAKING: "speaking",
}
_USER_STATES: Mapping[int, UserStateName] = {
    pb.US_SPEAKING: "speaking",
    pb.US_LISTENING: "listening",
    pb.US_AWAY: "away",
}
_ROLES: Mapping[int, ChatRoleName] = {
    pb.DEVELOPER: "developer",
    pb.SYSTEM: "system",
    pb.USER: "user",
    pb.ASSISTANT: "assistant",
}
# TC_RUNNING is in the schema but the session host never ends a call with it;
# should one arrive, "running" is still the honest reading.
_TOOL_END_STATUSES: Mapping[int, ToolCallStatus] = {
    pb.TC_RUNNING: "running",
    pb.TC_DONE: "done",
    pb.TC_ERROR: "error",
    pb.TC_CANCELLED: "cancelled",
}
_TOOL_REPLY_STATUSES: Mapping[int, ToolReplyStatus] = {
    pb.TR_SCHEDULED: "scheduled",
    pb.TR_COMPLETED: "completed",
    pb.TR_INTERRUPTED: "interrupted",
    pb.TR_SKIPPED: "skipped",
}
_FINAL_TOOL_STATUSES: frozenset[ToolCallStatus] = frozenset({"done", "error", "cancelled"})

# A serialized AgentSessionMessage holds exactly one field of its oneof, so its
# first byte is that field's tag. Field 5 (``response``), length-delimited,
# tags as (5 << 3) | 2. Oversized responses (a long chat history) are the
# client's business, not a problem of ours; this lets us tell without parsing.
_RESPONSE_TAG = bytes([(pb.AgentSessionMessage.RESPONSE_FIELD_NUMBER << 3) | 2])


# --- conversation items ------------------------------------------------------------


@attrs.frozen
class MessageMetrics:
    """Latencies the agent measured for one message; ``None`` when not measured.

    User messages carry the turn-taking delays (transcription, end of turn);
    assistant messages carry the generation ones (LLM time to first token, TTS
    time to first byte, end-to-end latency). Delays are seconds; the two
    ``*_speaking_at`` values are seconds since the epoch on the agent's clock.
    """

    started_speaking_at: float | None = None
    stopped_speaking_at: float | None = None
    transcription_delay: float | None = None
    end_of_turn_delay: float | None = None
    on_user_turn_completed_delay: float | None = None
    llm_node_ttft: float | None = None
    llm_node_tps: float | None = None
    llm_node_ttfs: float | None = None
    tts_node_ttfb: float | None = None
    e2e_latency: float | None = None


@attrs.frozen
class MessageItem:
    """A chat message: what the user said (as transcribed) or what the agent said.

    ``text`` is the message's text parts joined by newlines, as the agent's own
    ``ChatMessage.text_content`` joins them; it is the raw text, so expressive
    markup an LLM was told to emit stays in. ``interrupted`` means the agent was
    cut off before it finished saying this.
    """

    id: str
    role: ChatRoleName | None
    text: str
    interrupted: bool = False
    transcript_confidence: float | None = None
    metrics: MessageMetrics = MessageMetrics()
    created_at: float | None = None
    extra: tuple[tuple[str, str], ...] = ()
    kind: Literal["message"] = attrs.field(default="message", init=False)


@attrs.frozen
class FunctionCallItem:
    """The LLM asked for a tool; ``arguments`` is the raw JSON string it produced."""

    id: str
    call_id: str
    name: str
    arguments: str
    created_at: float | None = None
    extra: tuple[tuple[str, str], ...] = ()
    kind: Literal["function_call"] = attrs.field(default="function_call", init=False)


@attrs.frozen
class FunctionCallOutputItem:
    """What a tool returned (or the error it raised) for one ``call_id``."""

    id: str
    call_id: str
    name: str
    output: str
    is_error: bool = False
    created_at: float | None = None
    kind: Literal["function_call_output"] = attrs.field(default="function_call_output", init=False)


@attrs.frozen
class AgentHandoffItem:
    """The session switched agents; ``old_agent_id`` is ``None`` for the first one."""

    id: str
    new_agent_id: str
    old_agent_id: str | None = None
    created_at: float | None = None
    kind: Literal["agent_handoff"] = attrs.field(default="agent_handoff", init=False)


@attrs.frozen
class AgentConfigUpdateItem:
    """The agent's instructions or tool set changed."""

    id: str
    instructions: str | None = None
    tools_added: tuple[str, ...] = ()
    tools_removed: tuple[str, ...] = ()
    created_at: float | None = None
    kind: Literal["agent_config_update"] = attrs.field(default="agent_config_update", init=False)


ConversationItem: TypeAlias = (
    MessageItem | FunctionCallItem | FunctionCallOutputItem | AgentHandoffItem | AgentConfigUpdateItem
)
"""One entry of the agent's conversation. Discriminate on ``kind``."""


# --- tool calls, usage, speech incidents -----------------------------------------------


@attrs.frozen
class ToolCall:
    """One tool call, gathered from every event that mentions its ``call_id``.

    ``status`` moves ``started`` → ``running`` (a progress message arrived) →
    ``done`` / ``error`` / ``cancelled`` and never moves back once final, so
    events arriving out of order cannot un-finish a call. ``message`` is the
    text the agent attached when the call ended (its result or error, as it
    would be voiced); ``output`` is what the tool returned to the LLM.
    ``reply_status`` follows the deferred spoken reply that voices buffered
    progress updates, when there is one.
    """

    call_id: str
    name: str = ""
    arguments: str = ""
    status: ToolCallStatus = "started"
    item_id: str = ""
    progress: tuple[str, ...] = ()
    message: str | None = None
    output: str | None = None
    is_error: bool = False
    reply_status: ToolReplyStatus | None = None
    started_at: float | None = None
    ended_at: float | None = None


@attrs.frozen
class LLMUsage:
    """Tokens one LLM (``provider``/``model``) used so far in this session."""

    provider: str
    model: str
    input_tokens: int = 0
    input_cached_tokens: int = 0
    input_audio_tokens: int = 0
    input_cached_audio_tokens: int = 0
    input_text_tokens: int = 0
    input_cached_text_tokens: int = 0
    input_image_tokens: int = 0
    input_cached_image_tokens: int = 0
    output_tokens: int = 0
    output_audio_tokens: int = 0
    output_text_tokens: int = 0
    session_duration: float = 0.0
    kind: Literal["llm"] = attrs.field(default="llm", init=False)


@attrs.frozen
class TTSUsage:
    """Characters and audio one TTS produced so far (``audio_duration`` in seconds)."""

    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    characters_count: int = 0
    audio_duration: float = 0.0
    kind: Literal["tts"] = attrs.field(default="tts", init=False)


@attrs.frozen
class STTUsage:
    """Audio one STT transcribed so far (``audio_duration`` in seconds)."""

    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    audio_duration: float = 0.0
    kind: Literal["stt"] = attrs.field(default="stt", init=False)


@attrs.frozen
class InterruptionUsage:
    """Requests made to an interruption-detection model."""

    provider: str
    model: str
    total_requests: int = 0
    kind: Literal["interruption"] = attrs.field(default="interruption", init=False)


@attrs.frozen
class EotUsage:
    """Requests made to an end-of-turn model."""

    provider: str
    model: str
    total_requests: int = 0
    kind: Literal["eot"] = attrs.field(default="eot", init=False)


ModelUsage: TypeAlias = LLMUsage | TTSUsage | STTUsage | InterruptionUsage | EotUsage


@attrs.frozen
class SessionUsage:
    """The agent's running totals, one entry per model, as its last report said.

    Each report replaces the previous one whole: the agent sends totals, not
    increments. ``reported_at`` is when the agent made the report.
    """

    models: tuple[ModelUsage, ...] = ()
    reported_at: float | None = None


@attrs.frozen
class OverlappingSpeech:
    """The user spoke while the agent was speaking.

    ``is_interruption`` says whether the agent judged it a real interruption
    (rather than a backchannel like "mhm"); ``detection_delay`` is how long the
    judgement took, in seconds.
    """

    is_interruption: bool
    detection_delay: float
    detected_at: float | None = None
    overlap_started_at: float | None = None


@attrs.frozen
class FalseInterruption:
    """The agent stopped for what turned out not to be an interruption.

    ``resumed`` says whether it picked up where it left off.
    """

    resumed: bool
    at: float


# --- the state -------------------------------------------------------------------------


class ConversationItems(Vector[ConversationItem]):
    """The agent's conversation items, oldest first: an immutable sequence, found by id with :meth:`get`.

    Read it like a tuple (index, iterate, ``len``); it hashes and compares by
    content, equal to the tuple of the same items. Items without an id (the
    agent always gives one, but the wire is not trusted) are kept and only
    found by position.
    """

    __slots__ = ()

    _key_name = "item id"

    @staticmethod
    def _key_of(value: ConversationItem) -> str | None:
        return value.id or None


class ToolCalls(Vector[ToolCall]):
    """The tool calls the agent made, in the order they started, found by ``call_id`` with :meth:`get`.

    Read it like a tuple; it hashes and compares by content.
    """

    __slots__ = ()

    _key_name = "call_id"

    @staticmethod
    def _key_of(value: ToolCall) -> str:
        return value.call_id


@attrs.frozen
class RemoteSessionState:
    """Everything the agent's session host has told us, and what we could not read.

    Start from ``RemoteSessionState()``; the reducer folds in each payload the
    agent sends (:class:`~lkstate.lowlevel.events.AgentSessionPayload`).
    ``items`` and ``tool_calls`` are persistent vectors
    (:class:`ConversationItems`, :class:`ToolCalls`): read them like tuples
    (index, iterate, ``len``); they hash and compare by content.

    ``agent_state`` is the agent's own report over this protocol; the
    ``lk.agent.state`` participant attribute says the same thing by another
    road. ``agent_id`` is the agent currently in charge (the last handoff's).
    ``message_count`` counts the payloads that changed this state, so a UI can
    tell the protocol is alive; payloads that change nothing are not counted,
    which is what keeps an unchanged state the identical object.
    """

    user_state: UserStateName | None = None
    agent_state: AgentStateName | None = None
    agent_id: str | None = None
    # A fresh vector per state, not one shared default: snapshots of one
    # history share the vector's id index, and a module-wide default would keep
    # the first history's ids alive for good.
    items: ConversationItems = attrs.field(factory=ConversationItems)
    tool_calls: ToolCalls = attrs.field(factory=ToolCalls)
    handoffs: tuple[AgentHandoffItem, ...] = ()
    usage: SessionUsage | None = None
    errors: tuple[str, ...] = ()
    error_count: int = 0
    overlapping_speech_count: int = 0
    last_overlapping_speech: OverlappingSpeech | None = None
    false_interruption_count: int = 0
    last_false_interruption: FalseInterruption | None = None
    last_user_transcript: tuple[str, bool] | None = None
    problems: tuple[str, ...] = ()
    problem_count: int = 0
    message_count: int = 0

    def tool_call(self, call_id: str) -> ToolCall | None:
        """The tool call with this ``call_id``, or ``None``; no scan."""
        return self.tool_calls.get(call_id)

    def item(self, item_id: str) -> ConversationItem | None:
        """The conversation item with this id, or ``None``; no scan."""
        return self.items.get(item_id)


# --- decoding helpers -----------------------------------------------------------------


def timestamp_seconds(msg: Message, field: str) -> float | None:
    """``msg.<field>`` (a Timestamp) as seconds since the epoch, or ``None`` when unset."""
    if not msg.HasField(field):
        return None
    ts = getattr(msg, field)
    return int(ts.seconds) + int(ts.nanos) / 1e9


def agent_state_name(value: int) -> AgentStateName | None:
    """The wire ``AgentState`` number as its name; ``None`` for a number we do not know."""
    return _AGENT_STATES.get(value)


def user_state_name(value: int) -> UserStateName | None:
    """The wire ``UserState`` number as its name; ``None`` for a number we do not know."""
    return _USER_STATES.get(value)


def _optional_float(msg: Message, field: str) -> float | None:
    return _finite(getattr(msg, field)) if msg.HasField(field) else None


def _finite(value: float) -> float | None:
    """A number from the wire, or ``None`` when it is NaN or infinite.

    No agent measures a NaN delay, and a NaN in the state would make it
    unequal to itself: a replay would no longer give equal snapshots, and a
    repeated report would look like a change every time.
    """
    number = float(value)
    return number if math.isfinite(number) else None


def _amount(value: float) -> float:
    """A number from the wire that has no "unset": a non-finite one reads as unset (0.0)."""
    return _finite(value) or 0.0


def _unknown_fields(msg: Message) -> str:
    """The field numbers ``msg`` carried that our schema does not know, in words."""
    try:
        numbers = sorted({int(f.field_number) for f in unknown_fields.UnknownFieldSet(msg)})
    except Exception:
        numbers = []
    if not numbers:
        return "no field this version recognises"
    return "field " + ", ".join(str(n) for n in numbers)


def _pairs(mapping: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in mapping.items()))


def _message_metrics(m: pb.MetricsReport) -> MessageMetrics:
    return MessageMetrics(
        started_speaking_at=timestamp_seconds(m, "started_speaking_at"),
        stopped_speaking_at=timestamp_seconds(m, "stopped_speaking_at"),
        transcription_delay=_optional_float(m, "transcription_delay"),
        end_of_turn_delay=_optional_float(m, "end_of_turn_delay"),
        on_user_turn_completed_delay=_optional_float(m, "on_user_turn_completed_delay"),
        llm_node_ttft=_optional_float(m, "llm_node_ttft"),
        llm_node_tps=_optional_float(m, "llm_node_tps"),
        llm_node_ttfs=_optional_float(m, "llm_node_ttfs"),
        tts_node_ttfb=_optional_float(m, "tts_node_ttfb"),
        e2e_latency=_optional_float(m, "e2e_latency"),
    )


def decode_chat_item(
    item: pb.ChatContext.ChatItem, problems: list[str] | None = None
) -> ConversationItem | None:
    """Turn one wire ``ChatItem`` into a :data:`ConversationItem`.

    Returns ``None`` for an item of a kind this version does not know; when
    ``problems`` is given, a sentence saying so is appended to it.
    """
    kind = item.WhichOneof("item")
    if kind == "message":
        m = item.message
        role = _ROLES.get(m.role)
        if role is None and problems is not None:
            problems.append(
                f"The agent sent a chat message with role number {m.role}, which this "
                "version of lkstate does not know; it is shown without a role."
            )
        return MessageItem(
            id=m.id,
            role=role,
            text="\n".join(c.text for c in m.content),
            interrupted=m.interrupted,
            transcript_confidence=_optional_float(m, "transcript_confidence"),
            metrics=_message_metrics(m.metrics),
            created_at=timestamp_seconds(m, "created_at"),
            extra=_pairs(m.extra),
        )
    if kind == "function_call":
        f = item.function_call
        return FunctionCallItem(
            id=f.id,
            call_id=f.call_id,
            name=f.name,
            arguments=f.arguments,
            created_at=timestamp_seconds(f, "created_at"),
            extra=_pairs(f.extra),
        )
    if kind == "function_call_output":
        o = item.function_call_output
        return FunctionCallOutputItem(
            id=o.id,
            call_id=o.call_id,
            name=o.name,
            output=o.output,
            is_error=o.is_error,
            created_at=timestamp_seconds(o, "created_at"),
        )
    if kind == "agent_handoff":
        h = item.agent_handoff
        return AgentHandoffItem(
            id=h.id,
            new_agent_id=h.new_agent_id,
            old_agent_id=h.old_agent_id or None,
            created_at=timestamp_seconds(h, "created_at"),
        )
    if kind == "agent_config_update":
        c = item.agent_config_update
        return AgentConfigUpdateItem(
            id=c.id,
            instructions=c.instructions or None,
            tools_added=tuple(c.tools_added),
            tools_removed=tuple(c.tools_removed),
            created_at=timestamp_seconds(c, "created_at"),
        )
    if problems is not None:
        problems.append(
            "The agent sent a conversation item of a kind this version of lkstate does "
            f"not know ({_unknown_fields(item)}); it was left out."
        )
    return None


def _model_usage(u: pb.ModelUsage) -> ModelUsage | None:
    kind = u.WhichOneof("usage")
    if kind == "llm":
        x = u.llm
        return LLMUsage(
            provider=x.provider,
            model=x.model,
            input_tokens=x.input_tokens,
            input_cached_tokens=x.input_cached_tokens,
            input_audio_tokens=x.input_audio_tokens,
            input_cached_audio_tokens=x.input_cached_audio_tokens,
            input_text_tokens=x.input_text_tokens,
            input_cached_text_tokens=x.input_cached_text_tokens,
            input_image_tokens=x.input_image_tokens,
            input_cached_image_tokens=x.input_cached_image_tokens,
            output_tokens=x.output_tokens,
            output_audio_tokens=x.output_audio_tokens,
            output_text_tokens=x.output_text_tokens,
            session_duration=_amount(x.session_duration),
        )
    if kind == "tts":
        t = u.tts
        return TTSUsage(
            provider=t.provider,
            model=t.model,
            input_tokens=t.input_tokens,
            output_tokens=t.output_tokens,
            characters_count=t.characters_count,
            audio_duration=_amount(t.audio_duration),
        )
    if kind == "stt":
        s = u.stt
        return STTUsage(
            provider=s.provider,
            model=s.model,
            input_tokens=s.input_tokens,
            output_tokens=s.output_tokens,
            audio_duration=_amount(s.audio_duration),
        )
    if kind == "interruption":
        i = u.interruption
        return InterruptionUsage(provider=i.provider, model=i.model, total_requests=i.total_requests)
    if kind == "eot":
        e = u.eot
        return EotUsage(provider=e.provider, model=e.model, total_requests=e.total_requests)
    return None


def decode_session_usage(
    usage: pb.AgentSessionUsage, *, reported_at: float | None = None
) -> SessionUsage:
    """Turn the wire usage report into :class:`SessionUsage`.

    Model kinds this version does not know are left out rather than guessed at.
    """
    models = tuple(m for m in (_model_usage(u) for u in usage.model_usage) if m is not None)
    return SessionUsage(models=models, reported_at=reported_at)


# --- state updates --------------------------------------------------------------------


def _with_problems(state: RemoteSessionState, problems: Iterable[str]) -> RemoteSessionState:
    added = tuple(problems)
    if not added:
        return state
    return attrs.evolve(
        state,
        problems=(state.problems + added)[-MAX_PROBLEMS:],
        problem_count=state.problem_count + len(added),
    )


def _upsert_tool(
    state: RemoteSessionState, call_id: str, update: Callable[[ToolCall], ToolCall]
) -> RemoteSessionState:
    """Apply ``update`` to the call with ``call_id`` (a fresh one if unknown)."""
    position = state.tool_calls.position(call_id)
    if position is None:
        return attrs.evolve(state, tool_calls=state.tool_calls.appended(update(ToolCall(call_id=call_id))))
    old = state.tool_calls[position]
    new = update(old)
    if new == old:
        return state
    return attrs.evolve(state, tool_calls=state.tool_calls.replaced(position, new))


def _tool_started(
    state: RemoteSessionState,
    *,
    call_id: str,
    item_id: str,
    name: str,
    arguments: str,
    at: float | None,
) -> RemoteSessionState:
    def update(call: ToolCall) -> ToolCall:
        return attrs.evolve(
            call,
            item_id=call.item_id or item_id,
            name=call.name or name,
            arguments=call.arguments or arguments,
            started_at=call.started_at if call.started_at is not None else at,
        )

    return _upsert_tool(state, call_id, update)


def _tool_progress(
    state: RemoteSessionState, *, call_id: str, message: str, at: float
) -> RemoteSessionState:
    def update(call: ToolCall) -> ToolCall:
        return attrs.evolve(
            call,
            status="running" if call.status == "started" else call.status,
            progress=(call.progress + (message,))[-MAX_TOOL_PROGRESS:],
            started_at=call.started_at if call.started_at is not None else at,
        )

    return _upsert_tool(state, call_id, update)


def _tool_ended(
    state: RemoteSessionState,
    *,
    call_id: str,
    status: ToolCallStatus,
    message: str | None,
    at: float,
) -> RemoteSessionState:
    def update(call: ToolCall) -> ToolCall:
        final = status in _FINAL_TOOL_STATUSES
        return attrs.evolve(
            call,
            status=call.status if call.status in _FINAL_TOOL_STATUSES else status,
            message=message if message is not None else call.message,
            ended_at=(call.ended_at if call.ended_at is not None or not final else at),
        )

    return _upsert_tool(state, call_id, update)


def _tool_output(
    state: RemoteSessionState,
    *,
    call_id: str,
    name: str,
    output: str,
    is_error: bool,
    at: float | None,
) -> RemoteSessionState:
    def update(call: ToolCall) -> ToolCall:
        status: ToolCallStatus = call.status
        if status not in _FINAL_TOOL_STATUSES:
            status = "error" if is_error else "done"
        return attrs.evolve(
            call,
            name=call.name or name,
            status=status,
            output=output,
            is_error=is_error,
            ended_at=call.ended_at if call.ended_at is not None else at,
        )

    return _upsert_tool(state, call_id, update)


def _tool_reply(
    state: RemoteSessionState, *, update_ids: Iterable[str], status: ToolReplyStatus
) -> RemoteSessionState:
    # An update id is the call id itself (inline), "<call_id>_update_<n>" for a
    # deferred progress update, or "<call_id>_final" for a deferred end; see
    # ToolCallUpdated.id and ToolCallEnded.id in livekit.agents.
    call_ids: list[str] = []
    for update_id in update_ids:
        call_id = update_id
        if state.tool_calls.position(call_id) is None:
            if update_id.endswith("_final"):
                call_id = update_id[: -len("_final")]
            elif "_update_" in update_id:
                call_id = update_id.rsplit("_update_", 1)[0]
        if state.tool_calls.position(call_id) is not None and call_id not in call_ids:
            call_ids.append(call_id)
    for call_id in call_ids:
        state = _upsert_tool(state, call_id, lambda call: attrs.evolve(call, reply_status=status))
    return state


def _add_item(state: RemoteSessionState, item: ConversationItem, at: float) -> RemoteSessionState:
    """Append ``item``, or replace the item with the same id if it differs."""
    position = state.items.position(item.id) if item.id else None
    if position is None:
        new = attrs.evolve(state, items=state.items.appended(item))
    elif state.items[position] == item:
        return state
    else:
        new = attrs.evolve(state, items=state.items.replaced(position, item))
    return _item_side_effects(new, item, at)


def _item_side_effects(
    state: RemoteSessionState, item: ConversationItem, at: float
) -> RemoteSessionState:
    """What an item says beyond itself: handoffs, and tool calls seen as items."""
    if isinstance(item, AgentHandoffItem):
        handoffs = tuple(h for h in state.handoffs if h.id != item.id or not item.id) + (item,)
        return attrs.evolve(state, handoffs=handoffs, agent_id=item.new_agent_id or state.agent_id)
    if isinstance(item, FunctionCallItem):
        return _tool_started(
            state,
            call_id=item.call_id,
            item_id=item.id,
            name=item.name,
            arguments=item.arguments,
            at=item.created_at if item.created_at is not None else at,
        )
    if isinstance(item, FunctionCallOutputItem):
        return _tool_output(
            state,
            call_id=item.call_id,
            name=item.name,
            output=item.output,
            is_error=item.is_error,
            at=item.created_at if item.created_at is not None else at,
        )
    return state


def _apply_event(
    state: RemoteSessionState, ev: pb.AgentSessionEvent, at: float, problems: list[str]
) -> RemoteSessionState:
    created = timestamp_seconds(ev, "created_at")
    when = created if created is not None else at
    kind = ev.WhichOneof("event")

    if kind == "agent_state_changed":
        value = ev.agent_state_changed.new_state
        agent_state = _AGENT_STATES.get(value)
        if agent_state is None:
            problems.append(
                f"The agent reported agent state number {value}, which this version of "
                "lkstate does not know; the previous state was kept."
            )
            return state
        if agent_state == state.agent_state:
            return state
        return attrs.evolve(state, agent_state=agent_state)

    if kind == "user_state_changed":
        value = ev.user_state_changed.new_state
        user_state = _USER_STATES.get(value)
        if user_state is None:
            problems.append(
                f"The agent reported user state number {value}, which this version of "
                "lkstate does not know; the previous state was kept."
            )
            return state
        if user_state == state.user_state:
            return state
        return attrs.evolve(state, user_state=user_state)

    if kind == "conversation_item_added":
        item = decode_chat_item(ev.conversation_item_added.item, problems)
        return state if item is None else _add_item(state, item, when)

    if kind == "user_input_transcribed":
        t = ev.user_input_transcribed
        transcript = (t.transcript, t.is_final)
        if transcript == state.last_user_transcript:
            return state
        return attrs.evolve(state, last_user_transcript=transcript)

    if kind == "function_tools_started":
        for fc in ev.function_tools_started.function_calls:
            state = _tool_started(
                state,
                call_id=fc.call_id,
                item_id=fc.id,
                name=fc.name,
                arguments=fc.arguments,
                at=when,
            )
        return state

    if kind == "function_tools_executed":
        executed = ev.function_tools_executed
        for fc in executed.function_calls:
            state = _tool_started(
                state,
                call_id=fc.call_id,
                item_id=fc.id,
                name=fc.name,
                arguments=fc.arguments,
                at=None,
            )
        for out in executed.function_call_outputs:
            state = _tool_output(
                state,
                call_id=out.call_id,
                name=out.name,
                output=out.output,
                is_error=out.is_error,
                at=when,
            )
        return state

    if kind == "tool_execution_updated":
        return _apply_tool_update(state, ev.tool_execution_updated, when, problems)

    if kind == "session_usage_updated":
        usage = decode_session_usage(ev.session_usage_updated.usage, reported_at=when)
        if usage == state.usage:
            return state
        return attrs.evolve(state, usage=usage)

    if kind == "error":
        message = ev.error.message or "The agent reported an error without a message."
        return attrs.evolve(
            state,
            errors=(state.errors + (message,))[-MAX_ERRORS:],
            error_count=state.error_count + 1,
        )

    if kind == "overlapping_speech":
        o = ev.overlapping_speech
        return attrs.evolve(
            state,
            overlapping_speech_count=state.overlapping_speech_count + 1,
            last_overlapping_speech=OverlappingSpeech(
                is_interruption=o.is_interruption,
                detection_delay=_amount(o.detection_delay),
                detected_at=timestamp_seconds(o, "detected_at"),
                overlap_started_at=timestamp_seconds(o, "overlap_started_at"),
            ),
        )

    if kind == "agent_false_interruption":
        return attrs.evolve(
            state,
            false_interruption_count=state.false_interruption_count + 1,
            last_false_interruption=FalseInterruption(
                resumed=ev.agent_false_interruption.resumed, at=when
            ),
        )

    if kind in ("amd_prediction", "eot_prediction", "debug_message"):
        # Known, and deliberately not part of the state: answering-machine
        # detection, per-turn end-of-turn model scores and free-form debug
        # payloads say nothing a session UI shows.
        return state

    problems.append(
        "The agent sent a session event of a kind this version of lkstate does not know "
        f"({_unknown_fields(ev)}); it was ignored. The agent may be newer than lkstate."
    )
    return state


def _apply_tool_update(
    state: RemoteSessionState,
    update: pb.AgentSessionEvent.ToolExecutionUpdated,
    when: float,
    problems: list[str],
) -> RemoteSessionState:
    kind = update.WhichOneof("update")
    if kind == "started":
        fc = update.started.function_call
        return _tool_started(
            state,
            call_id=fc.call_id,
            item_id=fc.id,
            name=fc.name,
            arguments=fc.arguments,
            at=when,
        )
    if kind == "call_updated":
        u = update.call_updated
        return _tool_progress(state, call_id=u.call_id, message=u.message, at=when)
    if kind == "ended":
        e = update.ended
        status = _TOOL_END_STATUSES.get(e.status)
        if status is None:
            problems.append(
                f"The agent ended tool call {e.call_id!r} with status number {e.status}, "
                "which this version of lkstate does not know; it is shown as an error."
            )
            status = "error"
        message = e.message if e.HasField("message") else None
        return _tool_ended(state, call_id=e.call_id, status=status, message=message, at=when)
    if kind == "reply_updated":
        r = update.reply_updated
        reply_status = _TOOL_REPLY_STATUSES.get(r.status)
        if reply_status is None:
            problems.append(
                f"The agent reported tool reply status number {r.status}, which this "
                "version of lkstate does not know; it was ignored."
            )
            return state
        return _tool_reply(state, update_ids=r.update_ids, status=reply_status)
    problems.append(
        "The agent sent a tool update of a kind this version of lkstate does not know "
        f"({_unknown_fields(update)}); it was ignored."
    )
    return state


def _apply(
    state: RemoteSessionState, payload: bytes, at: float, max_bytes: int
) -> RemoteSessionState:
    size = len(payload)
    if size > max_bytes:
        if payload[:1] == _RESPONSE_TAG:
            return state
        return _with_problems(
            state,
            [
                f"Ignored a remote-session message of {size:,} bytes from the agent: "
                f"larger than the {max_bytes:,}-byte limit."
            ],
        )
    if size == 0:
        return _with_problems(state, ["Ignored an empty remote-session message from the agent."])

    msg = pb.AgentSessionMessage()
    try:
        msg.ParseFromString(payload)
    except DecodeError:
        return _with_problems(
            state,
            [
                f"Ignored a remote-session message of {size:,} bytes from the agent that is "
                "not a valid AgentSessionMessage (corrupt or cut short)."
            ],
        )

    kind = msg.WhichOneof("message")
    if kind != "event":
        if kind is None:
            return _with_problems(
                state,
                [
                    "Ignored a remote-session message of a kind this version of lkstate does "
                    f"not know ({_unknown_fields(msg)}). The agent may be newer than lkstate."
                ],
            )
        # Responses belong to the client; requests and console audio are not
        # addressed to a state reader.
        return state

    problems: list[str] = []
    new = _apply_event(state, msg.event, at, problems)
    new = _with_problems(new, problems)
    if new is state:
        return state
    return attrs.evolve(new, message_count=state.message_count + 1)


def apply_remote_payload(
    state: RemoteSessionState,
    payload: bytes,
    *,
    at: float,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> RemoteSessionState:
    """Fold one ``lk.agent.session`` payload from the tracked agent into ``state``.

    ``at`` is when the payload was received (seconds since the epoch); it stands
    in for the agent's timestamp only when an event has none. Events update the
    state; responses, requests and console audio are ignored. A payload that is
    garbage, cut short, larger than ``max_bytes`` (unless it is a response) or
    of a kind this version does not know adds a sentence to ``problems`` and
    changes nothing else.

    Returns ``state`` itself — the identical object — when nothing changed.
    Never raises.
    """
    try:
        return _apply(state, bytes(payload), at, max_bytes)
    except Exception as exc:  # the reducer must survive anything the wire brings
        return _with_problems(
            state,
            [
                "lkstate failed on a remote-session message from the agent "
                f"({type(exc).__name__}: {exc}); it was ignored. This is a bug in lkstate."
            ],
        )


@attrs.frozen
class ChatHistoryAnswer:
    """What the agent answered to one ``get_chat_history`` request.

    ``items`` are the conversation items this version can read, oldest first;
    ``unknown_items`` counts those of a kind it cannot (left out: a newer
    framework's, nothing to show). ``error`` is set, in words, when the answer
    is not a history at all (the agent's own error, or an answer of another
    kind) — then there are no items.
    """

    items: tuple[ConversationItem, ...] = ()
    unknown_items: int = 0
    error: str | None = None


def chat_history_answer(payload: bytes, request_id: str) -> ChatHistoryAnswer | None:
    """The answer to chat-history request ``request_id`` in ``payload``, or ``None`` if it is not one.

    ``None`` for anything that is not a response carrying that request id:
    events, answers to other requests (the framework's session host sends its
    answers to the whole room, so other clients' come by too), bytes that do
    not parse (:func:`apply_remote_payload` already reports those). Pure and
    never raises.
    """
    if payload[:1] != _RESPONSE_TAG:
        return None
    msg = pb.AgentSessionMessage()
    try:
        msg.ParseFromString(bytes(payload))
    except (DecodeError, RecursionError, ValueError):
        return None
    if msg.WhichOneof("message") != "response" or msg.response.request_id != request_id:
        return None
    response = msg.response
    if response.error:
        return ChatHistoryAnswer(error=f"The agent could not give its chat history: {response.error[:500]}")
    kind = response.WhichOneof("response")
    if kind != "get_chat_history":
        return ChatHistoryAnswer(
            error="The agent answered the request for its chat history with something else "
            f"({kind or 'an empty answer'}); nothing was merged. It may run a framework version "
            "this lkstate does not understand."
        )
    items: list[ConversationItem] = []
    unknown = 0
    for wire_item in response.get_chat_history.items:
        item = decode_chat_item(wire_item)
        if item is None:
            unknown += 1
        else:
            items.append(item)
    return ChatHistoryAnswer(items=tuple(items), unknown_items=unknown)


def _one_per_id(items: Iterable[ConversationItem]) -> list[ConversationItem]:
    """``items`` with a repeated id kept once: the later version, where the first stood.

    The same rule as live: an item added again under a known id replaces the
    earlier one. A history the agent sends never repeats an id, but the wire
    is not trusted, and the state holds one item per id.
    """
    kept: list[ConversationItem] = []
    positions: dict[str, int] = {}
    for item in items:
        position = positions.get(item.id) if item.id else None
        if position is None:
            if item.id:
                positions[item.id] = len(kept)
            kept.append(item)
        else:
            kept[position] = item
    return kept


def merge_conversation_items(
    state: RemoteSessionState, items: Iterable[ConversationItem], *, at: float
) -> RemoteSessionState:
    """Seed the state with a chat history fetched from the agent.

    A client that joins late misses the items broadcast before it arrived;
    ``RemoteSessionClient.get_chat_history()`` fetches them. The history's order
    wins for the items it contains (an item we also saw live takes the
    history's version), and items seen live that the history does not hold yet
    follow it. Tool calls, handoffs and ``agent_id`` are updated from the items.
    Costs one pass over both lists; returns ``state`` itself when nothing
    changed.
    """
    history = _one_per_id(items)
    history_ids = {item.id for item in history if item.id}
    merged: list[ConversationItem] = list(history)
    merged.extend(item for item in state.items if not item.id or item.id not in history_ids)
    if len(merged) == len(state.items) and all(a == b for a, b in zip(merged, state.items)):
        return state

    new = attrs.evolve(state, items=ConversationItems(merged), handoffs=())
    for item in merged:
        if isinstance(item, AgentHandoffItem):
            new = _item_side_effects(new, item, at)
    for item in history:
        if not isinstance(item, AgentHandoffItem):
            new = _item_side_effects(new, item, at)
    return new
