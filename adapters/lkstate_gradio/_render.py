"""What the web page shows: snapshot slices turned into HTML and chat messages.

Everything here is a plain function of a :class:`~lkstate.SessionState` (or a
slice of it) returning strings and dicts, with no Gradio in it, so the wording
and markup of every situation can be read and tested without a browser.

Text that came over the wire (transcripts, chat, tool arguments, problem
messages, participant names) is always HTML-escaped before it is put in
markup: anyone in the room can send text, and the page must show it, not run it.

The words come from :mod:`lkstate.ui`, shared with the terminal and desktop
clients, and so do the colours: each :class:`~lkstate.ui.Tone` has one.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from lkstate import (
    ConnectionStatus,
    DeliveryStatus,
    LocalTrackState,
    Message,
    PreConnectState,
    Role,
    SessionState,
)
from lkstate.ui import (
    Tone,
    describe_agent,
    describe_camera,
    describe_message,
    describe_microphone,
    describe_preconnect,
    describe_problems,
    describe_rpc,
    describe_tool_call,
    describe_usage,
    tool_arguments,
)

if TYPE_CHECKING:
    from lkstate.agent_session import ModelUsage, RemoteSessionState, ToolCall

__all__ = [
    "Palette",
    "StatusWords",
    "agent_status_words",
    "status_html",
    "chat_message",
    "chat_messages",
    "camera_label",
    "camera_words",
    "microphone_label",
    "tools_html",
    "activity_html",
    "rpc_html",
    "problems_html",
]


class Palette:
    """The page's own colours; a tone's colour is :attr:`lkstate.ui.Tone.colour`, as in every front end."""

    SLATE = "#64748b"


@attrs.frozen
class StatusWords:
    """The agent indicator: a headline, one sentence of detail, a colour, and the state's name."""

    title: str
    detail: str
    color: str
    state: str
    reasons: tuple[str, ...] = ()
    expression: str | None = None
    """How the agent sounds ("sounds surprised (warm surprise)"), when its turn says."""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _agent_label(state: SessionState) -> str:
    return state.agent.name or state.agent.identity or "the agent"


def agent_status_words(state: SessionState) -> StatusWords:
    """How the agent indicator describes the session right now (see :func:`lkstate.ui.describe_agent`)."""
    words = describe_agent(state)
    expression = words.expression.text if words.expression is not None else None
    return StatusWords(words.headline, words.detail, words.tone.colour, words.status.value, words.reasons, expression)


def preconnect_words(pre: PreConnectState) -> str | None:
    """One sentence about speech kept before the agent was ready, or ``None`` when there is none."""
    words = describe_preconnect(pre)
    return f"{words.headline}: {words.detail}" if words is not None else None


def microphone_label(mic: LocalTrackState) -> str:
    """The microphone toggle's caption: what pressing it does, or that it can do nothing.

    A microphone that cannot work (no device, a browser that was not allowed
    to use it) is neither on nor off: the toggle says it is unavailable and
    the page disables it; why is in the facts line's tooltip and, for the
    visitor's browser, under the voice bars.
    """
    if mic.error:
        return "Microphone unavailable"
    return "Turn microphone off" if mic.enabled else "Turn microphone on"


def camera_label(camera: LocalTrackState) -> str:
    """The camera toggle's caption: what pressing it does."""
    return "Turn camera off" if camera.enabled else "Turn camera on"


def camera_words(camera: LocalTrackState) -> tuple[str, str]:
    """``(few words, one sentence)`` about the camera: off, on, sent, or why it cannot work."""
    words = describe_camera(camera)
    return words.headline, words.detail


_USER_STATE_WORDS = {"speaking": "You are speaking", "away": "You seem away"}


def status_html(state: SessionState) -> str:
    """The agent indicator and the facts under it (room, identity, microphone, camera, early audio).

    Why the camera cannot work is spelled out under the facts: "No camera"
    alone does not say what to do about it.
    """
    words = agent_status_words(state)
    connection = state.connection
    facts: list[str] = []
    if connection.room_name and connection.status is not ConnectionStatus.DISCONNECTED:
        who = f" as <b>{_e(connection.local_identity)}</b>" if connection.local_identity else ""
        facts.append(f"Room <b>{_e(connection.room_name)}</b>{who}")
    if state.agent.identity:
        facts.append(f"Agent <b>{_e(_agent_label(state))}</b>")
    mic = describe_microphone(state.local_media.microphone)
    facts.append(f'<span class="lk-mic" title="{_e(mic.detail)}">{_e(mic.headline)}</span>')
    camera = state.local_media.camera
    camera_headline, camera_detail = camera_words(camera)
    facts.append(f'<span class="lk-camera" title="{_e(camera_detail)}">{_e(camera_headline)}</span>')
    you = _USER_STATE_WORDS.get(state.remote.user_state or "")
    if you:
        facts.append(you)
    early = preconnect_words(state.preconnect)
    reasons = "".join(f"<li>{_e(reason)}</li>" for reason in words.reasons)
    return (
        f'<div class="lk-status" data-agent-state="{_e(words.state)}" '
        f'data-connection="{_e(connection.status.value)}" style="--lk-color: {words.color}">'
        f'<div class="lk-status-head"><span class="lk-dot"></span>'
        f'<span class="lk-title">{_e(words.title)}</span>'
        + (f'<span class="lk-expression" style="color: {Tone.SPEAKING.colour}">{_e(words.expression)}</span>'
           if words.expression else "")
        + "</div>"
        f'<div class="lk-detail">{_e(words.detail)}</div>'
        + (f'<ul class="lk-reasons">{reasons}</ul>' if reasons else "")
        + (f'<div class="lk-early">{_e(early)}</div>' if early else "")
        + f'<div class="lk-facts">{" · ".join(facts)}</div>'
        + (f'<div class="lk-camera-error">Camera: {_e(camera.error)}</div>' if camera.error else "")
        + "</div>"
    )


