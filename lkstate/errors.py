"""Every exception lkstate raises; all derive from :class:`LkstateError`.

Each carries a message saying what happened and a ``remedy`` saying what to
do; :meth:`LkstateError.sentence` joins them for a person to read. A command
that cannot succeed raises one of these *and* the state says the same thing
in words, so a UI that only renders state misses nothing.
"""

from __future__ import annotations

from ._core.errors import (
    AgentUnavailableError,
    AudioInputError,
    AudioOutputError,
    BenchmarkError,
    ConnectionFailedError,
    DevServerError,
    HistoryError,
    LkstateError,
    RecordingError,
    RemoteSessionError,
    ReplayReadOnlyError,
    RequestTimeoutError,
    RpcCallError,
    SessionClosedError,
    TokenSourceError,
    VideoInputError,
)
from ._core.exports import publish as _publish

__all__ = [
    "AgentUnavailableError",
    "AudioInputError",
    "AudioOutputError",
    "BenchmarkError",
    "ConnectionFailedError",
    "DevServerError",
    "HistoryError",
    "LkstateError",
    "RecordingError",
    "RemoteSessionError",
    "ReplayReadOnlyError",
    "RequestTimeoutError",
    "RpcCallError",
    "SessionClosedError",
    "TokenSourceError",
    "VideoInputError",
]

_publish(__name__, globals(), __all__)
