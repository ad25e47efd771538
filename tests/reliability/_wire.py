"""What the reliability wire tests share: sessions, raw streams, hostile senders, figures.

- :func:`new_session` makes a :class:`lkstate.Session` for a test server with
  no audio devices (the machine running the tests has none).
- :func:`send_raw_text_stream` speaks the data-stream protocol one packet at a
  time through the SDK's low-level FFI requests, so a test can send what no
  well-behaved SDK would: chunks that are not UTF-8, a header whose declared
  size lies, a stream that is never closed.
- :class:`HostileProcess` runs ``_hostile_sender.py`` in a subprocess, so
  what the *sender* allocates (a 100 MB string, thousands of writers) does not
  blur the memory measured in the test process, which is the receiver.
- :class:`Figures` counts the faults injected and hostile inputs tried; each
  test file prints its totals at the end of the run (and records them as
  properties of the tests, for JUnit reports).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from livekit import rtc
from livekit.rtc._ffi_client import FfiClient  # pyright: ignore[reportPrivateUsage]
from livekit.rtc._proto import ffi_pb2 as proto_ffi  # pyright: ignore[reportPrivateUsage]

from lkstate import DevelopmentTokenSource, Message, Role, Session, SessionState
from tests.harness.server import REPO_ROOT, LiveKitServer

__all__ = [
    "REPLY",
    "new_session",
    "agent_messages",
    "agent_sees_user",
    "send_raw_text_stream",
    "HostileProcess",
    "Figures",
    "figures_fixture",
    "rss_bytes",
]

REPLY = "One two three four five six seven eight nine ten eleven twelve."
"""What the scripted agent answers: about two seconds of speech, streamed word by word."""


def new_session(server: LiveKitServer, room_name: str | None, **kwargs: Any) -> Session:
    """A session for ``server`` with no microphone and no speaker."""
    kwargs.setdefault("audio_input", None)
    kwargs.setdefault("audio_output", None)
    tokens = kwargs.pop("tokens", None) or DevelopmentTokenSource(server.url, server.api_key, server.api_secret)
    return Session(tokens, room_name=room_name, **kwargs)


def agent_messages(state: SessionState) -> list[Message]:
    return [m for m in state.messages if m.role is Role.AGENT]


async def agent_sees_user(agent: Any, session: Session) -> None:
    """Wait until the in-process agent's room knows the user (it ignores chat before)."""
    identity = session.state.connection.local_identity
    assert identity is not None
    await agent.wait_for_participant(identity)


