"""Benchmark: the browser's audio channel against the local path, each way, on loopback.

``lkstate bench --voice`` (or ``python -m lkstate._tooling.bench_voice [--json]``).

What is timed, with a real livekit-server and a raw ``livekit.rtc`` agent peer:

- **microphone → agent**: a click (20 ms of loud noise after silence) is put
  into the session's microphone, and timed until the agent peer's
  ``rtc.AudioStream`` of the user's track carries it. *Browser path*: the click
  is a frame sent on the tab's WebSocket (``lkstate_gradio``'s channel served by
  uvicorn, exactly as the page sends it) into the tab's ``PushAudioInput``.
  *Local path*: the same frame pushed into a ``PushAudioInput`` in-process,
  which is what any local microphone does.
- **agent → playback**: the agent peer publishes a click; timed until it is in
  the output. *Browser path*: until the WebSocket client receives the frame
  (the tab's ``BrowserSpeaker``). *Local path*: until the session's
  ``AudioOutput.write`` gets it (what a speaker or a file gets).

Each as p50/p99 in ms and the browser path's p50 as a ratio over the local
path. Not included, because no server-side code can see them: the page's own
legs — the AudioWorklet's 20 ms framing before a frame is sent, and the
player's 60 ms jitter-buffer target before a frame is heard (both by design,
stated in ``lkstate_gradio/_voice.py``) and the sound card's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import socket
import sys
import threading
import time
import uuid
from typing import Any

import numpy as np
from livekit import rtc

from .._core.errors import LkstateError
from .._media.push import PushAudioInput
from .._session.session import Session
from .._wire.tokens import LiteralTokenSource
from .bench import _mint, _percentile, _progress, _round, _start_server  # pyright: ignore[reportPrivateUsage]

__all__ = ["main", "measure"]

RATE = 48000
FRAME = RATE // 50  # 20 ms
LOUD = 12000


def _click() -> bytes:
    noise = np.random.default_rng(3).standard_normal(FRAME) * LOUD
    return noise.clip(-32000, 32000).astype("<i2").tobytes()


def _is_loud(pcm: bytes | memoryview) -> bool:
    samples = np.frombuffer(pcm, dtype=np.int16)
    return bool(samples.size) and float(np.abs(samples).max()) > LOUD / 2


class _TimedOutput:
    """A local ``AudioOutput``: notes when a loud frame is written."""

    def __init__(self) -> None:
        self.heard: asyncio.Queue[float] = asyncio.Queue()

    async def open(self, sample_rate: int, num_channels: int) -> None:
        pass

    def write(self, frame: rtc.AudioFrame) -> None:
        if _is_loud(frame.data.cast("B")):
            self.heard.put_nowait(time.perf_counter())

    async def aclose(self) -> None:
        pass


def _serve(routes: list[Any]) -> tuple[Any, int, threading.Thread]:
    import uvicorn
    from starlette.applications import Starlette

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=routes), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="bench-voice-uvicorn", daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, port, thread


async def _agent_peer(server: Any, room: str) -> tuple[rtc.Room, rtc.AudioSource]:
    peer = rtc.Room()
    await peer.connect(server.url, _mint(server.api_key, server.api_secret, room, f"agent-{room}", agent=True,
                                         attributes={"lk.agent.state": "listening"}))
    source = rtc.AudioSource(RATE, 1, queue_size_ms=40)  # a voice agent keeps its queue short too
    track = rtc.LocalAudioTrack.create_audio_track("agent-voice", source)
    await peer.local_participant.publish_track(track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
    return peer, source


async def _user_audio(peer: rtc.Room, identity: str, timeout: float = 20.0) -> rtc.AudioStream:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        participant = peer.remote_participants.get(identity)
        if participant is not None:
            for publication in participant.track_publications.values():
                if publication.track is not None and publication.kind == rtc.TrackKind.KIND_AUDIO:
                    return rtc.AudioStream(publication.track, sample_rate=RATE, num_channels=1)
        await asyncio.sleep(0.05)
    raise LkstateError("The agent peer never got the user's microphone.", remedy="Check the livekit-server.")


async def _one_path(server: Any, *, browser: bool, clicks: int) -> dict[str, list[float]]:
    voice_module = importlib.import_module("lkstate_gradio._voice")
    room = f"bench-voice-{uuid.uuid4().hex[:8]}"
    identity = f"user-{room}"
    peer, agent_source = await _agent_peer(server, room)
    voice = voice_module.BrowserVoice()
    link = voice.new_link()
    local_output = _TimedOutput()
    microphone: PushAudioInput = link.microphone if browser else PushAudioInput(sample_rate=RATE)
    session = Session(
        LiteralTokenSource(server.url, _mint(server.api_key, server.api_secret, room, identity)),
        agent_connect_timeout=30.0,
        audio_input=microphone,
        audio_output=link.speaker if browser else local_output,
    )
    uvicorn_server: Any = None
    client: Any = None
    received: asyncio.Queue[float] = asyncio.Queue()
    tasks: list[asyncio.Task[Any]] = []
    silence = bytes(FRAME * 2)
    click = _click()
    up: list[float] = []
    down: list[float] = []
    try:
        if browser:
            voice.bind("bench", link, None)
            uvicorn_server, port, _ = _serve(voice.routes())
            from websockets.asyncio.client import connect

            client = await connect(f"ws://127.0.0.1:{port}/lkstate/voice")
            await client.send(json.dumps({"key": link.secret, "rate": RATE}))
            assert "ready" in str(await client.recv())

            async def read() -> None:
                async for message in client:
                    if isinstance(message, bytes) and _is_loud(message):
                        received.put_nowait(time.perf_counter())

            tasks.append(asyncio.create_task(read()))
        await session.start()
        stream = await _user_audio(peer, identity)
        heard_by_agent: asyncio.Queue[float] = asyncio.Queue()

        async def agent_listens() -> None:
            async for event in stream:
                if _is_loud(event.frame.data.cast("B")):
                    heard_by_agent.put_nowait(time.perf_counter())

        speak: asyncio.Queue[asyncio.Future[float]] = asyncio.Queue()

        async def agent_speaks() -> None:
            """Silence in real time, and a click when asked (one capturer: the source takes one at a time)."""
            quiet = rtc.AudioFrame(silence, RATE, 1, FRAME)
            loud = rtc.AudioFrame(click, RATE, 1, FRAME)
            while True:
                if speak.empty():
                    await agent_source.capture_frame(quiet)
                    continue
                done = speak.get_nowait()
                done.set_result(time.perf_counter())
                await agent_source.capture_frame(loud)

        tasks.append(asyncio.create_task(agent_listens()))
        tasks.append(asyncio.create_task(agent_speaks()))
        await asyncio.sleep(2.0)  # the handover to the live track and both streams settle

        async def send(frame: bytes) -> None:
            if browser:
                await client.send(frame)
            else:
                microphone.push(frame)

        for index in range(clicks):
            # microphone -> agent: 20 ms frames in real time, a click every 0.5 s
            for _ in range(10):
                await send(silence)
                await asyncio.sleep(FRAME / RATE)
            while not heard_by_agent.empty():
                heard_by_agent.get_nowait()
            sent = time.perf_counter()
            await send(click)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    up.append((await heard_by_agent.get() - sent) * 1000)
            # agent -> playback
            queue = received if browser else local_output.heard
            while not queue.empty():
                queue.get_nowait()
            asked: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            speak.put_nowait(asked)
            spoken = await asked
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    down.append((await queue.get() - spoken) * 1000)
            if index % 10 == 9:
                _progress(f"voice ({'browser' if browser else 'local'}): {index + 1}/{clicks}")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if client is not None:
            await client.close()
        await session.end()
        await voice.release("bench")
        await peer.disconnect()
        if uvicorn_server is not None:
            uvicorn_server.should_exit = True
    return {"up": up, "down": down}


async def _measure(clicks: int) -> dict[str, Any]:
    server = _start_server()
    try:
        local = await _one_path(server, browser=False, clicks=clicks)
        browser = await _one_path(server, browser=True, clicks=clicks)
    finally:
        server.stop()
    result: dict[str, Any] = {"voice_clicks": clicks}
    for direction, name in (("up", "mic_to_agent"), ("down", "agent_to_playback")):
        for path, values in (("local", local[direction]), ("browser", browser[direction])):
            result[f"voice_{name}_{path}_p50_ms"] = _round(_percentile(values, 0.5), 1) if values else None
            result[f"voice_{name}_{path}_p99_ms"] = _round(_percentile(values, 0.99), 1) if values else None
            result[f"voice_{name}_{path}_lost"] = clicks - len(values)
        ours, base = result[f"voice_{name}_browser_p50_ms"], result[f"voice_{name}_local_p50_ms"]
        result[f"voice_{name}_ratio"] = _round(ours / base, 2) if ours and base else None
    return result


def measure(clicks: int = 40) -> dict[str, Any]:
    """Run both paths and return the figures (the ``voice_*`` keys of ``lkstate bench --voice``)."""
    return asyncio.run(_measure(clicks))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lkstate bench --voice", description="The browser's audio channel against the local path, each way."
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--clicks", type=int, default=40)
    args = parser.parse_args(argv)
    try:
        result = measure(args.clicks)
    except LkstateError as error:
        print(f"lkstate bench --voice: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
