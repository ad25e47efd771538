"""A real livekit-server on loopback, for tests of an agent as its users meet it.

Tests talk to the same server binary users deploy, of the version lkstate
pins, found or built and started exactly as ``lkstate demo`` does it: this
module is a thin layer over :class:`lkstate._tooling.devserver.DevServer`
(generated config on fresh free loopback ports, its own log file, ready when
it answers HTTP, graceful stop), adding what only tests need — join tokens of
any kind and a server API client.

Nothing here reaches beyond 127.0.0.1 (see ``lkstate/_tooling/devserver.py``).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from typing import Any, Literal

from livekit import api
from livekit.protocol.room import RoomConfiguration

from .._tooling.devserver import (
    PINNED_VERSION,
    DevServer,
    DevServerError,
    ensure_livekit_server,
    find_livekit_server,
    free_port,
)

__all__ = [
    "LiveKitServer",
    "LiveKitServerError",
    "find_livekit_server",
    "ensure_livekit_server",
    "free_port",
    "PINNED_VERSION",
]

LiveKitServerError = DevServerError
"""The server binary is missing, would not start, or stopped answering."""


class LiveKitServer(DevServer):
    """One livekit-server process with a generated config on free loopback ports.

    >>> server = LiveKitServer().start()
    >>> server.url            # 'ws://127.0.0.1:41234'
    >>> server.stop()

    Everything but the API key (one of its own, so a test server is told
    apart from a demo one in logs) is :class:`~lkstate._tooling.devserver.DevServer`'s,
    which takes the same keyword arguments (``redis_address`` "host:port" for
    multi-node tests, ``workdir``, ``log_level``, ``ice_tcp``, ``extra_config``…)
    and finds the binary itself (``$LIVEKIT_SERVER_BIN``, then PATH,
    ``.tools/bin``, ``~/.cache/lkstate/bin``, preferring the pinned version).
    """

    def __init__(
        self,
        binary: str | os.PathLike[str] | None = None,
        *,
        api_key: str = "lkstate-test-key",
        die_with_parent: bool = True,
        **options: Any,
    ) -> None:
        # die_with_parent: a test run that is killed (a CI timeout, a second Ctrl-C)
        # must not leave servers behind holding ports and CPU; on Linux the kernel
        # stops the server when the thread that started it is gone.
        super().__init__(binary, api_key=api_key, die_with_parent=die_with_parent, **options)

    def start(self, timeout: float = 20.0) -> LiveKitServer:
        super().start(timeout)
        return self

    def __enter__(self) -> LiveKitServer:
        return self.start()

    # -- credentials ----------------------------------------------------------------

    def token(
        self,
        room: str,
        identity: str,
        *,
        kind: Literal["standard", "agent"] = "standard",
        name: str | None = None,
        metadata: str | None = None,
        attributes: Mapping[str, str] | None = None,
        room_config: RoomConfiguration | None = None,
        grants: api.VideoGrants | None = None,
        ttl: datetime.timedelta = datetime.timedelta(hours=1),
    ) -> str:
        """A join token for ``room``.

        ``kind="agent"`` mints what the agent framework itself uses: participant
        kind AGENT and ``VideoGrants(agent=True)``. Only then does the server let
        the holder publish transcriptions on behalf of another identity.
        """
        video = grants or api.VideoGrants(
            room_join=True,
            room=room,
            can_publish=True,
            can_subscribe=True,
            can_publish_data=True,
            can_update_own_metadata=True,
            agent=True if kind == "agent" else None,
        )
        token = (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_kind(kind)
            .with_grants(video)
            .with_ttl(ttl)
        )
        if name is not None:
            token = token.with_name(name)
        if metadata is not None:
            token = token.with_metadata(metadata)
        if attributes:
            token = token.with_attributes(dict(attributes))
        if room_config is not None:
            token = token.with_room_config(room_config)
        return token.to_jwt()

    def api(self) -> api.LiveKitAPI:
        """A server API client; the caller must ``await client.aclose()``."""
        return api.LiveKitAPI(self.http_url, self.api_key, self.api_secret)
