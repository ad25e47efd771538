"""Benchmark: the browser's audio path against the local path, each way, on loopback.

``lkstate bench --voice`` (or ``python -m lkstate._tooling.bench_voice [--json]``).

What is timed, with a real livekit-server and a raw ``livekit.rtc`` agent peer,
in one run (so the baselines share the machine's load):

- **microphone → agent**: a click (20 ms of loud noise after silence) enters
  the session's microphone, and is timed until the agent peer's
  ``rtc.AudioStream`` of the user's track carries it.
- **agent → playback**: the agent peer publishes a click; timed until it is
  played.

Four paths, each a key infix:

- ``raw`` (agent → playback only): a plain ``rtc.AudioStream`` of the agent's
  track, in a raw ``rtc.Room`` in the user's place: what the SDK's receiver
  costs with no session, no channel and no page. The floor under the others.

- ``local``: the click pushed into a ``PushAudioInput`` in-process (what any
  local microphone does), and heard when the session's ``AudioOutput.write``
  gets it (what a ``SpeakerOutput`` or a file gets). The baseline.
- ``page``: real headless Chromium (Debian ``chromium`` through Playwright)
  runs the Gradio page's audio code — ``voice.js``, its channel worker and its
  worklets, served by ``lkstate_gradio``'s routes on uvicorn — with a fake
  microphone playing a WAV of clicks. Up: from the moment the click's first
  sample was captured (the frame's arrival in the page's channel worker, less
  the rest of its 20 ms frame, so the framing counts) to the agent peer
  hearing it. Down: from the agent's ``capture_frame`` of the click to the
  moment the page's audio device plays its first sample (the player worklet's
  audio clock, mapped to wall-clock time by ``AudioContext.getOutputTimestamp``:
  the 60 ms jitter buffer and the output latency count). Page times are
  ``performance.timeOrigin + performance.now()``, Python's ``time.time()``:
  the same wall clock on one machine; ``voice_page_clock_check_ms`` is how far
  apart they read across one round trip to the page (its width bounds the error).
  ``voice_page_output_latency_ms`` is what the browser says its audio
  output adds (``baseLatency + outputLatency``; part of the down figure).
  ``voice_page_player`` is the page's player at the end: its jitter-buffer
  ``target_ms`` (adaptive: it grows where audio came late), its
  ``underruns``, and the ms it skipped (silences, to catch up) or dropped.
  Not included: the fake microphone's own capture buffering. Without
  chromium or Playwright the page figures are ``None`` and
  ``voice_page_skipped`` says why.
- ``wsclient``: the same channel driven by a Python WebSocket client that
  sends and receives the page's frames: the server's share of the page path.

The agent peer captures only its clicks, nothing between them (a continuous
silence stream kept its 40 ms source queue full and delayed every click by it).

Each as p50/p99 in ms (``voice_{direction}_{path}_p50_ms``/``_p99_ms``), the
clicks sent but never heard (within 2 s; on the page, within 0.45 s) in
``voice_{direction}_{path}_lost``, and ``voice_{direction}_{path}_ratio`` the path's
p50 over the local path's, for ``page`` and ``wsclient``. Directions:
``mic_to_agent`` and ``agent_to_playback``. The issue-13 target is at most
150 ms p50 each way on the page path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import json
import os
import shutil
import socket
import tempfile
import wave
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
    # A voice agent keeps its queue short too. The peer captures only its clicks: a continuous stream of
    # silence between them kept this queue full, so each click waited 40 ms behind queued silence on
    # every path (a real agent's TTS sends speech when it has something to say, not a silence stream).
    source = rtc.AudioSource(RATE, 1, queue_size_ms=40)
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
            """A click when asked, and nothing between (see :func:`_agent_peer`)."""
            loud = rtc.AudioFrame(click, RATE, 1, FRAME)
            while True:
                done = await speak.get()
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


async def _raw_path(server: Any, *, clicks: int) -> list[float]:
    """Agent → playback through the SDK alone: a plain ``rtc.AudioStream`` of the agent's track in the user's place.

    What the receiving side of ``livekit.rtc`` costs with no session in the way: the floor under the
    ``local`` and ``page`` figures of that direction.
    """
    room = f"bench-voice-raw-{uuid.uuid4().hex[:8]}"
    peer, agent_source = await _agent_peer(server, room)
    listener = rtc.Room()
    heard: asyncio.Queue[float] = asyncio.Queue()
    tasks: list[asyncio.Task[Any]] = []
    loud = rtc.AudioFrame(_click(), RATE, 1, FRAME)
    down: list[float] = []
    try:
        await listener.connect(server.url, _mint(server.api_key, server.api_secret, room, f"user-{room}"))
        stream = await _user_audio(listener, f"agent-{room}")

        async def listens() -> None:
            async for event in stream:
                if _is_loud(event.frame.data.cast("B")):
                    heard.put_nowait(time.perf_counter())

        tasks.append(asyncio.create_task(listens()))
        await asyncio.sleep(2.0)  # as on the other paths: the stream settles
        for index in range(clicks):
            await asyncio.sleep(CLICK_EVERY)
            while not heard.empty():
                heard.get_nowait()
            spoken = time.perf_counter()
            await agent_source.capture_frame(loud)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    down.append((await heard.get() - spoken) * 1000)
            if index % 10 == 9:
                _progress(f"voice (raw): {index + 1}/{clicks}")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await listener.disconnect()
        await peer.disconnect()
    return down


_CHROMIUM_ARGS = (
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required",
)
CLICK_EVERY = 0.5
"""Seconds between clicks, both ways (the page and the agent look for a click after 100 ms of quiet)."""


def _find_chromium() -> str | None:
    for candidate in (os.environ.get("LKSTATE_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


def _page_missing() -> str | None:
    """Why the page path cannot run here, in words, or ``None``."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install playwright; no browser download is needed)"
    if _find_chromium() is None:
        return "no chromium on PATH (apt-get install chromium, or set LKSTATE_CHROMIUM)"
    return None


