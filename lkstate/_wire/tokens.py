"""Where a session gets its credentials: token sources.

Joining a LiveKit room takes two things, a server URL and a participant token
(a JWT signed by the server's API secret). Who mints the token differs from one
deployment to the next, so the session does not care: it asks a *token source*
for :class:`Credentials`, passing a :class:`TokenRequest` that says which room,
identity and agent it would like, and the source decides what to honour.

Four sources cover the usual cases, the same four LiveKit's Swift and JS clients
offer:

* :class:`LiteralTokenSource` — a fixed URL and token (tests, scripts).
* :class:`EndpointTokenSource` — POSTs to the standard token endpoint your
  backend serves (production). It caches, coalesces and explains failures.
* :class:`CustomTokenSource` — your own function, sync or async.
* :class:`DevelopmentTokenSource` — mints tokens locally from an API key and
  secret (local ``livekit-server --dev``; never ship a secret to users).

A client cannot verify a token's signature (it has no secret), but it can read
the claims, and that is useful: whether the token will still be valid when the
room is joined, and whether joining will dispatch an agent (when it will not,
waiting for one is pointless). :func:`decode_claims` reads them.

Tokens and secrets are passwords. Nothing here puts them in a ``repr``, a log
line or an exception message, including the body excerpt quoted when an
endpoint fails, which is scrubbed before it is shown.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import inspect
import ipaddress
import json
import logging
import math
import re
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol, cast, runtime_checkable

import aiohttp
import attrs
import jwt
from livekit.api import AccessToken, VideoGrants
from livekit.protocol.agent_dispatch import RoomAgentDispatch
from livekit.protocol.room import RoomConfiguration

from lkstate._core.errors import TokenSourceError

__all__ = [
    "TokenRequest",
    "TokenClaims",
    "Credentials",
    "TokenSource",
    "LiteralTokenSource",
    "EndpointTokenSource",
    "CustomTokenSource",
    "DevelopmentTokenSource",
    "decode_claims",
]

logger = logging.getLogger(__name__)

#: How long before its expiry a token stops being reused. Joining takes a few
#: seconds and the server checks ``exp`` at join time, so a token that is about
#: to expire is as good as expired. Swift and JS use the same minute.
DEFAULT_VALIDITY_TOLERANCE = 60.0

# Token endpoint answers are a few hundred bytes; anything far larger is not a
# token endpoint, and reading it whole would only waste memory.
_MAX_RESPONSE_BYTES = 1024 * 1024
_EXCERPT_CHARS = 200

_SERVER_URL_SCHEMES = frozenset({"ws", "wss", "http", "https"})


# ---------------------------------------------------------------------------
# Values


def _to_attribute_pairs(
    value: Mapping[str, str] | Iterable[tuple[str, str]],
) -> tuple[tuple[str, str], ...]:
    """Normalise attributes to sorted pairs, so that equal dicts give equal requests.

    The cache compares requests for equality; ``{"a": "1", "b": "2"}`` and
    ``{"b": "2", "a": "1"}`` ask for the same thing and must hit the same entry.
    """
    if isinstance(value, Mapping):
        pairs = dict(cast(Mapping[str, str], value))
    else:
        pairs = dict(value)
    return tuple(sorted(pairs.items()))


@attrs.frozen
class TokenRequest:
    """What the session asks a token source for. Every field is optional.

    A source may ignore what it cannot honour (a literal token is what it is).
    ``participant_attributes`` accepts a dict or pairs and is stored as sorted
    pairs, so two requests that ask for the same thing compare equal.

    ``agent_name`` asks the server to dispatch that agent when this join creates
    the room; ``agent_name=""`` names the unnamed (automatically dispatched)
    agent, which is how to pass ``agent_metadata`` to it. ``agent_deployment``
    names which deployment of that agent should take the job (the protocol's
    ``RoomAgentDispatch.deployment``; a worker announces its own with
    ``LIVEKIT_AGENT_DEPLOYMENT``), as the Swift and JS SDKs let a client pick
    a staged or pinned version of an agent.
    """

    room_name: str | None = None
    participant_name: str | None = None
    participant_identity: str | None = None
    participant_metadata: str | None = None
    participant_attributes: tuple[tuple[str, str], ...] = attrs.field(
        default=(), converter=_to_attribute_pairs
    )
    agent_name: str | None = None
    agent_metadata: str | None = None
    agent_deployment: str | None = None

    def __attrs_post_init__(self) -> None:
        for field in ("agent_metadata", "agent_deployment"):
            if getattr(self, field) is not None and self.agent_name is None:
                raise ValueError(
                    f"{field} is set but agent_name is not, so there is no agent to give it to; "
                    f"pass agent_name='' to dispatch the unnamed agent with this {field.removeprefix('agent_')}."
                )

    @property
    def requests_agent(self) -> bool:
        """Whether this request asks for an agent to be dispatched."""
        return self.agent_name is not None


@attrs.frozen
class TokenClaims:
    """What a participant token says, read without verifying its signature.

    Only the server can verify a token; a client reads the claims to make
    decisions (reuse the token or fetch another, wait for an agent or not).
    ``not_before`` and ``expires_at`` are Unix times in seconds; ``None`` means
    the token sets no bound on that side.
    """

    identity: str
    name: str | None
    room: str | None
    not_before: float | None
    expires_at: float | None
    #: Agent names from ``roomConfig.agents``; ``""`` is the unnamed agent.
    dispatched_agents: tuple[str, ...] = ()

    @property
    def dispatches_agent(self) -> bool:
        """Whether joining with this token (and creating the room) dispatches an agent."""
        return bool(self.dispatched_agents)

    def is_valid_at(self, now: float, tolerance: float = DEFAULT_VALIDITY_TOLERANCE) -> bool:
        """Whether the token is usable at ``now`` with ``tolerance`` seconds to spare.

        True when ``not_before <= now < expires_at - tolerance``. A token that
        only becomes valid later is not valid now: the server would reject it.
        """
        if self.not_before is not None and now < self.not_before:
            return False
        if self.expires_at is not None and now >= self.expires_at - tolerance:
            return False
        return True

    def is_expired_at(self, now: float) -> bool:
        """Whether the token has expired at ``now`` (no tolerance)."""
        return self.expires_at is not None and now >= self.expires_at


@attrs.frozen
class Credentials:
    """A server URL and the participant token to join it with.

    The token is a password: it is left out of ``repr`` and ``str``. The claims
    are read from it when first asked for; a malformed token raises
    :class:`~lkstate.TokenSourceError` then, not at construction.
    """

    server_url: str
    participant_token: str = attrs.field(repr=False)

    @functools.cached_property
    def claims(self) -> TokenClaims:
        """The token's claims (see :func:`decode_claims`)."""
        return decode_claims(self.participant_token)


