"""Everything a front end needs: the session it drives, the words it shows and how snapshots reach it.

The Textual, Qt, Gradio and trio adapters are written against this module
and nothing private, so an adapter for another framework can be too:

- :class:`SessionLike` — what a front end may call, met by a live
  :class:`~lkstate.Session` and by a :class:`~lkstate.recording.Replay`;
- the words — ``describe_*`` turn a snapshot into sentences with a
  :class:`Tone`, so every front end says the same thing;
- delivery — :class:`Mailbox` (hand the latest snapshot across a thread),
  :class:`FrameLimiter` (at most N renders a second, always ending on the
  latest) and :func:`latest_states` (an async iterator for asyncio apps).
"""

from __future__ import annotations

from ._core.delivery import DEFAULT_MAX_RATE, FrameLimiter, Mailbox, latest_states
from ._core.exports import publish as _publish
from ._core.session_like import SessionLike
from ._core.wording import (
    AgentWords,
    ProblemLine,
    ProblemsWords,
    Tone,
    UsageLine,
    Words,
    delivery_words,
    describe_agent,
    describe_camera,
    describe_microphone,
    describe_preconnect,
    describe_problems,
    describe_usage,
    speaker_label,
    tool_arguments,
    tool_call_tone,
)

__all__ = [
    "AgentWords",
    "DEFAULT_MAX_RATE",
    "FrameLimiter",
    "Mailbox",
    "ProblemLine",
    "ProblemsWords",
    "SessionLike",
    "Tone",
    "UsageLine",
    "Words",
    "delivery_words",
    "describe_agent",
    "describe_camera",
    "describe_microphone",
    "describe_preconnect",
    "describe_problems",
    "describe_usage",
    "latest_states",
    "speaker_label",
    "tool_arguments",
    "tool_call_tone",
]

_publish(__name__, globals(), __all__)
