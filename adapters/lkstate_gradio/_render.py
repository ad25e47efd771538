"""What the web page shows: snapshot slices turned into HTML and chat messages.

Everything here is a plain function of a :class:`~lkstate.SessionState` (or a
slice of it) returning strings and dicts, with no Gradio in it, so the wording
and markup of every situation can be read and tested without a browser.

Text that came over the wire (transcripts, chat, tool arguments, problem
messages, participant names) is always HTML-escaped before it is put in
markup: anyone in the room can send text, and the page must show it, not run it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

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
    from lkstate._remote_state import ModelUsage, RemoteSessionState, ToolCall

__all__ = [
    "Palette",
    "StatusWords",
    "agent_status_words",
    "status_html",
    "chat_message",
    "chat_messages",
    "microphone_label",
    "tools_html",
    "problems_html",
]


class Palette:
    """Status colours, chosen to read on white and on the dark theme's grey."""

    GREY = "#6b7280"
    SLATE = "#64748b"
    AMBER = "#d97706"
    VIOLET = "#7c3aed"
    GREEN = "#16a34a"
    BLUE = "#2563eb"
    TEAL = "#0d9488"
    RED = "#dc2626"


@attrs.frozen
class StatusWords:
    """The agent indicator: a headline, one sentence of detail, a colour, and the state's name."""

    title: str
    detail: str
    color: str
    state: str
    reasons: tuple[str, ...] = ()


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _agent_label(state: SessionState) -> str:
    return state.agent.name or state.agent.identity or "the agent"


def agent_status_words(state: SessionState) -> StatusWords:
    """How the agent indicator describes the session right now.

    The agent's own state comes first (that is what a person talks to); the
    connection only takes over the headline while it is being lost or regained.
    """
    connection, agent = state.connection, state.agent
    status = agent.status
    name = _agent_label(state)
    if status is AgentStatus.FAILED:
        reasons = agent.failure_reasons or ("The agent is not available.",)
        return StatusWords(
            "Agent unavailable",
            "Still connected: an agent that joins later is picked up. Disconnect to give up.",
            Palette.RED,
            status.value,
            reasons,
        )
    if connection.status is ConnectionStatus.RECONNECTING:
        return StatusWords("Reconnecting…", "The connection dropped; trying to get it back.", Palette.AMBER, status.value)
    if connection.status is ConnectionStatus.DISCONNECTED or status is AgentStatus.DISCONNECTED:
        if connection.error:
            return StatusWords("Not connected", connection.error, Palette.RED, status.value)
        detail = connection.disconnect_reason or "Press Connect to start a conversation."
        return StatusWords("Not connected", detail, Palette.GREY, status.value)
    if status is AgentStatus.CONNECTING:
        detail = (
            f"Connected to {connection.room_name}; waiting for {name} to join."
            if connection.is_connected
            else "Joining the room…"
        )
        return StatusWords("Connecting…", detail, Palette.AMBER, status.value)
    if status is AgentStatus.PRE_CONNECT_BUFFERING:
        return StatusWords(
            "Listening (buffering)",
            "Speak now: what you say is kept and sent to the agent as soon as it is ready.",
            Palette.VIOLET,
            status.value,
        )
    if status is AgentStatus.INITIALIZING:
        return StatusWords("Agent starting…", f"{name} joined and is getting ready.", Palette.AMBER, status.value)
    if status is AgentStatus.IDLE:
        return StatusWords("Agent idle", f"{name} is present but not listening yet.", Palette.SLATE, status.value)
    if status is AgentStatus.LISTENING:
        return StatusWords("Listening", f"{name} is listening. Speak or type a message.", Palette.GREEN, status.value)
    if status is AgentStatus.THINKING:
        return StatusWords("Thinking…", f"{name} is working on a reply.", Palette.BLUE, status.value)
    return StatusWords("Speaking", f"{name} is speaking.", Palette.TEAL, status.value)


def preconnect_words(pre: PreConnectState) -> str | None:
    """One sentence about audio captured before the agent was ready, or ``None`` when there is none."""
    seconds = f"{pre.seconds:.1f} s"
    if pre.status is PreConnectStatus.IDLE:
        return None
    if pre.status is PreConnectStatus.RECORDING:
        return f"Recording before the agent is ready: {seconds} kept."
    if pre.status is PreConnectStatus.SENDING:
        return f"Sending {seconds} of early audio to the agent…"
    if pre.status is PreConnectStatus.SENT:
        return f"Sent the agent {seconds} of audio recorded before it was ready."
    if pre.status is PreConnectStatus.EXPIRED:
        return pre.detail or "Early audio was dropped: the agent took too long."
    return pre.detail or "Early audio could not be sent."


