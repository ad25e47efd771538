"""Binding a :class:`lkstate.Session` to a Textual app.

Textual runs an asyncio loop, and ``livekit.rtc`` needs one, so the session
simply runs on the app's loop: commands are awaited in Textual workers and the
session's snapshots arrive on the same thread the widgets live on. What is left
to do is pacing. A transcript burst produces a snapshot per text chunk; a
terminal shows perhaps thirty frames a second, and re-laying out a transcript
for every chunk would make the UI lag behind the agent. So:

- the binding subscribes to ``session.states`` through a
  :class:`~lkstate.ui.Mailbox` (latest wins, the consumer is woken once per
  batch), and paces deliveries with a :class:`~lkstate.FrameLimiter` driven by
  the app's own timers (``App.set_timer``): at most ``max_rate`` deliveries a
  second, and always the newest snapshot last;
- each delivery updates every mounted :class:`StateView` whose *slice* of the
  state changed (its ``select(state)`` compared with ``==``), so a widget that
  shows the agent status is not touched when only the transcript grew;
- each delivery is also posted to the app as a :class:`SessionStateChanged`
  message, which replaces a still-queued older one, for apps that prefer
  message handlers to views.

A view that raises while updating is logged and counted, and the others and
the session carry on; :class:`StateWidget` also catches errors in its own
rendering and draws a short notice in their place instead of taking the whole
app down.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, TypeVar

from rich.console import RenderableType
from textual import events
from textual.app import App
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget

from lkstate import ConnectionStatus, SessionState
from lkstate.errors import LkstateError
from lkstate.ui import DEFAULT_MAX_RATE, FrameLimiter, Mailbox, SessionLike

__all__ = [
    "SessionBinding",
    "SessionLike",
    "SessionStateChanged",
    "StateView",
    "StateWidget",
    "binding_of",
]

logger = logging.getLogger(__name__)

_S = TypeVar("_S")

_BINDINGS: weakref.WeakKeyDictionary[App[Any], SessionBinding] = weakref.WeakKeyDictionary()
_UNSET: Any = object()
_CONNECTION_GROUP = "lkstate-connection"


def binding_of(app: App[Any]) -> SessionBinding | None:
    """The :class:`SessionBinding` attached to ``app``, if any."""
    return _BINDINGS.get(app)


class SessionStateChanged(Message):
    """A new snapshot for the app (posted at most ``max_rate`` times per second).

    Handle it with ``on_session_state_changed``. A message still waiting in the
    app's queue is replaced by a newer one, so a busy app skips to the latest.
    """

    def __init__(self, state: SessionState, binding: SessionBinding) -> None:
        super().__init__()
        self.state = state
        self.binding = binding

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SessionStateChanged) and message.binding is self.binding


class SessionBinding:
    """Delivers a session's snapshots to a Textual app, paced and latest-wins.

    Create it with the app (typically in ``App.__init__``) and call
    :meth:`start` once the app runs (``on_mount``); :meth:`close` stops
    deliveries. ``max_rate`` caps deliveries per second (``None``: no cap, one
    delivery per batch of changes). The session must run on the app's loop
    (Textual's) or emit from any other thread: both work, the mailbox is the
    thread boundary.
    """

    def __init__(
        self,
        app: App[Any],
        session: SessionLike,
        *,
        max_rate: float | None = DEFAULT_MAX_RATE,
        post_messages: bool = True,
        notify_command_errors: bool = True,
    ) -> None:
        if max_rate is not None and max_rate <= 0:
            raise ValueError("max_rate must be positive (deliveries per second), or None for no cap.")
        self.app = app
        self.session = session
        self.max_rate = max_rate
        self.post_messages = post_messages
        self.notify_command_errors = notify_command_errors
        self.state: SessionState = session.state
        """The last snapshot delivered to the views (the session's current one before :meth:`start`)."""
        self.delivered = 0
        """How many snapshots were delivered (for tests and curious apps)."""
        self.view_errors = 0
        """How many times a view raised while updating."""
        self._views: list[StateView[Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._box: Mailbox[SessionState] | None = None
        self._limiter: FrameLimiter[SessionState] | None = None
        self._subscription: Any = None
        self._closed = False
        _BINDINGS[app] = self

    # -- lifecycle -------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._subscription is not None

    def start(self) -> None:
        """Subscribe to the session; call on the app's loop once the app runs."""
        if self._subscription is not None or self._closed:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._box = Mailbox(self._wake)
        self._limiter = FrameLimiter(
            self._deliver,
            max_rate=self.max_rate if self.max_rate is not None else 1e9,
            call_later=self._call_later,
        )
        for widget in self.app.query("*"):
            if isinstance(widget, StateView):
                self.attach_view(widget)  # pyright: ignore[reportUnknownArgumentType]
        self._subscription = self.session.states.subscribe(self._box.put, self._on_error)

    def close(self) -> None:
        """Stop deliveries. Views keep what they show; the session is not ended."""
        self._closed = True
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.dispose()
        self._views.clear()
        if _BINDINGS.get(self.app) is self:
            del _BINDINGS[self.app]

    # -- views -----------------------------------------------------------------

    def attach_view(self, view: StateView[Any]) -> None:
        """Keep ``view`` up to date; it is shown the current snapshot at once."""
        if self._closed or any(v is view for v in self._views):
            return
        self._views.append(view)
        self._update_view(view, self.state)

    def detach_view(self, view: StateView[Any]) -> None:
        self._views = [v for v in self._views if v is not view]

    @property
    def views(self) -> tuple[StateView[Any], ...]:
        return tuple(self._views)

    # -- commands --------------------------------------------------------------

    def command(
        self,
        action: Callable[[], Awaitable[object]],
        *,
        group: str = "lkstate-command",
        exclusive: bool = False,
    ) -> None:
        """Run a session command in a Textual worker.

        Failures a session reports as :class:`~lkstate.errors.LkstateError` are
        already in the state (or, for "not connected", need only a word): they
        are logged and, with ``notify_command_errors``, shown as a toast. The
        app keeps running either way.
        """

        async def run() -> None:
            try:
                await action()
            except LkstateError as error:
                logger.info("a session command failed: %s", error)
                if self.notify_command_errors:
                    self.app.notify(str(error), title="lkstate", severity="warning")
            except ValueError as error:
                if self.notify_command_errors:
                    self.app.notify(str(error), severity="warning")

        self.app.run_worker(run(), group=group, exclusive=exclusive, exit_on_error=False)

    def connect(self) -> None:
        """Start the session (and wait for the agent) in the background.

        Failures to connect or to find an agent are in the state, which the
        widgets show; they are not raised into the app.
        """

        async def start() -> None:
            try:
                await self.session.start()
            except LkstateError as error:
                logger.info("connecting did not complete: %s", error)

        self.command(start, group=_CONNECTION_GROUP, exclusive=True)

    def disconnect(self) -> None:
        """End the session (cancelling a connect in progress)."""
        self.command(self.session.end, group=_CONNECTION_GROUP, exclusive=True)

    def toggle_connection(self) -> None:
        """Connect when disconnected, else disconnect (or cancel connecting)."""
        if self.session.state.connection.status is ConnectionStatus.DISCONNECTED:
            self.connect()
        else:
            self.disconnect()

    def send_text(self, text: str) -> None:
        """Send typed chat; delivery (sending, sent, failed) shows in the transcript."""
        self.command(lambda: self.session.send_text(text))

    def set_microphone_enabled(self, enabled: bool) -> None:
        """Turn the microphone on or off; problems show in the state (``local_media``).

        A session without a microphone input says so in words (a toast).
        """
        self.command(lambda: self.session.set_microphone_enabled(enabled), group="lkstate-microphone", exclusive=True)

    def toggle_microphone(self) -> None:
        self.set_microphone_enabled(not self.session.state.local_media.microphone.enabled)

    def set_camera_enabled(self, enabled: bool) -> None:
        """Turn the camera on or off; problems show in the state (``local_media.camera``)."""
        self.command(lambda: self.session.set_camera_enabled(enabled), group="lkstate-camera", exclusive=True)

    def toggle_camera(self) -> None:
        self.set_camera_enabled(not self.session.state.local_media.camera.enabled)

    def set_screen_share_enabled(self, enabled: bool) -> None:
        """Share the screen or stop; problems show in the state (``local_media.screen_share``)."""
        self.command(
            lambda: self.session.set_screen_share_enabled(enabled), group="lkstate-screen-share", exclusive=True
        )

    def toggle_screen_share(self) -> None:
        self.set_screen_share_enabled(not self.session.state.local_media.screen_share.enabled)

    def dismiss_problems(self) -> None:
        try:
            self.session.dismiss_problems()
        except LkstateError as error:  # a replay is read-only
            if self.notify_command_errors:
                self.app.notify(str(error), title="lkstate", severity="warning")

    # -- delivery --------------------------------------------------------------

    def _wake(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop closed between the check and the call
            pass

    def _call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.app.set_timer(delay, callback, name="lkstate-frame")

    def _drain(self) -> None:
        box, limiter = self._box, self._limiter
        if self._closed or box is None or limiter is None:
            return
        has_value, state = box.take()
        if has_value and state is not None:
            limiter.offer(state)

    def _deliver(self, state: SessionState) -> None:
        if self._closed:
            return
        self.state = state
        self.delivered += 1
        for view in tuple(self._views):
            self._update_view(view, state)
        if self.post_messages:
            self.app.post_message(SessionStateChanged(state, self))

    def _update_view(self, view: StateView[Any], state: SessionState) -> None:
        try:
            view.lkstate_offer(state)
        except Exception:
            self.view_errors += 1
            logger.exception("%s failed to show a snapshot; the session and other widgets carry on", view)

    def _on_error(self, error: Exception) -> None:
        logger.error("the session's state stream failed", exc_info=error)


class StateView(Generic[_S]):
    """Mixin for a Textual widget that shows one slice of the session state.

    Subclasses implement :meth:`select` (``state -> slice``) and
    :meth:`show_slice` (called with the new slice, only when it differs from
    the previous one by ``==``). Mix it in *before* the widget class::

        class AgentName(StateView[str | None], Static):
            def select(self, state): return state.agent.name
            def show_slice(self, name): self.update(name or "no agent")

    The view attaches itself to the app's :class:`SessionBinding` when mounted
    and detaches when unmounted.
    """

    _lkstate_slice: Any = _UNSET

    def select(self, state: SessionState) -> _S:
        raise NotImplementedError

    def show_slice(self, value: _S) -> None:
        raise NotImplementedError

    @property
    def has_slice(self) -> bool:
        return self._lkstate_slice is not _UNSET

    @property
    def slice(self) -> _S:
        """The slice last shown. Raises ``LookupError`` before the first snapshot."""
        if self._lkstate_slice is _UNSET:
            raise LookupError("no snapshot has reached this view yet")
        return self._lkstate_slice

    def lkstate_offer(self, state: SessionState) -> bool:
        """Show ``state`` if this view's slice changed; return whether it did."""
        value = self.select(state)
        previous = self._lkstate_slice
        if previous is not _UNSET and (value is previous or value == previous):
            return False
        self._lkstate_slice = value
        self.show_slice(value)
        return True

    @property
    def binding(self) -> SessionBinding | None:
        """The app's binding (``None`` when not mounted in a bound app)."""
        app = getattr(self, "app", None)
        return binding_of(app) if isinstance(app, App) else None

    # Textual calls the handler of every class in the MRO, so these run beside
    # the widget's own; the event is optional to match Widget._on_unmount().
    def _on_mount(self, event: events.Mount | None = None) -> None:
        binding = self.binding
        if binding is not None:
            binding.attach_view(self)

    def _on_unmount(self, event: events.Unmount | None = None) -> None:
        binding = self.binding
        if binding is not None:
            binding.detach_view(self)


class StateWidget(StateView[_S], Widget):
    """A widget that renders one slice of the state, and survives its own bugs.

    Implement :meth:`select` and :meth:`render_slice`. The widget refreshes
    only when the slice changes. If :meth:`render_slice` raises, the widget
    draws a one-line notice instead and logs the error; the app, the session
    and the other widgets keep going, and the next snapshot is tried afresh.
    """

    DEFAULT_CSS = """
    StateWidget {
        height: auto;
    }
    """

    render_failures: reactive[int] = reactive(0, repaint=False)
    PLACEHOLDER: ClassVar[str] = ""
    _last_render_error: str | None = None

    def show_slice(self, value: _S) -> None:
        self.refresh(layout=True)

    def render_slice(self, value: _S) -> RenderableType | Content | str:
        raise NotImplementedError

    def render(self) -> RenderableType | Content | str:
        if not self.has_slice:
            return self.PLACEHOLDER
        try:
            return self.render_slice(self.slice)
        except Exception as error:
            self.render_failures += 1
            signature = f"{type(error).__name__}: {error}"
            if signature != self._last_render_error:  # once per distinct error, not per repaint
                self._last_render_error = signature
                logger.exception("%s failed to render; showing a notice instead", type(self).__name__)
            return Content.styled(
                f"⚠ {type(self).__name__} could not draw this: {type(error).__name__}: {error}",
                "bold $error",
            )
