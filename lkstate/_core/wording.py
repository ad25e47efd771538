"""The state in the words a person reads: one wording for every front end.

The Textual, Qt and Gradio clients each show the same things — what the agent
is doing, the microphone, speech kept before the agent was ready, whether a
typed message went out, what went wrong — and a person switching between them
should read the same sentences. So the sentences live here, as pure functions
of the snapshot with no UI framework in sight, and each adapter only decides
how they look: markup, icons, fonts, layout.

Every description carries a :class:`Tone` so that colour never has to carry
meaning on its own: the words always say it too, and the tone only repeats
it. Each tone has one colour (:attr:`Tone.colour`), the same in the terminal,
on the desktop and in the browser, so "buffering" is the same cyan everywhere.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import cast

import attrs

from .messages import AgentExpression, DeliveryStatus, Message, MessageKind, MessageOrigin, Role
from .remote_state import ModelUsage, ToolCall, ToolCallStatus
from .rpc import RpcCall, RpcDirection, RpcStatus
from .state import (
    AgentStatus,
    ConnectionStatus,
    LocalTrackState,
    PreConnectState,
    PreConnectStatus,
    SessionState,
)

__all__ = [
    "AgentWords",
    "ExpressionWords",
    "MessageWords",
    "PALETTE",
    "ToolCallWords",
    "ProblemLine",
    "ProblemsWords",
    "RpcCallWords",
    "RpcWords",
    "Tone",
    "UsageLine",
    "Words",
    "delivery_words",
    "describe_agent",
    "describe_microphone",
    "describe_camera",
    "describe_expression",
    "describe_message",
    "describe_preconnect",
    "describe_problems",
    "describe_rpc",
    "describe_rpc_call",
    "describe_tool_call",
    "describe_usage",
    "speaker_label",
    "tool_arguments",
    "tool_call_tone",
]


class Tone(enum.StrEnum):
    """How a description should feel, for a front end to turn into a colour.

    Ordered from nothing going on to something wrong. Buffering, thinking and
    speaking are told apart from plain activity because every front end draws
    them apart; one that wants fewer colours maps several tones to one.
    """

    NEUTRAL = "neutral"
    """Nothing is happening: not connected, microphone off."""
    WAITING = "waiting"
    """Something is on its way: connecting, waiting for or starting the agent, sending."""
    BUFFERING = "buffering"
    """Listening before the agent is ready: what is said is kept for it."""
    OK = "ok"
    """Working as it should: the agent listens, the microphone is live, a message went out."""
    THINKING = "thinking"
    """The agent is working on a reply."""
    SPEAKING = "speaking"
    """The agent is replying."""
    ERROR = "error"
    """Something failed; the words say what."""

    @property
    def colour(self) -> str:
        """This tone's colour (``"#0891b2"``), the same in every front end; see :data:`PALETTE`."""
        return PALETTE[self]


PALETTE: Mapping[Tone, str] = MappingProxyType(
    {
        Tone.NEUTRAL: "#6b7280",  # grey
        Tone.WAITING: "#d97706",  # amber
        Tone.BUFFERING: "#0891b2",  # cyan
        Tone.OK: "#16a34a",  # green
        Tone.THINKING: "#7c3aed",  # violet
        Tone.SPEAKING: "#2563eb",  # blue
        Tone.ERROR: "#dc2626",  # red
    }
)
"""One colour per tone, for every front end: a terminal, a desktop window and a web page.

Mid-tone colours, chosen to read on white, on light grey and on a dark
terminal; each differs from the others in hue, so no two tones look alike.
"""


@attrs.frozen
class Words:
    """A few words (``headline``: a title, a toggle's label), one sentence of ``detail``, and a tone."""

    headline: str
    detail: str
    tone: Tone


# -- the agent ----------------------------------------------------------------------


