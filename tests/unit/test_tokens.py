"""Token sources and token claims: the parts that need no network.

The endpoint source's HTTP behaviour is specified against a real HTTP server in
tests/integration/test_token_endpoint.py.
"""

from __future__ import annotations

import base64
import json
import re
import time
import traceback

import pytest
from livekit.api import TokenVerifier

from lkstate._core.errors import TokenSourceError
from lkstate._wire.tokens import (
    Credentials,
    CustomTokenSource,
    DevelopmentTokenSource,
    EndpointTokenSource,
    LiteralTokenSource,
    TokenClaims,
    TokenRequest,
    TokenSource,
    decode_claims,
)

API_KEY = "devkey"
API_SECRET = "a-development-secret-of-at-least-32-characters"
SERVER_URL = "ws://127.0.0.1:7880"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(payload: object, header: object | None = None) -> str:
    """An unsigned-looking JWT: claims are read without verifying signatures."""
    header = header if header is not None else {"alg": "HS256", "typ": "JWT"}
    return ".".join(
        (
            b64url(json.dumps(header).encode()),
            b64url(json.dumps(payload).encode()),
            b64url(b"not-a-real-signature-but-long-enough"),
        )
    )


def full_text(error: BaseException) -> str:
    """Everything a traceback would print about ``error``, causes included."""
    return "".join(traceback.format_exception(error)) + repr(error)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def dev_source(**kwargs: object) -> DevelopmentTokenSource:
    return DevelopmentTokenSource(SERVER_URL, API_KEY, API_SECRET, **kwargs)  # type: ignore[arg-type]


# --- Claims -------------------------------------------------------------------


async def test_a_dev_minted_token_with_agent_name_dispatches_that_agent() -> None:
    credentials = await dev_source().fetch(TokenRequest(agent_name="concierge", agent_metadata="{}"))

    claims = credentials.claims
    assert claims.dispatches_agent
    assert claims.dispatched_agents == ("concierge",)


async def test_a_dev_minted_token_without_agent_name_dispatches_no_agent() -> None:
    credentials = await dev_source().fetch(TokenRequest())

    assert not credentials.claims.dispatches_agent
    assert credentials.claims.dispatched_agents == ()


async def test_agent_name_empty_string_dispatches_the_unnamed_agent() -> None:
    credentials = await dev_source().fetch(TokenRequest(agent_name="", agent_metadata="hello"))

    assert credentials.claims.dispatched_agents == ("",)
    assert credentials.claims.dispatches_agent


def test_claims_read_identity_name_room_and_times_from_the_token() -> None:
    token = make_jwt(
        {"sub": "alice", "name": "Alice", "video": {"roomJoin": True, "room": "lobby"}, "nbf": 100, "exp": 200}
    )

    assert decode_claims(token) == TokenClaims(
        identity="alice", name="Alice", room="lobby", not_before=100.0, expires_at=200.0, dispatched_agents=()
    )


def test_claims_of_a_token_with_not_before_in_the_future_are_not_valid() -> None:
    claims = decode_claims(make_jwt({"sub": "a", "nbf": 1000, "exp": 5000}))

    assert not claims.is_valid_at(999.0)
    assert claims.is_valid_at(1000.0)


def test_claims_stop_being_valid_tolerance_seconds_before_expiry() -> None:
    claims = decode_claims(make_jwt({"sub": "a", "nbf": 0, "exp": 1000}))

    assert claims.is_valid_at(939.0)
    assert not claims.is_valid_at(940.0)  # default tolerance: 60 s
    assert claims.is_valid_at(989.0, tolerance=10.0)
    assert not claims.is_valid_at(990.0, tolerance=10.0)
    assert not claims.is_expired_at(999.0)
    assert claims.is_expired_at(1000.0)


def test_claims_without_time_bounds_are_valid_at_any_time() -> None:
    claims = decode_claims(make_jwt({"sub": "a"}))

    assert claims.not_before is None and claims.expires_at is None
    assert claims.is_valid_at(0.0) and claims.is_valid_at(1e12)


def test_claims_take_the_room_from_room_config_when_the_grant_names_none() -> None:
    claims = decode_claims(make_jwt({"sub": "a", "video": {"roomJoin": True}, "roomConfig": {"name": "r1"}}))

    assert claims.room == "r1"


