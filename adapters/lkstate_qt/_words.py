"""What the widgets say: snapshot slices turned into words and colours.

Kept apart from the widgets so the wording is plain functions of the state,
one place to read (and test) what a user is told in each situation, with no
Qt in the way.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, cast

import attrs

from lkstate import (
    AgentStatus,
    ConnectionStatus,
    DeliveryStatus,
    LocalTrackState,
    Message,
    MessageKind,
    PreConnectState,
    PreConnectStatus,
    Role,
    SessionState,
)

if TYPE_CHECKING:
    from lkstate._remote_state import ModelUsage, ToolCall

__all__ = [
    "Palette",
    "StatusWords",
    "agent_status_words",
    "message_header",
    "microphone_words",
    "preconnect_words",
    "tool_call_words",
    "usage_lines",
]


class Palette:
    """The colours of the kit. Status colours are chosen to read on white and on grey."""

    GREY = "#6b7280"
    SLATE = "#64748b"
    AMBER = "#d97706"
    CYAN = "#0891b2"
    GREEN = "#16a34a"
    VIOLET = "#7c3aed"
    BLUE = "#2563eb"
    RED = "#dc2626"
    TEXT = "#111827"
    MUTED = "#6b7280"
    BORDER = "#e5e7eb"


@attrs.frozen
class StatusWords:
    """A headline (``title``), one sentence of detail, and the status colour."""

    title: str
    detail: str
    color: str


def _agent_label(state: SessionState) -> str:
    return state.agent.name or state.agent.identity or "The agent"


def agent_status_words(state: SessionState) -> StatusWords:
    """How the agent indicator describes the session right now."""
    connection, agent = state.connection, state.agent
    where = connection.room_name or "the room"
    if agent.status is AgentStatus.FAILED:
        reasons = " ".join(agent.failure_reasons) or "The agent is not available."
        return StatusWords("Agent unavailable", reasons, Palette.RED)
    if connection.status is ConnectionStatus.DISCONNECTED:
        if connection.error:
            return StatusWords("Could not connect", connection.error, Palette.RED)
        if connection.disconnect_reason:
            return StatusWords("Disconnected", connection.disconnect_reason, Palette.GREY)
        return StatusWords("Not connected", "Connect to start talking to the agent.", Palette.GREY)
    if connection.status is ConnectionStatus.RECONNECTING:
        return StatusWords("Reconnecting…", "The connection dropped; getting it back.", Palette.AMBER)
    name = _agent_label(state)
    match agent.status:
        case AgentStatus.PRE_CONNECT_BUFFERING:
            return StatusWords(
                "Listening early",
                "Speak now: your words are kept and handed to the agent as soon as it joins.",
                Palette.CYAN,
            )
        case AgentStatus.CONNECTING | AgentStatus.DISCONNECTED:
            if connection.status is ConnectionStatus.CONNECTING:
                server = f" on {connection.server_url}" if connection.server_url else ""
                return StatusWords("Connecting…", f"Joining {where}{server}.", Palette.AMBER)
            return StatusWords(
                "Waiting for the agent…", f"Connected to {where}; the agent has not joined yet.", Palette.AMBER
            )
        case AgentStatus.INITIALIZING:
            return StatusWords("Agent starting…", f"{name} joined and is getting ready.", Palette.AMBER)
        case AgentStatus.IDLE:
            return StatusWords("Agent idle", f"{name} is present but not listening yet.", Palette.SLATE)
        case AgentStatus.LISTENING:
            return StatusWords("Listening", f"{name} is listening. Speak or type a message.", Palette.GREEN)
        case AgentStatus.THINKING:
            return StatusWords("Thinking…", f"{name} is working on an answer.", Palette.VIOLET)
        case AgentStatus.SPEAKING:
            return StatusWords("Speaking", f"{name} is answering.", Palette.BLUE)
    return StatusWords(agent.state, "", Palette.GREY)  # pragma: no cover - every status is matched


def message_header(message: Message, agent_name: str | None) -> str:
    """The small line above a message: who, how, when, and for typed chat whether it went out."""
    if message.role is Role.USER:
        who = "You"
    elif message.role is Role.AGENT:
        who = agent_name or "Agent"
    else:
        who = message.sender
    parts = [who]
    if message.kind is MessageKind.CHAT:
        parts.append("typed")
    elif not message.final:
        parts.append("speaking…" if message.role is not Role.USER else "talking…")
    parts.append(time.strftime("%H:%M", time.localtime(message.first_seen)))
    match message.delivery:
        case DeliveryStatus.SENDING:
            parts.append("sending…")
        case DeliveryStatus.SENT:
            parts.append("sent ✓")
        case DeliveryStatus.FAILED:
            parts.append("not sent")
        case None:
            pass
    if message.interrupted:
        parts.append("interrupted")
    return " · ".join(parts)


def preconnect_words(preconnect: PreConnectState) -> StatusWords | None:
    """What the pre-connect indicator says, or ``None`` to hide it."""
    seconds = f"{preconnect.seconds:.1f} s"
    match preconnect.status:
        case PreConnectStatus.IDLE:
            return None
        case PreConnectStatus.RECORDING:
            return StatusWords("Recording", f"{seconds} kept until the agent joins", Palette.CYAN)
        case PreConnectStatus.SENDING:
            to = f" to {preconnect.destination}" if preconnect.destination else ""
            return StatusWords("Handing over", f"{seconds} of early speech{to}", Palette.AMBER)
        case PreConnectStatus.SENT:
            return StatusWords("Handed over", f"The agent got {seconds} of early speech", Palette.GREEN)
        case PreConnectStatus.EXPIRED:
            return StatusWords("Early speech dropped", preconnect.detail or "The agent took too long.", Palette.GREY)
        case PreConnectStatus.FAILED:
            return StatusWords("Early speech lost", preconnect.detail or "It could not be sent.", Palette.RED)


def microphone_words(microphone: LocalTrackState) -> StatusWords:
    """The microphone toggle's label, its tooltip and its colour."""
    if microphone.error:
        return StatusWords("No microphone", microphone.error, Palette.RED)
    device = f" ({microphone.device})" if microphone.device else ""
    if not microphone.enabled:
        return StatusWords("Mic off", f"The microphone is off{device}. Click to turn it on.", Palette.GREY)
    if microphone.muted:
        return StatusWords("Mic muted", f"The microphone is muted{device}.", Palette.AMBER)
    if microphone.published:
        return StatusWords("Mic on", f"The agent can hear you{device}. Click to turn it off.", Palette.GREEN)
    return StatusWords("Mic on", f"The microphone is on{device}; waiting to publish it.", Palette.CYAN)


