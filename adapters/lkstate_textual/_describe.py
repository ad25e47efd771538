"""What the widgets say: lkstate's words, dressed for a terminal.

The sentences themselves come from :mod:`lkstate.ui`, shared by every front
end, so the TUI reads like the desktop and web clients. What is left here is
how a terminal shows them: the glyph in front of a label, the one-line form of
the pre-connect notice, and tool arguments as ``key: value`` prose.

Each description carries a :class:`~lkstate.ui.Tone`; the widgets turn it into
a ``-tone-<name>`` class and the tone's one colour (:attr:`~lkstate.ui.Tone.colour`,
the same as on the desktop and the web), so colour never carries meaning on
its own: the words always say it too.
"""

from __future__ import annotations

import json

from lkstate import LocalTrackState, Message, PreConnectState, PreConnectStatus
from lkstate.ui import (
    AgentWords,
    Words,
    Tone,
    delivery_words,
    describe_agent,
    describe_preconnect,
    speaker_label,
    tool_arguments,
)
from lkstate.ui import describe_camera as _describe_camera
from lkstate.ui import describe_microphone as _describe_microphone

__all__ = [
    "AgentDescription",
    "Tone",
    "delivery_words",
    "describe_agent",
    "describe_camera",
    "describe_microphone",
    "describe_preconnect",
    "describe_tool_arguments",
    "message_label",
    "preconnect_line",
]

AgentDescription = AgentWords
"""The agent indicator's content (the name this kit used before the words moved to lkstate)."""

message_label = speaker_label
"""Who said it, as a conversation header shows it."""

_MIC_GLYPHS = {Tone.OK: "●", Tone.WAITING: "◌", Tone.NEUTRAL: "○", Tone.ERROR: "✗"}


def describe_microphone(mic: LocalTrackState) -> Words:
    """The microphone toggle's label (with a glyph: ● live, ◌ waiting, ○ off, ✗ broken) and tooltip."""
    words = _describe_microphone(mic)
    glyph = _MIC_GLYPHS.get(words.tone, "○")
    return Words(f"{glyph} {words.headline}", words.detail, words.tone)


def describe_camera(camera: LocalTrackState) -> Words:
    """The camera toggle's label (● sent, ◌ on but not sent yet, ○ off, ✗ cannot work) and tooltip.

    The error, when there is one, is the whole ``detail``: the camera notice
    shows it in full, because "No camera" alone does not say what to do.
    """
    words = _describe_camera(camera)
    return Words(f"{_MIC_GLYPHS.get(words.tone, '○')} {words.headline}", words.detail, words.tone)


_PRECONNECT_GLYPHS = {
    PreConnectStatus.RECORDING: "●",
    PreConnectStatus.SENDING: "▸",
    PreConnectStatus.SENT: "✓",
    PreConnectStatus.EXPIRED: "⚠",
    PreConnectStatus.FAILED: "✗",
}


def preconnect_line(pre: PreConnectState) -> tuple[str, Tone] | None:
    """``(line, tone)`` about speech kept before the agent was ready; ``None`` when there is none."""
    words = describe_preconnect(pre)
    if words is None:
        return None
    glyph = _PRECONNECT_GLYPHS.get(pre.status, "•")
    return f"{glyph} {words.headline}: {words.detail}", words.tone


def delivery_label(message: Message) -> tuple[str, Tone] | None:
    """A typed message's delivery with its glyph (``… sending``, ``✓ sent``, ``✗ not sent``)."""
    words = delivery_words(message)
    if words is None:
        return None
    text, tone = words
    glyph = {Tone.OK: "✓ ", Tone.ERROR: "✗ "}.get(tone, "")
    return glyph + text, tone


def describe_tool_arguments(arguments: str, *, limit: int = 60) -> str:
    """A tool call's JSON arguments as ``key: value, …`` (raw text if not an object)."""
    pairs = tool_arguments(arguments)
    text = arguments.strip() if pairs is None else ", ".join(f"{key}: {_short(value)}" for key, value in pairs)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)
