"""A restart after an unexpected disconnect joins with a fresh token (components-js #1309).

components-js once reused the cached token after the server dropped the
participant, and the next connect was refused or landed in a dead room. Here
the real livekit-server removes the session's participant (RoomService
``remove_participant``, the way a moderator or the server's own cleanup does),
and ``start()`` is called again at once. The token source is the real caching
:class:`~lkstate._wire.tokens.DevelopmentTokenSource`, counted where it mints:
the second start must mint anew, never hand back the credentials of the
dropped connection, and the session must be connected again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from livekit import api

from lkstate import ConnectionStatus, Session, SessionOptions
from lkstate._wire.tokens import Credentials, DevelopmentTokenSource, TokenRequest
from lkstate.testing import LiveKitServer


class CountingTokenSource(DevelopmentTokenSource):
    """The caching development source, remembering every token it actually minted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.minted: list[str] = []

    def mint(self, request: TokenRequest) -> Credentials:
        credentials = super().mint(request)
        self.minted.append(credentials.participant_token)
        return credentials


def counted_session(server: LiveKitServer, room_name: str) -> tuple[CountingTokenSource, Session]:
    """A device-less session whose token source counts what it mints."""
    tokens = CountingTokenSource(server.url, server.api_key, server.api_secret)
    session = Session(
        tokens, room_name=room_name, audio_input=None, audio_output=None, options=SessionOptions(preconnect_audio=False)
    )
    return tokens, session


async def test_a_restart_after_the_server_removed_us_fetches_a_fresh_token_and_connects(
    livekit_server: LiveKitServer, room_name: str
) -> None:
    tokens, session = counted_session(livekit_server, room_name)
    client = livekit_server.api()
    try:
        await session.start(wait_for_agent=False)
        first = session.state.connection.local_identity
        assert first is not None and len(tokens.minted) == 1
        cached = await tokens.fetch(session._token_request)  # pyright: ignore[reportPrivateUsage]
        assert cached.participant_token == tokens.minted[0] and len(tokens.minted) == 1, (
            "while connected the cache serves the same credentials: the counter sees only real mints"
        )

        await client.room.remove_participant(api.RoomParticipantIdentity(room=room_name, identity=first))
        dropped = await session.wait_until(lambda s: s.connection.status is ConnectionStatus.DISCONNECTED, timeout=15)
        assert dropped.connection.disconnect_reason, "the state says why the room was left"

        restarted = await session.start(wait_for_agent=False)  # at once, while the dropped room is released
        assert restarted.connection.status is ConnectionStatus.CONNECTED
        assert len(tokens.minted) == 2, "the restart minted a new token instead of reusing the cached one"
        assert tokens.minted[1] != tokens.minted[0]
        assert restarted.connection.local_identity not in (None, first), "joined as a new participant"
        assert restarted.connection.attempt == 2
    finally:
        await session.end()
        await client.aclose()


async def test_a_restart_after_end_fetches_a_fresh_token_too(livekit_server: LiveKitServer, room_name: str) -> None:
    tokens, session = counted_session(livekit_server, room_name)
    try:
        await session.start(wait_for_agent=False)
        await session.end()
        await session.start(wait_for_agent=False)
        assert len(tokens.minted) == 2 and tokens.minted[0] != tokens.minted[1]
    finally:
        await session.end()


async def test_a_restart_asked_for_the_moment_the_state_says_disconnected_is_not_refused(
    livekit_server: LiveKitServer, room_name: str
) -> None:
    tokens, session = counted_session(livekit_server, room_name)
    client = livekit_server.api()
    restarts: list[asyncio.Task[Any]] = []

    def on_state(state: Any) -> None:
        # An app's "reconnect" reaction: start again as soon as the state says the room is gone,
        # while the session is still releasing the dropped room.
        if state.connection.status is ConnectionStatus.DISCONNECTED and state.connection.attempt == 1 and not restarts:
            restarts.append(asyncio.get_running_loop().create_task(session.start(wait_for_agent=False)))

    try:
        await session.start(wait_for_agent=False)
        first = session.state.connection.local_identity
        assert first is not None
        session.states.subscribe(on_state)
        await client.room.remove_participant(api.RoomParticipantIdentity(room=room_name, identity=first))
        await session.wait_until(lambda s: bool(restarts), timeout=15)
        restarted = await restarts[0]
        assert restarted.connection.status is ConnectionStatus.CONNECTED
        assert len(tokens.minted) == 2 and tokens.minted[1] != tokens.minted[0]
    finally:
        await session.end()
        await client.aclose()


async def test_prepare_connection_fetches_the_token_that_start_then_uses(
    livekit_server: LiveKitServer, room_name: str
) -> None:
    tokens, session = counted_session(livekit_server, room_name)
    try:
        before = session.state
        await session.prepare_connection()
        assert len(tokens.minted) == 1, "prepared: the token is fetched before any start"
        assert session.state is before, "preparing changes nothing a UI shows"

        await session.start(wait_for_agent=False)
        assert session.state.connection.status is ConnectionStatus.CONNECTED
        assert len(tokens.minted) == 1, "start used the prepared token instead of fetching another"
    finally:
        await session.end()


async def test_prepare_connection_says_what_a_failing_token_source_did() -> None:
    from lkstate import CustomTokenSource
    from lkstate.errors import TokenSourceError

    def refuse(request: TokenRequest) -> Credentials:
        raise RuntimeError("backend is down")

    session = Session(CustomTokenSource(refuse), audio_input=None, audio_output=None)
    before = session.state
    try:
        await session.prepare_connection()
    except TokenSourceError as error:
        assert "backend is down" in str(error)
    else:
        raise AssertionError("a failing token source must raise")
    assert session.state is before
