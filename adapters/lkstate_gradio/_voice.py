"""The visitor's browser as the session's microphone and speaker.

A Gradio page is looked at from anywhere — a shared link, a hosted Space, a
remote server — so the microphone and the speaker that matter are the
visitor's, not those of the machine running the server. Each tab's
:class:`~lkstate.Session` stays the one participant in the room; the browser
only lends it a microphone and a speaker:

- the page captures the browser's microphone (``getUserMedia`` with the
  browser's echo cancellation, noise suppression and gain control) in an
  ``AudioWorklet`` and sends it to the server in 20 ms frames; here they are
  pushed into the tab's :class:`~lkstate.media.PushAudioInput`, which is the
  session's ``audio_input``. Frames sent from the moment the visitor pressed
  Connect wait in that input until the session reads them, so the session's
  pre-connect buffer records them like any microphone's;
- the session plays the agent's voice (or its avatar's) into the tab's
  :class:`BrowserSpeaker`, its ``audio_output``; the frames go back to the page,
  which plays them from a small jitter buffer (see ``static/voice-worklet.js``).

The transport: one WebSocket per tab
------------------------------------

Raw PCM over a WebSocket served by the same FastAPI app Gradio runs on
(``/lkstate/voice`` beside the page; mounted apps get it under their path).
Why not WebRTC to the server: the server already *is* a WebRTC client of the
LiveKit room, so a second WebRTC leg would add a second jitter buffer, a
second Opus encode/decode and an ICE/DTLS handshake to every Connect, and
would need UDP ports that a Space or a reverse proxy rarely opens; on the
loopback and on a LAN a WebSocket adds one TCP hop and no codec. The price —
96 kB/s each way for 48 kHz 16-bit mono, and head-of-line blocking on a lossy
link — is small next to a page that simply works wherever its HTTP works
(behind the same https, proxies and auth). Frames are 20 ms: half the
per-message overhead of 10 ms, and well under the 150 ms budget each way.

The wire format
---------------

1. The page opens the socket and sends, within :data:`HELLO_TIMEOUT`, one text
   message of at most :data:`MAX_HELLO_BYTES`: ``{"key": SECRET, "rate": 48000}``.
   ``SECRET`` is the tab's :attr:`VoiceLink.secret`: 256 random bits made on the
   server when the tab's session is made, and sent only to that tab (in its own
   page stream). Without it — another tab, another visitor, a request that
   guessed a session hash — the socket is closed (code 4401) before a single
   frame is read or sent. A second socket with the same secret replaces the
   first (a reloaded worklet, a dropped connection coming back).
2. The server answers ``{"type": "ready", ...}`` with the format, then both
   sides send binary messages of exactly :data:`FRAME_BYTES` bytes: 20 ms of
   48 kHz mono s16le PCM. The page also sends ``{"type": "mic", "state": ...}``
   text notes (its microphone's state), which are logged; a microphone the
   page could not open (``denied``, ``noDevice``, ``busy``, ``insecure``,
   ``unsupported``) fails the tab's :class:`~lkstate.media.PushAudioInput`, so
   the session's ``local_media.microphone.error`` says why in the page's own
   words. A page that can run no audio at all (no https, no AudioWorklet)
   still opens the channel, with ``"audio": false`` in its hello instead of a
   rate, only to send that note; it is sent none of the agent's voice.

Limits (each refusal is counted and reported once per channel in the tab's
``state.problems``; none ever waits on the session or another tab):

- a message larger than :data:`MAX_MESSAGE_BYTES` closes the channel (1009);
- a binary message of another size, or text that is not a known note, is
  dropped; after :data:`MAX_BAD_MESSAGES` of them the channel is closed (1008);
- frames beyond real time plus a burst of :data:`MAX_BURST_FRAMES` (a flood)
  are dropped;
- at most :data:`MICROPHONE_QUEUE_SECONDS` of microphone audio wait for the
  session to read them (before Connect, after Disconnect), oldest dropped;
- at most :data:`SPEAKER_QUEUE_FRAMES` frames of the agent's voice wait for the
  page (oldest dropped: the page hears the present, not a backlog), and a page
  that takes nothing for :data:`STALLED_SECONDS` has its channel closed.
"""

from __future__ import annotations

import asyncio
import collections
import html
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import attrs
from livekit import rtc
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from lkstate.errors import AudioOutputError
from lkstate.media import PushAudioInput