def _headline(text: str, limit: int = 60) -> str:
    """The first clause of a long explanation (the rest goes in a tooltip)."""
    for separator in (": ", ". ", " ("):
        head = text.split(separator, 1)[0].rstrip(".")
        if head != text and len(head) <= limit:
            return head
    return _short(text, limit)


def microphone_words(mic: LocalTrackState) -> str:
    """The microphone in a few words; :func:`status_html` puts a full error in a tooltip."""
    if mic.error:
        head = _headline(mic.error)
        return head if "microphone" in head.lower() else f"Microphone: {head}"
    if not mic.enabled:
        return "Microphone off"
    if mic.muted:
        return "Microphone muted"
    if mic.published:
        return f"Microphone on ({mic.device})" if mic.device else "Microphone on"
    return "Microphone on (not published yet)"


def microphone_label(mic: LocalTrackState) -> str:
    """The microphone toggle's caption: what pressing it does."""
    return "Turn microphone off" if mic.enabled else "Turn microphone on"


_USER_STATE_WORDS = {"speaking": "You are speaking", "away": "You seem away"}


def status_html(state: SessionState) -> str:
    """The agent indicator and the facts under it (room, identity, microphone, early audio)."""
    words = agent_status_words(state)
    connection = state.connection
    facts: list[str] = []
    if connection.room_name and connection.status is not ConnectionStatus.DISCONNECTED:
        who = f" as <b>{_e(connection.local_identity)}</b>" if connection.local_identity else ""
        facts.append(f"Room <b>{_e(connection.room_name)}</b>{who}")
    if state.agent.identity:
        facts.append(f"Agent <b>{_e(_agent_label(state))}</b>")
    mic = state.local_media.microphone
    mic_title = f' title="{_e(mic.error)}"' if mic.error else ""
    facts.append(f'<span class="lk-mic"{mic_title}>{_e(microphone_words(mic))}</span>')
    you = _USER_STATE_WORDS.get(state.remote.user_state or "")
    if you:
        facts.append(you)
    early = preconnect_words(state.preconnect)
    reasons = "".join(f"<li>{_e(reason)}</li>" for reason in words.reasons)
    return (
        f'<div class="lk-status" data-agent-state="{_e(words.state)}" '
        f'data-connection="{_e(connection.status.value)}" style="--lk-color: {words.color}">'
        f'<div class="lk-status-head"><span class="lk-dot"></span>'
        f'<span class="lk-title">{_e(words.title)}</span></div>'
        f'<div class="lk-detail">{_e(words.detail)}</div>'
        + (f'<ul class="lk-reasons">{reasons}</ul>' if reasons else "")
        + (f'<div class="lk-early">{_e(early)}</div>' if early else "")
        + f'<div class="lk-facts">{" · ".join(facts)}</div>'
        + "</div>"
    )


# -- the transcript -------------------------------------------------------------


def _delivery_note(message: Message) -> str | None:
    if message.delivery is DeliveryStatus.SENDING:
        return "sending…"
    if message.delivery is DeliveryStatus.FAILED:
        return f"⚠ not delivered: {message.error}" if message.error else "⚠ not delivered"
    if message.delivery is DeliveryStatus.SENT:
        return "✓ sent"
    return None


def chat_message(message: Message) -> dict[str, Any]:
    """One message in the ``gr.Chatbot`` messages format.

    Interim transcripts (the speaker is still talking) are set in italics with
    a trailing ellipsis and a muted colour; final ones are plain. Typed chat
    carries its delivery status underneath; an interrupted message says so.
    """
    text = _e(message.text) if message.text else ""
    if not message.final:
        body = f'<span class="lk-interim"><em>{text}</em> …</span>'
    else:
        body = text
    if message.role is Role.PARTICIPANT:
        body = f"<b>{_e(message.sender)}:</b> {body}"
    notes: list[str] = []
    if message.kind is MessageKind.TRANSCRIPT and message.role is Role.USER:
        notes.append("spoken")
    delivery = _delivery_note(message)
    if delivery:
        notes.append(delivery)
    if message.interrupted:
        notes.append("interrupted")
    elif message.error and message.delivery is None:
        notes.append(message.error)
    if notes:
        css = "lk-meta lk-failed" if message.delivery is DeliveryStatus.FAILED else "lk-meta"
        body += f'<br><span class="{css}">{_e(" · ".join(notes))}</span>'
    role = "user" if message.role is Role.USER else "assistant"
    return {"role": role, "content": body}


