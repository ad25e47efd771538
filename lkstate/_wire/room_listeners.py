"""Callbacks on one ``rtc.Room``, registered together and removed together.

Controllers that follow a room (the microphone, the camera) listen to a few of
its events while attached and must leave none behind when the room goes —
a forgotten callback keeps the controller alive and acts on a room it no
longer owns. :class:`RoomListeners` holds what was registered, so detaching
is one call that cannot miss one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from livekit import rtc

if TYPE_CHECKING:
    from livekit.rtc.room import EventTypes

__all__ = ["RoomListeners"]


class RoomListeners:
    """The callbacks one owner registered on one room."""

    def __init__(self) -> None:
        self._room: rtc.Room | None = None
        self._entries: list[tuple[EventTypes, Callable[..., Any]]] = []

    def attach(self, room: rtc.Room, listeners: Iterable[tuple[EventTypes, Callable[..., Any]]]) -> None:
        """Register each ``(event, callback)`` on ``room`` (after removing any from an earlier room)."""
        self.detach()
        self._room = room
        for event, callback in listeners:
            room.on(event, callback)  # pyright: ignore[reportUnknownMemberType]
            self._entries.append((event, callback))

    def detach(self) -> None:
        """Remove every callback registered by :meth:`attach`; a room already torn down is fine."""
        room, self._room = self._room, None
        entries, self._entries = self._entries, []
        if room is None:
            return
        for event, callback in entries:
            with contextlib.suppress(Exception):
                room.off(event, callback)  # pyright: ignore[reportUnknownMemberType]