__all__ = [
    "BrowserSpeaker",
    "BrowserVoice",
    "FRAME_BYTES",
    "FRAME_MS",
    "HELLO_TIMEOUT",
    "MAX_BAD_MESSAGES",
    "MAX_BURST_FRAMES",
    "MAX_HELLO_BYTES",
    "MAX_MESSAGE_BYTES",
    "MICROPHONE_QUEUE_SECONDS",
    "SAMPLE_RATE",
    "SPEAKER_QUEUE_FRAMES",
    "STALLED_SECONDS",
    "VOICE_PATH",
    "VoiceLink",
    "link_html",
    "voice_panel_html",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 48000
"""The rate of the PCM both ways (the page asks its AudioContext for it)."""
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000 * 2
"""Bytes in one frame each way: 20 ms of 48 kHz mono s16le (1920)."""
HELLO_TIMEOUT = 5.0
"""Seconds a new socket has to name its tab's secret."""
MAX_HELLO_BYTES = 1024
MAX_MESSAGE_BYTES = 4096
"""A message larger than this closes the channel."""
MAX_BAD_MESSAGES = 250
"""Wrongly sized or unreadable messages a channel may send (5 s of frames) before it is closed."""
MAX_BURST_FRAMES = 500
"""Frames a page may send ahead of real time (10 s); more are a flood.

As much as the page holds back while its channel opens (speech from the
moment of Connect, which it sends at once when the channel is ready); beyond
that burst a page may send no faster than real time."""
MICROPHONE_QUEUE_SECONDS = 10.0
"""Microphone audio that may wait for the session to read it: from Connect until the session
has started (seconds on a loaded server); older audio is dropped."""
SPEAKER_QUEUE_FRAMES = 50
"""Frames of the agent's voice (1 s) waiting for a page; older ones are dropped.

Generous, because a dropped frame is a hole in a word while a late one is
not: the page's player catches up by skipping the silences between words
(see ``static/voice-worklet.js``). On two cores under a load average of 12 the
server's loop was seen stalling for over half a second."""
STALLED_SECONDS = 5.0
"""A page that takes no frame for this long while audio waits has stopped reading: its channel is closed."""

VOICE_PATH = "lkstate/voice"
"""The WebSocket, relative to the page (so a mounted app has it under its own path)."""
STATIC_PATH = "lkstate/static"
_STATIC_FILES = {
    "voice.js": "text/javascript",
    "voice-worklet.js": "text/javascript",
    "voice-channel.js": "text/javascript",
}

SOURCE = "browser audio"
"""The ``source`` of the problems a channel reports."""


class BrowserSpeaker:
    """The session's ``audio_output``: the agent's voice, sent to the tab's page.

    :meth:`write` runs on the session's loop for every 10 ms frame; two make
    one 20 ms frame for the page, put in the link's bounded queue. It never
    waits: a page that is not connected simply misses the audio (a speaker
    that is off), a page that reads slowly loses the oldest frames.
    """

    def __init__(self, link: VoiceLink) -> None:
        self._link = link
        self._pending = bytearray()
        self._open = False

    def __repr__(self) -> str:
        return "BrowserSpeaker()"

    async def open(self, sample_rate: int, num_channels: int) -> None:
        if (sample_rate, num_channels) != (SAMPLE_RATE, 1):
            raise AudioOutputError(
                f"the browser speaker plays {SAMPLE_RATE} Hz mono, not {sample_rate} Hz / {num_channels} ch.",
                remedy="Leave the session's speaker format at its default.",
            )
        self._pending.clear()
        self._open = True

    def write(self, frame: rtc.AudioFrame) -> None:
        if not self._open:
            return
        size = frame.samples_per_channel * frame.num_channels * 2
        self._pending += frame.data.cast("B")[:size]
        while len(self._pending) >= FRAME_BYTES:
            chunk = bytes(self._pending[:FRAME_BYTES])
            del self._pending[:FRAME_BYTES]
            self._link.send_to_page(chunk)

    async def aclose(self) -> None:
        self._open = False
        self._pending.clear()


@attrs.define(eq=False)
class _Counts:
    frames_in: int = 0
    wrong_size: int = 0
    flood: int = 0
    unreadable: int = 0
    frames_out: int = 0
    out_dropped: int = 0


class VoiceLink:
    """One tab's audio: its secret, the session's microphone input and speaker output, its socket.

    Made with the tab's session (see :meth:`BrowserVoice.new_link`); bound to
    the tab's session hash and problem reporter when the tab's page stream
    starts; closed when the tab goes.
    """

    def __init__(self) -> None:
        self.secret = secrets.token_urlsafe(32)
        self.microphone = PushAudioInput(sample_rate=SAMPLE_RATE, max_queued_seconds=MICROPHONE_QUEUE_SECONDS)
        self.speaker = BrowserSpeaker(self)
        self.key: str | None = None
        self.counts = _Counts()
        self._report: Callable[[str], None] | None = None
        self._reported: set[str] = set()
        self._lock = threading.Lock()
        self._outgoing: collections.deque[bytes] = collections.deque(maxlen=SPEAKER_QUEUE_FRAMES)
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._socket: WebSocket | None = None
        self._plays = False
        """The page on the channel can play audio (its hello did not say ``"audio": false``)."""
        self._closed = False

    @property
    def connected(self) -> bool:
        """A page is on the channel now."""
        return self._socket is not None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def plays(self) -> bool:
        """A page is on the channel now and can play the agent's voice (it gets the agent's frames)."""
        return self._socket is not None and self._plays

    def bind(self, key: str, report: Callable[[str], None] | None) -> None:
        self.key = key
        self._report = report

    # -- the agent's voice ------------------------------------------------------------

    def send_to_page(self, frame: bytes) -> None:
        """Queue one frame for the page (any thread); the oldest goes if the page is behind."""
        with self._lock:
            if self._socket is None or not self._plays:
                return  # nobody listening (or a page that cannot play): the speaker is off
            if len(self._outgoing) == self._outgoing.maxlen:
                self.counts.out_dropped += 1
            self._outgoing.append(frame)
            wake = self._wake
        if wake is not None:
            loop, event = wake
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the server's loop is gone
                pass

    def _take(self) -> bytes | None:
        with self._lock:
            return self._outgoing.popleft() if self._outgoing else None

    # -- problems ---------------------------------------------------------------------

    def problem(self, kind: str, words: str) -> None:
        """Report ``words`` in the tab's state, once per kind and channel; always log them."""
        logger.info("browser audio of %s: %s", self.key, words)
        if kind in self._reported:
            return
        self._reported.add(kind)
        report = self._report
        if report is not None:
            report(words)

    # -- the socket -------------------------------------------------------------------

    async def serve(self, socket: WebSocket, *, plays: bool = True) -> None:
        """Carry audio both ways on ``socket`` until either side closes it.

        ``plays=False``: the page said it can run no audio (no https, no
        AudioWorklet) and opened the channel only for its notes; it is sent
        none of the agent's voice — 96 kB/s it would only throw away.
        """
        previous = self._socket
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._lock:
            self._socket = socket
            self._plays = plays
            self._wake = (loop, event)
            self._outgoing.clear()
        self._reported.clear()
        self.counts = _Counts()
        if previous is not None:
            await _close(previous, 4409, "Replaced by a newer audio channel of the same tab.")
        if not plays:
            logger.info("the page of %s can play no audio: its channel carries none of the agent's voice", self.key)
        await socket.send_text(
            json.dumps({"type": "ready", "rate": SAMPLE_RATE, "frame_bytes": FRAME_BYTES, "frame_ms": FRAME_MS})
        )
        sender = asyncio.create_task(self._send(socket, event), name="lkstate-browser-voice-send")
        try:
            await self._receive(socket)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            with self._lock:
                if self._socket is socket:
                    self._socket = None
                    self._wake = None
                    self._outgoing.clear()
            self.microphone.clear()  # a partial frame of a gone page is not audio
            await _close(socket, 1000, "")
            counts = self.counts
            logger.info("browser audio channel of %s closed: %s", self.key, counts)

    async def _receive(self, socket: WebSocket) -> None:
        tokens = float(MAX_BURST_FRAMES)
        refilled = time.monotonic()
        bad = 0
        while True:
            try:
                message = await socket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            data: bytes | None = message.get("bytes")
            text: str | None = message.get("text")
            size = len(data) if data is not None else len(text.encode()) if text is not None else 0
            if size > MAX_MESSAGE_BYTES:
                self.problem(
                    "oversized",
                    f"The page sent a message of {size} bytes on its audio channel (at most {MAX_MESSAGE_BYTES}); "
                    "the channel was closed. Reload the page to talk again.",
                )
                await _close(socket, 1009, "Message too big.")
                return
            if data is not None:
                if len(data) != FRAME_BYTES:
                    self.counts.wrong_size += 1
                    bad += 1
                    self.problem(
                        "wrong size",
                        f"The page sent an audio frame of {len(data)} bytes; frames must be {FRAME_BYTES} bytes "
                        f"({FRAME_MS} ms of {SAMPLE_RATE} Hz 16-bit mono). Such frames are dropped.",
                    )
                else:
                    now = time.monotonic()
                    tokens = min(float(MAX_BURST_FRAMES), tokens + (now - refilled) * 1000 / FRAME_MS)
                    refilled = now
                    if tokens < 1.0:
                        self.counts.flood += 1
                        self.problem(
                            "flood",
                            "The page sent microphone audio faster than real time; "
                            f"frames beyond a {MAX_BURST_FRAMES * FRAME_MS / 1000:.0f} s burst are dropped.",
                        )
                    else:
                        tokens -= 1.0
                        self.counts.frames_in += 1
                        dropped = self.microphone.dropped_frames
                        self.microphone.push(data)
                        if self.microphone.dropped_frames > dropped:
                            self.problem(
                                "unread",
                                f"The session read none of the page's microphone audio for "
                                f"{MICROPHONE_QUEUE_SECONDS:.0f} s; the oldest was dropped.",
                            )
            elif text is not None and (note := _note(text)) is not None:
                if note in _MICROPHONE_TROUBLE:
                    reason, remedy = _MICROPHONE_TROUBLE[note]
                    # The session's microphone shows it (no "Mic on" over a microphone that sends
                    # nothing), in the words the page shows; the problems keep the event.
                    self.microphone.fail(reason, remedy=remedy)
                    self.problem("microphone", reason)
            elif text is not None:
                self.counts.unreadable += 1
                bad += 1
                self.problem("unreadable", "The page sent an unreadable message on its audio channel; it was ignored.")
            if bad > MAX_BAD_MESSAGES:
                self.problem(
                    "closed for bad frames",
                    f"The page's audio channel sent more than {MAX_BAD_MESSAGES} bad messages and was closed. "
                    "Reload the page to talk again.",
                )
                await _close(socket, 1008, "Too many bad messages.")
                return

    async def _send(self, socket: WebSocket, event: asyncio.Event) -> None:
        while True:
            frame = self._take()
            if frame is None:
                event.clear()
                frame = self._take()
                if frame is None:
                    await event.wait()
                    continue
            try:
                async with asyncio.timeout(STALLED_SECONDS):
                    await socket.send_bytes(frame)
            except TimeoutError:
                self.problem(
                    "stalled",
                    f"The page took none of the agent's audio for {STALLED_SECONDS:.0f} s, so its audio channel "
                    "was closed. Reload the page to hear the agent again.",
                )
                await _close(socket, 1008, "Stopped reading.")
                return
            except Exception:  # the page went away; the receiver ends the channel
                return
            self.counts.frames_out += 1

    def drop(self, code: int = 1011, reason: str = "The server dropped the audio channel.") -> bool:
        """Close the tab's channel now, from any thread (the page says so in words); ``False`` if none is open."""
        with self._lock:
            socket, wake = self._socket, self._wake
        if socket is None or wake is None:
            return False
        loop = wake[0]
        try:
            asyncio.run_coroutine_threadsafe(_close(socket, code, reason), loop)
        except RuntimeError:
            return False
        return True

    async def aclose(self) -> None:
        """The tab went away: close its channel and stop its microphone."""
        self._closed = True
        with self._lock:
            socket = self._socket
        if socket is not None:
            await _close(socket, 1001, "The tab's session ended.")
        await self.microphone.aclose()


_AGAIN = "then press Disconnect and Connect again. You can still type."
_MICROPHONE_TROUBLE = {
    "denied": (
        "The browser was not allowed to use your microphone.",
        f"Allow it with the microphone icon in the address bar (or the site settings), {_AGAIN}",
    ),
    "noDevice": (
        "The browser found no microphone.",
        f"Plug one in or choose one in your system's sound settings, {_AGAIN}",
    ),
    "busy": (
        "The browser could not start your microphone (another program may be using it).",
        f"Close that program, {_AGAIN}",
    ),
    "insecure": (
        "The browser allows the microphone only on https:// pages and on localhost, and this page is neither.",
        "Open it with https, or as http://localhost on this machine. You can still type.",
    ),
    "unsupported": (
        "This browser cannot run the page's audio (no AudioWorklet).",
        "Use a current Chrome, Edge, Firefox or Safari. You can still type.",
    ),
}
"""What a page's microphone note means, as (reason, remedy): the session's microphone error says both."""


def _note(text: str) -> str | None:
    """The state a page's ``{"type": "mic", "state": ...}`` note gives, or ``None`` if it is not one."""
    try:
        note: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(note, dict) or note.get("type") != "mic":  # pyright: ignore[reportUnknownMemberType]
        return None
    logger.info("browser microphone: %s", str(note)[:200])  # pyright: ignore[reportUnknownArgumentType]
    return str(note.get("state", ""))[:40]  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]


