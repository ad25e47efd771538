"""lkstate for trio: snapshots as an async iterator, session commands as awaitables.

``livekit.rtc`` is asyncio-only, so under trio the session lives on a
:class:`lkstate.LoopThread` (an asyncio loop on its own thread) and this
module is the bridge, in both directions:

- :func:`states` turns ``session.states`` into ``async for state in ...`` on
  the trio side: latest wins (a slow consumer sees fewer, newer snapshots,
  never a backlog), at most ``max_rate`` per second, and the last snapshot it
  sees once the session goes quiet is always the newest. It is built on
  :class:`lkstate.ui.Mailbox`; the wake-up crosses threads with
  ``TrioToken.run_sync_soon`` into a one-slot memory channel.
- :func:`run` awaits a session coroutine on the loop thread from trio. It
  follows trio's rules: if the trio side is cancelled, the asyncio task is
  cancelled too and :func:`run` returns only once it has unwound.
- :func:`open_session` puts both together: a loop thread, a started session,
  and a :class:`TrioSession` handle whose commands are plain ``await`` calls.

::

    async with lkstate_trio.open_session(tokens, agent_name="my-agent") as session:
        await session.send_text("Hello!")
        async with session.states() as states:
            async for state in states:
                print(state.agent.state, len(state.messages))

For asyncio programs the same delivery is :func:`lkstate.ui.latest_states`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

import trio

from lkstate import LoopThread, Message, Session, SessionState, TokenSource
from lkstate.errors import LkstateError
from lkstate.ui import DEFAULT_MAX_RATE, Mailbox

__all__ = ["StateStream", "TrioSession", "open_session", "run", "states"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


# -- commands: trio -> the session's loop ----------------------------------------------


async def run(loop_thread: LoopThread, coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` on ``loop_thread``'s asyncio loop and return its result in trio.

    Exceptions propagate. Cancelling the calling trio task cancels the asyncio
    task, and this waits (shielded) until that task has finished unwinding, so
    nothing the command started outlives the cancel scope that ran it.
    """
    token = trio.lowlevel.current_trio_token()
    finished = trio.Event()
    holder: list[asyncio.Task[_T]] = []

    def signal_finished(_: object) -> None:
        try:
            token.run_sync_soon(finished.set)
        except trio.RunFinishedError:  # the trio run is gone; nobody is waiting
            pass

    def start() -> None:  # on the loop thread
        task = asyncio.get_running_loop().create_task(coro)
        holder.append(task)
        task.add_done_callback(signal_finished)

    def cancel() -> None:  # on the loop thread, always after start()
        if holder:
            holder[0].cancel()

    try:
        loop_thread.call_soon(start)
    except BaseException:
        coro.close()
        raise
    try:
        await finished.wait()
    except BaseException:
        loop_thread.call_soon(cancel)
        # (The ignore is for the stale trio-typing stubs some venvs carry; trio's own types are fine.)
        with trio.CancelScope(shield=True):  # pyright: ignore[reportCallIssue]
            await finished.wait()
        raise
    task = holder[0]
    if task.cancelled():
        raise LkstateError(
            "The command was cancelled on the session's loop before it finished.",
            remedy="Keep the LoopThread running until the commands sent to it are done.",
        )
    return task.result()


# -- snapshots: the session's loop -> trio -----------------------------------------------


