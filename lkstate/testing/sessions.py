"""Sessions the way a test wants them: no devices, recorded, watched, ended at teardown.

A :class:`~lkstate.Session` in an app opens the system microphone and
speaker; in a test that is wrong twice (CI machines have none, and a
developer's laptop would listen to the room). :class:`SessionMaker` makes
sessions with no devices unless asked: ``audio=`` a WAV file path or any
:class:`~lkstate.AudioInput` (a :class:`~lkstate.GeneratorInput` for audio
made by code) is what the user "says". Every session gets development tokens
for the test server, is recorded into a file of its own (so a failed
expectation can point at it) and is watched for :mod:`lkstate.testing.expect`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._media.audio import AudioInput, WavFileInput
from .._session.recording import Recorder, record
from .._session.session import Session
from .._wire.tokens import DevelopmentTokenSource
from .expect import Watched, watch
from .server import LiveKitServer

__all__ = ["SessionMaker", "audio_input"]


def audio_input(audio: AudioInput | str | os.PathLike[str] | None) -> AudioInput | None:
    """``audio`` as the session's microphone: a WAV path becomes a :class:`~lkstate.WavFileInput`."""
    if isinstance(audio, (str, os.PathLike)):
        return WavFileInput(audio)
    return audio


class SessionMaker:
    """``maker(**session_kwargs) -> Session`` (unstarted), ``await maker.start(**kwargs)`` (started).

    ``room_name`` and ``agent_name`` are the defaults of every session made
    (override them per call like any :class:`~lkstate.Session` argument).
    Recordings go to ``recordings`` (a directory), one ``<room>-<n>.jsonl``
    per session. :meth:`aclose` ends every session and closes its recording.
    """

    def __init__(
        self,
        server: LiveKitServer,
        *,
        room_name: str | None = None,
        agent_name: str | None = None,
        recordings: Path | None = None,
    ) -> None:
        self.server = server
        self.room_name = room_name
        self.agent_name = agent_name
        self.recordings = recordings
        self.sessions: list[Session] = []
        self._recorders: list[Recorder] = []
        self._watched: list[Watched] = []

    def __call__(
        self, *, audio: AudioInput | str | os.PathLike[str] | None = None, record_to: Path | None = None, **kwargs: Any
    ) -> Session:
        """A new, unstarted session in the test's room, with no devices unless asked."""
        kwargs.setdefault("room_name", self.room_name)
        if self.agent_name is not None:
            kwargs.setdefault("agent_name", self.agent_name)
        kwargs.setdefault("audio_input", audio_input(audio))
        kwargs.setdefault("audio_output", None)
        kwargs.setdefault("video_input", None)
        server = self.server
        session = Session(DevelopmentTokenSource(server.url, server.api_key, server.api_secret), **kwargs)
        self.sessions.append(session)
        path = record_to
        if path is None and self.recordings is not None:
            self.recordings.mkdir(parents=True, exist_ok=True)
            stem = kwargs.get("room_name") or "session"
            path = self.recordings / f"{stem}-{len(self.sessions)}.jsonl"
        if path is not None:
            metadata = {"made_by": "lkstate.testing"}
            if kwargs.get("agent_name"):
                metadata["agent_name"] = str(kwargs["agent_name"])
            self._recorders.append(
                record(session, path, secrets=[server.api_secret, server.api_key], metadata=metadata)
            )
        self._watched.append(watch(session, recording=path))
        return session

    async def start(self, *, audio: AudioInput | str | os.PathLike[str] | None = None, **kwargs: Any) -> Session:
        """A new session, started: connected, and (with an agent name) the agent dispatched and ready."""
        session = self(audio=audio, **kwargs)
        await session.start()
        return session

    async def aclose(self) -> None:
        """End every session made, then close the recordings."""
        try:
            for session in self.sessions:
                await session.end()
        finally:
            for recorder in self._recorders:
                recorder.close()
            for watched in self._watched:
                watched.close()
