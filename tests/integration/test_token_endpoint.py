"""EndpointTokenSource against a real HTTP token endpoint on loopback.

The endpoint is an aiohttp.web server on 127.0.0.1 that mints real LiveKit
tokens, the way a backend serving LiveKit's standard token endpoint does. It
records every HTTP request it receives (any path), so each test can say how
many requests one ``fetch()`` cost: never more than one.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import jwt
import pytest
from aiohttp import web
from livekit.api import AccessToken, VideoGrants
from livekit.protocol.agent_dispatch import RoomAgentDispatch
from livekit.protocol.room import RoomConfiguration

from lkstate._core.errors import TokenSourceError
from lkstate._wire.tokens import Credentials, EndpointTokenSource, TokenRequest
from tests.harness.http import serve

API_KEY = "devkey"
API_SECRET = "a-development-secret-of-at-least-32-characters"
LIVEKIT_URL = "ws://127.0.0.1:7880"


@attrs.define
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def mint(body: dict[str, Any], *, ttl: float = 600) -> str:
    """What a real backend does with a standard token request."""
    token = (
        AccessToken(API_KEY, API_SECRET)
        .with_identity(body.get("participant_identity") or "visitor")
        .with_ttl(datetime.timedelta(seconds=ttl))
        .with_grants(VideoGrants(room_join=True, room=body.get("room_name") or "room-from-endpoint"))
    )
    if body.get("participant_name"):
        token = token.with_name(body["participant_name"])
    agents = (body.get("room_config") or {}).get("agents") or []
    if agents:
        token = token.with_room_config(
            RoomConfiguration(
                agents=[
                    RoomAgentDispatch(
                        agent_name=a.get("agent_name", ""),
                        metadata=a.get("metadata", ""),
                        deployment=a.get("deployment", ""),
                    )
                    for a in agents
                ]
            )
        )
    return token.to_jwt()


Responder = Callable[[dict[str, Any]], Awaitable[web.StreamResponse]]


async def standard_response(body: dict[str, Any]) -> web.StreamResponse:
    return web.json_response({"server_url": LIVEKIT_URL, "participant_token": mint(body)})


@attrs.define
class TokenEndpoint:
    """A live token endpoint. Set ``respond`` to change what ``/token`` answers."""

    base: str
    seen: list[Seen] = attrs.Factory(list)
    respond: Responder = standard_response
    #: Set when a request arrives; handy to know a fetch reached the server.
    arrived: asyncio.Event = attrs.Factory(asyncio.Event)
    #: Handlers installed by :meth:`hold_answers` wait for this; teardown sets it.
    gate: asyncio.Event = attrs.Factory(asyncio.Event)

    @property
    def url(self) -> str:
        return f"{self.base}/token"

    def source(self, **kwargs: Any) -> EndpointTokenSource:
        return EndpointTokenSource(self.url, **kwargs)

    def hold_answers(self) -> asyncio.Event:
        """Make ``/token`` answer normally, but only once the returned gate is set."""

        async def held(body: dict[str, Any]) -> web.StreamResponse:
            await self.gate.wait()
            return await standard_response(body)

        self.respond = held
        return self.gate


@pytest.fixture
async def endpoint() -> AsyncIterator[TokenEndpoint]:
    state = TokenEndpoint(base="")

    @web.middleware
    async def record(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        state.seen.append(Seen(request.method, request.path, dict(request.headers), await request.read()))
        state.arrived.set()
        return await handler(request)

    async def token(request: web.Request) -> web.StreamResponse:
        return await state.respond(await request.json())

    app = web.Application(middlewares=[record])
    app.router.add_post("/token", token)
    app.router.add_get("/elsewhere", standard_get)
    async with serve(app) as base:
        state.base = base
        try:
            yield state
        finally:
            state.gate.set()


async def standard_get(request: web.Request) -> web.StreamResponse:
    return web.json_response({"server_url": LIVEKIT_URL, "participant_token": mint({})})


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def full_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)) + repr(error)


async def fetch_error(source: EndpointTokenSource, request: TokenRequest | None = None) -> TokenSourceError:
    with pytest.raises(TokenSourceError) as caught:
        await source.fetch(request or TokenRequest())
    assert caught.value.remedy, "every failure says what to do next"
    return caught.value


# --- The request and the answer ------------------------------------------------


async def test_fetch_posts_the_standard_snake_case_request_and_returns_the_minted_credentials(
    endpoint: TokenEndpoint,
) -> None:
    request = TokenRequest(
        room_name="kitchen",
        participant_name="Alice",
        participant_identity="alice",
        participant_metadata='{"plan": "pro"}',
        participant_attributes={"lang": "en"},
        agent_name="chef",
        agent_metadata='{"menu": 1}',
        agent_deployment="staging",
    )

    credentials = await endpoint.source(headers={"Authorization": "Bearer abc123"}).fetch(request)

    [seen] = endpoint.seen
    assert (seen.method, seen.path) == ("POST", "/token")
    assert seen.headers["Authorization"] == "Bearer abc123"
    assert seen.headers["Content-Type"].startswith("application/json")
    assert seen.json() == {
        "room_name": "kitchen",
        "participant_name": "Alice",
        "participant_identity": "alice",
        "participant_metadata": '{"plan": "pro"}',
        "participant_attributes": {"lang": "en"},
        "room_config": {"agents": [{"agent_name": "chef", "metadata": '{"menu": 1}', "deployment": "staging"}]},
    }
    assert credentials.server_url == LIVEKIT_URL
    assert (credentials.claims.identity, credentials.claims.room) == ("alice", "kitchen")
    assert credentials.claims.dispatched_agents == ("chef",)


async def test_absent_request_fields_are_left_out_of_the_body(endpoint: TokenEndpoint) -> None:
    await endpoint.source().fetch(TokenRequest())
    await endpoint.source().fetch(TokenRequest(room_name="r", agent_name="bot"))

    assert [seen.json() for seen in endpoint.seen] == [
        {},
        {"room_name": "r", "room_config": {"agents": [{"agent_name": "bot"}]}},
    ]


async def test_a_camel_case_answer_is_accepted(endpoint: TokenEndpoint) -> None:
    async def camel(body: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({"serverUrl": LIVEKIT_URL, "participantToken": mint(body)})

    endpoint.respond = camel

    credentials = await endpoint.source().fetch(TokenRequest(participant_identity="bob"))

    assert credentials.server_url == LIVEKIT_URL
    assert credentials.claims.identity == "bob"


# --- Caching ---------------------------------------------------------------------


async def test_an_equal_request_is_served_from_the_cache(endpoint: TokenEndpoint) -> None:
    source = endpoint.source()

    first = await source.fetch(TokenRequest(room_name="r", participant_attributes={"a": "1", "b": "2"}))
    second = await source.fetch(TokenRequest(room_name="r", participant_attributes=[("b", "2"), ("a", "1")]))

    assert second is first
    assert len(endpoint.seen) == 1


async def test_a_different_request_asks_the_endpoint_again(endpoint: TokenEndpoint) -> None:
    source = endpoint.source()

    first = await source.fetch(TokenRequest(room_name="r"))
    second = await source.fetch(TokenRequest(room_name="r", agent_name="bot"))

    assert second != first
    assert second.claims.dispatches_agent
    assert len(endpoint.seen) == 2


async def test_cached_credentials_are_dropped_validity_tolerance_seconds_before_expiry(
    endpoint: TokenEndpoint,
) -> None:
    clock = FakeClock(time.time())
    source = endpoint.source(clock=clock, validity_tolerance=30.0)
    first = await source.fetch(TokenRequest())
    expires_at = first.claims.expires_at
    assert expires_at is not None

    clock.now = expires_at - 31.0
    still_cached = await source.fetch(TokenRequest())
    requests_before_tolerance = len(endpoint.seen)
    clock.now = expires_at - 30.0
    refreshed = await source.fetch(TokenRequest())

    assert still_cached is first
    assert requests_before_tolerance == 1
    assert refreshed is not first
    assert len(endpoint.seen) == 2


async def test_invalidate_forces_the_next_fetch_to_ask_the_endpoint(endpoint: TokenEndpoint) -> None:
    source = endpoint.source()

    first = await source.fetch(TokenRequest())
    source.invalidate()
    second = await source.fetch(TokenRequest())

    assert second is not first
    assert len(endpoint.seen) == 2


async def test_a_token_that_is_not_yet_valid_is_returned_but_not_cached(endpoint: TokenEndpoint) -> None:
    async def future_token(body: dict[str, Any]) -> web.StreamResponse:
        now = int(time.time())
        token = jwt.encode({"sub": "later", "nbf": now + 3600, "exp": now + 7200}, API_SECRET, algorithm="HS256")
        return web.json_response({"server_url": LIVEKIT_URL, "participant_token": token})

    endpoint.respond = future_token
    source = endpoint.source()

    first = await source.fetch(TokenRequest())
    await source.fetch(TokenRequest())

    assert first.claims.identity == "later"
    assert not first.claims.is_valid_at(time.time())
    assert len(endpoint.seen) == 2


async def test_a_failure_is_not_remembered_and_the_next_fetch_tries_once_more(endpoint: TokenEndpoint) -> None:
    answers = [web.Response(status=503, text="warming up")]

    async def flaky(body: dict[str, Any]) -> web.StreamResponse:
        return answers.pop() if answers else await standard_response(body)

    endpoint.respond = flaky
    source = endpoint.source()

    error = await fetch_error(source)
    assert len(endpoint.seen) == 1
    credentials = await source.fetch(TokenRequest())

    assert "HTTP 503" in str(error)
    assert credentials.server_url == LIVEKIT_URL
    assert len(endpoint.seen) == 2


# --- Concurrency --------------------------------------------------------------------


async def test_concurrent_fetches_of_an_equal_request_share_one_http_request(endpoint: TokenEndpoint) -> None:
    gate = endpoint.hold_answers()
    source = endpoint.source()

    fetches = [asyncio.create_task(source.fetch(TokenRequest(room_name="r"))) for _ in range(3)]
    await endpoint.arrived.wait()
    gate.set()
    results = await asyncio.gather(*fetches)

    assert len(endpoint.seen) == 1
    assert results[0] is results[1] is results[2]


async def test_concurrent_fetches_of_different_requests_do_not_share(endpoint: TokenEndpoint) -> None:
    source = endpoint.source()

    a, b = await asyncio.gather(source.fetch(TokenRequest(room_name="a")), source.fetch(TokenRequest(room_name="b")))

    assert (a.claims.room, b.claims.room) == ("a", "b")
    assert len(endpoint.seen) == 2


async def test_cancelling_one_of_several_waiting_fetches_leaves_the_others_served(endpoint: TokenEndpoint) -> None:
    gate = endpoint.hold_answers()
    source = endpoint.source()

    impatient = asyncio.create_task(source.fetch(TokenRequest()))
    patient = asyncio.create_task(source.fetch(TokenRequest()))
    await endpoint.arrived.wait()
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    gate.set()
    credentials = await patient

    assert credentials.server_url == LIVEKIT_URL
    assert len(endpoint.seen) == 1


async def no_token_fetch_tasks_left() -> None:
    while [task for task in asyncio.all_tasks() if task.get_name().startswith("lkstate token fetch")]:
        await asyncio.sleep(0.01)


async def test_when_every_waiting_fetch_is_cancelled_the_http_request_is_abandoned(endpoint: TokenEndpoint) -> None:
    gate = endpoint.hold_answers()
    source = endpoint.source()

    abandoned = asyncio.create_task(source.fetch(TokenRequest()))
    await endpoint.arrived.wait()
    abandoned.cancel()
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    # The endpoint still has not answered, yet the source's request task goes away.
    await asyncio.wait_for(no_token_fetch_tasks_left(), timeout=10)
    gate.set()
    credentials = await source.fetch(TokenRequest())  # must not join the abandoned request

    assert credentials.server_url == LIVEKIT_URL
    assert len(endpoint.seen) == 2


async def test_an_answer_requested_before_invalidate_is_not_cached(endpoint: TokenEndpoint) -> None:
    gate = endpoint.hold_answers()
    source = endpoint.source()

    before = asyncio.create_task(source.fetch(TokenRequest()))
    await endpoint.arrived.wait()
    source.invalidate()
    gate.set()
    stale = await before
    fresh = await source.fetch(TokenRequest())

    assert fresh is not stale
    assert len(endpoint.seen) == 2


async def test_a_fetch_after_invalidate_does_not_join_the_request_already_in_flight(endpoint: TokenEndpoint) -> None:
    gate = endpoint.hold_answers()
    source = endpoint.source()

    before = asyncio.create_task(source.fetch(TokenRequest()))
    await endpoint.arrived.wait()
    source.invalidate()
    after = asyncio.create_task(source.fetch(TokenRequest()))
    gate.set()
    await asyncio.gather(before, after)

    assert len(endpoint.seen) == 2


# --- Failures: each in plain words, each costing exactly one request ------------------


async def test_an_http_500_that_echoes_the_token_is_reported_without_the_token(endpoint: TokenEndpoint) -> None:
    secret_token = mint({"participant_identity": "victim"})

    async def broken(body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(status=500, text=f"Traceback: failed to store participant_token={secret_token}")

    endpoint.respond = broken

    error = await fetch_error(endpoint.source())

    assert len(endpoint.seen) == 1
    assert "HTTP 500 Internal Server Error" in str(error)
    assert "failed to store participant_token=[redacted token]" in str(error)
    assert "logs" in error.remedy
    assert secret_token not in full_text(error)
    assert secret_token.split(".")[2] not in full_text(error)


async def test_an_http_401_suggests_checking_the_headers_and_never_echoes_them(endpoint: TokenEndpoint) -> None:
    async def unauthorized(body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(status=401, text="bad credentials: Bearer wrong-bearer-value")

    endpoint.respond = unauthorized

    error = await fetch_error(endpoint.source(headers={"Authorization": "Bearer wrong-bearer-value"}))

    assert len(endpoint.seen) == 1
    assert "HTTP 401" in str(error)
    assert "headers=" in error.remedy
    assert "wrong-bearer-value" not in full_text(error)


async def test_a_wrong_path_is_reported_as_http_404_with_a_hint_about_the_url(endpoint: TokenEndpoint) -> None:
    source = EndpointTokenSource(f"{endpoint.base}/not-the-token-endpoint")

    error = await fetch_error(source)

    assert len(endpoint.seen) == 1
    assert "HTTP 404" in str(error)
    assert "/not-the-token-endpoint" in str(error)
    assert "path" in error.remedy


async def test_an_answer_that_is_not_json_is_reported_as_such(endpoint: TokenEndpoint) -> None:
    async def html(body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(text="<html><body>Welcome to our shop</body></html>", content_type="text/html")

    endpoint.respond = html

    error = await fetch_error(endpoint.source())

    assert len(endpoint.seen) == 1
    assert "not JSON" in str(error)
    assert "Welcome to our shop" in str(error)


async def test_a_json_answer_that_is_not_an_object_is_reported(endpoint: TokenEndpoint) -> None:
    async def array(body: dict[str, Any]) -> web.StreamResponse:
        return web.json_response([LIVEKIT_URL, mint(body)])

    endpoint.respond = array

    error = await fetch_error(endpoint.source())

    assert len(endpoint.seen) == 1
    assert "JSON list, not an object" in str(error)


async def test_an_answer_missing_the_token_names_what_is_missing_and_what_is_there(endpoint: TokenEndpoint) -> None:
    async def tokenless(body: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({"server_url": LIVEKIT_URL, "token": mint(body)})

    endpoint.respond = tokenless

    error = await fetch_error(endpoint.source())

    assert len(endpoint.seen) == 1
    assert "without a usable participant_token" in str(error)
    assert "fields present: server_url, token" in str(error)


async def test_a_server_url_that_is_not_livekit_is_refused(endpoint: TokenEndpoint) -> None:
    async def ftp(body: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({"server_url": "ftp://files.example.com", "participant_token": mint(body)})

    endpoint.respond = ftp

    error = await fetch_error(endpoint.source())

    assert len(endpoint.seen) == 1
    assert "not a LiveKit server URL" in str(error)


async def test_an_expired_token_is_refused(endpoint: TokenEndpoint) -> None:
    async def stale(body: dict[str, Any]) -> web.StreamResponse:
        now = int(time.time())
        token = jwt.encode({"sub": "old", "nbf": now - 7200, "exp": now - 3600}, API_SECRET, algorithm="HS256")
        return web.json_response({"server_url": LIVEKIT_URL, "participant_token": token})

    endpoint.respond = stale

    error = await fetch_error(endpoint.source())

    assert len(endpoint.seen) == 1
    assert "already expired" in str(error)
    assert "clocks" in error.remedy


async def test_a_malformed_token_is_refused_without_quoting_it(endpoint: TokenEndpoint) -> None:
    async def opaque(body: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({"server_url": LIVEKIT_URL, "participant_token": "opaque-session-id-12345"})

    endpoint.respond = opaque

    error = await fetch_error(endpoint.source())

    assert len(endpoint.seen) == 1
    assert "malformed" in str(error)
    assert "opaque-session-id-12345" not in full_text(error)


async def test_an_endpoint_that_does_not_answer_in_time_is_reported_as_a_timeout(endpoint: TokenEndpoint) -> None:
    endpoint.hold_answers()  # and never release them

    error = await fetch_error(endpoint.source(timeout=0.3))

    assert len(endpoint.seen) == 1
    assert "did not answer within 0.3 s" in str(error)
    assert "timeout=" in error.remedy


async def test_a_redirect_is_reported_and_not_followed(endpoint: TokenEndpoint) -> None:
    async def moved(body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": f"{endpoint.base}/elsewhere?key=sekrit"})

    endpoint.respond = moved

    error = await fetch_error(endpoint.source(headers={"Authorization": "Bearer x"}))

    assert [seen.path for seen in endpoint.seen] == ["/token"]
    assert f"redirect to {endpoint.base}/elsewhere" in str(error)
    assert "sekrit" not in str(error)


async def test_an_oversized_answer_is_refused(endpoint: TokenEndpoint) -> None:
    async def huge(body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(body=b" " * (2 * 1024 * 1024), content_type="application/json")

    endpoint.respond = huge

    error = await fetch_error(endpoint.source())

    assert len(endpoint.seen) == 1
    assert "more than 1024 KiB" in str(error)


async def test_a_refused_connection_is_reported_in_plain_words() -> None:
    with socket.socket() as probe:  # a port that was just free, so nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    error = await fetch_error(EndpointTokenSource(f"http://127.0.0.1:{port}/token"))

    assert f"Could not connect to the token endpoint http://127.0.0.1:{port}/token" in str(error)
    assert "connection was refused" in str(error)
    assert "running" in error.remedy


async def test_credentials_fetched_over_http_satisfy_the_credentials_contract(endpoint: TokenEndpoint) -> None:
    credentials = await endpoint.source().fetch(TokenRequest())

    assert isinstance(credentials, Credentials)
    assert credentials.participant_token not in repr(credentials)
