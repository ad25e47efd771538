"""The bridge between a :class:`~lkstate.Session` and a Qt GUI thread.

Why a second thread at all: ``livekit.rtc`` needs a real asyncio loop with
sockets, and QtAsyncio's loop has none. So the session lives on a
:class:`~lkstate.LoopThread` (one asyncio loop on one background thread), and
the GUI thread only ever sees snapshots and sends commands.

Two hops cross the thread boundary, one each way:

- **Snapshots, session → GUI.** The store calls us on the loop thread for every
  change. We put the snapshot in a :class:`~lkstate.ui.Mailbox` (one slot, newest
  wins) whose wake-up is a *queued* signal, so Qt runs the drain on the GUI
  thread, once per batch however many snapshots arrived meanwhile. On the GUI
  side a :class:`~lkstate.FrameLimiter` paced by ``QTimer.singleShot`` caps the
  rate (30 per second by default) and always ends on the newest snapshot,
  which :attr:`SessionBridge.state_changed` then carries to the widgets.
  The session never waits for the GUI: a slow slot only means the GUI sees
  fewer, newer snapshots; a raising slot is reported by Qt and the next
  snapshot is delivered all the same.
- **Commands, GUI → session.** :meth:`SessionBridge.start`, :meth:`~SessionBridge.send_text`
  and friends submit the session's coroutine to the loop thread and return at
  once. What goes wrong is reported as :attr:`SessionBridge.command_failed`
  (and, for most failures, in the state itself), never raised into a Qt slot.

:meth:`SessionBridge.close` ends the session and stops the loop thread it
started, so closing a window leaves no thread behind.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import math
from collections.abc import Callable, Coroutine
from typing import Any

import attrs
from PySide6.QtCore import QCoreApplication, QObject, Qt, QTimer, Signal, Slot
from reactivex.abc import DisposableBase

from lkstate import LoopThread, SessionState
from lkstate.media import AudioLevels
from lkstate.errors import LkstateError
from lkstate.ui import DEFAULT_MAX_RATE, FrameLimiter, Mailbox, SessionLike

__all__ = ["CommandError", "SessionBridge", "SessionLike"]

logger = logging.getLogger(__name__)


@attrs.frozen
class CommandError:
    """A command from the GUI that did not succeed, in words.

    ``command`` is the bridge method's name (``"start"``, ``"send_text"``…),
    ``message`` what happened, ``remedy`` what the user can do about it (when
    the library knows), ``error_type`` the exception's class name.
    ``shown_in_state`` is true when the snapshot already shows the same
    failure (a refused connection, an agent that never came), so an app can
    avoid saying it twice.
    """

    command: str
    message: str
    remedy: str | None = None
    error_type: str = ""
    shown_in_state: bool = False

    @property
    def text(self) -> str:
        """The message and the remedy as one sentence pair."""
        return f"{self.message} {self.remedy}" if self.remedy else self.message


# Failures of start() that the state reports too (connection.error or the
# agent's failure reasons), per Session.start's documentation.
_START_ERRORS_IN_STATE = frozenset({"AgentUnavailableError", "ConnectionFailedError", "TokenSourceError"})


class SessionBridge(QObject):
    """Runs a :class:`~lkstate.Session` off the GUI thread and shows it on it.

    Create it on the GUI thread, connect widgets to :attr:`state_changed`, and
    call its commands from slots::

        bridge = SessionBridge(Session(token_source, agent_name="my-agent"))  # or a replay
        bridge.state_changed.connect(indicator.render_state)
        bridge.command_failed.connect(lambda error: status_bar.showMessage(error.text))
        bridge.start()
        ...
        bridge.close()          # ends the session, stops the loop thread

    ``max_rate`` caps :attr:`state_changed` emissions per second (``None``:
    no cap; snapshots still coalesce while the GUI is busy). Pass a running
    ``loop_thread`` to share one between sessions; the bridge then leaves it
    running on close. Without one it starts its own, named ``lkstate-loop``.
    """

    state_changed = Signal(object)
    """The newest :class:`~lkstate.SessionState`, on the GUI thread, at most ``max_rate`` times a second."""

    command_failed = Signal(object)
    """A :class:`CommandError`: a command did not succeed. Emitted on the GUI thread."""

    closed = Signal()
    """The bridge has ended its session and stopped its loop thread."""

    levels_changed = Signal(object)
    """The newest :class:`~lkstate.media.AudioLevels` (``session.levels``), on the GUI thread, paced like
    :attr:`state_changed`: for a voice visualizer."""

    _levels_wake = Signal()

    _wake = Signal()
    # Emitted from whichever thread filled the mailbox; connected with a queued
    # connection, so the drain always runs on the bridge's (the GUI) thread.

    _report = Signal(object)
    # A CommandError found on the loop thread, queued to the GUI thread.

    def __init__(
        self,
        session: SessionLike,
        *,
        loop_thread: LoopThread | None = None,
        max_rate: float | None = DEFAULT_MAX_RATE,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._session = session
        self._owns_loop = loop_thread is None
        self._loop_thread = loop_thread if loop_thread is not None else LoopThread()
        self._loop_thread.start()
        self._closed = False
        self._state: SessionState = session.state
        self._delivered = 0
        self._limiter: FrameLimiter[SessionState] | None = (
            None
            if max_rate is None
            else FrameLimiter(self._deliver, max_rate=max_rate, call_later=self._call_later)
        )
        self._wake.connect(self._drain, Qt.ConnectionType.QueuedConnection)
        self._report.connect(self._emit_failure, Qt.ConnectionType.QueuedConnection)
        self._mailbox: Mailbox[SessionState] = Mailbox(self._wake_gui)
        self._subscription: DisposableBase | None = session.states.subscribe(self._mailbox.put)
        # Levels travel apart from the state, across the same kind of boundary.
        self._levels_limiter: FrameLimiter[AudioLevels] = FrameLimiter(
            self.levels_changed.emit, max_rate=max_rate or DEFAULT_MAX_RATE, call_later=self._call_later
        )
        self._levels_wake.connect(self._drain_levels, Qt.ConnectionType.QueuedConnection)
        self._levels_box: Mailbox[AudioLevels] = Mailbox(self._wake_levels)
        self._levels_subscription: DisposableBase | None = session.levels.subscribe(self._levels_box.put)
        self._app = QCoreApplication.instance()
        if self._app is not None:
            # Quitting the application without closing the window first (Ctrl+Q,
            # a signal) still ends the session and joins the thread.
            self._app.aboutToQuit.connect(self.close)

    # -- reading -------------------------------------------------------------------

    @property
    def session(self) -> SessionLike:
        """The session this bridge drives. Call its coroutines only through the bridge."""
        return self._session

    @property
    def loop_thread(self) -> LoopThread:
        return self._loop_thread

    @property
    def state(self) -> SessionState:
        """The last snapshot delivered to the GUI (not necessarily the session's newest)."""
        return self._state

    @property
    def delivered(self) -> int:
        """How many times :attr:`state_changed` was emitted."""
        return self._delivered

    @property
    def is_closed(self) -> bool:
        return self._closed

    # -- commands (call from the GUI thread; they return at once) -------------------

    def start(self, *, wait_for_agent: bool = True) -> concurrent.futures.Future[Any] | None:
        """Connect, and by default wait for the agent. Progress and failures show in the state."""
        return self._submit("start", lambda: self._session.start(wait_for_agent=wait_for_agent))

    def end(self) -> concurrent.futures.Future[Any] | None:
        """Leave the room. Cancels a ``start`` still connecting."""
        return self._submit("end", self._session.end)

    def send_text(self, text: str) -> concurrent.futures.Future[Any] | None:
        """Send typed chat; it appears in the state at once with its delivery status."""
        return self._submit("send_text", lambda: self._session.send_text(text))

    def set_microphone_enabled(self, enabled: bool) -> concurrent.futures.Future[Any] | None:
        """Turn the microphone on or off; the outcome shows in ``state.local_media.microphone``."""
        return self._submit("set_microphone_enabled", lambda: self._session.set_microphone_enabled(enabled))

    def set_speaker_enabled(self, enabled: bool) -> concurrent.futures.Future[Any] | None:
        """Play the agent's voice or mute it; the outcome shows in ``state.local_media.speaker``."""
        return self._submit("set_speaker_enabled", lambda: self._session.set_speaker_enabled(enabled))

    def set_camera_enabled(self, enabled: bool) -> concurrent.futures.Future[Any] | None:
        """Turn the camera on or off; the outcome shows in ``state.local_media.camera``."""
        return self._submit("set_camera_enabled", lambda: self._session.set_camera_enabled(enabled))

    def set_screen_share_enabled(self, enabled: bool) -> concurrent.futures.Future[Any] | None:
        """Share the screen or stop; the outcome shows in ``state.local_media.screen_share``."""
        return self._submit("set_screen_share_enabled", lambda: self._session.set_screen_share_enabled(enabled))

    def dismiss_problems(self) -> concurrent.futures.Future[Any] | None:
        """Clear the problems shown in the state."""

        async def dismiss() -> None:
            self._session.dismiss_problems()

        return self._submit("dismiss_problems", dismiss)

    def submit(self, name: str, coroutine: Callable[[], Coroutine[Any, Any, Any]]) -> concurrent.futures.Future[Any] | None:
        """Run any other session coroutine on the loop thread, with the same error reporting.

        ``coroutine`` is a zero-argument callable returning the coroutine, so
        nothing is created on the GUI thread: ``bridge.submit("ping", lambda: session.remote.ping())``.
        """
        return self._submit(name, coroutine)

    def close(self, timeout: float = 10.0) -> None:
        """End the session, stop delivering, and stop the loop thread if the bridge started it.

        Blocks the GUI thread until the session has left the room (at most
        ``timeout`` seconds). Safe to call more than once.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._loop_thread.run(self._session.end(), timeout)
        except Exception:
            logger.warning("the session did not end cleanly while closing", exc_info=True)
        if self._subscription is not None:
            self._subscription.dispose()
            self._subscription = None
        if self._levels_subscription is not None:
            self._levels_subscription.dispose()
            self._levels_subscription = None
        if self._owns_loop:
            self._loop_thread.stop(timeout)
        if self._app is not None:
            with contextlib.suppress(RuntimeError, TypeError):
                self._app.aboutToQuit.disconnect(self.close)
        self.closed.emit()

    # -- internals -----------------------------------------------------------------

    def _submit(
        self, name: str, make: Callable[[], Coroutine[Any, Any, Any]]
    ) -> concurrent.futures.Future[Any] | None:
        if self._closed:
            self._emit_failure(
                CommandError(name, "The session window is closed.", error_type="SessionClosedError")
            )
            return None

        async def run() -> Any:
            return await make()

        future = self._loop_thread.submit(run())
        future.add_done_callback(lambda done: self._finished(name, done))
        return future

    def _finished(self, name: str, future: concurrent.futures.Future[Any]) -> None:
        # Runs on the loop thread (or at once, if the future was already done).
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            return
        if isinstance(error, LkstateError):
            message, remedy = error.message, error.remedy or None
        else:
            message, remedy = str(error) or type(error).__name__, None
        kind = type(error).__name__
        report = CommandError(
            name,
            message,
            remedy=remedy,
            error_type=kind,
            shown_in_state=name == "start" and kind in _START_ERRORS_IN_STATE,
        )
        logger.info("%s failed: %s", name, report.text)
        try:
            self._report.emit(report)
        except RuntimeError:  # the bridge's Qt object is gone (application shut down)
            pass

    def _emit_failure(self, report: CommandError) -> None:
        self.command_failed.emit(report)

    def _wake_gui(self) -> None:
        # Any thread. A deleted bridge (application gone) simply stops listening.
        try:
            self._wake.emit()
        except RuntimeError:
            pass

    @Slot()
    def _drain(self) -> None:
        has_value, state = self._mailbox.take()
        if not has_value or state is None or self._closed:
            return
        if self._limiter is None:
            self._deliver(state)
        else:
            self._limiter.offer(state)

    def _wake_levels(self) -> None:
        try:
            self._levels_wake.emit()
        except RuntimeError:
            pass

    @Slot()
    def _drain_levels(self) -> None:
        has_value, levels = self._levels_box.take()
        if has_value and levels is not None and not self._closed:
            self._levels_limiter.offer(levels)

    def _call_later(self, delay: float, callback: Callable[[], None]) -> None:
        # Round up: a timer that fires early would find the slot not yet free.
        QTimer.singleShot(max(0, math.ceil(delay * 1000)), self, callback)

    def _deliver(self, state: SessionState) -> None:
        self._state = state
        self._delivered += 1
        self.state_changed.emit(state)
