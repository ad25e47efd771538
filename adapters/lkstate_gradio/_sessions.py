"""One lkstate Session per browser session, on one shared asyncio loop thread.

Gradio serves every browser tab of every visitor from one process; each page
load gets a random ``session_hash`` that comes with every event the tab
sends (``gr.Request.session_hash``). :class:`BrowserSessions` keeps one
:class:`~lkstate.Session` per hash: created the first time the tab needs it
(its load event, or its first command), ended and forgotten when the tab goes
away (``demo.unload``).

Which loop the sessions run on
------------------------------
``livekit.rtc`` binds a ``Room`` to the asyncio loop that is current when the
room is created, and every later call on it must happen on that loop. Gradio
runs its ``async def`` handlers on the loop of the uvicorn server thread, and
that loop is the same for every request for as long as the server runs, so
running sessions there would work. They run on a dedicated, shared
:class:`~lkstate.LoopThread` instead, because:

- the loop a session needs is then one lkstate owns, not an implementation
  detail of how Gradio happens to be served (``launch()``, mounted in another
  FastAPI app, a reloading dev server, sync handlers in a thread pool);
- the real-time work of every room (FFI callbacks, audio frames, data
  streams) does not queue behind web requests on the server's loop, and a
  slow page render never delays the rooms;
- every command of one session, whichever handler sends it, runs on that
  same thread, which is exactly what the Room requires.

Commands are submitted to that loop and awaited from the handler's loop with
:func:`asyncio.wrap_future`. Snapshots go the other way through
:func:`lkstate.ui.latest_states`: the store emits on the loop thread, the
iterator hands the newest snapshot to the handler's loop at most
``max_rate`` times a second and always ends on the latest. Nothing the web
side does can block the session: putting a snapshot in the mailbox never
waits, so a slow or vanished browser only ever sees fewer, newer frames.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

import attrs
import reactivex
from reactivex import operators as ops
from reactivex.subject import AsyncSubject

from lkstate import LoopThread, SessionState
from lkstate.ui import DEFAULT_MAX_RATE, SessionLike, latest_states

__all__ = ["BrowserSessions", "DEFAULT_WEB_MAX_RATE", "SessionKey", "SessionLike"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


_S = TypeVar("_S", bound=SessionLike)

DEFAULT_WEB_MAX_RATE = min(DEFAULT_MAX_RATE, 15.0)
"""Frames per second sent to a browser tab. Each frame is rendered on the server and
sent to the tab as a diff, so a web page gets fewer than a local window; 15 a second
still shows speech as it is transcribed."""


class _HasSessionHash(Protocol):
    @property
    def session_hash(self) -> str | None: ...


SessionKey = str | _HasSessionHash
"""A browser session: its hash, or the ``gr.Request`` that carries it."""


def _key(key: SessionKey) -> str:
    if isinstance(key, str):
        return key
    value = key.session_hash
    if not value:
        raise ValueError(
            "This request has no session hash, so it cannot be tied to a browser session "
            "(it did not come from a page of this app, or the queue is disabled)."
        )
    return value


@attrs.define
class _Entry(Generic[_S]):
    session: _S
    closed: AsyncSubject[None] = attrs.field(factory=lambda: AsyncSubject[None]())
    """Emits once, on release. An AsyncSubject replays that to late subscribers, so a
    stream that subscribes after the release still ends at once."""
    released: bool = False


class BrowserSessions(Generic[_S]):
    """The sessions of every open browser tab, keyed by Gradio's session hash.

    ``session_factory()`` makes a new, unstarted :class:`~lkstate.Session`
    (or anything with its API, see :class:`SessionLike`: a recorded replay);
    it is called once per browser session and must give each its own token
    source (a token source caches credentials per request, so a shared one
    would put every tab in the same room under the same identity).

    Use from Gradio handlers (all ``async def``)::

        sessions = BrowserSessions(lambda: Session(token_source_factory(), agent_name="my-agent"))

        async def on_send(text: str, request: gr.Request) -> str:
            await sessions.run(request, lambda s: s.send_text(text))
            return ""

        demo.unload(sessions.release)      # gradio passes the gr.Request

    ``close()`` ends every session and stops the loop thread.
    """

    def __init__(
        self,
        session_factory: Callable[[], _S],
        *,
        max_rate: float | None = DEFAULT_WEB_MAX_RATE,
        loop_thread: LoopThread | None = None,
    ) -> None:
        if max_rate is not None and max_rate <= 0:
            raise ValueError("max_rate must be a positive number of frames per second, or None.")
        self._factory = session_factory
        self._max_rate = max_rate
        self._own_loop = loop_thread is None
        self._loop_thread = loop_thread
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry[_S]] = {}
        self._closed = False
        self._background: set[asyncio.Future[Any]] = set()
        """Deliveries still going on (touched on the loop thread only)."""

    @property
    def max_rate(self) -> float | None:
        return self._max_rate

    @property
    def loop_thread(self) -> LoopThread:
        """The thread every session runs on (started on first use)."""
        with self._lock:
            if self._loop_thread is None:
                self._loop_thread = LoopThread(name="lkstate-gradio")
            loop_thread = self._loop_thread
        if not loop_thread.is_running:
            loop_thread.start()
        return loop_thread

    def keys(self) -> tuple[str, ...]:
        """The session hashes that have a live session."""
        with self._lock:
            return tuple(self._entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        with self._lock:
            return key in self._entries

    def get(self, key: SessionKey) -> _S | None:
        """The session of this browser session, or ``None`` if it has none (yet or any more)."""
        with self._lock:
            entry = self._entries.get(_key(key))
        return entry.session if entry is not None else None

    def session(self, key: SessionKey) -> _S:
        """The session of this browser session, created on first use."""
        return self._entry(key).session

    def _entry(self, key: SessionKey) -> _Entry[_S]:
        name = _key(key)
        with self._lock:
            if self._closed:
                raise RuntimeError("These browser sessions are closed; the app is shutting down.")
            entry = self._entries.get(name)
            if entry is None:
                entry = _Entry(self._factory())
                self._entries[name] = entry
                logger.info("browser session %s: new lkstate session", name)
        return entry

    # -- commands -----------------------------------------------------------------

    def submit(self, key: SessionKey, command: Callable[[_S], Coroutine[Any, Any, _T]]) -> concurrent.futures.Future[_T]:
        """Run ``command(session)`` on the sessions' loop; return a thread-safe future at once.

        For commands whose outcome the state shows anyway (``start``): the
        caller need not wait, and a failure is logged, not lost.
        """
        session = self.session(key)
        future = self.loop_thread.submit(command(session))
        future.add_done_callback(_log_failure)
        return future

    async def run(self, key: SessionKey, command: Callable[[_S], Awaitable[_T]]) -> _T:
        """Run ``command(session)`` on the sessions' loop and await its result from the caller's loop."""
        session = self.session(key)

        async def call() -> _T:
            return await command(session)

        return await asyncio.wrap_future(self.loop_thread.submit(call()))

    async def send_text(self, key: SessionKey, text: str) -> None:
        """Send typed chat without waiting for its delivery.

        Returns as soon as the message is in the transcript (``sending``), so
        the page can clear its text box at once: the first message in a room
        can take seconds to go out while the data channel opens. Delivery
        goes on in the background and its outcome (``sent``, or ``failed``
        with the reason) shows in the state. Raises at once what stops the
        message from being sent at all: :class:`~lkstate.SessionClosedError`
        when not connected, :class:`ValueError` for empty text.
        """
        session = self.session(key)

        async def begin() -> None:
            delivery = asyncio.ensure_future(session.send_text(text))
            self._background.add(delivery)
            delivery.add_done_callback(self._background.discard)
            delivery.add_done_callback(_log_task_failure)
            # One turn of the loop runs send_text up to its first real wait: its
            # checks (which raise) and putting the message in the transcript.
            await asyncio.sleep(0)
            if delivery.done():
                delivery.result()  # raises what stopped it

        await asyncio.wrap_future(self.loop_thread.submit(begin()))

    # -- snapshots ----------------------------------------------------------------

    async def states(self, key: SessionKey) -> AsyncIterator[SessionState]:
        """The session's snapshots on the caller's loop: current first, latest wins, rate-capped.

        Ends when the browser session is released (or the app closes), so a
        streaming Gradio event built on it finishes with the tab.
        """
        entry = self._entry(key)
        if entry.released:
            return
        source: reactivex.Observable[SessionState] = entry.session.states.pipe(ops.take_until(entry.closed))
        async for state in latest_states(source, max_rate=self._max_rate):
            yield state

    # -- ending -------------------------------------------------------------------

    async def release(self, key: SessionKey) -> None:
        """End this browser session's lkstate session and forget it (for ``demo.unload``).

        Safe to call for a session that does not exist or was released already.
        """
        name = _key(key)
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry.released:
                return
            entry.released = True
        logger.info("browser session %s: ending its lkstate session", name)
        try:
            await asyncio.wrap_future(self.loop_thread.submit(self._end(entry)))
        finally:
            # Forgotten only once it has ended: whoever sees the hash gone sees an ended session.
            with self._lock:
                if self._entries.get(name) is entry:
                    del self._entries[name]

    async def _end(self, entry: _Entry[_S]) -> None:
        try:
            await entry.session.end()
        except Exception:
            logger.exception("ending a browser session's lkstate session failed")
        finally:
            # Signalled on the loop thread, where the session emits, so the
            # stream sees the final snapshot and then its completion, in order.
            entry.released = True
            entry.closed.on_next(None)
            entry.closed.on_completed()

    def close(self, timeout: float = 15.0) -> None:
        """End every session and stop the loop thread (if this object started it).

        Call from outside the loop thread, after the web server has stopped.
        """
        with self._lock:
            self._closed = True
            entries = list(self._entries.values())
            self._entries.clear()
            loop_thread = self._loop_thread
        if loop_thread is None or not loop_thread.is_running:
            return
        if entries:

            async def end_all() -> None:
                await asyncio.gather(*(self._end(entry) for entry in entries))

            try:
                loop_thread.run(end_all(), timeout)
            except Exception:
                logger.exception("ending the browser sessions failed")
        if self._own_loop:
            loop_thread.stop()


def _log_task_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.info("a message was not delivered: %s", task.exception())


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        # The state already shows it (ConnectionFailedError, AgentUnavailableError…).
        logger.info("a session command failed: %s", error)
