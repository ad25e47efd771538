"""Record a session's events and replay them: every snapshot comes back equal.

A recording is versioned JSON Lines of reducer events with secrets redacted
(see the recording format in the docs). :func:`record` taps a live session,
:class:`Replay` plays a file back with a session's read API, so any front end
shows it like a live one.
"""

from __future__ import annotations

from ._core.exports import publish as _publish
from ._session.recording import Recorder, RecordingHeader, Replay, read_recording, record

__all__ = ["Recorder", "RecordingHeader", "Replay", "read_recording", "record"]

_publish(__name__, globals(), __all__)