class StateStream:
    """Snapshots of a session as a trio async iterator: latest wins, rate-capped.

    Use it as an async context manager so the subscription ends with the
    block (an abandoned ``async for`` would otherwise keep it until the
    session completes)::

        async with lkstate_trio.states(session) as stream:
            async for state in stream:
                ...

    The first snapshot is the current one. Iteration ends when the session's
    state stream completes or the stream is closed.
    """

    def __init__(self, session: Session, *, max_rate: float | None = DEFAULT_MAX_RATE) -> None:
        if max_rate is not None and max_rate <= 0:
            raise ValueError("max_rate must be positive (snapshots per second), or None for no cap.")
        self._session = session
        self._interval = 0.0 if max_rate is None else 1.0 / max_rate
        self._last = -math.inf
        self._token: trio.lowlevel.TrioToken | None = None
        self._send: trio.MemorySendChannel[None] | None = None
        self._receive: trio.MemoryReceiveChannel[None] | None = None
        self._box: Mailbox[SessionState] | None = None
        self._subscription: Any = None
        self._completed = False
        self._closed = False
        self.delivered = 0
        """How many snapshots this stream yielded."""

    def _open(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._send, self._receive = trio.open_memory_channel[None](1)
        self._box = Mailbox(self._wake)
        self._subscription = self._session.states.subscribe(self._box.put, self._failed, self._complete)

    # Called on the session's loop thread (or, for the first snapshot, on ours).
    def _wake(self) -> None:
        token = self._token
        if token is None:
            return
        try:
            token.run_sync_soon(self._nudge)
        except trio.RunFinishedError:
            pass

    def _nudge(self) -> None:
        send = self._send
        if send is None:
            return
        try:
            send.send_nowait(None)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # a wake-up is already pending, or the stream is closed

    def _complete(self) -> None:
        self._completed = True
        self._wake()

    def _failed(self, error: Exception) -> None:
        logger.error("the session's state stream failed", exc_info=error)
        self._complete()

    def __aiter__(self) -> StateStream:
        return self

    async def __anext__(self) -> SessionState:
        if self._closed:
            raise StopAsyncIteration
        if self._subscription is None:
            self._open()
        box, receive = self._box, self._receive
        assert box is not None and receive is not None
        while True:
            if self._interval:
                wait = self._last + self._interval - trio.current_time()
                if wait > 0:
                    await trio.sleep(wait)  # newer snapshots replace older ones meanwhile
            has_value, state = box.take()
            if has_value and state is not None:
                self._last = trio.current_time()
                self.delivered += 1
                return state
            if self._completed:
                await self.aclose()
                raise StopAsyncIteration
            try:
                await receive.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """End the subscription; iteration stops."""
        self._closed = True
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.dispose()
        if self._send is not None:
            self._send.close()
        if self._receive is not None:
            self._receive.close()

    async def __aenter__(self) -> StateStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def states(session: Session, *, max_rate: float | None = DEFAULT_MAX_RATE) -> StateStream:
    """``async for state in states(session)`` under trio; see :class:`StateStream`.

    ``session`` runs on a :class:`lkstate.LoopThread` (or any other thread);
    the stream hops to the trio thread. ``max_rate=None`` delivers as fast as
    the consumer takes snapshots, still latest-wins.
    """
    return StateStream(session, max_rate=max_rate)


# -- a session handle for trio programs -----------------------------------------------------


class TrioSession:
    """A :class:`lkstate.Session` on a loop thread, driven from trio.

    Every command is awaited from trio and runs on the session's loop
    (:func:`run`); the state is read directly (snapshots are immutable, so
    reading one from another thread is safe).
    """

    def __init__(self, session: Session, loop_thread: LoopThread) -> None:
        self.session = session
        self.loop_thread = loop_thread

    @property
    def state(self) -> SessionState:
        return self.session.state

    def states(self, *, max_rate: float | None = DEFAULT_MAX_RATE) -> StateStream:
        return StateStream(self.session, max_rate=max_rate)

    async def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run any coroutine on the session's loop (see :func:`run`)."""
        return await run(self.loop_thread, coro)

    async def start(self, *, wait_for_agent: bool = True) -> SessionState:
        return await self.run(self.session.start(wait_for_agent=wait_for_agent))

    async def end(self) -> None:
        await self.run(self.session.end())

    async def send_text(self, text: str) -> Message:
        return await self.run(self.session.send_text(text))

    async def set_microphone_enabled(self, enabled: bool) -> None:
        await self.run(self.session.set_microphone_enabled(enabled))

    async def set_speaker_enabled(self, enabled: bool) -> None:
        await self.run(self.session.set_speaker_enabled(enabled))

    async def set_camera_enabled(self, enabled: bool) -> None:
        await self.run(self.session.set_camera_enabled(enabled))

    async def set_screen_share_enabled(self, enabled: bool) -> None:
        await self.run(self.session.set_screen_share_enabled(enabled))

    async def dismiss_problems(self) -> None:
        async def dismiss() -> None:
            self.session.dismiss_problems()

        await self.run(dismiss())

    async def wait_until(
        self, predicate: Callable[[SessionState], bool], *, timeout: float | None = None
    ) -> SessionState:
        """The first snapshot satisfying ``predicate`` (every snapshot is checked, on the loop)."""
        return await self.run(self.session.wait_until(predicate, timeout=timeout))


@asynccontextmanager
async def open_session(
    token_source: TokenSource,
    *,
    wait_for_agent: bool = True,
    loop_thread: LoopThread | None = None,
    **session_kwargs: Any,
) -> AsyncIterator[TrioSession]:
    """A started session for a trio program; ended (and its loop thread stopped) on exit.

    ``session_kwargs`` go to :class:`lkstate.Session` (``agent_name``,
    ``room_name``…). Pass your own ``loop_thread`` to share one between
    sessions; otherwise one is started and stopped here. Start failures raise
    as from :meth:`lkstate.Session.start`, after cleaning up.
    """
    own_thread = loop_thread is None
    thread = loop_thread if loop_thread is not None else LoopThread(name="lkstate-trio")
    if own_thread:
        await trio.to_thread.run_sync(thread.start)
    handle = TrioSession(Session(token_source, **session_kwargs), thread)
    try:
        await handle.start(wait_for_agent=wait_for_agent)
        yield handle
    finally:
        with trio.CancelScope(shield=True):  # pyright: ignore[reportCallIssue]
            try:
                await handle.end()
            finally:
                if own_thread:
                    await trio.to_thread.run_sync(thread.stop)
