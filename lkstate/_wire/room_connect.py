"""Connecting an ``rtc.Room`` so that a cancelled connect never leaves a room behind.

``rtc.Room.connect`` sends its connect request to LiveKit's native library and
then awaits the answer. Cancelled while it awaits (``end()`` during ``start()``:
a browser tab closed, a test ended), the SDK drops that answer. The native
room connects all the same, but nothing takes up its events, disconnects it or
gives back the event queue the SDK subscribed for it: it stays in the server's
room for the life of the process, its native threads keep calling into Python
during unrelated work, and some seconds later the native library reports
"timed out waiting for ReadyForRoomEventRequest after ConnectCallback" — as
an error in the log, or as a panic on which the SDK sends its own process
SIGTERM. On Python 3.11 one of those calls, arriving while a later test
stopped :mod:`tracemalloc`, segfaulted the process (CPython gh-128679, fixed
in 3.12 and 3.13 only).

:func:`connect` therefore never abandons the SDK's connect half way. It runs it
as a task of its own and shields it: when the caller is cancelled, it waits for
the connect to finish (up to :data:`SETTLE` seconds, the SDK bounds a connect
itself), leaves the room if it did connect, and only then lets the
cancellation through. A cancellation costs the rest of the connect, which is
what it takes to leave a room cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from livekit import rtc

__all__ = ["CONNECT_TASK_NAME", "SETTLE", "connect"]

logger = logging.getLogger(__name__)

SETTLE = 20.0
"""Seconds a cancelled connect is given to finish before it is left to finish alone."""

CONNECT_TASK_NAME = "lkstate-room-connect"
"""The name of the task running the SDK's connect: a loop shutting down lets it finish
(:class:`~lkstate.LoopThread` does) rather than cancel it, for the reason above."""

_late: set[asyncio.Future[None]] = set()
"""Rooms still connecting after :data:`SETTLE`: they are left as soon as they connect."""


async def connect(room: rtc.Room, url: str, token: str, options: rtc.RoomOptions, *, settle: float = SETTLE) -> None:
    """``room.connect(url, token, options)``, but a cancellation leaves the room instead of abandoning it.

    Raises what the SDK's connect raises. Cancelled, it waits for the connect
    to end (a further cancellation meanwhile does not cut that wait short),
    disconnects the room if it connected, then raises :class:`asyncio.CancelledError`.
    """
    connecting = asyncio.get_running_loop().create_task(room.connect(url, token, options), name=CONNECT_TASK_NAME)
    try:
        await asyncio.shield(connecting)
    except asyncio.CancelledError:
        await _leave_when_connected(room, connecting, settle)
        raise


async def _leave_when_connected(room: rtc.Room, connecting: asyncio.Future[None], settle: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle
    while not connecting.done() and (remaining := deadline - loop.time()) > 0:
        try:
            await asyncio.wait({connecting}, timeout=remaining)
        except asyncio.CancelledError:
            continue  # the caller is being cancelled already; the room must still be left
    if not connecting.done():
        logger.warning(
            "a cancelled room connect did not finish within %.0f s; the room is left as soon as it connects", settle
        )
        later = loop.create_task(_disconnect_after(room, connecting), name="lkstate-leave-late-room")
        _late.add(later)
        later.add_done_callback(_late.discard)
        return
    if connecting.cancelled() or connecting.exception() is not None:
        return  # it never connected: nothing to leave (the error was the SDK's to report)
    with contextlib.suppress(Exception):
        await room.disconnect()


async def _disconnect_after(room: rtc.Room, connecting: asyncio.Future[None]) -> None:
    with contextlib.suppress(BaseException):
        await connecting
    if connecting.done() and not connecting.cancelled() and connecting.exception() is None:
        with contextlib.suppress(Exception):
            await room.disconnect()
