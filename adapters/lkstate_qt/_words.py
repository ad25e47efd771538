"""What the widgets say: lkstate's words, in this kit's colours.

The sentences come from :mod:`lkstate._core.wording`, shared by every front end,
so the desktop client reads like the terminal and web ones. What is Qt's own
is here: the palette each :class:`~lkstate._core.wording.Tone` gets, the
``title · detail`` pairs the widgets lay out, the header line above a message,
and tool calls written as code. Plain functions of the state, no Qt in the way.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import attrs

from lkstate import DeliveryStatus, LocalTrackState, Message, MessageKind, PreConnectState, Role, SessionState
from lkstate._core.wording import (
    Tone,
    delivery_words,
    describe_agent,
    describe_camera,
    describe_microphone,
    describe_preconnect,
    describe_usage,
    speaker_label,
    tool_arguments,
    tool_call_tone,
)

if TYPE_CHECKING:
    from lkstate._core.remote_state import ModelUsage, ToolCall

__all__ = [
    "Palette",
    "StatusWords",
    "agent_status_words",
    "camera_words",
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

    TONES = {
        Tone.NEUTRAL: GREY,
        Tone.WAITING: AMBER,
        Tone.BUFFERING: CYAN,
        Tone.OK: GREEN,
        Tone.THINKING: VIOLET,
        Tone.SPEAKING: BLUE,
        Tone.ERROR: RED,
    }
    """The colour of each tone."""


@attrs.frozen
class StatusWords:
    """A headline (``title``), one sentence of detail, and the status colour."""

    title: str
    detail: str
    color: str


def agent_status_words(state: SessionState) -> StatusWords:
    """How the agent indicator describes the session right now (why it failed before what to do)."""
    words = describe_agent(state)
    detail = " ".join((*words.reasons, words.detail))
    return StatusWords(words.headline, detail, Palette.TONES[words.tone])


def message_header(message: Message, agent_name: str | None) -> str:
    """The small line above a message: who, how, when, and for typed chat whether it went out."""
    parts = [speaker_label(message, agent_name=agent_name)]
    if message.kind is MessageKind.CHAT:
        parts.append("typed")
    elif not message.final:
        parts.append("speaking…" if message.role is not Role.USER else "talking…")
    parts.append(time.strftime("%H:%M", time.localtime(message.first_seen)))
    delivery = delivery_words(message)
    if delivery is not None:
        parts.append(delivery[0] + (" ✓" if message.delivery is DeliveryStatus.SENT else ""))
    if message.interrupted:
        parts.append("interrupted")
    return " · ".join(parts)


def preconnect_words(preconnect: PreConnectState) -> StatusWords | None:
    """What the pre-connect indicator says, or ``None`` to hide it."""
    words = describe_preconnect(preconnect)
    if words is None:
        return None
    return StatusWords(words.headline, words.detail, Palette.TONES[words.tone])


def microphone_words(microphone: LocalTrackState) -> StatusWords:
    """The microphone toggle's label, its tooltip and its colour."""
    words = describe_microphone(microphone)
    return StatusWords(words.headline, words.detail, Palette.TONES[words.tone])


def camera_words(camera: LocalTrackState) -> StatusWords:
    """The camera toggle's label, its tooltip (the whole reason, when it cannot work) and its colour."""
    words = describe_camera(camera)
    return StatusWords(words.headline, words.detail, Palette.TONES[words.tone])


def _arguments(raw: str) -> str:
    pairs = tool_arguments(raw)
    if pairs is None:
        return raw
    return ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in pairs)


def tool_call_words(call: ToolCall) -> StatusWords:
    """``title`` is the call as code (``get_weather(city="Paris")``), ``detail`` its outcome."""
    title = f"{call.name or call.call_id}({_arguments(call.arguments)})"
    if call.status in ("started", "running"):
        detail = call.progress[-1] if call.progress else "running…"
    else:
        detail = call.output or call.message or call.status
    return StatusWords(title, detail, Palette.TONES[tool_call_tone(call.status)])


def usage_lines(models: tuple[ModelUsage, ...]) -> tuple[tuple[str, str], ...]:
    """One ``(model, figures)`` pair per model the agent reported, in its order."""
    return tuple((line.title, line.figures) for line in describe_usage(models))
