"""What the widgets say: lkstate's words, in this kit's colours.

The sentences come from :mod:`lkstate.ui`, shared by every front end, so the
desktop client reads like the terminal and web ones, and so do the colours:
each :class:`~lkstate.ui.Tone` has one (:attr:`~lkstate.ui.Tone.colour`). What
is Qt's own is here: the kit's other colours (text, borders), the
``title · detail`` pairs the widgets lay out, the header line above a message,
and tool calls written as code. Plain functions of the state, no Qt in the way.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import attrs

from lkstate import DeliveryStatus, LocalTrackState, Message, PreConnectState, SessionState
from lkstate.ui import (
    Tone,
    describe_agent,
    describe_camera,
    describe_message,
    describe_microphone,
    describe_preconnect,
    describe_tool_call,
    describe_usage,
    tool_arguments,
)

if TYPE_CHECKING:
    from lkstate.agent_session import ModelUsage, ToolCall

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
    """The colours of the kit: lkstate's one colour per tone, and the kit's own text and border colours."""

    SLATE = "#64748b"
    TEXT = "#111827"
    MUTED = "#6b7280"
    BORDER = "#e5e7eb"


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
    return StatusWords(words.headline, detail, words.tone.colour)


def message_header(message: Message, agent_name: str | None) -> str:
    """The small line above a message: who, how (and how the agent sounds), when, and whether typed chat went out."""
    words = describe_message(message, agent_name=agent_name)
    parts = [words.speaker, words.how]
    if words.earlier:
        parts.append(words.earlier)
    if words.expression:
        parts.append(words.expression)
    if words.pending:
        parts.append(words.pending)
    parts.append(time.strftime("%H:%M", time.localtime(message.first_seen)))
    if words.delivery:
        parts.append(words.delivery + (" ✓" if message.delivery is DeliveryStatus.SENT else ""))
    if words.interrupted:
        parts.append(words.interrupted)
    return " · ".join(parts)


def preconnect_words(preconnect: PreConnectState) -> StatusWords | None:
    """What the pre-connect indicator says, or ``None`` to hide it."""
    words = describe_preconnect(preconnect)
    if words is None:
        return None
    return StatusWords(words.headline, words.detail, words.tone.colour)


def microphone_words(microphone: LocalTrackState) -> StatusWords:
    """The microphone toggle's label, its tooltip and its colour."""
    words = describe_microphone(microphone)
    return StatusWords(words.headline, words.detail, words.tone.colour)


def camera_words(camera: LocalTrackState) -> StatusWords:
    """The camera toggle's label, its tooltip (the whole reason, when it cannot work) and its colour."""
    words = describe_camera(camera)
    return StatusWords(words.headline, words.detail, words.tone.colour)


def _arguments(raw: str) -> str:
    pairs = tool_arguments(raw)
    if pairs is None:
        return raw
    return ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in pairs)


def tool_call_words(call: ToolCall) -> StatusWords:
    """``title`` is the call as code (``get_weather(city="Paris")``), ``detail`` its outcome."""
    words = describe_tool_call(call)
    return StatusWords(f"{words.headline}({_arguments(call.arguments)})", words.detail, words.tone.colour)


def usage_lines(models: tuple[ModelUsage, ...]) -> tuple[tuple[str, str], ...]:
    """One ``(model, figures)`` pair per model the agent reported, in its order."""
    return tuple((line.title, line.figures) for line in describe_usage(models))
