"""Exceptions raised by lkstate.

Every problem lkstate knows about also lives in :class:`~lkstate.SessionState` as
plain words, so a UI can show it without catching anything. Exceptions exist for
the caller of a command that cannot succeed: ``await session.start()`` raises
when there is no way to become usable, and the message says what to do next.

Each exception carries a ``remedy``: one sentence a person can act on.
"""

from __future__ import annotations

__all__ = [
    "LkstateError",
    "TokenSourceError",
    "ConnectionFailedError",
    "AgentUnavailableError",
    "SessionClosedError",
    "AudioInputError",
    "AudioOutputError",
    "VideoInputError",
    "RemoteSessionError",
    "RequestTimeoutError",
    "RecordingError",
    "HistoryError",
    "ReplayReadOnlyError",
    "DevServerError",
    "BenchmarkError",
    "RpcCallError",
]


class LkstateError(Exception):
    """Base class of every lkstate exception.

    ``str(error)`` is the message followed by the remedy, so a bare
    ``print(error)`` already tells the user what happened and what to try.
    """

    remedy: str

    def __init__(self, message: str, *, remedy: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def sentence(self) -> str:
        """The message as a sentence a person reads (capitalised) followed by the remedy."""
        message = self.message[:1].upper() + self.message[1:]
        return f"{message} {self.remedy}".strip()

    def __str__(self) -> str:
        if self.remedy:
            return f"{self.message} {self.remedy}"
        return self.message


class TokenSourceError(LkstateError):
    """The token source could not produce usable credentials."""


class ConnectionFailedError(LkstateError):
    """The room could not be joined, or the connection was lost for good."""


class AgentUnavailableError(LkstateError):
    """No agent became ready in time; ``reasons`` says why, in words."""

    def __init__(self, message: str, *, reasons: tuple[str, ...] = (), remedy: str = "") -> None:
        super().__init__(message, remedy=remedy)
        self.reasons = reasons


class SessionClosedError(LkstateError):
    """A command needs a started session, and this one is not started."""


class AudioInputError(LkstateError):
    """The audio input could not be opened or stopped working."""


class AudioOutputError(LkstateError):
    """The audio output (speaker, file) could not be opened or stopped working."""


class VideoInputError(LkstateError):
    """The video input (camera, file, your frames) could not be opened or stopped working."""


class RemoteSessionError(LkstateError):
    """The agent answered a remote-session request with an error."""


class RequestTimeoutError(RemoteSessionError):
    """The agent did not answer a remote-session request in time."""


class RpcCallError(LkstateError):
    """An RPC call to another participant failed, timed out or was refused.

    ``code`` is the RPC error code (1400 unknown method, 1401 no such
    participant, 1500 the handler failed, 1502 no answer in time…, or the
    peer's own code) and ``data`` whatever detail the peer attached.
    """

    def __init__(self, message: str, *, code: int, data: str | None = None, remedy: str = "") -> None:
        super().__init__(message, remedy=remedy)
        self.code = code
        self.data = data


class RecordingError(LkstateError):
    """A recording could not be read or written: wrong format, newer version, damaged line.

    ``path`` is the file and ``line`` the 1-based line at fault (``None`` when
    the problem is the file as a whole).
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None, remedy: str = "") -> None:
        super().__init__(message, remedy=remedy)
        self.path = path
        self.line = line


class HistoryError(LkstateError, ValueError):
    """A saved message history could not be read: not one, a newer version, a damaged message.

    Raised before anything is restored: a history is restored whole or not at
    all. ``where`` names the part at fault (``"messages[3].role"``) when there
    is one. Also a ``ValueError``, as the input was bad.
    """

    def __init__(self, message: str, *, where: str | None = None, remedy: str = "") -> None:
        super().__init__(message, remedy=remedy)
        self.where = where


class ReplayReadOnlyError(LkstateError):
    """A command (send text, dismiss problems, toggle the microphone…) was given to a replay."""


class DevServerError(LkstateError):
    """The local development server or the demo agent could not be found, installed or started."""


class BenchmarkError(LkstateError):
    """``lkstate bench`` could not run a part it was asked to run (no server, no answer from a peer)."""