@attrs.frozen
class AgentWords(Words):
    """The agent indicator: a headline, one sentence of detail, a tone, and the facts behind it.

    ``reasons`` lists why the agent is unavailable (empty otherwise); each
    front end shows them its own way (a list, a tooltip, after the detail).
    ``status`` is the agent status the words were chosen for and ``name``
    the agent's name (or identity) when one is known. ``expression`` is how
    the agent sounds in the turn it is speaking, when the turn says.
    """

    status: AgentStatus
    name: str | None = None
    reasons: tuple[str, ...] = ()
    expression: ExpressionWords | None = None


def describe_agent(state: SessionState) -> AgentWords:
    """The agent and the connection, as one headline a person understands at a glance.

    The connection speaks while it is missing or being regained (nothing else
    works then); after that, the agent's own status does. Listening early
    (pre-connect buffering) wins over connecting, since speaking already works.
    """
    connection, agent = state.connection, state.agent
    status = agent.status
    name = agent.name or agent.identity

    def words(headline: str, detail: str, tone: Tone, reasons: tuple[str, ...] = ()) -> AgentWords:
        return AgentWords(headline, detail, tone, status, name, reasons)

    def present(headline: str, detail: str, tone: Tone) -> AgentWords:
        """Words for an agent in the room; while it speaks, how it sounds when its turn says.

        Only while speaking: the expression belongs to the turn being said,
        and "Listening · sounds surprised" would describe a turn that is over
        (the message keeps it).
        """
        speaking = status is AgentStatus.SPEAKING
        expression = describe_expression(agent.expression) if speaking else None
        return AgentWords(headline, detail, tone, status, name, (), expression)

    if connection.status is ConnectionStatus.DISCONNECTED:
        if connection.error:
            return words("Could not connect", connection.error, Tone.ERROR)
        if connection.disconnect_reason:
            return words("Disconnected", _sentence(connection.disconnect_reason, "Connect to talk again."), Tone.NEUTRAL)
        return words("Not connected", "Connect to start talking to the agent.", Tone.NEUTRAL)
    if connection.status is ConnectionStatus.RECONNECTING:
        return words("Reconnecting…", "The connection dropped; trying to get it back.", Tone.WAITING)
    who = name or "The agent"
    unknown = f" (it says it is {agent.unknown_state!r})" if agent.unknown_state else ""
    match status:
        case AgentStatus.FAILED:
            reasons = agent.failure_reasons or ("The agent is not available.",)
            return words(
                "Agent unavailable", "Still connected: an agent that joins later is picked up.", Tone.ERROR, reasons
            )
        case AgentStatus.PRE_CONNECT_BUFFERING:
            return words(
                "Listening (buffering)",
                "Speak now: what you say is kept and handed to the agent as soon as it is ready.",
                Tone.BUFFERING,
            )
        case AgentStatus.CONNECTING | AgentStatus.DISCONNECTED:
            # The room and server have their own place in every front end; a
            # headline sentence stays short enough to read in one go.
            if connection.status is ConnectionStatus.CONNECTING:
                return words("Connecting…", "Joining the room.", Tone.WAITING)
            return words("Waiting for the agent…", "Connected to the room; the agent has not joined yet.", Tone.WAITING)
        case AgentStatus.INITIALIZING:
            return present("Agent starting…", f"{who} joined and is getting ready{unknown}.", Tone.WAITING)
        case AgentStatus.IDLE:
            return present("Agent idle", f"{who} is present but not listening yet{unknown}.", Tone.WAITING)
        case AgentStatus.LISTENING:
            return present("Listening", f"{who} is listening. Speak, or type a message.", Tone.OK)
        case AgentStatus.THINKING:
            return present("Thinking…", f"{who} is working on a reply.", Tone.THINKING)
        case AgentStatus.SPEAKING:
            return present("Speaking", f"{who} is replying.", Tone.SPEAKING)


def _sentence(first: str, then: str) -> str:
    first = first.strip()
    if first and first[-1] not in ".!?…":
        first += "."
    return f"{first} {then}"


# -- the microphone -------------------------------------------------------------------