@pytest.mark.parametrize(
    ("token", "words"),
    [
        ("", "empty"),
        ("just-one-part", "three dot-separated parts"),
        ("a.b.c.d.e", "encrypted"),
        ("eyJhbGciOiJIUzI1NiJ9.!!!notbase64!!!.sig", "base64url"),
        (f"{b64url(b'{}')}.{b64url(b'not json')}.sig", "payload is not JSON"),
        (f"{b64url(b'{}')}.{b64url(b'[1, 2]')}.sig", "payload is not a JSON object"),
        (f"{b64url(b'[]')}.{b64url(b'{}')}.sig", "header is not a JSON object"),
        (f"{b64url(b'{}')}.{b64url(b'[' * 100_000)}.sig", "payload is nested too deeply"),
        (f"{b64url(b'{}')}.{b64url(b'{}')}.s!g", "signature is not valid base64url"),
        (b64url(b'{"kid": 7}') + f".{b64url(b'{}')}.sig", "'kid' or 'crit'"),
        (f"{b64url(b'{}')}.{b64url(b'{}')}.signé", "characters a JWT never has"),
        (make_jwt({"sub": "a", "exp": "tomorrow"}), "'exp' claim is not a number"),
        (make_jwt({"sub": 42}), "'sub' claim is not a string"),
        (make_jwt({"sub": "a", "roomConfig": {"agents": "concierge"}}), "roomConfig.agents"),
    ],
)
def test_a_malformed_token_is_a_token_source_error_that_does_not_quote_it(token: str, words: str) -> None:
    with pytest.raises(TokenSourceError) as caught:
        decode_claims(token)

    assert "malformed" in str(caught.value)
    assert words in str(caught.value)
    assert caught.value.remedy
    if len(token) > 8:
        assert token not in full_text(caught.value)


# --- Values -------------------------------------------------------------------


def test_credentials_never_show_the_token_in_repr_or_str() -> None:
    token = make_jwt({"sub": "secret-holder"})
    credentials = Credentials(server_url=SERVER_URL, participant_token=token)

    assert token not in repr(credentials)
    assert token not in str(credentials)
    assert SERVER_URL in repr(credentials)


def test_credentials_with_a_malformed_token_raise_only_when_claims_are_read() -> None:
    credentials = Credentials(server_url=SERVER_URL, participant_token="garbage")

    with pytest.raises(TokenSourceError, match="malformed"):
        _ = credentials.claims


def test_attributes_given_as_a_dict_or_as_pairs_make_equal_requests() -> None:
    from_dict = TokenRequest(participant_attributes={"b": "2", "a": "1"})
    from_pairs = TokenRequest(participant_attributes=(("a", "1"), ("b", "2")))

    assert from_dict == from_pairs
    assert hash(from_dict) == hash(from_pairs)
    assert from_dict.participant_attributes == (("a", "1"), ("b", "2"))


def test_an_agent_deployment_without_an_agent_name_is_refused() -> None:
    with pytest.raises(ValueError, match="agent_deployment is set but agent_name is not"):
        TokenRequest(agent_deployment="staging")
    assert TokenRequest(agent_name="", agent_deployment="staging").requests_agent


def test_agent_metadata_without_an_agent_name_is_refused() -> None:
    with pytest.raises(ValueError, match="agent_name"):
        TokenRequest(agent_metadata="{}")


def test_every_source_is_a_token_source() -> None:
    sources = [
        LiteralTokenSource(SERVER_URL, make_jwt({"sub": "a"})),
        EndpointTokenSource("https://example.com/token"),
        CustomTokenSource(lambda request: Credentials(SERVER_URL, make_jwt({"sub": "a"}))),
        dev_source(),
    ]

    assert all(isinstance(source, TokenSource) for source in sources)


# --- Literal ------------------------------------------------------------------


async def test_literal_source_returns_its_fixed_credentials_whatever_is_asked() -> None:
    token = make_jwt({"sub": "a", "exp": time.time() + 3600})
    source = LiteralTokenSource(SERVER_URL, token)

    credentials = await source.fetch(TokenRequest(room_name="other", agent_name="x"))
    source.invalidate()

    assert credentials == Credentials(SERVER_URL, token)
    assert await source.fetch(TokenRequest()) == credentials