# ---------------------------------------------------------------------------
# Reading a JWT


class _MalformedTokenError(ValueError):
    """Why a token could not be read, in words that never quote the token."""


_PYJWT_SEGMENTS = {"header": "header", "payload": "payload", "crypto": "signature"}


def _jwt_payload(token: str) -> dict[str, object]:
    """The payload of a compact JWS, parsed by PyJWT without checking the signature or any claim.

    PyJWT does the base64url and JSON work; its errors are turned into our
    words here (PyJWT's own messages are terse and name its internals, such
    as "crypto padding"). Which claims mean what to LiveKit, and which values
    are acceptable, is checked by the caller.
    """
    try:
        # Partly unknown to pyright only through the key type (cryptography's key classes).
        return jwt.decode(token, options={"verify_signature": False})  # pyright: ignore[reportUnknownMemberType]
    except jwt.DecodeError as error:
        text = str(error)
        for name, what in _PYJWT_SEGMENTS.items():
            if text == f"Invalid {name} padding":
                raise _MalformedTokenError(f"its {what} is not valid base64url") from None
            if text == f"Invalid {name} string: must be a json object":
                raise _MalformedTokenError(f"its {what} is not a JSON object") from None
            if text.startswith(f"Invalid {name} string:"):
                if isinstance(error.__cause__, RecursionError):  # deeper than the parser recurses
                    raise _MalformedTokenError(f"its {what} is nested too deeply") from None
                raise _MalformedTokenError(f"its {what} is not JSON") from None
        raise _MalformedTokenError("it is not a JSON Web Token PyJWT can read") from None
    except jwt.InvalidTokenError:  # a 'kid' that is not a string, a 'crit' extension PyJWT does not know
        raise _MalformedTokenError("its header has a 'kid' or 'crit' entry that a JWT cannot hold") from None


