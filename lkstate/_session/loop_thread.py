"""An asyncio loop on a background thread, for hosts that have none of their own.

``livekit.rtc`` is asyncio-only and binds rooms and audio sources to the loop
that is running when they are created. Textual and Gradio already run an
asyncio loop, so a :class:`~lkstate.Session` simply runs on theirs. Qt, trio
and plain scripts do not; for them, :class:`LoopThread` owns one loop on one
daemon thread, and every session command is submitted to it.

Because everything the session does happens on that single thread, the store
folds events and calls subscribers from it alone; front-end adapters then hop
to their own thread (a queued Qt signal, ``trio.from_thread``…).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from .._wire.room_connect import CONNECT_TASK_NAME

__all__ = ["LoopThread"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class LoopThread:
    """One asyncio event loop running on a dedicated thread.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`::

        with LoopThread() as loop_thread:
            session = Session(token_source, agent_name="my-agent")
            loop_thread.run(session.start())
            ...
            loop_thread.run(session.end())

    :meth:`stop` cancels whatever is still running on the loop, waits for it to
    unwind, closes the loop and joins the thread, so nothing is left behind. A
    room connect already sent to LiveKit is let finish, so that the session it
    belongs to leaves that room rather than abandoning it half joined.
    """

    def __init__(self, *, name: str = "lkstate-loop") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop. Raises if the thread is not started."""
        if self._loop is None:
            raise RuntimeError("LoopThread is not started; call start() or use it as a context manager.")
        return self._loop

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> LoopThread:
        if self._thread is not None:
            return self
        self._ready.clear()
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait()
        return self

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
                for task in pending:
                    # A room connect under way is let finish, so the session whose start()
                    # is cancelled here can leave that room instead of abandoning it.
                    if task.get_name() != CONNECT_TASK_NAME:
                        task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Schedule ``coro`` on the loop; returns a thread-safe future of its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        """Run ``coro`` on the loop and block until it finishes (not from the loop thread)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("LoopThread.run() would deadlock when called from its own thread; await instead.")
        return self.submit(coro).result(timeout)

    def call_soon(self, callback: Callable[..., object], *args: object) -> None:
        """Call ``callback(*args)`` on the loop thread, soon."""
        self.loop.call_soon_threadsafe(callback, *args)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what still runs, close the loop and join the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("the lkstate loop thread did not stop within %.1f s", timeout)
        self._thread = None
        self._loop = None

    def __enter__(self) -> LoopThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
