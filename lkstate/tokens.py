"""What a token says and what a token request asks for.

The token sources themselves (:class:`~lkstate.TokenSource` and its
literal, endpoint, development and custom kinds, and
:func:`~lkstate.token_source_from_env`) are at the top level; this module
holds the request a session makes of them, the credentials they answer with
and the claims read from a token — and :class:`Encryption`, the key shared
by everyone in an end-to-end encrypted room (``Session(..., encryption=...)``).
"""

from __future__ import annotations

from ._core.exports import publish as _publish
from ._wire.encryption import Encryption
from ._wire.tokens import Credentials, TokenClaims, TokenRequest, decode_claims

__all__ = ["Credentials", "Encryption", "TokenClaims", "TokenRequest", "decode_claims"]

_publish(__name__, globals(), __all__)