def _optional_str(payload: Mapping[str, object], key: str) -> str | None:
    value = payload.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _MalformedTokenError(f"its {key!r} claim is not a string (it is {type(value).__name__})")
    return value


def _optional_time(payload: Mapping[str, object], key: str) -> float | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _MalformedTokenError(f"its {key!r} claim is not a number (it is {type(value).__name__})")
    # JSON numbers may be larger than a float holds, and Python's parser also
    # takes NaN and Infinity; a JWT time is neither.
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise _MalformedTokenError(f"its {key!r} claim is not a finite number of seconds")
    return seconds


def _object(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _MalformedTokenError(f"its {what} is not a JSON object")
    return cast(dict[str, object], value)


def _dispatched_agents(payload: Mapping[str, object]) -> tuple[str, ...]:
    room_config = payload.get("roomConfig", payload.get("room_config"))
    if room_config is None:
        return ()
    agents = _object(room_config, "roomConfig claim").get("agents")
    if agents is None:
        return ()
    if not isinstance(agents, list):
        raise _MalformedTokenError("its roomConfig.agents claim is not a list")
    names: list[str] = []
    for entry in cast(list[object], agents):
        dispatch = _object(entry, "roomConfig.agents entry")
        name = dispatch.get("agentName", dispatch.get("agent_name", ""))
        if not isinstance(name, str):
            raise _MalformedTokenError("an agent name in roomConfig.agents is not a string")
        names.append(name)
    return tuple(names)


def _read_claims(token: str) -> TokenClaims:
    if not token:
        raise _MalformedTokenError("it is empty")
    parts = token.strip().split(".")
    if len(parts) == 5:
        raise _MalformedTokenError("it is an encrypted JWT (JWE), which a client cannot read")
    if len(parts) != 3:
        raise _MalformedTokenError(
            f"a JWT has three dot-separated parts and this has {len(parts)}"
        )
    if not token.isascii():
        raise _MalformedTokenError("it holds characters a JWT never has (a JWT is base64url and dots)")
    payload = _jwt_payload(token.strip())

    room = None
    video = payload.get("video")
    if video is not None:
        room = _optional_str(_object(video, "video grant"), "room")
    if room is None:
        room_config = payload.get("roomConfig")
        if isinstance(room_config, dict):
            room = _optional_str(cast(dict[str, object], room_config), "name")

    return TokenClaims(
        identity=_optional_str(payload, "sub") or "",
        name=_optional_str(payload, "name"),
        room=room,
        not_before=_optional_time(payload, "nbf"),
        expires_at=_optional_time(payload, "exp"),
        dispatched_agents=_dispatched_agents(payload),
    )


def decode_claims(token: str) -> TokenClaims:
    """Read a participant token's claims without verifying its signature.

    Raises :class:`~lkstate.TokenSourceError` when the token is not a readable
    JWT. The message says what is wrong with it and never quotes it.
    """
    try:
        return _read_claims(token)
    except _MalformedTokenError as error:
        raise TokenSourceError(
            f"The participant token is malformed: {error}.",
            remedy="Pass the token exactly as the server or your backend minted it "
            "(a JWT looks like three base64url parts separated by dots).",
        ) from None


# ---------------------------------------------------------------------------
# Keeping secrets out of messages

_JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")
_OPAQUE_PATTERN = re.compile(r"[A-Za-z0-9_\-+/=]{40,}")


def _scrub(text: str, secrets_: Iterable[str] = ()) -> str:
    """Remove anything that looks like a token or a known secret from ``text``."""
    for secret in secrets_:
        if len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    text = _JWT_PATTERN.sub("[redacted token]", text)
    return _OPAQUE_PATTERN.sub("[redacted]", text)


def _excerpt(raw: bytes, secrets_: Iterable[str] = ()) -> str:
    """A short, single-line, scrubbed excerpt of a response body, for error messages."""
    text = raw[: _EXCERPT_CHARS * 8].decode("utf-8", errors="replace")
    text = " ".join(text.split())
    text = _scrub(text, secrets_)  # before truncating, or a cut token would slip through
    if len(text) > _EXCERPT_CHARS:
        text = text[: _EXCERPT_CHARS - 1] + "…"
    return text


def _describe_url(url: str) -> str:
    """A URL fit for messages: scheme, host and path, without userinfo, query or fragment.

    Query strings are where people put API keys; userinfo holds passwords.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if not parts.scheme or not host:
        return _scrub(url.split("?", 1)[0].split("#", 1)[0])[:_EXCERPT_CHARS]
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _is_loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_server_url(server_url: str, origin: str) -> None:
    try:
        parts = urllib.parse.urlsplit(server_url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme not in _SERVER_URL_SCHEMES or not host:
        raise TokenSourceError(
            f"{origin} gave the server URL {_describe_url(server_url)!r}, "
            "which is not a LiveKit server URL.",
            remedy="A server URL starts with wss:// (or ws://, https://, http://) and names a "
            "host, for example wss://my-project.livekit.cloud or ws://localhost:7880.",
        )


def _validated(credentials: Credentials, origin: str, now: float) -> TokenClaims:
    """Check credentials before handing them out; return their claims.

    Joining with a malformed or expired token fails later with a vaguer error
    from the server; catching it here names the source that produced it.
    """
    _check_server_url(credentials.server_url, origin)
    try:
        claims = _read_claims(credentials.participant_token)
    except _MalformedTokenError as error:
        raise TokenSourceError(
            f"{origin} gave a participant token that is malformed: {error}.",
            remedy="Make sure it returns the token exactly as minted by a LiveKit server SDK.",
        ) from None
    if claims.is_expired_at(now):
        assert claims.expires_at is not None
        when = datetime.datetime.fromtimestamp(claims.expires_at, datetime.UTC)
        raise TokenSourceError(
            f"{origin} gave a participant token that has already expired "
            f"(at {when:%Y-%m-%d %H:%M:%S} UTC, {now - claims.expires_at:.0f} s ago).",
            remedy="Mint tokens with a longer lifetime, and check that the clocks of this "
            "machine and the token minter agree.",
        )
    return claims


# ---------------------------------------------------------------------------
# Sources


@runtime_checkable
class TokenSource(Protocol):
    """Anything that can produce :class:`Credentials` for a :class:`TokenRequest`.

    ``invalidate()`` forgets cached credentials. The session calls it on
    ``end()`` and after an unexpected disconnect: agents do not rejoin an old
    room, so the next start needs fresh credentials (and usually a new room).
    """

    async def fetch(self, request: TokenRequest) -> Credentials: ...

    def invalidate(self) -> None: ...


@attrs.define
class _CredentialCache:
    """One remembered answer, reused while the request is equal and the token valid."""

    clock: Callable[[], float]
    tolerance: float
    _entry: tuple[TokenRequest, Credentials, TokenClaims] | None = None

    def get(self, request: TokenRequest) -> Credentials | None:
        if self._entry is None:
            return None
        cached_request, credentials, claims = self._entry
        if cached_request != request:
            return None
        if not claims.is_valid_at(self.clock(), self.tolerance):
            self._entry = None
            return None
        return credentials

    def put(self, request: TokenRequest, credentials: Credentials, claims: TokenClaims) -> None:
        if claims.is_valid_at(self.clock(), self.tolerance):
            self._entry = (request, credentials, claims)
        else:
            # Usable once, but too close to expiry (or not yet valid) to reuse.
            self._entry = None

    def clear(self) -> None:
        self._entry = None


class LiteralTokenSource:
    """Fixed credentials: the same URL and token every time.

    Handy for scripts and tests. The request is ignored; ``invalidate()`` does
    nothing (there is nothing else to fetch). An expired token is reported at
    ``fetch()``, a malformed one or a bad URL already at construction.
    """

    def __init__(self, server_url: str, token: str, *, clock: Callable[[], float] = time.time) -> None:
        origin = "The literal token source"
        _check_server_url(server_url, origin)
        try:
            _read_claims(token)
        except _MalformedTokenError as error:
            raise TokenSourceError(
                f"The token given to the literal token source is malformed: {error}.",
                remedy="Pass the participant token exactly as a LiveKit server SDK minted it.",
            ) from None
        self._credentials = Credentials(server_url=server_url, participant_token=token)
        self._clock = clock

    async def fetch(self, request: TokenRequest) -> Credentials:
        _validated(self._credentials, "The literal token source", self._clock())
        return self._credentials

    def invalidate(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"LiteralTokenSource(server_url={self._credentials.server_url!r})"


@attrs.define(eq=False)
class _Inflight:
    """One HTTP request in progress and how many fetch() calls await it."""

    task: asyncio.Task[Credentials]
    waiters: int = 0


class EndpointTokenSource:
    """Credentials from a token endpoint: the standard ``TokenSource.endpoint`` protocol.

    Each fetch POSTs JSON with snake_case fields (``room_name``,
    ``participant_name``, ``participant_identity``, ``participant_metadata``,
    ``participant_attributes``, ``room_config: {agents: [{agent_name,
    metadata, deployment}]}``; absent fields are left out) and expects ``server_url`` and
    ``participant_token`` back (camelCase ``serverUrl`` / ``participantToken``
    are accepted too).

    Behaviour worth relying on:

    * **Caching.** The answer is reused while the request is equal and the
      token is valid with ``validity_tolerance`` seconds to spare.
      ``invalidate()`` forgets it.
    * **One attempt.** A fetch makes at most one HTTP request and never
      retries; retrying is the caller's decision. Concurrent fetches for an
      equal request share one HTTP request. Redirects are not followed, so
      request headers (often an ``Authorization``) only go where you said.
    * **Plain words.** Every failure is a :class:`~lkstate.TokenSourceError`
      saying what went wrong and what to do, with no token or header value in
      it.
    * **Transport security.** ``http://`` is refused except on loopback, since
      the token (and any headers) would travel in clear text; pass
      ``allow_insecure_http=True`` to override for a trusted network.

    A fresh ``aiohttp.ClientSession`` is opened and closed for each HTTP
    request, so the source holds no sockets between fetches and needs no
    closing. Fetches are rare thanks to the cache.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        allow_insecure_http: bool = False,
        clock: Callable[[], float] = time.time,
        validity_tolerance: float = DEFAULT_VALIDITY_TOLERANCE,
    ) -> None:
        try:
            parts = urllib.parse.urlsplit(url)
            host = parts.hostname
        except ValueError:
            parts, host = None, None
        if parts is None or parts.scheme not in ("http", "https") or not host:
            raise TokenSourceError(
                f"The token endpoint URL {_describe_url(url)!r} is not an http(s) URL.",
                remedy="Pass the full URL of your token endpoint, for example "
                "https://example.com/api/token.",
            )
        if parts.scheme == "http" and not allow_insecure_http and not _is_loopback_host(host):
            raise TokenSourceError(
                f"The token endpoint {_describe_url(url)} uses plain http://, which would send "
                "the participant token and your request headers over the network unencrypted.",
                remedy="Serve the endpoint over https://, or pass allow_insecure_http=True if "
                "the network in between is trusted.",
            )
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self._url = url
        self._described_url = _describe_url(url)
        self._headers = tuple((headers or {}).items())
        self._timeout = float(timeout)
        self._clock = clock
        self._cache = _CredentialCache(clock=clock, tolerance=validity_tolerance)
        self._inflight: dict[TokenRequest, _Inflight] = {}
        self._generation = 0

    def __repr__(self) -> str:
        return f"EndpointTokenSource(url={self._described_url!r})"

    def invalidate(self) -> None:
        """Forget cached credentials; the next fetch asks the endpoint again.

        A request already in flight still answers the fetches that await it,
        but its answer is not cached and later fetches do not join it.
        """
        self._cache.clear()
        self._inflight.clear()
        self._generation += 1

    async def fetch(self, request: TokenRequest) -> Credentials:
        cached = self._cache.get(request)
        if cached is not None:
            logger.debug("Reusing cached credentials from %s", self._described_url)
            return cached

        inflight = self._inflight.get(request)
        if inflight is None:
            task = asyncio.get_running_loop().create_task(
                self._request_once(request, self._generation),
                name=f"lkstate token fetch {self._described_url}",
            )
            inflight = _Inflight(task)
            self._inflight[request] = inflight
            task.add_done_callback(functools.partial(self._finished, request, inflight))

        inflight.waiters += 1
        try:
            # shield: one caller giving up must not cancel the others' request.
            return await asyncio.shield(inflight.task)
        finally:
            inflight.waiters -= 1
            if inflight.waiters == 0 and not inflight.task.done():
                # Nobody wants the answer any more. Forget the request now, not when the
                # task finishes cancelling: a fetch arriving meanwhile must not join it.
                self._forget(request, inflight)
                inflight.task.cancel()

    def _forget(self, request: TokenRequest, inflight: _Inflight) -> None:
        if self._inflight.get(request) is inflight:
            del self._inflight[request]

    def _finished(self, request: TokenRequest, inflight: _Inflight, task: asyncio.Task[Credentials]) -> None:
        self._forget(request, inflight)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not warn when nobody awaited it

    async def _request_once(self, request: TokenRequest, generation: int) -> Credentials:
        logger.debug("Requesting credentials from %s", self._described_url)
        status, reason, location, body = await self._post(_request_body(request))
        if not 200 <= status < 300:
            raise self._status_error(status, reason, location, body)
        credentials = self._parse(body)
        claims = _validated(credentials, f"The token endpoint {self._described_url}", self._clock())
        if generation == self._generation:
            self._cache.put(request, credentials, claims)
        logger.debug(
            "Token endpoint %s granted identity %r in room %r (dispatches agent: %s)",
            self._described_url,
            claims.identity,
            claims.room,
            claims.dispatches_agent,
        )
        return credentials

    async def _post(self, body: dict[str, object]) -> tuple[int, str, str | None, bytes]:
        where = self._described_url
        headers = {"Accept": "application/json", **dict(self._headers)}
        try:
            async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            ) as session:
                async with session.post(
                    self._url, json=body, headers=headers, allow_redirects=False
                ) as response:
                    raw = await _read_limited(response.content, _MAX_RESPONSE_BYTES)
                    if raw is None:
                        raise TokenSourceError(
                            f"The token endpoint {where} answered with more than "
                            f"{_MAX_RESPONSE_BYTES // 1024} KiB; a token response is a few hundred bytes.",
                            remedy="Check that the URL points at the token endpoint itself.",
                        )
                    return response.status, response.reason or "", response.headers.get("Location"), raw
        except TimeoutError:
            raise TokenSourceError(
                f"The token endpoint {where} did not answer within {self._timeout:g} s.",
                remedy="Check that the endpoint is up and reachable from here, "
                "or pass a longer timeout= if it is just slow.",
            ) from None
        except aiohttp.ClientConnectorCertificateError as error:
            raise TokenSourceError(
                f"The token endpoint {where} presented a TLS certificate this machine does not trust.",
                remedy="Fix the server's certificate, or install the issuing CA on this machine.",
            ) from error
        except aiohttp.ClientSSLError as error:
            raise TokenSourceError(
                f"The secure connection to the token endpoint {where} failed ({type(error).__name__}).",
                remedy="Check that the endpoint really serves https:// on that port.",
            ) from error
        except aiohttp.ClientConnectorDNSError as error:
            raise TokenSourceError(
                f"The host of the token endpoint {where} could not be found.",
                remedy="Check the host name in the URL, and this machine's network and DNS.",
            ) from error
        except aiohttp.ClientConnectorError as error:
            refused = isinstance(error.os_error, ConnectionRefusedError)
            cause = "the connection was refused" if refused else (error.os_error.strerror or "it failed")
            raise TokenSourceError(
                f"Could not connect to the token endpoint {where}: {cause}.",
                remedy="Check that the endpoint is running and that the host and port in the URL are right.",
            ) from error
        except aiohttp.InvalidURL:
            # Not chained: the original message quotes the whole URL, query string included.
            raise TokenSourceError(
                f"The token endpoint URL {where} could not be used.",
                remedy="Check the URL for typos and characters that need escaping.",
            ) from None
        except aiohttp.ClientError as error:
            raise TokenSourceError(
                f"The request to the token endpoint {where} failed: {type(error).__name__}.",
                remedy="Check that the URL points at an HTTP token endpoint and that it is healthy.",
            ) from error

    def _secrets(self) -> tuple[str, ...]:
        return tuple(value for _, value in self._headers)

    def _status_error(self, status: int, reason: str, location: str | None, body: bytes) -> TokenSourceError:
        where = self._described_url
        message = f"The token endpoint {where} answered HTTP {status}" + (f" {reason}" if reason else "")
        if 300 <= status < 400:
            target = f" to {_describe_url(location)}" if location else ""
            return TokenSourceError(
                f"{message}, a redirect{target}.",
                remedy="Use the final URL directly; token requests do not follow redirects, "
                "so your headers never go somewhere you did not name.",
            )
        excerpt = _excerpt(body, self._secrets())
        if excerpt:
            message += f"; it said: {excerpt!r}"
        if status in (401, 403):
            remedy = "The endpoint refused the request: check the credentials you pass in headers=."
        elif status in (404, 405):
            remedy = "Check the path in the URL; the endpoint must accept POST there."
        elif status == 429:
            remedy = "The endpoint is limiting requests; wait a little before trying again."
        elif 400 <= status < 500:
            remedy = (
                "The endpoint rejected the request; check that it speaks the standard token "
                "endpoint format (snake_case room_name, participant_identity, room_config…)."
            )
        elif status >= 500:
            remedy = "The endpoint itself failed; its logs will say why. Try again later."
        else:
            remedy = "A token endpoint answers 200 with server_url and participant_token."
        return TokenSourceError(message + ".", remedy=remedy)

    def _parse(self, body: bytes) -> Credentials:
        where = self._described_url
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested beyond reason
            excerpt = _excerpt(body, self._secrets())
            raise TokenSourceError(
                f"The token endpoint {where} answered with something that is not JSON"
                + (f": {excerpt!r}." if excerpt else " (an empty body)."),
                remedy="Check that the URL points at the token endpoint and not at a web page "
                "or proxy; it must answer a JSON object with server_url and participant_token.",
            ) from None
        if not isinstance(data, dict):
            raise TokenSourceError(
                f"The token endpoint {where} answered a JSON {type(data).__name__}, not an object.",
                remedy="The endpoint must answer a JSON object with server_url and participant_token.",
            )
        fields = cast(dict[str, object], data)
        server_url = fields.get("server_url", fields.get("serverUrl"))
        token = fields.get("participant_token", fields.get("participantToken"))
        missing = [
            name
            for name, value in (("server_url", server_url), ("participant_token", token))
            if not isinstance(value, str) or not value
        ]
        if missing:
            present = ", ".join(sorted(str(key) for key in fields)[:10]) or "none"
            raise TokenSourceError(
                f"The token endpoint {where} answered without a usable {' or '.join(missing)} "
                f"(fields present: {present}).",
                remedy="The endpoint must answer server_url and participant_token as non-empty "
                "strings (serverUrl and participantToken are accepted too).",
            )
        return Credentials(server_url=cast(str, server_url), participant_token=cast(str, token))