async def _close(socket: WebSocket, code: int, reason: str) -> None:
    if socket.application_state is WebSocketState.DISCONNECTED or socket.client_state is WebSocketState.DISCONNECTED:
        return
    try:
        await socket.close(code=code, reason=reason)
    except Exception:
        logger.debug("closing a browser audio channel failed", exc_info=True)


class BrowserVoice:
    """Every tab's :class:`VoiceLink`, and the routes that serve their channels and the page's script.

    Serve :meth:`routes` from the app that serves the page (Gradio's own, via
    ``app_kwargs={"routes": voice.routes()}``, which works for ``launch()`` and
    ``gr.mount_gradio_app`` alike) and put :meth:`head` in the page's head.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_secret: dict[str, VoiceLink] = {}
        self._by_key: dict[str, VoiceLink] = {}

    def new_link(self) -> VoiceLink:
        link = VoiceLink()
        with self._lock:
            self._by_secret[link.secret] = link
        return link

    def bind(self, key: str, link: VoiceLink, report: Callable[[str], None] | None) -> None:
        """The tab ``key`` owns ``link``; its problems go to ``report``."""
        link.bind(key, report)
        with self._lock:
            self._by_key[key] = link

    def get(self, key: str) -> VoiceLink | None:
        with self._lock:
            return self._by_key.get(key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_secret)

    def keys(self) -> tuple[str, ...]:
        """The tabs that have a bound link."""
        with self._lock:
            return tuple(self._by_key)

    async def release(self, key: str) -> None:
        """The tab ``key`` went away: close its channel; its secret opens nothing any more."""
        with self._lock:
            link = self._by_key.pop(key, None)
            if link is not None:
                self._by_secret.pop(link.secret, None)
        if link is not None:
            await link.aclose()

    async def forget(self, link: VoiceLink) -> None:
        with self._lock:
            self._by_secret.pop(link.secret, None)
            if link.key is not None and self._by_key.get(link.key) is link:
                del self._by_key[link.key]
        await link.aclose()

    def routes(self) -> list[BaseRoute]:
        return [
            WebSocketRoute(f"/{VOICE_PATH}", self._channel),
            Route(f"/{STATIC_PATH}/{{name}}", self._static),
        ]

    @staticmethod
    def head() -> str:
        """The ``<head>`` HTML that loads the page's voice script from beside the page, and its styles."""
        return (
            f"<style>{VOICE_CSS}</style>"
            "<script>(function(){var p=location.pathname;if(!p.endsWith('/'))p=p.slice(0,p.lastIndexOf('/')+1);"
            f"var s=document.createElement('script');s.src=p+'{STATIC_PATH}/voice.js';s.defer=true;"
            "document.head.appendChild(s);})();</script>"
        )

    async def _static(self, request: Request) -> Response:
        name = str(request.path_params.get("name", ""))
        media_type = _STATIC_FILES.get(name)
        if media_type is None:
            return Response("Not found", status_code=404, media_type="text/plain")
        body = resources.files("lkstate_gradio").joinpath("static", name).read_bytes()
        return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})

    async def _channel(self, socket: WebSocket) -> None:
        await socket.accept()
        try:
            async with asyncio.timeout(HELLO_TIMEOUT):
                hello = await socket.receive()
        except (TimeoutError, WebSocketDisconnect, RuntimeError):
            await _close(socket, 4401, "Say which tab this is first.")
            return
        link = self._link_for(hello)
        if link is None:
            logger.info("refused a browser audio channel without a valid tab secret")
            await _close(socket, 4401, "Not a tab of this page.")
            return
        rate = _hello_rate(hello)
        audio = _hello_carries_audio(hello)
        if rate != SAMPLE_RATE and audio:
            link.problem(
                "rate",
                f"The page's audio runs at {rate} Hz, but the audio channel carries {SAMPLE_RATE} Hz; "
                "use a browser that can resample (any current Chrome, Edge, Firefox or Safari).",
            )
            await _close(socket, 4400, f"Send {SAMPLE_RATE} Hz audio.")
            return
        await link.serve(socket, plays=audio)

    def _link_for(self, hello: Any) -> VoiceLink | None:
        text = hello.get("text") if isinstance(hello, dict) else None
        if not isinstance(text, str) or len(text.encode()) > MAX_HELLO_BYTES:
            return None
        try:
            body: Any = json.loads(text)
        except ValueError:
            return None
        secret = body.get("key") if isinstance(body, dict) else None  # pyright: ignore[reportUnknownMemberType]
        if not isinstance(secret, str):
            return None
        with self._lock:
            candidates = list(self._by_secret.items())
        for known, link in candidates:  # compared in constant time, each
            if secrets.compare_digest(known, secret) and not link.closed:
                return link
        return None


