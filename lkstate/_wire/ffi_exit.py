"""Leaving the process without the LiveKit native library aborting it.

``livekit.rtc`` runs WebRTC in a Rust library whose worker threads call back
into Python through a ctypes callback. At exit the SDK disposes that library
from an ``atexit`` hook, which stops new callbacks — but a callback a worker
thread already started can still reach Python a moment later. If by then the
interpreter is finalizing, CPython ends that thread instead of giving it the
GIL, the Rust runtime cannot unwind through its own frames, and the process
aborts ("panic in a function that cannot unwind", exit status -6) after the
program had finished its work. It happened to the README example in CI once.

:func:`install` adds an exit hook that disposes the library (if the SDK has
not yet) and then waits :data:`LINGER` seconds with the GIL free, so a callback
in flight finds a live interpreter. The wait is paid once, at exit, and only by
processes that started a session.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time

__all__ = ["LINGER", "install"]

logger = logging.getLogger(__name__)

LINGER = 0.2
"""Seconds the exit hook leaves the native threads after disposing the library."""

_lock = threading.Lock()
_installed_in: int | None = None


def install() -> None:
    """Register the exit hook once per process (a forked child registers its own)."""
    global _installed_in
    with _lock:
        if _installed_in == os.getpid():
            return
        _installed_in = os.getpid()
        atexit.register(quiesce)


def quiesce(linger: float = LINGER) -> bool:
    """Dispose the native library if this process loaded it, then let its threads settle.

    Returns whether there was anything to do. Never raises: it runs at exit.
    """
    try:
        from livekit.rtc._ffi_client import FfiClient  # pyright: ignore[reportPrivateUsage]

        client = FfiClient._instance  # pyright: ignore[reportPrivateUsage]
        if client is None or getattr(client, "_pid", None) != os.getpid():
            return False
        if not getattr(FfiClient, "_ffi_disposed", False):
            logger.debug("disposing the LiveKit native library before exit")
            client._dispose()  # pyright: ignore[reportPrivateUsage]
        logger.debug("letting the LiveKit native threads settle for %.2f s", linger)
        time.sleep(linger)
        return True
    except Exception:  # a different SDK layout: fall back to the SDK's own exit hook
        logger.debug("could not settle the LiveKit native library at exit", exc_info=True)
        return False