def _clicks_wav(folder: str, clicks: int, lead: float) -> str:
    """A WAV for Chromium's fake microphone: ``lead`` s of silence, then a click every :data:`CLICK_EVERY` s."""
    gap = np.zeros(int(RATE * CLICK_EVERY) - FRAME, dtype=np.int16)
    click = np.frombuffer(_click(), dtype=np.int16)
    body = [np.zeros(int(RATE * lead), dtype=np.int16)]
    for _ in range(clicks):
        body += [click, gap]
    body.append(np.zeros(RATE * 2, dtype=np.int16))
    path = os.path.join(folder, "clicks.wav")
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(np.concatenate(body).tobytes())
    return path


def _page_html(voice_module: Any, secret: str) -> str:
    """The Gradio page's audio parts alone: its voice script and the hidden element it follows."""
    link = voice_module.link_html(secret, connection="connected", processing=False)
    panel = voice_module.voice_panel_html("browser", "browser")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{voice_module.BrowserVoice.head()}</head><body>"
        f"<div id='lk-voice'>{panel}</div><div id='lk-voice-link'>{link}</div></body></html>"
    )


def _matched(starts: list[float], ends: list[float], window: float) -> list[float]:
    """For each start, ms until the first end after it (within ``window`` s); starts never ended are left out."""
    spans: list[float] = []
    for start in starts:
        after = [end for end in ends if start <= end <= start + window]
        if after:
            spans.append((min(after) - start) * 1000)
    return spans