def rss_bytes() -> int:
    """This process's resident memory, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- raw data streams


async def _ffi_call(request: proto_ffi.FfiRequest, field: str) -> None:
    queue = FfiClient.instance.queue.subscribe()
    try:
        response = FfiClient.instance.request(request)
        async_id = getattr(response, field).async_id
        callback = await queue.wait_for(lambda e: getattr(e, field).async_id == async_id)
    finally:
        FfiClient.instance.queue.unsubscribe(queue)
    error = getattr(callback, field).error
    if error:
        raise rtc.StreamError(error)


async def send_raw_text_stream(
    room: rtc.Room,
    *,
    topic: str,
    chunks: Sequence[bytes],
    declared_size: int | None = None,
    attributes: Mapping[str, str] | None = None,
    close_attributes: Mapping[str, str] | None = None,
    destination_identities: Sequence[str] = (),
    close: bool = True,
) -> str:
    """A text stream sent packet by packet: header, ``chunks`` as given (any bytes), trailer.

    ``declared_size`` goes into the header's total length (a liar can declare
    anything); ``close=False`` leaves the stream open. Returns the stream id.
    """
    local = room.local_participant
    handle = local._ffi_handle.handle  # pyright: ignore[reportPrivateUsage]
    stream_id = str(uuid.uuid4())

    request = proto_ffi.FfiRequest()
    header = request.send_stream_header
    header.local_participant_handle = handle
    header.sender_identity = local.identity
    header.header.stream_id = stream_id
    header.header.timestamp = int(time.time() * 1000)
    header.header.mime_type = "text/plain"
    header.header.topic = topic
    if declared_size is not None:
        header.header.total_length = declared_size
    header.header.attributes.update(dict(attributes or {}))
    header.header.text_header.operation_type = 0  # create
    header.header.text_header.version = 0
    header.header.text_header.reply_to_stream_id = ""
    header.header.text_header.generated = False
    header.destination_identities.extend(destination_identities)
    await _ffi_call(request, "send_stream_header")

    for index, content in enumerate(chunks):
        request = proto_ffi.FfiRequest()
        chunk = request.send_stream_chunk
        chunk.local_participant_handle = handle
        chunk.sender_identity = local.identity
        chunk.chunk.stream_id = stream_id
        chunk.chunk.chunk_index = index
        chunk.chunk.content = content
        chunk.destination_identities.extend(destination_identities)
        await _ffi_call(request, "send_stream_chunk")

    if close:
        request = proto_ffi.FfiRequest()
        trailer = request.send_stream_trailer
        trailer.local_participant_handle = handle
        trailer.sender_identity = local.identity
        trailer.trailer.stream_id = stream_id
        trailer.trailer.reason = ""
        trailer.trailer.attributes.update(dict(close_attributes or {}))
        trailer.destination_identities.extend(destination_identities)
        await _ffi_call(request, "send_stream_trailer")
    return stream_id


# --------------------------------------------------------------------------- a hostile sender process


class HostileProcess:
    """``tests/reliability/_hostile_sender.py`` in a subprocess; see that file for the modes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    @classmethod
    def start(
        cls,
        server: LiveKitServer,
        room: str,
        identity: str,
        mode: str,
        *,
        kind: str = "standard",
        destination: str = "",
        topic: str = "lk.chat",
        size: int = 0,
        count: int = 0,
    ) -> HostileProcess:
        token = server.token(room, identity, kind="agent" if kind == "agent" else "standard")
        env = {
            **os.environ,
            "HOSTILE_URL": server.url,
            "HOSTILE_TOKEN": token,
            "HOSTILE_MODE": mode,
            "HOSTILE_DESTINATION": destination,
            "HOSTILE_TOPIC": topic,
            "HOSTILE_SIZE": str(size),
            "HOSTILE_COUNT": str(count),
        }
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("_hostile_sender.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=env,
        )
        return cls(process)

    async def wait_line(self, prefix: str, timeout: float = 60.0) -> str:
        """The next line of output starting with ``prefix`` (``"joined"``, ``"sent …"``)."""

        def read() -> str:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                if line.startswith(prefix):
                    return line.strip()
            raise AssertionError(f"the hostile sender exited without saying {prefix!r}: {self.stderr_tail()}")

        return await asyncio.wait_for(asyncio.to_thread(read), timeout)

    def stderr_tail(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()[-2000:]

    async def finish(self, timeout: float = 30.0) -> None:
        """Tell it to leave (close stdin) and wait for it to exit."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(asyncio.to_thread(self.process.wait), timeout)
        except asyncio.TimeoutError:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)


# --------------------------------------------------------------------------- figures


class Figures:
    """Counts for the report: faults injected, hostile inputs tried, things lost."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, name: str, count: int = 1) -> None:
        self.counts[name] += count


def figures_fixture(title: str) -> Any:
    """A module-scoped ``figures`` fixture that prints its counts under ``title`` at the end."""

    @pytest.fixture(scope="module")
    def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
        tally = Figures()
        yield tally
        if not tally.counts:
            return
        lines = [f"{title}:"] + [f"  {name}: {count}" for name, count in sorted(tally.counts.items())]
        reporter: Any = request.config.pluginmanager.get_plugin("terminalreporter")
        capture: Any = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capture is None:
            print("\n".join(lines))
            return
        with capture.global_and_fixture_disabled():  # past pytest's output capture, like its own report
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)

    return figures
