"""What a front end needs of a session, so a recording can stand in for one.

The Textual, Qt and Gradio adapters show a live :class:`~lkstate.Session` or
a :class:`~lkstate.Replay` of a recorded one alike: both have the read API
(``state``, ``states``) and the lifecycle (``start``, ``end``); a replay
refuses the commands that would change it by raising
:class:`~lkstate.ReplayReadOnlyError`, which each front end reports in words
like any other failed command. This protocol names that common ground once.
"""

from __future__ import annotations

from typing import Protocol

from reactivex import Observable

from .state import SessionState

__all__ = ["SessionLike"]


class SessionLike(Protocol):
    """A :class:`~lkstate.Session`, or anything with its read API and lifecycle (a ``Replay``)."""

    @property
    def state(self) -> SessionState: ...

    @property
    def states(self) -> Observable[SessionState]: ...

    async def start(self, *, wait_for_agent: bool = True) -> SessionState: ...

    async def end(self) -> None: ...

    async def send_text(self, text: str) -> object: ...

    def dismiss_problems(self) -> object: ...