async def _read_limited(stream: aiohttp.StreamReader, limit: int) -> bytes | None:
    """Read a body up to ``limit`` bytes; ``None`` when it is longer."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def _request_body(request: TokenRequest) -> dict[str, object]:
    """The standard token endpoint's JSON request; absent fields are left out."""
    body: dict[str, object] = {}
    for key in ("room_name", "participant_name", "participant_identity", "participant_metadata"):
        value = getattr(request, key)
        if value is not None:
            body[key] = value
    if request.participant_attributes:
        body["participant_attributes"] = dict(request.participant_attributes)
    if request.agent_name is not None:
        agent: dict[str, object] = {"agent_name": request.agent_name}
        if request.agent_metadata is not None:
            agent["metadata"] = request.agent_metadata
        if request.agent_deployment is not None:
            agent["deployment"] = request.agent_deployment
        body["room_config"] = {"agents": [agent]}
    return body


class CustomTokenSource:
    """Credentials from your own function, sync or async.

    ``fn(request)`` returns :class:`Credentials` (or an awaitable of them).
    Whatever it raises becomes a :class:`~lkstate.TokenSourceError`, so the
    session has one kind of failure to handle; a ``TokenSourceError`` raised by
    ``fn`` passes through unchanged. No caching: ``fn`` is in charge of that.
    """

    def __init__(
        self,
        fn: Callable[[TokenRequest], Credentials | Awaitable[Credentials]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fn = fn
        self._clock = clock
        self._name = getattr(fn, "__qualname__", None) or type(fn).__name__

    def __repr__(self) -> str:
        return f"CustomTokenSource({self._name})"

    async def fetch(self, request: TokenRequest) -> Credentials:
        origin = f"The custom token source {self._name}"
        try:
            result = self._fn(request)
            if inspect.isawaitable(result):
                result = await result
        except TokenSourceError:
            raise
        except Exception as error:
            detail = _scrub(str(error))[:_EXCERPT_CHARS]
            raise TokenSourceError(
                f"{origin} raised {type(error).__name__}" + (f": {detail}" if detail else "") + ".",
                remedy="Fix the token function; the traceback of the original error is attached.",
            ) from error
        if not isinstance(result, Credentials):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TokenSourceError(
                f"{origin} returned a {type(result).__name__}, not Credentials.",
                remedy="Return lkstate.tokens.Credentials(server_url=..., participant_token=...).",
            )
        _validated(result, origin, self._clock())
        return result

    def invalidate(self) -> None:
        pass


class DevelopmentTokenSource:
    """Mints tokens locally from an API key and secret, for development.

    Meant for a local ``livekit-server --dev`` (key ``devkey``, secret
    ``secret``) or a personal project: anyone holding the secret can mint any
    token, so never ship it in an application.

    The request is honoured in full. When it names no room, a new random room
    (``lkstate-<8 hex>``) is used, and without an identity a random one
    (``user-<8 hex>``): a fresh room per session is what makes an agent get
    dispatched, since dispatch happens when a join creates the room. Minted
    credentials are reused like an endpoint's, until ``invalidate()``.
    """

    def __init__(
        self,
        server_url: str,
        api_key: str,
        api_secret: str,
        *,
        identity: str | None = None,
        name: str | None = None,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
        validity_tolerance: float = DEFAULT_VALIDITY_TOLERANCE,
    ) -> None:
        _check_server_url(server_url, "The development token source")
        if not api_key or not api_secret:
            raise TokenSourceError(
                "The development token source needs both an API key and an API secret.",
                remedy="For `livekit-server --dev` they are 'devkey' and 'secret'; otherwise use "
                "the key pair from your server's configuration.",
            )
        if not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")
        self._server_url = server_url
        self._api_key = api_key
        self._api_secret = api_secret
        self._identity = identity
        self._name = name
        self._ttl = float(ttl)
        self._cache = _CredentialCache(clock=clock, tolerance=validity_tolerance)

    def __repr__(self) -> str:
        return f"DevelopmentTokenSource(server_url={self._server_url!r}, api_key={self._api_key!r})"

    async def fetch(self, request: TokenRequest) -> Credentials:
        cached = self._cache.get(request)
        if cached is not None:
            return cached
        credentials = self.mint(request)
        self._cache.put(request, credentials, credentials.claims)
        return credentials

    def invalidate(self) -> None:
        self._cache.clear()

    def mint(self, request: TokenRequest) -> Credentials:
        """Mint new credentials for ``request`` (no cache involved)."""
        room = request.room_name or f"lkstate-{secrets.token_hex(4)}"
        identity = request.participant_identity or self._identity or f"user-{secrets.token_hex(4)}"
        token = (
            AccessToken(self._api_key, self._api_secret)
            .with_identity(identity)
            .with_ttl(datetime.timedelta(seconds=self._ttl))
            .with_grants(
                VideoGrants(
                    room_join=True,
                    room=room,
                    can_publish=True,
                    can_subscribe=True,
                    can_publish_data=True,
                )
            )
        )
        name = request.participant_name or self._name
        if name is not None:
            token = token.with_name(name)
        if request.participant_metadata is not None:
            token = token.with_metadata(request.participant_metadata)
        if request.participant_attributes:
            token = token.with_attributes(dict(request.participant_attributes))
        if request.agent_name is not None:
            token = token.with_room_config(
                RoomConfiguration(
                    agents=[
                        RoomAgentDispatch(
                            agent_name=request.agent_name,
                            metadata=request.agent_metadata or "",
                            deployment=request.agent_deployment or "",
                        )
                    ]
                )
            )
        logger.debug("Minted a development token for %r in room %r", identity, room)
        return Credentials(server_url=self._server_url, participant_token=token.to_jwt())
