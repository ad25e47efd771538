"""What a front end needs of a session, so a recording can stand in for one.

The Textual, Qt, Gradio and trio adapters show a live :class:`~lkstate.Session`
or a :class:`~lkstate.recording.Replay` of a recorded one alike. Both have the
read API (``state``, ``states``, ``select``, ``wait_until``), the lifecycle
(``start``, ``end``) and every command a front end offers a person: typing a
message, dismissing problems, switching the microphone, the speaker, the camera
and the screen share. A replay refuses the commands by raising
:class:`~lkstate.errors.ReplayReadOnlyError`, which each front end reports in
words like any other failed command (a live session raises
:class:`~lkstate.errors.LkstateError` too, for a microphone it was not given).

So the protocol is complete: an adapter calls any of these on any session
without asking first whether it has them. It names the common ground once;
``tests/unit/test_session_like.py`` and pyright (``lkstate/ui.py``) check that
both classes keep to it.

The agent-session client (``Session.remote``) is not part of it: a front end
shows what the agent reported from ``state.remote``, and a replay has no agent
to ask. The ``room`` is typed as an object here because the pure core does not
know ``livekit.rtc``; a live session's is a ``livekit.rtc.Room``, a replay's ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from reactivex import Observable

from .levels import AudioLevels
from .messages import Message
from .state import SessionState

__all__ = ["SessionLike"]

_T = TypeVar("_T")


class SessionLike(Protocol):
    """A :class:`~lkstate.Session`, or anything with its read API, lifecycle and commands (a ``Replay``).

    Every command may raise :class:`~lkstate.errors.LkstateError` with words
    saying why it could not be done; a front end shows those words.
    """

    # -- reading -----------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        """The current snapshot."""
        ...

    @property
    def states(self) -> Observable[SessionState]:
        """The current snapshot on subscribe, then every change in order."""
        ...

    @property
    def levels(self) -> Observable[AudioLevels]:
        """The microphone's and the agent's loudness, apart from the state (a replay's stays silent)."""
        ...

    def select(self, selector: Callable[[SessionState], _T]) -> Observable[_T]:
        """A slice of the state, delivered only when it changes."""
        ...

    async def wait_until(
        self, predicate: Callable[[SessionState], bool], *, timeout: float | None = None
    ) -> SessionState:
        """The first snapshot satisfying ``predicate``; :class:`TimeoutError` after ``timeout`` seconds."""
        ...

    @property
    def room(self) -> object | None:
        """The live ``livekit.rtc.Room`` while connected; ``None`` before, after, and for a replay."""
        ...

    # -- the lifecycle ----------------------------------------------------------------------

    async def start(self, *, wait_for_agent: bool = True) -> SessionState:
        """Connect (a replay: start playing)."""
        ...

    async def end(self) -> None:
        """Leave (a replay: stop playing)."""
        ...

    # -- commands -------------------------------------------------------------------------

    async def send_text(self, text: str) -> Message:
        """Send typed chat; it shows in ``state.messages`` with its delivery status."""
        ...

    def dismiss_problems(self) -> None:
        """Clear ``state.problems``."""
        ...

    async def set_microphone_enabled(self, enabled: bool) -> None:
        """Turn the microphone on or off; the outcome shows in ``state.local_media.microphone``."""
        ...

    async def set_speaker_enabled(self, enabled: bool) -> None:
        """Play the agent's voice or mute it; the outcome shows in ``state.local_media.speaker``."""
        ...

    async def set_camera_enabled(self, enabled: bool) -> None:
        """Turn the camera on or off; the outcome shows in ``state.local_media.camera``."""
        ...

    async def set_screen_share_enabled(self, enabled: bool) -> None:
        """Share the screen or stop; the outcome shows in ``state.local_media.screen_share``."""
        ...