def test_literal_source_refuses_a_malformed_token_at_construction_without_quoting_it() -> None:
    with pytest.raises(TokenSourceError, match="malformed") as caught:
        LiteralTokenSource(SERVER_URL, "not.a-token")

    assert "not.a-token" not in str(caught.value)


async def test_literal_source_reports_an_expired_token_when_fetched() -> None:
    source = LiteralTokenSource(SERVER_URL, make_jwt({"sub": "a", "exp": 1000}), clock=FakeClock(1500.0))

    with pytest.raises(TokenSourceError, match=r"expired .*500 s ago"):
        await source.fetch(TokenRequest())


def test_literal_source_refuses_a_server_url_that_is_not_livekit() -> None:
    with pytest.raises(TokenSourceError, match="not a LiveKit server URL") as caught:
        LiteralTokenSource("ftp://example.com", make_jwt({"sub": "a"}))

    assert "wss://" in caught.value.remedy


def test_literal_source_repr_hides_the_token() -> None:
    token = make_jwt({"sub": "a"})

    assert token not in repr(LiteralTokenSource(SERVER_URL, token))


# --- Custom -------------------------------------------------------------------


async def test_custom_source_accepts_a_sync_function() -> None:
    seen: list[TokenRequest] = []
    token = make_jwt({"sub": "a"})

    def mint(request: TokenRequest) -> Credentials:
        seen.append(request)
        return Credentials(SERVER_URL, token)

    credentials = await CustomTokenSource(mint).fetch(TokenRequest(room_name="r"))

    assert credentials.participant_token == token
    assert seen == [TokenRequest(room_name="r")]


async def test_custom_source_accepts_an_async_function() -> None:
    token = make_jwt({"sub": "a"})

    async def mint(request: TokenRequest) -> Credentials:
        return Credentials(SERVER_URL, token)

    assert (await CustomTokenSource(mint).fetch(TokenRequest())).participant_token == token


async def test_custom_source_wraps_what_the_function_raises_and_keeps_the_cause() -> None:
    leaked = make_jwt({"sub": "leak"})

    def mint(request: TokenRequest) -> Credentials:
        raise RuntimeError(f"backend down while holding {leaked}")

    with pytest.raises(TokenSourceError, match="raised RuntimeError: backend down") as caught:
        await CustomTokenSource(mint).fetch(TokenRequest())

    assert isinstance(caught.value.__cause__, RuntimeError)
    assert leaked not in str(caught.value)


async def test_custom_source_lets_a_token_source_error_through_unchanged() -> None:
    original = TokenSourceError("no tokens today", remedy="Come back tomorrow.")

    def mint(request: TokenRequest) -> Credentials:
        raise original

    with pytest.raises(TokenSourceError) as caught:
        await CustomTokenSource(mint).fetch(TokenRequest())

    assert caught.value is original


async def test_custom_source_refuses_a_result_that_is_not_credentials() -> None:
    def mint(request: TokenRequest) -> Credentials:
        return {"server_url": SERVER_URL}  # type: ignore[return-value]

    with pytest.raises(TokenSourceError, match="returned a dict, not Credentials"):
        await CustomTokenSource(mint).fetch(TokenRequest())


async def test_custom_source_refuses_an_expired_token() -> None:
    source = CustomTokenSource(
        lambda request: Credentials(SERVER_URL, make_jwt({"sub": "a", "exp": 10})), clock=FakeClock(20.0)
    )

    with pytest.raises(TokenSourceError, match="expired"):
        await source.fetch(TokenRequest())


# --- Development --------------------------------------------------------------


async def test_dev_source_mints_a_signed_token_honouring_the_whole_request() -> None:
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

    credentials = await dev_source().fetch(request)
    verified = TokenVerifier(API_KEY, API_SECRET).verify(credentials.participant_token)

    assert credentials.server_url == SERVER_URL
    assert verified.identity == "alice"
    assert verified.name == "Alice"
    assert verified.metadata == '{"plan": "pro"}'
    assert verified.attributes == {"lang": "en"}
    assert verified.video is not None
    assert (verified.video.room_join, verified.video.room) == (True, "kitchen")
    assert verified.video.can_publish and verified.video.can_subscribe and verified.video.can_publish_data
    assert verified.room_config is not None
    assert [(a.agent_name, a.metadata, a.deployment) for a in verified.room_config.agents] == [
        ("chef", '{"menu": 1}', "staging")
    ]