def describe_microphone(microphone: LocalTrackState) -> Words:
    """What the microphone is doing, in a toggle's few words; the reason in full when it cannot work."""
    if microphone.error:
        return Words("No microphone", microphone.error, Tone.ERROR)
    device = f" ({microphone.device})" if microphone.device else ""
    if not microphone.enabled:
        return Words("Mic off", "The microphone is off.", Tone.NEUTRAL)
    if microphone.muted:
        return Words("Mic muted", f"The microphone is muted{device}.", Tone.NEUTRAL)
    if microphone.published:
        return Words("Mic on", f"The agent can hear you{device}.", Tone.OK)
    return Words("Mic on", f"The microphone is on{device}; it is sent once connected.", Tone.WAITING)


def describe_camera(camera: LocalTrackState) -> Words:
    """What the camera is doing, in a toggle's few words; the reason in full when it cannot work."""
    if camera.error:
        headline = "No camera" if camera.error.startswith("No camera") else "Camera failed"
        return Words(headline, camera.error, Tone.ERROR)
    device = f" ({camera.device})" if camera.device else ""
    if not camera.enabled:
        return Words("Camera off", "The camera is off.", Tone.NEUTRAL)
    if camera.muted:
        return Words("Camera paused", f"The camera is paused{device}.", Tone.NEUTRAL)
    if camera.published:
        return Words("Camera on", f"The room sees your camera{device}.", Tone.OK)
    return Words("Camera on", f"The camera is on{device}; it is sent once connected.", Tone.WAITING)


# -- speech kept before the agent was ready ----------------------------------------------


def describe_preconnect(preconnect: PreConnectState) -> Words | None:
    """What happens to the speech kept for the agent; ``None`` when there is none to speak of."""
    seconds = f"{preconnect.seconds:.1f} s"
    to = preconnect.destination or "the agent"
    match preconnect.status:
        case PreConnectStatus.IDLE:
            return None
        case PreConnectStatus.RECORDING:
            return Words("Early speech", f"{seconds} kept until the agent is ready.", Tone.BUFFERING)
        case PreConnectStatus.SENDING:
            return Words("Early speech", f"Handing {seconds} over to {to}…", Tone.WAITING)
        case PreConnectStatus.SENT if preconnect.seconds == 0:
            # An empty recording is handed over only to release an agent that waits for one.
            return Words("Early speech", "Nothing was recorded before the agent was ready.", Tone.NEUTRAL)
        case PreConnectStatus.SENT:
            return Words("Early speech", f"{seconds} handed over to {to}.", Tone.OK)
        case PreConnectStatus.EXPIRED:
            detail = preconnect.detail or "The agent took too long to take it."
            return Words("Early speech dropped", detail, Tone.ERROR)
        case PreConnectStatus.FAILED:
            detail = preconnect.detail or "It could not be sent to the agent."
            return Words("Early speech lost", detail, Tone.ERROR)


# -- how the agent sounds ---------------------------------------------------------------


@attrs.frozen
class ExpressionWords(Words):
    """How the agent delivers what it says (its ``lk.expression``), in words.

    ``headline`` is the mood the framework normalised it to (``"surprised"``),
    or the provider's own words when the agent sent no mood; ``detail`` is the
    provider's words when they add something (``"warm surprise"``), else empty.
    Front ends show :attr:`text` beside the agent's status and on the agent's
    messages, so all of them read "sounds surprised (warm surprise)".
    """

    @property
    def text(self) -> str:
        """``"sounds surprised (warm surprise)"``, or ``"sounds calm"`` when the detail adds nothing."""
        return f"sounds {self.headline}" + (f" ({self.detail})" if self.detail else "")


def describe_expression(expression: AgentExpression | None) -> ExpressionWords | None:
    """How the agent sounds, or ``None`` when it said nothing about it (most agents).

    The tone is the speaking tone: an expression is part of the agent's
    voice, and its mood is a fact to read, not good or bad news.
    """
    if expression is None:
        return None
    headline = expression.mood or expression.label
    detail = expression.label if expression.label.casefold() != headline.casefold() else ""
    return ExpressionWords(headline, detail, Tone.SPEAKING)


# -- messages ---------------------------------------------------------------------------


def speaker_label(message: Message, *, agent_name: str | None = None) -> str:
    """Who said it, as a conversation shows it: "You", the agent's name, or the sender."""
    if message.role is Role.USER:
        return "You"
    if message.role is Role.AGENT:
        return agent_name or "Agent"
    return message.sender