async def _page_path(server: Any, *, clicks: int) -> dict[str, Any]:
    """The page path (see the module docstring): Chromium, the page's audio code, the channel, a session."""
    from playwright.async_api import async_playwright  # pyright: ignore[reportMissingImports, reportUnknownVariableType]
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    voice_module = importlib.import_module("lkstate_gradio._voice")
    room = f"bench-voice-page-{uuid.uuid4().hex[:8]}"
    identity = f"user-{room}"
    peer, agent_source = await _agent_peer(server, room)
    voice = voice_module.BrowserVoice()
    link = voice.new_link()
    voice.bind("bench", link, None)
    session = Session(
        LiteralTokenSource(server.url, _mint(server.api_key, server.api_secret, room, identity)),
        agent_connect_timeout=30.0,
        audio_input=link.microphone,
        audio_output=link.speaker,
    )
    page_html = _page_html(voice_module, link.secret)

    async def serve_page(_request: Any) -> HTMLResponse:
        return HTMLResponse(page_html)

    uvicorn_server, port, _ = _serve([*voice.routes(), Route("/", serve_page)])
    tasks: list[asyncio.Task[Any]] = []
    heard_by_agent: list[float] = []
    spoken: list[float] = []
    folder = tempfile.mkdtemp(prefix="lkstate-bench-voice-")
    lead = 5.0  # from the page's microphone opening: the session starts, takes over the early audio, settles
    result: dict[str, Any] = {}
    try:
        wav = _clicks_wav(folder, clicks, lead)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=_find_chromium(), headless=True,
                args=[*_CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}%noloop"],
            )
            try:
                # As on the Gradio page, the page starts its microphone and channel when the session is asked
                # to connect, so what it sends before the session is up goes into the pre-connect buffer.
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{port}/")
                await page.wait_for_function("window.lkVoice && lkVoice.ready", timeout=30_000)
                await session.start()
                stream = await _user_audio(peer, identity)

                async def agent_listens() -> None:
                    async for event in stream:
                        if _is_loud(event.frame.data.cast("B")):
                            heard_by_agent.append(time.time())

                loud = rtc.AudioFrame(_click(), RATE, 1, FRAME)
                speak: asyncio.Queue[None] = asyncio.Queue()

                async def agent_speaks() -> None:
                    while True:
                        await speak.get()
                        spoken.append(time.time())
                        await agent_source.capture_frame(loud)

                tasks.append(asyncio.create_task(agent_listens()))
                tasks.append(asyncio.create_task(agent_speaks()))
                assert await page.evaluate("lkVoice.markClicks()")
                before = time.time()
                page_now = float(await page.evaluate("performance.timeOrigin + performance.now()")) / 1000
                after = time.time()
                result["voice_page_clock_check_ms"] = [_round((page_now - before) * 1000, 1),
                                                       _round((page_now - after) * 1000, 1)]
                # Up: the fake microphone plays its clicks; wait until the last can have been heard.
                await asyncio.sleep(lead + clicks * CLICK_EVERY + 1.0)
                # Down: the agent clicks, one every CLICK_EVERY seconds.
                for index in range(clicks):
                    speak.put_nowait(None)
                    await asyncio.sleep(CLICK_EVERY)
                    if index % 10 == 9:
                        _progress(f"voice (page): {index + 1}/{clicks}")
                await asyncio.sleep(1.0)
                marks = await page.evaluate("lkVoice.clicks()")
                latency = await page.evaluate("lkVoice.outputLatency()")
                result["voice_page_output_latency_ms"] = _round(float(latency), 1) if latency is not None else None
                stats: dict[str, Any] = dict(await page.evaluate("lkVoice.stats()") or {})
                result["voice_page_player"] = {
                    "target_ms": _round(float(stats.get("target", 0.0)) * 1000, 1),
                    "underruns": int(stats.get("underruns", 0)),
                    "skipped_silence_ms": _round(int(stats.get("skippedSilence", 0)) / RATE * 1000, 1),
                    "dropped_ms": _round(int(stats.get("droppedSamples", 0)) / RATE * 1000, 1),
                }
            finally:
                await browser.close()
        sent = [float(t) / 1000 for t in marks["sent"]]
        heard = [float(t) / 1000 for t in marks["heard"]]
        result["up"] = _matched(sent, heard_by_agent, CLICK_EVERY * 0.9)
        result["down"] = _matched(spoken, heard, CLICK_EVERY * 0.9)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.end()
        await voice.release("bench")
        await peer.disconnect()
        uvicorn_server.should_exit = True
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _figures(result: dict[str, Any], name: str, path: str, values: list[float], clicks: int) -> None:
    result[f"voice_{name}_{path}_p50_ms"] = _round(_percentile(values, 0.5), 1) if values else None
    result[f"voice_{name}_{path}_p99_ms"] = _round(_percentile(values, 0.99), 1) if values else None
    result[f"voice_{name}_{path}_lost"] = clicks - len(values)


async def _measure(clicks: int, *, page: bool = True) -> dict[str, Any]:
    server = _start_server()
    missing = _page_missing() if page else "not asked for"
    try:
        raw = await _raw_path(server, clicks=clicks)
        local = await _one_path(server, browser=False, clicks=clicks)
        wsclient = await _one_path(server, browser=True, clicks=clicks)
        on_page = await _page_path(server, clicks=clicks) if missing is None else None
    finally:
        server.stop()
    result: dict[str, Any] = {"voice_clicks": clicks, "voice_page_skipped": missing}
    if on_page is not None:
        result["voice_page_clock_check_ms"] = on_page["voice_page_clock_check_ms"]
        result["voice_page_output_latency_ms"] = on_page["voice_page_output_latency_ms"]
        result["voice_page_player"] = on_page.get("voice_page_player")
    _figures(result, "agent_to_playback", "raw", raw, clicks)
    for direction, name in (("up", "mic_to_agent"), ("down", "agent_to_playback")):
        _figures(result, name, "local", local[direction], clicks)
        for path, values in (("page", on_page[direction] if on_page else None), ("wsclient", wsclient[direction])):
            if values is None:
                result.update(dict.fromkeys((f"voice_{name}_{path}_p50_ms", f"voice_{name}_{path}_p99_ms",
                                              f"voice_{name}_{path}_lost", f"voice_{name}_{path}_ratio")))
                continue
            _figures(result, name, path, values, clicks)
            ours, base = result[f"voice_{name}_{path}_p50_ms"], result[f"voice_{name}_local_p50_ms"]
            result[f"voice_{name}_{path}_ratio"] = _round(ours / base, 2) if ours and base else None
    return result


def measure(clicks: int = 40, *, page: bool = True) -> dict[str, Any]:
    """Run the three paths and return the figures (the ``voice_*`` keys of ``lkstate bench --voice``).

    ``page=False`` leaves Chromium out (its keys are then ``None``).
    """
    return asyncio.run(_measure(clicks, page=page))


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