def _arguments(raw: str) -> str:
    try:
        parsed: object = json.loads(raw) if raw else {}
    except ValueError:
        return raw
    if not isinstance(parsed, dict):
        return raw
    items = cast("dict[str, object]", parsed)
    return ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in items.items())


_TOOL_COLORS = {
    "started": Palette.AMBER,
    "running": Palette.AMBER,
    "done": Palette.GREEN,
    "error": Palette.RED,
    "cancelled": Palette.GREY,
}


def tool_call_words(call: ToolCall) -> StatusWords:
    """``title`` is the call as code (``get_weather(city="Paris")``), ``detail`` its outcome."""
    title = f"{call.name or call.call_id}({_arguments(call.arguments)})"
    if call.status in ("started", "running"):
        detail = call.progress[-1] if call.progress else "running…"
    else:
        detail = call.output or call.message or call.status
    return StatusWords(title, detail, _TOOL_COLORS.get(call.status, Palette.GREY))


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


def usage_lines(models: tuple[ModelUsage, ...]) -> tuple[tuple[str, str], ...]:
    """One ``(model, figures)`` pair per model the agent reported, in its order."""
    lines: list[tuple[str, str]] = []
    for usage in models:
        name = "/".join(part for part in (usage.provider, usage.model) if part) or "model"
        match usage.kind:
            case "llm":
                figures = f"{usage.input_tokens} in · {usage.output_tokens} out tokens"
                if usage.input_cached_tokens:
                    figures += f" ({usage.input_cached_tokens} cached)"
                lines.append((f"LLM {name}", figures))
            case "tts":
                lines.append((f"TTS {name}", f"{usage.characters_count} chars · {_seconds(usage.audio_duration)} audio"))
            case "stt":
                lines.append((f"STT {name}", f"{_seconds(usage.audio_duration)} audio"))
            case "interruption":
                lines.append((f"Interruptions {name}", f"{usage.total_requests} requests"))
            case "eot":
                lines.append((f"End of turn {name}", f"{usage.total_requests} requests"))
    return tuple(lines)
