"""Everything a front end needs: the session it drives, the words it shows and how snapshots reach it.

The Textual, Qt, Gradio and trio adapters are written against this module
and nothing private, so an adapter for another framework can be too:

- :class:`SessionLike` — everything a front end may call (the read API, the
  lifecycle and every command), met by a live :class:`~lkstate.Session` and
  by a :class:`~lkstate.recording.Replay`, so an adapter never asks a session
  whether it has a command;
- the words — ``describe_*`` turn a snapshot into sentences with a
  :class:`Tone`, so every front end says the same thing, and each tone has
  one colour (:attr:`Tone.colour`, :data:`PALETTE`), so every front end
  colours it the same way;
- delivery — :class:`Mailbox` (hand the latest snapshot across a thread),
  :class:`FrameLimiter` (at most N renders a second, always ending on the
  latest) and :func:`latest_states` (an async iterator for asyncio apps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._core.delivery import DEFAULT_MAX_RATE, FrameLimiter, Mailbox, latest_states
from ._core.exports import publish as _publish
from ._core.session_like import SessionLike
from ._core.wording import (
    PALETTE,
    AgentWords,
    ExpressionWords,
    MessageWords,
    ProblemLine,
    ProblemsWords,
    RpcCallWords,
    RpcWords,
    Tone,
    ToolCallWords,
    UsageLine,
    Words,
    delivery_words,
    describe_agent,
    describe_camera,
    describe_expression,
    describe_message,
    describe_microphone,
    describe_preconnect,
    describe_problems,
    describe_rpc,
    describe_rpc_call,
    describe_tool_call,
    describe_usage,
    speaker_label,
    tool_arguments,
    tool_call_tone,
)

__all__ = [
    "AgentWords",
    "DEFAULT_MAX_RATE",
    "ExpressionWords",
    "FrameLimiter",
    "Mailbox",
    "MessageWords",
    "PALETTE",
    "ProblemLine",
    "ProblemsWords",
    "RpcCallWords",
    "RpcWords",
    "SessionLike",
    "Tone",
    "ToolCallWords",
    "UsageLine",
    "Words",
    "delivery_words",
    "describe_agent",
    "describe_camera",
    "describe_expression",
    "describe_message",
    "describe_microphone",
    "describe_preconnect",
    "describe_problems",
    "describe_rpc",
    "describe_rpc_call",
    "describe_tool_call",
    "describe_usage",
    "latest_states",
    "speaker_label",
    "tool_arguments",
    "tool_call_tone",
]

_publish(__name__, globals(), __all__)

if TYPE_CHECKING:
    from ._session.recording import Replay
    from ._session.session import Session

    def _both_are_session_like(  # pyright: ignore[reportUnusedFunction]
        session: Session, replay: Replay
    ) -> tuple[SessionLike, SessionLike]:
        """Pyright checks here that a live session and a replay both keep to :class:`SessionLike`."""
        return session, replay
