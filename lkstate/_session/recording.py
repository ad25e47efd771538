"""Recording and replaying a session: its reducer events, one JSON line each.

Every snapshot of a session is ``reduce`` folded over its events, and the
reducer is pure. So the events alone *are* the session: write them down as
they are dispatched, read them back, fold them through the same reducer, and
every snapshot comes out equal to the one the user saw. That is what a bug
report needs (the whole session, steppable), what a demo without a server
needs, and what a UI test can be driven by.

The file is JSON Lines, described in ``docs/RECORDING.md``::

    {"format": "lkstate-recording", "version": 1, "created": "...", "limits": {...}, ...}
    {"type": "StartRequested", "at": 1732222013.52, "requested_agent": "lkstate-demo", "keep_history": false}
    {"type": "RoomConnected", "at": 1732222013.61, "room_name": "lkstate-3f2a", ...}

Events are (de)serialised generically from their attrs fields and type hints
(strings, numbers, booleans, ``None``, enums by value, tuples as arrays, bytes
as base64, nested attrs classes as objects), so a new event class or field
needs no code here. Reading is strict: an unknown event type or field is an
error naming the line, because silently dropping it could change every
snapshot after it.

Secrets never reach the file. Strings are scrubbed of anything shaped like a
JWT, of URL userinfo, query strings and fragments, of ``key=value`` pairs
whose key names a credential, and of any secret the recorder was told about.
Bytes (the agent's protobuf payloads) are kept byte for byte except that a
token or known secret inside them is masked over its own length, so the
protobuf framing stays intact. A redacted string of course differs from the
live one; everything else replays exactly.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import enum
import importlib.metadata
import io
import json
import logging
import math
import os
import re
import time
import types
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO, TypeVar, cast

import attrs
import reactivex
from reactivex import Observable

from .._core import events as ev
from .._core.levels import AudioLevels
from .._core.errors import LkstateError, RecordingError, ReplayReadOnlyError
from .._core.options import Limits, SessionOptions
from .._core.reducer import reduce
from .._core.state import SessionState
from .._core.store import Store

__all__ = [
    "FORMAT",
    "VERSION",
    "EVENT_TYPES",
    "RecordingHeader",
    "Redactor",
    "Recorder",
    "record",
    "read_recording",
    "encode_event",
    "decode_event",
    "Replay",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

FORMAT = "lkstate-recording"
"""The value of ``"format"`` in a recording's header line."""
VERSION = 1
"""The recording format version this lkstate writes and reads."""

EVENT_TYPES: Mapping[str, type[Any]] = types.MappingProxyType(
    {cls.__name__: cls for cls in typing.get_args(ev.Event)}
)
"""Every event class the reducer understands, by the name used in ``"type"``."""

# ---------------------------------------------------------------------------
# Secrets