async def test_dev_source_picks_a_fresh_random_room_and_identity_after_invalidate() -> None:
    source = dev_source(ttl=600)

    first = (await source.fetch(TokenRequest())).claims
    source.invalidate()
    second = (await source.fetch(TokenRequest())).claims

    assert re.fullmatch(r"lkstate-[0-9a-f]{8}", first.room or "")
    assert re.fullmatch(r"user-[0-9a-f]{8}", first.identity)
    assert first.room != second.room
    assert first.identity != second.identity
    assert first.expires_at is not None and first.not_before is not None
    assert first.expires_at - first.not_before == pytest.approx(600, abs=1)


async def test_dev_source_defaults_identity_and_name_but_the_request_wins() -> None:
    source = dev_source(identity="bob", name="Bob")

    defaulted = (await source.fetch(TokenRequest())).claims
    requested = (await source.fetch(TokenRequest(participant_identity="carol", participant_name="Carol"))).claims

    assert (defaulted.identity, defaulted.name) == ("bob", "Bob")
    assert (requested.identity, requested.name) == ("carol", "Carol")


async def test_dev_source_reuses_credentials_for_an_equal_request_while_they_are_valid() -> None:
    clock = FakeClock(time.time())
    source = dev_source(ttl=600, clock=clock)

    first = await source.fetch(TokenRequest(agent_name="a"))
    again = await source.fetch(TokenRequest(agent_name="a"))
    other = await source.fetch(TokenRequest(agent_name="b"))
    assert first.claims.expires_at is not None
    clock.now = first.claims.expires_at - 60
    after_tolerance = await source.fetch(TokenRequest(agent_name="b"))

    assert again is first
    assert other.claims.room != first.claims.room
    assert after_tolerance.claims.room != other.claims.room


def test_dev_source_repr_never_shows_the_secret() -> None:
    assert API_SECRET not in repr(dev_source())


def test_dev_source_needs_a_key_and_a_secret() -> None:
    with pytest.raises(TokenSourceError, match="API key and an API secret"):
        DevelopmentTokenSource(SERVER_URL, API_KEY, "")


# --- Endpoint (construction only; HTTP behaviour is in tests/integration) ------


@pytest.mark.parametrize("url", ["http://example.com/token", "http://10.0.0.5:8080/token", "http://[2001:db8::1]/t"])
def test_endpoint_source_refuses_plain_http_beyond_this_machine(url: str) -> None:
    with pytest.raises(TokenSourceError, match="unencrypted") as caught:
        EndpointTokenSource(url)

    assert "allow_insecure_http=True" in caught.value.remedy


@pytest.mark.parametrize(
    "url", ["http://localhost:8080/token", "http://127.0.0.1/token", "http://[::1]:9000/token", "https://example.com/t"]
)
def test_endpoint_source_accepts_https_and_loopback_http(url: str) -> None:
    EndpointTokenSource(url)


def test_endpoint_source_accepts_plain_http_when_explicitly_allowed() -> None:
    EndpointTokenSource("http://example.com/token", allow_insecure_http=True)


@pytest.mark.parametrize("url", ["wss://example.com/token", "example.com/token", "https:///nohost"])
def test_endpoint_source_refuses_urls_that_are_not_http(url: str) -> None:
    with pytest.raises(TokenSourceError, match="not an http"):
        EndpointTokenSource(url)


def test_endpoint_source_repr_hides_headers_userinfo_and_query() -> None:
    source = EndpointTokenSource(
        "https://user:hunter22@example.com/token?api_key=sekrit-key",
        headers={"Authorization": "Bearer top-secret-bearer"},
    )

    text = repr(source)

    assert "https://example.com/token" in text
    for secret in ("hunter22", "sekrit-key", "top-secret-bearer"):
        assert secret not in text
