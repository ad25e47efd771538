"""atheris harness: reading a participant token's claims.

Input format (so mutations land in the JSON, not only in base64): first byte
even → the rest, decoded as UTF-8 with replacement, is the token string;
first byte odd → the rest is ``<header JSON>.<payload JSON>``, each part
base64url-encoded into ``<header>.<payload>.sig``.

Checked for every input: ``decode_claims`` returns well-typed claims whose
times are finite numbers (or ``None``), or raises ``TokenSourceError`` saying
the token is malformed, with a remedy, without quoting the token. Any other
exception is a crash.

See fuzz/README.md for how to run it.
"""

from __future__ import annotations

import base64
import datetime
import json
import math
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import instrument_modules, seed_first_corpus  # noqa: E402

from lkstate._wire import tokens as _tokens  # noqa: E402
from lkstate._core.errors import TokenSourceError  # noqa: E402
from lkstate._wire.tokens import TokenClaims, decode_claims  # noqa: E402

instrument_modules(_tokens)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token_from(data: bytes) -> str:
    if not data:
        return ""
    body = data[1:]
    if data[0] % 2 == 0:
        return body.decode("utf-8", "replace")
    header, _, payload = body.partition(b".")
    return f"{_b64url(header)}.{_b64url(payload)}.sig"


def seeds() -> list[bytes]:
    """Real tokens (as strings) and their JSON parts, minted by livekit.api."""
    from livekit import api

    minted = [
        api.AccessToken("key", "a-secret-of-at-least-thirty-two-characters")
        .with_identity("user-1")
        .with_name("Ada")
        .with_grants(api.VideoGrants(room_join=True, room="room-1"))
        .with_ttl(datetime.timedelta(minutes=10))
        .to_jwt(),
        api.AccessToken("key", "a-secret-of-at-least-thirty-two-characters")
        .with_identity("user-2")
        .with_kind("agent")
        .with_attributes({"a": "b"})
        .with_grants(api.VideoGrants(room_join=True, room="room-2", agent=True))
        .with_room_config(
            api.RoomConfiguration(name="room-2", agents=[api.RoomAgentDispatch(agent_name="demo", metadata="{}")])
        )
        .to_jwt(),
    ]
    out: list[bytes] = []
    for token in minted:
        out.append(b"\x00" + token.encode())
        header, payload, _ = token.split(".")
        parts = [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in (header, payload)]
        out.append(b"\x01" + parts[0] + b"." + parts[1])
    out.append(b"\x01" + json.dumps({"alg": "none"}).encode() + b"." + json.dumps({"exp": 1e308, "nbf": -1}).encode())
    return out


def test_one_input(data: bytes) -> None:
    token = token_from(data)
    try:
        claims = decode_claims(token)
    except TokenSourceError as error:
        words = str(error)
        if "malformed" not in words or not error.remedy:
            raise AssertionError(f"an unclear refusal: {words!r}") from None
        if len(token) > 12 and token in words:
            raise AssertionError("the refusal quotes the token") from None
        return
    if not isinstance(claims, TokenClaims) or not isinstance(claims.identity, str):
        raise AssertionError(f"claims of the wrong shape: {claims!r}")
    for value in (claims.name, claims.room):
        if value is not None and not isinstance(value, str):
            raise AssertionError(f"a name or room that is not a string: {claims!r}")
    for bound in (claims.not_before, claims.expires_at):
        if bound is not None and not (isinstance(bound, float) and math.isfinite(bound)):
            raise AssertionError(f"a time that is not a finite number: {claims!r}")
    if not all(isinstance(name, str) for name in claims.dispatched_agents):
        raise AssertionError(f"an agent name that is not a string: {claims!r}")
    claims.is_valid_at(1_700_000_000.0)


def main() -> None:
    seeded = seed_first_corpus(sys.argv, seeds())
    if seeded:
        print(f"seeded the corpus with {seeded} tokens", file=sys.stderr)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