def delivery_words(message: Message) -> tuple[str, Tone] | None:
    """Whether a typed message went out (``"sending…"``, ``"sent"``, ``"not sent"``); ``None`` for others."""
    match message.delivery:
        case DeliveryStatus.SENDING:
            return "sending…", Tone.WAITING
        case DeliveryStatus.SENT:
            return "sent", Tone.OK
        case DeliveryStatus.FAILED:
            return "not sent", Tone.ERROR
        case None:
            return None


@attrs.frozen
class MessageWords:
    """What the line above a message says: who, how, how the agent sounds, whether still spoken, delivery, interruption.

    ``notes`` lists the words after the speaker in the order every front end
    shows them (``("typed", "sent")``, ``("spoken", "speaking…")``,
    ``("spoken", "sounds happy (bright)", "interrupted")``); ``delivery_tone`` is the delivery's tone.
    """

    speaker: str
    how: str
    """``"typed"`` for chat, ``"spoken"`` for a transcript."""
    pending: str | None
    """``"speaking…"`` while the words are still being recognised (an interim transcript)."""
    delivery: str | None
    delivery_tone: Tone | None
    interrupted: str | None
    """``"interrupted"`` when the speech was cut off."""
    expression: str | None = None
    """How the agent sounds in this message (:attr:`ExpressionWords.text`), when its ``lk.expression`` says."""
    earlier: str | None = None
    """``"before you joined"`` (from the agent's history) or ``"earlier session"`` (restored);
    ``None`` for what this session heard. A front end may also dim such messages."""

    @property
    def notes(self) -> tuple[str, ...]:
        notes = (self.how, self.earlier, self.expression, self.pending, self.delivery, self.interrupted)
        return tuple(note for note in notes if note)


def describe_message(message: Message, *, agent_name: str | None = None) -> MessageWords:
    """The words around one message (its text is shown as it came)."""
    delivery = delivery_words(message)
    return MessageWords(
        speaker=speaker_label(message, agent_name=agent_name),
        how="typed" if message.kind is MessageKind.CHAT else "spoken",
        pending=None if message.final else "speaking…",
        delivery=delivery[0] if delivery else None,
        delivery_tone=delivery[1] if delivery else None,
        interrupted="interrupted" if message.interrupted else None,
        expression=expression.text if (expression := describe_expression(message.expression)) else None,
        earlier=_EARLIER.get(message.origin),
    )


_EARLIER = {MessageOrigin.AGENT_HISTORY: "before you joined", MessageOrigin.RESTORED: "earlier session"}


# -- problems ------------------------------------------------------------------------------


@attrs.frozen
class ProblemLine:
    """One thing that went wrong: where it came from (``agent`` for what the agent reported) and what."""

    source: str
    message: str


@attrs.frozen
class ProblemsWords:
    """What went wrong, oldest first, and a headline counting it."""

    lines: tuple[ProblemLine, ...] = ()

    @property
    def headline(self) -> str:
        """``"1 problem"``, ``"3 problems"``; empty when there are none."""
        count = len(self.lines)
        if not count:
            return ""
        return f"{count} problem{'' if count == 1 else 's'}"

    def __bool__(self) -> bool:
        return bool(self.lines)


def describe_problems(
    state: SessionState, *, agent_errors_dismissed: int = 0, skip_connection_error: bool = True
) -> ProblemsWords:
    """The session's problems, then the errors the agent reported, oldest first.

    A problem that only repeats ``state.connection.error`` is left out (unless
    ``skip_connection_error`` is false): the agent indicator already says it. Agent errors are not part of
    ``state.problems`` (dismissing problems does not clear them), so a front
    end that lets a person dismiss them remembers ``state.remote.error_count``
    at that moment and passes it as ``agent_errors_dismissed``.
    """
    error = state.connection.error if skip_connection_error else None
    lines = [ProblemLine(p.source, p.message) for p in state.problems if p.message != error]
    remote = state.remote
    fresh = min(len(remote.errors), max(0, remote.error_count - agent_errors_dismissed))
    if fresh:
        lines += [ProblemLine("agent", message) for message in remote.errors[-fresh:]]
    return ProblemsWords(tuple(lines))