def chat_messages(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """The transcript for ``gr.Chatbot``: every message in order of first arrival."""
    return [chat_message(m) for m in messages if m.text or not m.final or m.delivery is not None]


# -- tool calls and usage -------------------------------------------------------


_TOOL_COLORS = {
    "started": Palette.AMBER,
    "running": Palette.BLUE,
    "done": Palette.GREEN,
    "error": Palette.RED,
    "cancelled": Palette.GREY,
}


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _arguments(raw: str) -> str:
    """Tool arguments as ``key=value`` pairs when they are a JSON object, else as sent."""
    try:
        parsed: object = json.loads(raw) if raw else {}
    except ValueError:
        return _short(raw, 80)
    if isinstance(parsed, dict):
        items: dict[str, object] = {str(k): v for k, v in parsed.items()}  # type: ignore[union-attr]
        return _short(", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in items.items()), 80)
    return _short(raw, 80)


def tool_call_html(call: ToolCall) -> str:
    color = _TOOL_COLORS.get(call.status, Palette.GREY)
    result = call.message or call.output or (call.progress[-1] if call.progress else "")
    return (
        f'<li class="lk-tool" data-status="{_e(call.status)}">'
        f'<code>{_e(call.name or "tool")}({_e(_arguments(call.arguments))})</code> '
        f'<span class="lk-badge" style="--lk-color: {color}">{_e(call.status)}</span>'
        + (f'<div class="lk-tool-result">{_e(_short(result))}</div>' if result else "")
        + "</li>"
    )


def usage_line(usage: ModelUsage) -> str:
    """One model's totals in words."""
    model = "/".join(part for part in (usage.provider, usage.model) if part) or usage.kind
    if usage.kind == "llm":
        return f"LLM {model}: {usage.input_tokens} tokens in, {usage.output_tokens} out"
    if usage.kind == "tts":
        return f"TTS {model}: {usage.characters_count} characters, {usage.audio_duration:.1f} s of audio"
    if usage.kind == "stt":
        return f"STT {model}: {usage.audio_duration:.1f} s of audio transcribed"
    return f"{usage.kind.upper()} {model}: {usage.total_requests} requests"


def tools_html(remote: RemoteSessionState) -> str:
    """The tool calls the agent made and what its models used, as the agent reported them."""
    if remote.tool_calls:
        calls = "".join(tool_call_html(call) for call in reversed(remote.tool_calls))
        tools = f'<ul class="lk-tools">{calls}</ul>'
    else:
        tools = '<div class="lk-empty">No tool calls yet.</div>'
    if remote.usage is not None and remote.usage.models:
        lines = "".join(f"<li>{_e(usage_line(u))}</li>" for u in remote.usage.models)
        usage = f'<ul class="lk-usage">{lines}</ul>'
    else:
        usage = '<div class="lk-empty">No usage reported yet.</div>'
    return (
        '<div class="lk-panel lk-tools-panel">'
        f'<div class="lk-panel-title">Tool calls</div>{tools}'
        f'<div class="lk-panel-title">Usage</div>{usage}'
        "</div>"
    )


# -- problems -------------------------------------------------------------------


def problems_html(state: SessionState) -> str:
    """What went wrong, newest first: lkstate's own problems and errors the agent reported."""
    rows: list[str] = []
    for problem in reversed(state.problems):
        rows.append(f"<li><b>{_e(problem.source)}</b>: {_e(problem.message)}</li>")
    for error in reversed(state.remote.errors):
        rows.append(f"<li><b>agent</b>: {_e(error)}</li>")
    if not rows:
        return '<div class="lk-panel lk-problems"><div class="lk-empty">No problems.</div></div>'
    return (
        f'<div class="lk-panel lk-problems" data-count="{len(rows)}">'
        f'<ul class="lk-problem-list">{"".join(rows)}</ul></div>'
    )