_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`]+")
_CREDENTIAL_PAIR = re.compile(
    r"(?i)\b(api[_-]?key|api[_-]?secret|client[_-]?secret|secret|password|passwd|"
    r"access[_-]?token|refresh[_-]?token|token|authorization)"
    r"(\"?'?\s*[:=]\s*\"?'?)(?:bearer\s+)?([^\s\"'&,;)\]}]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9._~+/=-]{8,})")
_REDACTED = "[redacted]"
_REDACTED_TOKEN = "[redacted token]"


class Redactor:
    """Removes credentials from what a recording would otherwise keep.

    ``secrets`` are literal values to remove wherever they appear (an API key
    and secret, a token the caller holds); values shorter than 4 characters
    are ignored, as they would match all over the place. ``count`` says how
    many redactions were made, so a caller can tell a recording was altered.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is removed whole.
        self._secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))
        self.count = 0

    def text(self, value: str) -> str:
        """``value`` with every credential replaced by a readable marker."""
        original = value
        for secret in self._secrets:
            value = value.replace(secret, _REDACTED)
        value = _URL.sub(lambda m: _scrub_url(m.group(0)), value)
        value = _JWT.sub(_REDACTED_TOKEN, value)
        value = _CREDENTIAL_PAIR.sub(_redact_pair, value)
        value = _BEARER.sub(lambda m: m.group(1) + _REDACTED, value)
        if value != original:
            self.count += 1
        return value

    def data(self, value: bytes) -> bytes:
        """``value`` with tokens, known secrets and URL credentials masked by ``*`` over their own length.

        Masking in place keeps every length prefix right, so a protobuf
        payload stays decodable.
        """
        text = value.decode("latin-1")  # one character per byte, reversible
        spans: list[tuple[int, int]] = []
        for secret in self._secrets:
            needle = secret.encode("utf-8", "surrogatepass").decode("latin-1")
            start = text.find(needle)
            while start != -1:
                spans.append((start, start + len(needle)))
                start = text.find(needle, start + 1)
        spans.extend(m.span() for m in _JWT.finditer(text))
        for m in _URL.finditer(text):
            spans.extend((m.start() + a, m.start() + b) for a, b in _url_secret_spans(m.group(0)))
        if not spans:
            return value
        chars = list(text)
        for start, end in spans:
            chars[start:end] = "*" * (end - start)
        self.count += 1
        return "".join(chars).encode("latin-1")


def _redact_pair(match: re.Match[str]) -> str:
    if match.group(3) in (_REDACTED, "[redacted"):
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{_REDACTED}"


def _url_secret_spans(url: str) -> list[tuple[int, int]]:
    """Where in ``url`` its userinfo, query and fragment are (the parts that carry credentials).

    Punctuation ending a sentence (``...?token=x.``) is not taken as part of the URL.
    """
    url = url.rstrip(".,;:!?)]}")
    spans: list[tuple[int, int]] = []
    scheme_end = url.index("://") + 3
    authority_end = len(url)
    for stop in "/?#":
        found = url.find(stop, scheme_end)
        if found != -1:
            authority_end = min(authority_end, found)
    at = url.rfind("@", scheme_end, authority_end)
    if at != -1:
        spans.append((scheme_end, at))
    query = url.find("?", scheme_end)
    fragment = url.find("#", scheme_end)
    if query != -1 and (fragment == -1 or query < fragment):
        spans.append((query + 1, fragment if fragment != -1 else len(url)))
    if fragment != -1:
        spans.append((fragment + 1, len(url)))
    return [(a, b) for a, b in spans if b > a]


def _scrub_url(url: str) -> str:
    spans = _url_secret_spans(url)
    for start, end in sorted(spans, reverse=True):
        url = url[:start] + _REDACTED + url[end:]
    return url


# ---------------------------------------------------------------------------
# Generic encoding, driven by attrs fields and type hints


class _DecodeError(ValueError):
    """A value in a line does not fit the field it is meant for."""


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = hints
    return hints


def _init_fields(cls: type[Any]) -> tuple[attrs.Attribute[Any], ...]:
    return tuple(f for f in attrs.fields(cls) if f.init)


def _encode(value: object, hint: Any, redact: Redactor | None, where: str) -> object:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        if value is None:
            return None
        for option in typing.get_args(hint):
            if option is not type(None) and _fits(value, option):
                return _encode(value, option, redact, where)
        raise TypeError(f"{where}: {value!r} fits none of {hint}")
    if origin is typing.Literal:
        return value
    if origin is tuple:
        args = typing.get_args(hint)
        items = cast(tuple[object, ...], value)
        if len(args) == 2 and args[1] is Ellipsis:
            return [_encode(item, args[0], redact, where) for item in items]
        return [_encode(item, arg, redact, where) for item, arg in zip(items, args, strict=True)]
    if isinstance(hint, type):
        kind = cast(type[object], hint)
        if issubclass(kind, enum.Enum):
            return cast(enum.Enum, value).value
        if attrs.has(kind):
            return _encode_attrs(value, redact)
        if hint is bool:
            return bool(cast(bool, value))
        if hint is int:
            return int(cast(int, value))
        if hint is float:
            number = float(cast(float, value))
            if math.isfinite(number):
                return number
            return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
        if hint is str:
            text = cast(str, value)
            return redact.text(text) if redact is not None else text
        if hint is bytes:
            data = bytes(cast(bytes, value))
            if redact is not None:
                data = redact.data(data)
            return base64.b64encode(data).decode("ascii")
    raise TypeError(f"{where}: lkstate cannot record a field of type {hint!r}")


def _fits(value: object, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is tuple:
        return isinstance(value, tuple)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return False


def _encode_attrs(value: object, redact: Redactor | None) -> dict[str, object]:
    cls = type(value)
    hints = _hints(cls)
    return {
        f.name: _encode(getattr(value, f.name), hints[f.name], redact, f"{cls.__name__}.{f.name}")
        for f in _init_fields(cls)
    }


def _decode(data: object, hint: Any, where: str) -> object:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        options = typing.get_args(hint)
        if data is None:
            if type(None) in options:
                return None
            raise _DecodeError(f"{where} may not be null")
        errors: list[str] = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _decode(data, option, where)
            except _DecodeError as error:
                errors.append(str(error))
        raise _DecodeError(errors[0] if len(errors) == 1 else f"{where} has an unexpected value {data!r}")
    if origin is typing.Literal:
        if data in typing.get_args(hint):
            return data
        raise _DecodeError(f"{where} must be one of {typing.get_args(hint)}, not {data!r}")
    if origin is tuple:
        if not isinstance(data, list):
            raise _DecodeError(f"{where} must be an array, not {_json_kind(data)}")
        items = cast(list[object], data)
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(item, args[0], f"{where}[{i}]") for i, item in enumerate(items))
        if len(items) != len(args):
            raise _DecodeError(f"{where} must have {len(args)} items, not {len(items)}")
        return tuple(_decode(item, arg, f"{where}[{i}]") for i, (item, arg) in enumerate(zip(items, args)))
    if isinstance(hint, type):
        kind = cast(type[object], hint)
        if issubclass(kind, enum.Enum):
            try:
                return kind(data)
            except ValueError:
                allowed = ", ".join(repr(m.value) for m in kind)
                raise _DecodeError(f"{where} must be one of {allowed}, not {data!r}") from None
        if attrs.has(kind):
            if not isinstance(data, dict):
                raise _DecodeError(f"{where} must be an object, not {_json_kind(data)}")
            return _decode_attrs(kind, cast(dict[str, object], data), where)
        if hint is bool:
            if isinstance(data, bool):
                return data
            raise _DecodeError(f"{where} must be true or false, not {data!r}")
        if hint is int:
            if isinstance(data, int) and not isinstance(data, bool):
                return data
            raise _DecodeError(f"{where} must be a whole number, not {data!r}")
        if hint is float:
            if isinstance(data, (int, float)) and not isinstance(data, bool):
                return float(data)
            if data in ("NaN", "Infinity", "-Infinity"):
                return float(cast(str, data).lower().replace("infinity", "inf"))
            raise _DecodeError(f"{where} must be a number, not {data!r}")
        if hint is str:
            if isinstance(data, str):
                return data
            raise _DecodeError(f"{where} must be a string, not {_json_kind(data)}")
        if hint is bytes:
            if not isinstance(data, str):
                raise _DecodeError(f"{where} must be a base64 string, not {_json_kind(data)}")
            try:
                return base64.b64decode(data, validate=True)
            except ValueError:
                raise _DecodeError(f"{where} is not valid base64") from None
    raise _DecodeError(f"{where} has a type lkstate cannot read ({hint!r})")


def _decode_attrs(cls: type[_T], data: Mapping[str, object], where: str) -> _T:
    hints = _hints(cls)
    fields = _init_fields(cls)
    known = {f.name for f in fields}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _DecodeError(
            f"{where} has unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
        )
    kwargs: dict[str, object] = {}
    for f in fields:
        if f.name in data:
            kwargs[f.name] = _decode(data[f.name], hints[f.name], f"{where}.{f.name}")
        elif f.default is attrs.NOTHING:
            raise _DecodeError(f"{where} is missing the field {f.name!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise _DecodeError(f"{where} is not valid: {error}") from None


def _json_kind(data: object) -> str:
    if data is None:
        return "null"
    if isinstance(data, bool):
        return "a boolean"
    if isinstance(data, (int, float)):
        return "a number"
    if isinstance(data, str):
        return "a string"
    if isinstance(data, list):
        return "an array"
    return "an object"


def encode_event(event: ev.Event, redact: Redactor | None = None) -> dict[str, object]:
    """The JSON object (as a dict) a recording stores for ``event``: ``{"type": ..., **fields}``."""
    cls = type(event)
    if EVENT_TYPES.get(cls.__name__) is not cls:
        raise TypeError(f"not an lkstate event: {event!r}")
    return {"type": cls.__name__, **_encode_attrs(event, redact)}


def decode_event(data: Mapping[str, object]) -> ev.Event:
    """The event a recording's JSON object describes; ``ValueError`` (in words) when it cannot be one."""
    name = data.get("type")
    if not isinstance(name, str):
        raise _DecodeError('the line has no "type" naming its event')
    cls = EVENT_TYPES.get(name)
    if cls is None:
        raise _DecodeError(f"unknown event type {name!r}")
    fields = {k: v for k, v in data.items() if k != "type"}
    return cast(ev.Event, _decode_attrs(cls, fields, name))


def _dumps(obj: object) -> str:
    line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a hostile peer: escape, keep it faithful
        line = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return line


# ---------------------------------------------------------------------------
# The header


@attrs.frozen
class RecordingHeader:
    """The first line of a recording: what it is and how to replay it."""

    created: str
    """When recording started, ISO 8601 in UTC."""
    limits: Limits = Limits()
    """The limits the session's reducer ran with; a replay uses the same."""
    lkstate: str = "unknown"
    """The lkstate version that wrote the file."""
    metadata: tuple[tuple[str, str], ...] = ()
    """Free-form ``(key, value)`` notes (what was recorded, by which command)."""
    format: str = FORMAT
    version: int = VERSION

    def to_json(self) -> dict[str, object]:
        return {
            "format": self.format,
            "version": self.version,
            "created": self.created,
            "lkstate": self.lkstate,
            "limits": _encode_attrs(self.limits, None),
            "metadata": dict(self.metadata),
        }


def _lkstate_version() -> str:
    try:
        return importlib.metadata.version("lkstate")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------
# Writing


class Recorder:
    """Writes every event dispatched to a store into a recording, one line each, as it happens.

    ::

        recorder = Recorder("session.jsonl", limits=session.options.limits, secrets=[api_secret])
        recorder.attach(session.store)      # before session.start()
        ...
        recorder.close()

    or simply ``with record(session, "session.jsonl"): ...``. Each line is
    flushed when written, so a crash loses nothing already seen. Attach before
    the session's first event: a replay starts from an empty state, so a
    recording that misses the beginning could not reproduce the snapshots.

    If writing fails (disk full, file gone) the recorder stops, logs once and
    keeps the error in :attr:`error`; the session carries on.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | TextIO,
        *,
        limits: Limits | None = None,
        secrets: Iterable[str] = (),
        metadata: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redactor = Redactor(secrets)
        self.events_written = 0
        #: The write error that stopped recording, if one did; the session carries on without it.
        self.error: OSError | None = None
        self._remove_tap: Callable[[], None] | None = None
        self._closed = False
        if isinstance(target, (str, os.PathLike)):
            self.path: Path | None = Path(target)
            try:
                self._file: TextIO = open(self.path, "w", encoding="utf-8", newline="\n")
            except OSError as error:
                raise RecordingError(
                    f"Could not create the recording {str(self.path)!r}: {error.strerror or error}.",
                    path=str(self.path),
                    remedy="Choose a file in a directory that exists and that you can write to.",
                ) from error
            self._owns_file = True
        else:
            self.path = None
            self._file = target
            self._owns_file = False
        created = datetime.datetime.fromtimestamp(clock(), datetime.UTC).isoformat()
        self.header = RecordingHeader(
            created=created,
            limits=limits if limits is not None else Limits(),
            lkstate=_lkstate_version(),
            metadata=tuple(sorted((k, self.redactor.text(v)) for k, v in (metadata or {}).items())),
        )
        self._write(self.header.to_json())

    @property
    def closed(self) -> bool:
        """:meth:`close` was called (or writing failed): nothing more is recorded."""
        return self._closed or self.error is not None

    def attach(self, store: Store) -> Recorder:
        """Start recording what ``store`` folds. Returns the recorder."""
        if self._remove_tap is not None:
            raise LkstateError("This recorder is already attached.", remedy="Use one recorder per session.")
        if store.state != SessionState():
            raise RecordingError(
                "The session has already changed, so a recording started now could not replay it.",
                remedy="Attach the recorder right after creating the session, before start().",
            )
        self._remove_tap = store.add_tap(self._tap)
        return self

    def write(self, event: ev.Event) -> None:
        """Append one event (what the tap does for each dispatched event)."""
        if self._closed or self.error is not None:
            return
        self._write(encode_event(event, self.redactor))
        self.events_written += 1

    def _tap(self, event: ev.Event, state: SessionState) -> None:
        del state
        self.write(event)

    def _write(self, obj: object) -> None:
        try:
            self._file.write(_dumps(obj) + "\n")
            self._file.flush()
        except OSError as error:
            self.error = error
            logger.error("recording stopped: could not write to %s: %s", self.path or self._file, error)
            self._detach()
        except ValueError as error:  # written to a closed file
            self.error = OSError(str(error))
            self._detach()

    def _detach(self) -> None:
        remove, self._remove_tap = self._remove_tap, None
        if remove is not None:
            remove()

    def close(self) -> None:
        """Stop recording and close the file (when the recorder opened it). Safe to call twice."""
        self._closed = True
        self._detach()
        if self._owns_file and not self._file.closed:
            try:
                self._file.flush()
            finally:
                self._file.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Recordable(typing.Protocol):
    @property
    def store(self) -> Store: ...

    @property
    def options(self) -> SessionOptions: ...


def record(
    session: _Recordable,
    target: str | os.PathLike[str] | TextIO,
    *,
    secrets: Iterable[str] = (),
    metadata: Mapping[str, str] | None = None,
) -> Recorder:
    """Record ``session`` (not started yet) into ``target``; close the returned recorder when done."""
    recorder = Recorder(target, limits=session.options.limits, secrets=secrets, metadata=metadata)
    try:
        return recorder.attach(session.store)
    except BaseException:
        recorder.close()
        raise


# ---------------------------------------------------------------------------
# Reading


def read_recording(source: str | os.PathLike[str] | TextIO) -> tuple[RecordingHeader, tuple[ev.Event, ...]]:
    """Read a recording: its header and every event, in order.

    Raises :class:`~lkstate.RecordingError` naming the file and the line when
    the file is not a recording, was written in a format version this lkstate
    does not read, or has a damaged line.
    """
    if isinstance(source, (str, os.PathLike)):
        path = str(source)
        try:
            with open(source, encoding="utf-8", newline="") as file:
                return _read(file, path)
        except FileNotFoundError:
            raise RecordingError(
                f"There is no recording at {path!r}.",
                path=path,
                remedy="Check the path; recordings are made with `lkstate record` or `lkstate demo --record FILE`.",
            ) from None
        except IsADirectoryError:
            raise RecordingError(
                f"{path!r} is a directory, not a recording.", path=path, remedy="Name a .jsonl file."
            ) from None
    return _read(source, getattr(source, "name", None) if not isinstance(source, io.StringIO) else None)


def _read(file: TextIO, path: str | None) -> tuple[RecordingHeader, tuple[ev.Event, ...]]:
    name = repr(path) if path else "the recording"

    def fail(line: int | None, message: str, remedy: str) -> RecordingError:
        where = f"{name}, line {line}: " if line is not None else f"{name}: "
        return RecordingError(where + message, path=path, line=line, remedy=remedy)

    damaged = "The file is damaged or was edited by hand; fix or delete that line, or record the session again."
    try:
        lines = file.read().split("\n")
    except UnicodeDecodeError as error:
        raise fail(None, f"is not UTF-8 text ({error.reason} at byte {error.start}).",
                   "Pass a recording made by lkstate (a .jsonl text file).") from None
    cut_short = bool(lines) and lines[-1] != ""
    header: RecordingHeader | None = None
    events: list[ev.Event] = []
    last = max((i for i, text in enumerate(lines) if text.strip()), default=-1)
    for index, text in enumerate(lines):
        number = index + 1
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as error:
            if header is None:
                raise fail(number, "is not JSON, so this is not an lkstate recording.",
                           "Pass a file written by `lkstate record` (JSON Lines whose first line "
                           f'says "format": "{FORMAT}").') from None
            if index == last and cut_short:
                raise fail(number, f"is cut short ({error.msg}); the recorder did not close cleanly.",
                           "Delete the last line to replay everything before it.") from None
            raise fail(number, f"is not valid JSON ({error.msg} at column {error.colno}).", damaged) from None
        if not isinstance(obj, dict):
            if header is None:
                raise fail(number, "is not an lkstate recording header.",
                           f'Pass a file written by `lkstate record`; its first line says "format": "{FORMAT}".')
            raise fail(number, f"holds {_json_kind(obj)}, not an event object.", damaged)
        data = cast(dict[str, object], obj)
        if header is None:
            header = _read_header(data, number, fail)
            continue
        try:
            events.append(decode_event(data))
        except _DecodeError as error:
            newer = "unknown" in str(error)
            raise fail(
                number,
                f"is not a valid event: {error}.",
                "The recording may come from a newer lkstate; upgrade lkstate to replay it."
                if newer
                else damaged,
            ) from None
    if header is None:
        raise fail(None, "is empty.", "Record a session with `lkstate record --out FILE` and pass that file.")
    return header, tuple(events)


def _read_header(
    data: dict[str, object], number: int, fail: Callable[[int | None, str, str], RecordingError]
) -> RecordingHeader:
    if data.get("format") != FORMAT:
        raise fail(
            number,
            f'is not an lkstate recording header (no "format": "{FORMAT}").',
            "Pass a file written by `lkstate record` or `lkstate demo --record FILE`.",
        )
    version = data.get("version")
    if version != VERSION:
        raise fail(
            number,
            f"was written in recording format version {version!r}; this lkstate reads version {VERSION}.",
            "Upgrade lkstate (pip install -U lkstate) to read newer recordings."
            if isinstance(version, int) and version > VERSION
            else "The header is damaged; it must say \"version\": 1.",
        )
    created = data.get("created")
    lkstate = data.get("lkstate", "unknown")
    metadata = data.get("metadata", {})
    limits_data = data.get("limits", {})
    try:
        if not isinstance(created, str):
            raise _DecodeError('the header has no "created" time')
        if not isinstance(lkstate, str):
            raise _DecodeError('"lkstate" must be a string')
        if not isinstance(limits_data, dict):
            raise _DecodeError('"limits" must be an object')
        if not isinstance(metadata, dict) or not all(
            isinstance(v, str) for v in cast(dict[str, object], metadata).values()
        ):
            raise _DecodeError('"metadata" must be an object of strings')
        limits = _decode_attrs(Limits, cast(dict[str, object], limits_data), "limits")
    except _DecodeError as error:
        raise fail(number, f"has a damaged header: {error}.",
                   "Restore the header line (see docs/RECORDING.md) or record the session again.") from None
    return RecordingHeader(
        created=created,
        limits=limits,
        lkstate=lkstate,
        metadata=tuple(sorted(cast(dict[str, str], metadata).items())),
        format=FORMAT,
        version=VERSION,
    )


# ---------------------------------------------------------------------------
# Replaying


@attrs.frozen
class _Goto:
    """Not an event: tells the replay's store to show a snapshot computed earlier (seek)."""

    state: SessionState


def _replay_reducer(state: SessionState, event: ev.Event, limits: Limits) -> SessionState:
    if isinstance(event, _Goto):
        return event.state
    return reduce(state, event, limits)


_READ_ONLY_REMEDY = "Replays only show what was recorded; to talk to an agent, use `lkstate demo` or `lkstate connect`."


class Replay:
    """A recorded session played back: the same read API as :class:`~lkstate.Session`.

    ``state``, ``states``, ``select`` and ``wait_until`` behave exactly as a
    live session's, so any front end that renders a session renders a replay.
    The snapshots are the recorded events folded through the same reducer,
    with the limits written in the recording.

    Move through it with :meth:`step` (the next event), :meth:`seek` (any
    position, backwards too) and :meth:`run` (the rest, at the recorded pace
    scaled by ``speed``, or as fast as possible with ``float("inf")``).
    :meth:`start` starts :meth:`run` in the background at the speed given to
    the constructor, so a front end that calls ``start()`` and ``end()`` plays
    it like a live session. Commands that would change the session
    (``send_text``, ``dismiss_problems``, the media toggles…) raise
    :class:`~lkstate.ReplayReadOnlyError`.

    Everything happens on one thread (the store's rule): the thread of the
    loop that runs :meth:`run`, or the caller's for :meth:`step` and :meth:`seek`.
    """

    def __init__(
        self,
        events: Iterable[ev.Event],
        *,
        header: RecordingHeader | None = None,
        limits: Limits | None = None,
        speed: float = 1.0,
        max_gap: float | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        _check_speed(speed)
        self._sleep = sleep
        self._events: tuple[ev.Event, ...] = tuple(events)
        self._header = header
        lim = limits if limits is not None else (header.limits if header is not None else Limits())
        self._options = SessionOptions(limits=lim, agent_connect_timeout=None, preconnect_audio=False)
        self._store = Store(limits=lim, reducer=_replay_reducer)
        self._snapshots: list[SessionState] = [self._store.state]
        """``_snapshots[i]`` is the state after the first ``i`` events (filled as they are folded)."""
        self._position = 0
        self._speed = speed
        self._max_gap = max_gap
        self._playing: asyncio.Task[SessionState] | None = None
        self._running = False

    @classmethod
    def from_file(
        cls, source: str | os.PathLike[str] | TextIO, *, speed: float = 1.0, max_gap: float | None = None
    ) -> Replay:
        """A replay of the recording at ``source`` (see :func:`read_recording` for errors)."""
        header, events = read_recording(source)
        return cls(events, header=header, speed=speed, max_gap=max_gap)

    # -- reading the state, as a Session ---------------------------------------------

    @property
    def state(self) -> SessionState:
        """The snapshot at the current position."""
        return self._store.state

    @property
    def states(self) -> Observable[SessionState]:
        """The current snapshot on subscribe, then every change as the replay moves."""
        return self._store.states

    @property
    def levels(self) -> Observable[AudioLevels]:
        """Silent: levels are not recorded (they would dwarf the events), so a replay shows still meters."""
        return reactivex.just(AudioLevels())

    def select(self, selector: Callable[[SessionState], _T]) -> Observable[_T]:
        """A slice of the state, delivered only when it changes."""
        return self._store.select(selector)

    async def wait_until(
        self, predicate: Callable[[SessionState], bool], *, timeout: float | None = None
    ) -> SessionState:
        """Wait (while something else moves the replay) for a snapshot satisfying ``predicate``."""
        return await self._store.wait_until(predicate, timeout=timeout)

    @property
    def store(self) -> Store:
        return self._store

    @property
    def options(self) -> SessionOptions:
        """Options as the replay applies them: the recording's limits, no timers."""
        return self._options

    @property
    def room(self) -> None:
        """A replay has no room."""
        return None

    # -- the recording -----------------------------------------------------------------

    @property
    def header(self) -> RecordingHeader | None:
        return self._header

    @property
    def events(self) -> tuple[ev.Event, ...]:
        return self._events

    @property
    def position(self) -> int:
        """How many events have been folded into :attr:`state` (0 to ``len(replay)``)."""
        return self._position

    @property
    def at_end(self) -> bool:
        return self._position >= len(self._events)

    @property
    def speed(self) -> float:
        return self._speed

    def __len__(self) -> int:
        return len(self._events)

    def state_at(self, index: int) -> SessionState:
        """The snapshot after the first ``index`` events, without moving the replay."""
        index = self._index(index)
        snapshots = self._snapshots
        limits = self._options.limits
        while len(snapshots) <= index:
            snapshots.append(reduce(snapshots[-1], self._events[len(snapshots) - 1], limits))
        return snapshots[index]

    def _index(self, index: int) -> int:
        if not isinstance(index, int) or isinstance(index, bool):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"a replay position is a whole number, not {index!r}")
        if index < 0:
            index += len(self._events) + 1
        if not 0 <= index <= len(self._events):
            raise LkstateError(
                f"There is no step {index} in this replay; it has {len(self._events)} events.",
                remedy=f"Choose a step from 0 (before the first event) to {len(self._events)} (after the last).",
            )
        return index

    # -- moving ------------------------------------------------------------------------

    def step(self, count: int = 1) -> SessionState:
        """Fold the next ``count`` events (fewer at the end) and return the state."""
        for _ in range(count):
            if self.at_end:
                break
            event = self._events[self._position]
            self._store.dispatch(event)
            self._position += 1
            if len(self._snapshots) == self._position:
                self._snapshots.append(self._store.state)
        return self.state

    def seek(self, index: int) -> SessionState:
        """Show the state after the first ``index`` events (negative counts from the end).

        Forwards and backwards; subscribers see one change, straight to that
        snapshot. Snapshots are kept as they are computed, so seeking back is a lookup.
        """
        index = self._index(index)
        if index == self._position + 1:
            return self.step()
        target = self.state_at(index)
        self._store.dispatch(cast(ev.Event, _Goto(target)))
        self._position = index
        return self.state

    async def run(self, speed: float | None = None) -> SessionState:
        """Play the rest of the recording; return the final state.

        Events are spaced as recorded (the gaps between their ``at`` times)
        divided by ``speed``: 2.0 plays twice as fast, ``float("inf")`` as
        fast as possible (yielding to the loop now and then so a UI keeps
        drawing). Gaps longer than ``max_gap`` seconds (if given) are cut to it.
        """
        speed = self._speed if speed is None else speed
        _check_speed(speed)
        if self._running:
            raise LkstateError("This replay is already playing.", remedy="Wait for it, or call end() first.")
        self._running = True
        try:
            while not self.at_end:
                if math.isinf(speed):
                    if self._position % 64 == 63:
                        await asyncio.sleep(0)  # let a UI draw; never a pause
                else:
                    gap = 0.0
                    if self._position > 0:
                        gap = self._events[self._position].at - self._events[self._position - 1].at
                    gap = max(gap, 0.0)
                    if self._max_gap is not None:
                        gap = min(gap, self._max_gap)
                    if gap > 0:
                        await self._sleep(gap / speed)
                    else:
                        await asyncio.sleep(0)
                self.step()
        finally:
            self._running = False
        return self.state

    # -- the Session lifecycle, for front ends --------------------------------------------

    async def start(self, *, wait_for_agent: bool = True) -> SessionState:
        """Start playing in the background (at the constructor's speed); return at once.

        Calling it again while playing does nothing; calling it on a replay
        that has reached its end plays it again from the beginning (a front
        end's "Connect" button replays the session). ``wait_for_agent`` is
        accepted for compatibility with :meth:`Session.start` and ignored.
        """
        del wait_for_agent
        if self._playing is None or self._playing.done():
            if self.at_end and self._events:
                self.seek(0)
            self._playing = asyncio.get_running_loop().create_task(self.run(), name="lkstate-replay")
        return self.state

    async def end(self) -> None:
        """Stop a background playback started by :meth:`start`. The state stays where it is."""
        playing, self._playing = self._playing, None
        if playing is not None and not playing.done():
            playing.cancel()
            try:
                await playing
            except asyncio.CancelledError:
                if not playing.cancelled():
                    raise
        elif playing is not None and not playing.cancelled() and playing.exception() is not None:
            raise cast(BaseException, playing.exception())

    async def aclose(self) -> None:
        await self.end()

    async def wait_finished(self) -> SessionState:
        """Wait for a background playback to reach the end; return the final state."""
        if self._playing is not None:
            return await asyncio.shield(self._playing)
        return self.state

    async def __aenter__(self) -> Replay:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.end()

    # -- commands: refused -----------------------------------------------------------------

    def _read_only(self, what: str) -> ReplayReadOnlyError:
        return ReplayReadOnlyError(f"A replay is read-only: it cannot {what}.", remedy=_READ_ONLY_REMEDY)

    async def send_text(self, text: str) -> typing.NoReturn:
        del text
        raise self._read_only("send a message")

    def dismiss_problems(self) -> typing.NoReturn:
        raise self._read_only("dismiss problems")

    async def set_microphone_enabled(self, enabled: bool) -> typing.NoReturn:
        del enabled
        raise self._read_only("turn the microphone on or off")

    async def set_speaker_enabled(self, enabled: bool) -> typing.NoReturn:
        del enabled
        raise self._read_only("turn the speaker on or off")

    async def set_camera_enabled(self, enabled: bool) -> typing.NoReturn:
        del enabled
        raise self._read_only("turn the camera on or off")

    async def set_screen_share_enabled(self, enabled: bool) -> typing.NoReturn:
        del enabled
        raise self._read_only("share the screen")

    @property
    def remote(self) -> typing.NoReturn:
        """A replay cannot send requests to the agent."""
        raise self._read_only("send requests to the agent")


def _check_speed(speed: float) -> None:
    if not speed > 0:
        raise LkstateError(
            f"A replay speed must be above zero, not {speed!r}.",
            remedy='Use 1 for the recorded pace, 2 for twice as fast, or "inf" for as fast as possible.',
        )