# -- the agent's tools and models ------------------------------------------------------------


def tool_arguments(raw: str) -> tuple[tuple[str, object], ...] | None:
    """A tool call's JSON arguments as ``(name, value)`` pairs; ``None`` when they are not a JSON object.

    Empty arguments are an empty object. Front ends format the pairs their own
    way (``city="Paris"`` as code, ``city: Paris`` as prose) and show raw text
    as it came when this is ``None``.
    """
    text = raw.strip()
    try:
        parsed: object = json.loads(text) if text else {}
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    return tuple((str(key), value) for key, value in cast("dict[object, object]", parsed).items())


_TOOL_TONES: dict[str, Tone] = {
    "started": Tone.WAITING,
    "running": Tone.WAITING,
    "done": Tone.OK,
    "error": Tone.ERROR,
    "cancelled": Tone.NEUTRAL,
}


def tool_call_tone(status: ToolCallStatus | str) -> Tone:
    """The tone of a tool call's status: waiting while it runs, ok or error once it ended."""
    return _TOOL_TONES.get(status, Tone.NEUTRAL)


@attrs.frozen
class ToolCallWords(Words):
    """A tool call: its name (``headline``), what came of it (``detail``), a tone, and the status word.

    ``detail`` is the latest progress while it runs, then its result or error
    message (empty when there is none yet). ``status`` is the call's status as
    the agent reported it (``"running"``, ``"done"``, ``"error"``…); front ends
    show it as a badge. Arguments are formatted by each front end from
    :func:`tool_arguments`.
    """

    status: str


def describe_tool_call(call: ToolCall) -> ToolCallWords:
    """One tool call in words."""
    if call.status in ("started", "running"):
        detail = call.progress[-1] if call.progress else ""
    else:
        detail = call.message if call.message is not None else (call.output or "")
    return ToolCallWords(call.name or call.call_id, detail, tool_call_tone(call.status), call.status)


@attrs.frozen
class UsageLine:
    """One model's totals: ``title`` (``"LLM lkstate/scripted"``) and ``figures`` (``"42 in · 10 out tokens"``)."""

    kind: str
    model: str
    figures: str

    @property
    def title(self) -> str:
        return f"{self.kind} {self.model}"


_USAGE_KINDS = {"llm": "LLM", "tts": "TTS", "stt": "STT", "interruption": "Interruptions", "eot": "End of turn"}


def describe_usage(models: tuple[ModelUsage, ...]) -> tuple[UsageLine, ...]:
    """What each model the agent reported used so far, in its order."""
    lines: list[UsageLine] = []
    for usage in models:
        model = "/".join(part for part in (usage.provider, usage.model) if part) or usage.kind
        kind = _USAGE_KINDS.get(usage.kind, usage.kind.upper())
        match usage.kind:
            case "llm":
                cached = f" ({usage.input_cached_tokens:,} cached)" if usage.input_cached_tokens else ""
                figures = f"{usage.input_tokens:,} in{cached} · {usage.output_tokens:,} out tokens"
            case "tts":
                figures = f"{usage.characters_count:,} chars · {usage.audio_duration:.1f} s audio"
            case "stt":
                figures = f"{usage.audio_duration:.1f} s audio heard"
            case "interruption" | "eot":
                figures = f"{usage.total_requests:,} request{'' if usage.total_requests == 1 else 's'}"
        lines.append(UsageLine(kind, model, figures))
    return tuple(lines)


# -- RPC calls -----------------------------------------------------------------------------------


_RPC_STATUS: dict[RpcStatus, tuple[str, Tone]] = {
    RpcStatus.PENDING: ("calling…", Tone.WAITING),
    RpcStatus.SUCCEEDED: ("ok", Tone.OK),
    RpcStatus.FAILED: ("failed", Tone.ERROR),
    RpcStatus.REFUSED: ("refused", Tone.ERROR),
    RpcStatus.TIMED_OUT: ("timed out", Tone.ERROR),
}