def _hello_carries_audio(hello: Any) -> bool:
    """``False`` for a page that can run no audio (no https, no AudioWorklet) and opens the channel for its notes only."""
    try:
        body: Any = json.loads(hello["text"])
        return body.get("audio", True) is not False
    except Exception:
        return True


def _hello_rate(hello: Any) -> object:
    try:
        body: Any = json.loads(hello["text"])
        return body.get("rate")
    except Exception:
        return None


# -- the page's pieces -----------------------------------------------------------------

VOICE_CSS = """
#lk-voice-link { display: none !important; }
.lk-voice { display: flex; align-items: center; gap: 18px; padding: 10px 14px; border-radius: 10px;
  --lk-voice-agent: #2563eb; --lk-voice-mic: #16a34a; --lk-voice-rest: rgba(100, 116, 139, 0.3);
  background: color-mix(in srgb, var(--lk-voice-agent) 6%, transparent);
  border: 1px solid color-mix(in srgb, var(--lk-voice-agent) 14%, transparent); }
.lk-voice canvas.lk-voice-bars { width: 360px; height: 84px; flex: none; }
.lk-voice-text { display: flex; flex-direction: column; gap: 4px; min-width: 0; }
.lk-voice-words { margin: 0; font-size: 1em; line-height: 1.35; }
.lk-voice-words.lk-voice-problem { color: #b91c1c; font-weight: 600; }
.lk-voice-legend { font-size: 0.8em; opacity: 0.7; }
@media (max-width: 640px) {
  .lk-voice { flex-direction: column; align-items: stretch; }
  .lk-voice canvas.lk-voice-bars { width: 100%; }
}
"""


