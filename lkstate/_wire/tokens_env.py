"""Choosing a token source from flags and the environment.

Every example app and the CLI accept the same ways of reaching a deployment,
so they share this one function. Precedence, first match wins:

1. an explicit token endpoint (``--token-endpoint`` / ``LKSTATE_TOKEN_ENDPOINT``);
2. an explicit URL and token (``--url`` + ``--token`` / ``LIVEKIT_URL`` + ``LIVEKIT_TOKEN``);
3. a URL with an API key and secret, minting development tokens locally
   (``LIVEKIT_URL`` + ``LIVEKIT_API_KEY`` + ``LIVEKIT_API_SECRET``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .._core.errors import LkstateError
from .tokens import DevelopmentTokenSource, EndpointTokenSource, LiteralTokenSource, TokenSource

__all__ = ["token_source_from_env"]


def token_source_from_env(
    environ: Mapping[str, str] | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    token_endpoint: str | None = None,
    api_key: str | None = None,
    api_secret: str | None = None,
) -> TokenSource:
    """The token source the flags (keyword arguments) or the environment describe.

    Raises :class:`~lkstate.LkstateError` with a remedy when nothing usable is given.
    """
    env = os.environ if environ is None else environ
    endpoint = token_endpoint or env.get("LKSTATE_TOKEN_ENDPOINT")
    if endpoint:
        return EndpointTokenSource(endpoint)
    server_url = url or env.get("LIVEKIT_URL")
    literal = token or env.get("LIVEKIT_TOKEN")
    if server_url and literal:
        return LiteralTokenSource(server_url, literal)
    key = api_key or env.get("LIVEKIT_API_KEY")
    secret = api_secret or env.get("LIVEKIT_API_SECRET")
    if server_url and key and secret:
        return DevelopmentTokenSource(server_url, key, secret)
    raise LkstateError(
        "No way to reach a LiveKit server was given.",
        remedy=(
            "Pass --token-endpoint URL, or --url and --token, or set LIVEKIT_URL with "
            "LIVEKIT_API_KEY and LIVEKIT_API_SECRET (or run `lkstate demo` for a local server)."
        ),
    )