# -- the transcript -------------------------------------------------------------


def _delivery_note(message: Message, text: str | None, tone: Tone | None) -> str | None:
    if text is None:
        return None
    if tone is Tone.ERROR:
        return f"⚠ {text}: {message.error}" if message.error else f"⚠ {text}"
    return f"✓ {text}" if tone is Tone.OK else text


def chat_message(message: Message) -> dict[str, Any]:
    """One message in the ``gr.Chatbot`` messages format.

    Interim transcripts (the speaker is still talking) are set in italics with
    a trailing ellipsis and a muted colour, and say "speaking…"; final ones
    are plain. Underneath, every message says how it came (typed or spoken);
    typed chat carries its delivery status; an interrupted message says so.
    """
    text = _e(message.text) if message.text else ""
    if not message.final:
        body = f'<span class="lk-interim"><em>{text}</em> …</span>'
    else:
        body = text
    if message.role is Role.PARTICIPANT:
        body = f"<b>{_e(message.sender)}:</b> {body}"
    words = describe_message(message)
    notes = [words.how] + [note for note in (words.earlier, words.expression, words.pending) if note]
    delivery = _delivery_note(message, words.delivery, words.delivery_tone)
    if delivery:
        notes.append(delivery)
    if words.interrupted:
        notes.append(words.interrupted)
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


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _arguments(raw: str) -> str:
    """Tool arguments as ``key=value`` pairs when they are a JSON object, else as sent."""
    pairs = tool_arguments(raw)
    if pairs is None:
        return _short(raw, 80)
    return _short(", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in pairs), 80)


def tool_call_html(call: ToolCall) -> str:
    words = describe_tool_call(call)
    return (
        f'<li class="lk-tool" data-status="{_e(call.status)}">'
        f'<code>{_e(words.headline)}({_e(_arguments(call.arguments))})</code> '
        f'<span class="lk-badge" style="--lk-color: {words.tone.colour}">{_e(words.status)}</span>'
        + (f'<div class="lk-tool-result">{_e(_short(words.detail))}</div>' if words.detail else "")
        + "</li>"
    )


def usage_lines(models: tuple[ModelUsage, ...]) -> tuple[str, ...]:
    """Each model's totals in words, one line each."""
    return tuple(f"{line.title}: {line.figures}" for line in describe_usage(models))


def tools_html(remote: RemoteSessionState, *, rpc: str = "") -> str:
    """The tool calls the agent made and what its models used, as the agent reported them.

    ``rpc`` (from :func:`rpc_html`) goes between the two: see :func:`activity_html`.
    """
    if remote.tool_calls:
        calls = "".join(tool_call_html(call) for call in reversed(remote.tool_calls))
        tools = f'<ul class="lk-tools">{calls}</ul>'
    else:
        tools = '<div class="lk-empty">No tool calls yet.</div>'
    if remote.usage is not None and remote.usage.models:
        lines = "".join(f"<li>{_e(line)}</li>" for line in usage_lines(remote.usage.models))
        usage = f'<ul class="lk-usage">{lines}</ul>'
    else:
        usage = '<div class="lk-empty">No usage reported yet.</div>'
    return (
        '<div class="lk-panel lk-tools-panel">'
        f'<div class="lk-panel-title">Tool calls</div>{tools}'
        f"{rpc}"
        f'<div class="lk-panel-title">Usage</div>{usage}'
        "</div>"
    )


def rpc_html(state: SessionState, *, limit: int = 4) -> str:
    """The last RPC calls between the app and the agent, newest first; empty until there is one.

    Each call: who called whom for what as code, its status as a badge in its
    tone's colour, how long the answer took, and the reason in full when it
    failed, timed out or was refused.
    """
    words = describe_rpc(state, limit=limit)
    if not words:
        return ""
    rows: list[str] = []
    for call in words.calls:
        took = f' <span class="lk-took">{_e(call.took)}</span>' if call.took else ""
        reason = f'<div class="lk-rpc-error">{_e(call.detail)}</div>' if call.detail else ""
        rows.append(
            f'<li class="lk-rpc-call" data-status="{_e(call.status)}" style="--lk-color: {call.tone.colour}">'
            f"<code>{_e(call.headline)}</code> "
            f'<span class="lk-badge" style="--lk-color: {call.tone.colour}">{_e(call.status)}</span>{took}{reason}</li>'
        )
    foot = "".join(f'<div class="lk-rpc-foot">{_e(line)}</div>' for line in (words.earlier, words.answers) if line)
    return (
        f'<div class="lk-rpc" data-total="{words.total}"><div class="lk-panel-title">{_e(words.headline)}</div>'
        f'<ul class="lk-rpc-calls">{"".join(rows)}</ul>{foot}</div>'
    )


def activity_html(state: SessionState) -> str:
    """The "Agent activity" panel: tool calls, RPC calls (once there is one), and usage."""
    return tools_html(state.remote, rpc=rpc_html(state))


# -- problems -------------------------------------------------------------------


def problems_html(state: SessionState) -> str:
    """What went wrong, newest first: lkstate's own problems and errors the agent reported.

    A problem that only repeats the connection error is left out: the status above says it.
    """
    rows = [f"<li><b>{_e(line.source)}</b>: {_e(line.message)}</li>" for line in reversed(describe_problems(state).lines)]
    if not rows:
        return '<div class="lk-panel lk-problems"><div class="lk-empty">No problems.</div></div>'
    return (
        f'<div class="lk-panel lk-problems" data-count="{len(rows)}">'
        f'<ul class="lk-problem-list">{"".join(rows)}</ul></div>'
    )