def voice_panel_html(microphone: str, speaker: str) -> str:
    """The voice row: the visualizer (drawn by the page's script) and its words.

    ``microphone``/``speaker`` say where they are (``browser``, ``server``,
    ``none``); with neither in the browser the row only says so.
    """
    if microphone != "browser" and speaker != "browser":
        where = "the machine running this server" if "server" in (microphone, speaker) else "nowhere"
        return (
            '<div class="lk-voice" data-place="server"><p class="lk-voice-words" data-voice="server">'
            f"Voice uses {html.escape(where)}: this page carries no audio.</p></div>"
        )
    return (
        '<div class="lk-voice" data-place="browser">'
        '<div class="lk-voice-text"><p class="lk-voice-words" data-voice="idle"></p>'
        '<span class="lk-voice-legend">Bars: the agent\'s voice · right: your microphone</span></div></div>'
    )


def link_html(
    secret: str,
    *,
    connection: str = "disconnected",
    microphone_on: bool = True,
    microphone_source: str = "browser",
    speaker: str = "browser",
    processing: bool = True,
) -> str:
    """The hidden element the page's script follows: the tab's secret and what its session wants."""
    return (
        f'<div class="lk-voice-link" data-key="{html.escape(secret)}" data-connection="{html.escape(connection)}" '
        f'data-mic="{"on" if microphone_on else "off"}" data-mic-source="{html.escape(microphone_source)}" '
        f'data-speaker="{html.escape(speaker)}" data-processing="{"on" if processing else "off"}"></div>'
    )