@attrs.frozen
class RpcCallWords(Words):
    """One RPC call: who called whom for what (``headline``), why it failed (``detail``), a tone, the outcome.

    ``headline`` is ``"agent → app: get_location"``: the app is this
    program, the agent any agent in the room, anyone else their identity (a
    refused caller is named). ``status`` is a short word (``"ok"``,
    ``"failed"``, ``"refused"``, ``"timed out"``, ``"calling…"``) a front end
    shows as a badge; ``took`` how long the answer took (``"12 ms"``), once
    there is one. ``detail`` is the reason in full when the call did not
    succeed, empty otherwise.
    """

    route: str
    """``"agent → app"``: the caller, an arrow, the callee."""
    method: str
    status: str
    took: str | None

    @property
    def summary(self) -> str:
        """The call on one line: ``"agent → app: get_location · ok · 12 ms"``."""
        return " · ".join(part for part in (self.headline, self.status, self.took) if part)


def describe_rpc_call(call: RpcCall, *, agents: Collection[str] = ()) -> RpcCallWords:
    """One RPC call in words; ``agents`` are the identities to call "agent" (the state's agents).

    Time comes from the call itself (its start and its end), never from a
    clock, so a replay words a call as the live session did.
    """
    incoming = call.direction is RpcDirection.INCOMING

    def party(identity: str, local: bool) -> str:
        if local:
            return "app"
        return "agent" if identity in agents else (identity or "someone")

    route = f"{party(call.caller, not incoming)} → {party(call.callee, incoming)}"
    status, tone = _RPC_STATUS.get(call.status, (str(call.status), Tone.NEUTRAL))
    detail = "" if call.status in (RpcStatus.SUCCEEDED, RpcStatus.PENDING) else (call.error or "")
    duration = call.duration
    took = None if duration is None or call.status is RpcStatus.REFUSED else _duration(duration)
    return RpcCallWords(f"{route}: {call.method}", detail, tone, route, call.method, status, took)


def _duration(seconds: float) -> str:
    if seconds < 0.0005:
        return "<1 ms"  # answered in the same process: "0 ms" would read as not measured
    if seconds < 1.0:
        return f"{round(seconds * 1000)} ms"
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


@attrs.frozen
class RpcWords:
    """The session's RPC activity for a small panel: the newest calls first, and what is not shown.

    Falsy when the session has seen no call, so a front end hides the panel
    until something happened (registering methods alone is not activity).
    """

    calls: tuple[RpcCallWords, ...] = ()
    """The newest calls, newest first."""
    total: int = 0
    """Every call the session has seen, those no longer listed included."""
    methods: tuple[str, ...] = ()
    """The methods this app answers."""

    @property
    def headline(self) -> str:
        """``"RPC · 1 call"``, ``"RPC · 3 calls"``; empty when there were none."""
        if not self.total:
            return ""
        return f"RPC · {self.total} call{'' if self.total == 1 else 's'}"

    @property
    def earlier(self) -> str:
        """``"… and 4 earlier"`` when not every call is listed, else empty."""
        hidden = self.total - len(self.calls)
        return f"… and {hidden} earlier" if hidden > 0 else ""

    @property
    def answers(self) -> str:
        """``"This app answers get_location, ui.confirm."``, or empty when it registered none."""
        return f"This app answers {', '.join(self.methods)}." if self.methods else ""

    def __bool__(self) -> bool:
        return self.total > 0


def describe_rpc(state: SessionState, *, limit: int = 4) -> RpcWords:
    """The last ``limit`` RPC calls of the session in words, newest first (see :class:`RpcWords`)."""
    rpc, agent = state.rpc, state.agent
    agents = {identity for identity in (agent.identity, agent.avatar_identity) if identity}
    agents.update(p.identity for p in agent.agents)
    shown = rpc.calls[-limit:] if limit > 0 else ()
    calls = tuple(describe_rpc_call(call, agents=agents) for call in reversed(shown))
    return RpcWords(calls, rpc.total, rpc.methods)
