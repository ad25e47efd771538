"""Pre-connect audio end to end: a real server, the real AgentSession, the real controller.

The user's side is driven exactly as the Session drives it (a Store, a
RoomSource, an ``rtc.Room``; ``start_capture`` before connecting, ``attach``
after, ``on_state`` with every snapshot, ``detach``/``aclose`` at the end).
The agent is livekit-agents' own ``AgentSession`` (in process, with the
offline demo plugins); its ``ScriptedSTT`` keeps every PCM byte it is given,
so the tests see exactly what the agent's speech-to-text heard.

How "nothing missing, nothing doubled" is judged
------------------------------------------------

The user "speaks" seeded band-limited noise (300–3400 Hz, RMS 5000, loud
enough for the STT's voice rule): no two stretches of it look alike, so any
20 ms of what the agent heard can be located in the input by
cross-correlation, even after Opus. Three comparisons:

* **the client, sample for sample** — the recording sent plus every sample
  the local microphone track carried (read from the track itself; the
  silence a track plays while its source is idle is removed) equals the
  input exactly: each captured sample took exactly one path, in order.
* **the buffer, sample for sample** — the first ``state.preconnect.bytes``
  bytes the STT received equal the first bytes of the input (raw PCM: the
  agent runs at 24 kHz like the input, so nothing resamples it). The agent
  heard the buffer first.
* **the live part, by position** — the rest went through Opus, the agent's
  jitter buffer and its resampler. Each 20 ms window of it (10 ms hop) is
  located in the input; windows whose normalised correlation is at least
  0.9 are *recognised* (in steady state they score about 0.98; windows the
  jitter buffer synthesised to hide a late packet score far lower). Then:

  - the first recognised window comes from no earlier than 5 ms before the
    instant the buffer ended (a window may begin a few samples before the
    first live sample and still be recognised; a repeated 10 ms frame would
    read 10 ms early: nothing the buffer held is heard again live), and at most
    45 ms later than the time since the live audio began (nothing lost at
    the handover; 45 ms is the most the jitter buffer was seen to stretch
    while a stream starts);
  - every recognised window comes from later in the input than the one
    before (nothing heard twice), no more than 60 ms of input lies between
    two consecutive recognised windows (nothing lost — the jitter buffer
    skips at most a few tens of ms to catch up under load), and the last
    comes from the last 50 ms of the input (nothing lost at the end).

What a test cannot see, the unit tests pin down: that each frame goes to
exactly one place is a property of the routing, shown above sample for
sample on the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import pytest
from livekit import rtc

from lkstate import _events as ev
from lkstate._audio import GeneratorInput
from lkstate._microphone import MicrophoneController
from lkstate._options import Limits
from lkstate._preconnect import PreConnectLimits, send_preconnect_audio
from lkstate._room_source import RoomSource
from lkstate._state import PreConnectStatus, SessionState
from lkstate.demo_agent import room_options
from lkstate._store import Store
from tests.harness.peer import PRECONNECT_TOPIC, Peer, wait_until
from tests.harness.server import LiveKitServer

RATE = 24000
WINDOW = RATE // 50  # 20 ms
HOP = RATE // 100  # 10 ms
RECOGNISED = 0.9


def speech(seconds: float, *, seed: int = 7) -> npt.NDArray[np.int16]:
    """Band-limited noise: every 20 ms of it is unlike any other."""
    n = int(RATE * seconds)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    frequencies = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(frequencies < 300) | (frequencies > 3400)] = 0
    x = np.fft.irfft(spectrum, n)
    return (x / np.std(x) * 5000).clip(-32000, 32000).astype(np.int16)


# ------------------------------------------------------------------------ judging what the agent heard


@attrs.frozen
class Located:
    position: float
    """Seconds into the live audio (window start)."""
    instant: float
    """Seconds into the input it was found at (window start)."""
    score: float


class _Search:
    """Normalised cross-correlation of 20 ms windows against the input, over all of it or a stretch."""

    def __init__(self, spoken: npt.NDArray[np.float64]) -> None:
        self.spoken = spoken
        energy = np.concatenate([[0.0], np.cumsum(spoken * spoken)])
        self.norms = np.sqrt(np.maximum(energy[WINDOW:] - energy[:-WINDOW], 0.0))

    def best(self, chunk: npt.NDArray[np.float64], lo: int = 0, hi: int | None = None) -> tuple[int, float]:
        hi = len(self.norms) if hi is None else min(hi, len(self.norms))
        lo = max(0, lo)
        stretch = self.spoken[lo : hi + WINDOW - 1]
        size = 1 << int(np.ceil(np.log2(len(stretch) + WINDOW)))
        correlation = np.fft.irfft(np.fft.rfft(stretch, size) * np.conj(np.fft.rfft(chunk, size)), size)
        scores = correlation[: hi - lo] / (self.norms[lo:hi] * np.sqrt(np.sum(chunk * chunk)) + 1e-9)
        index = int(np.argmax(scores))
        return lo + index, float(scores[index])


def locate(live: npt.NDArray[np.float64], spoken: npt.NDArray[np.float64]) -> list[Located]:
    """Find every loud 20 ms window of ``live`` in ``spoken``.

    Each window is first looked for within 250 ms of where the previous one
    points (fast); if it is not recognised there, in the whole input.
    """
    search = _Search(spoken)
    reach = RATE // 4
    found: list[Located] = []
    guess: int | None = None
    for start in range(0, len(live) - WINDOW, HOP):
        chunk = live[start : start + WINDOW]
        if np.sqrt(np.mean(chunk * chunk)) < 1500:
            continue  # silence: the track carried nothing while the buffer recorded
        best, score = (0, 0.0) if guess is None else search.best(chunk, guess - reach, guess + reach)
        if score < RECOGNISED:
            best, score = search.best(chunk)
        found.append(Located(start / RATE, best / RATE, score))
        if score >= RECOGNISED:
            guess = best + HOP
        elif guess is not None:
            guess += HOP
    return found


@attrs.frozen
class Verdict:
    buffer_bytes: int
    buffer_exact: bool
    first_instant_ms: float
    """Input instant of the first recognised live window, minus the instant the buffer ended."""
    live_began_ms: float
    """Time from the first loud live window to the first recognised one."""
    repeats: int
    """Recognised windows that came from no later in the input than the one before."""
    worst_gap_ms: float
    last_instant: float
    recognised: int
    windows: int


def judge(heard: bytes, spoken: npt.NDArray[np.int16], buffer_bytes: int) -> Verdict:
    """Compare what the STT heard with what was spoken (see the module docstring)."""
    exact = heard[:buffer_bytes] == spoken.tobytes()[:buffer_bytes]
    live = np.frombuffer(heard[buffer_bytes:], dtype=np.int16).astype(np.float64)
    located = locate(live, spoken.astype(np.float64))
    good = [w for w in located if w.score >= RECOGNISED]
    assert good, f"nothing live was recognised in {len(located)} loud windows"
    instants = [w.instant for w in good]
    return Verdict(
        buffer_bytes=buffer_bytes,
        buffer_exact=exact,
        first_instant_ms=(good[0].instant - buffer_bytes / 2 / RATE) * 1000,
        live_began_ms=(good[0].position - located[0].position) * 1000,
        repeats=sum(1 for a, b in zip(instants, instants[1:]) if b <= a),
        worst_gap_ms=max((b - a - HOP / RATE for a, b in zip(instants, instants[1:])), default=0.0) * 1000,
        last_instant=instants[-1] + WINDOW / RATE,
        recognised=len(good),
        windows=len(located),
    )


def assert_whole_and_once(verdict: Verdict, seconds: float) -> None:
    assert verdict.buffer_bytes > 0
    assert verdict.buffer_exact, "the agent's STT did not hear the buffer first, sample for sample"
    assert verdict.first_instant_ms >= -5, f"audio from the buffer was heard again live: {verdict}"
    assert verdict.first_instant_ms <= verdict.live_began_ms + 45, f"audio was lost at the handover: {verdict}"
    assert verdict.repeats == 0, f"audio was heard twice: {verdict}"
    assert verdict.worst_gap_ms <= 60, f"audio was lost: {verdict}"
    assert verdict.last_instant >= seconds - 0.05, f"the end of the speech was lost: {verdict}"


def without_silence(pcm: bytes | bytearray) -> bytes:
    """``pcm`` minus every run of 16 or more zero samples.

    A local track plays silence whenever its source has nothing queued: before
    the first live frame, after the last, and for 10 ms when a frame comes a
    little late. The noise never holds 16 exact zeros in a row, so what
    remains is exactly the audio that was captured into the track.
    """
    samples = np.frombuffer(bytes(pcm), dtype=np.int16)
    zero = np.concatenate([[False], samples == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    keep = np.ones(len(samples), dtype=bool)
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start >= 16:
            keep[start:stop] = False
    return samples[keep].tobytes()


def test_the_judge_catches_audio_heard_twice_or_lost_at_the_handover() -> None:
    spoken = speech(2.0)
    cut = RATE  # the buffer holds the first second
    buffer = spoken[:cut].tobytes()
    silence = np.zeros(RATE // 4, dtype=np.int16)

    def heard(live: npt.NDArray[np.int16]) -> Verdict:
        return judge(buffer + np.concatenate([silence, live]).tobytes(), spoken, len(buffer))

    assert_whole_and_once(heard(spoken[cut:]), 2.0)
    with pytest.raises(AssertionError, match="heard again"):
        assert_whole_and_once(heard(spoken[cut - RATE // 20 :]), 2.0)  # 50 ms of the buffer again
    with pytest.raises(AssertionError, match="lost at the handover"):
        assert_whole_and_once(heard(spoken[cut + RATE // 10 :]), 2.0)  # 100 ms never heard
    half = cut + RATE // 2
    with pytest.raises(AssertionError, match="lost"):  # 100 ms skipped later on
        assert_whole_and_once(heard(np.concatenate([spoken[cut:half], spoken[half + RATE // 10 :]])), 2.0)
    with pytest.raises(AssertionError, match="twice"):  # 100 ms repeated later on
        assert_whole_and_once(heard(np.concatenate([spoken[cut:half], spoken[half - RATE // 10 :]])), 2.0)


# ------------------------------------------------------------------------ the user's side, as the Session drives it


@attrs.frozen
class Sent:
    destination: str
    track_sid: str
    size: int
    at: float


class User:
    """A Store, a RoomSource, a room and the controller, wired as Session wires them."""

    def __init__(
        self,
        server: LiveKitServer,
        room_name: str,
        audio: GeneratorInput,
        *,
        limits: PreConnectLimits | None = None,
        before_send: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.server = server
        self.room_name = room_name
        self.store = Store()
        self.room = rtc.Room()
        self.ending = False
        self.source = RoomSource(self.room, self._emit, limits=Limits(), is_ending=lambda: self.ending, clock=time.time)
        self.sent: list[Sent] = []
        self.subscribed_at: list[float] = []
        self.history: list[tuple[float, SessionState]] = []
        self.on_track = bytearray()
        """Every sample the first microphone track carried (read from the track itself)."""
        self.capture_started = 0.0
        self._track_reader: asyncio.Task[None] | None = None
        self._before_send = before_send
        self.mic = MicrophoneController(
            audio_input=audio,
            emit=self.store.dispatch,
            clock=time.time,
            preconnect=True,
            limits=limits or PreConnectLimits(),
            sender=self._send,
        )
        self.store.states.subscribe(self._on_state)
        self.room.on("local_track_subscribed", lambda track: self.subscribed_at.append(time.monotonic()))

    def _emit(self, event: ev.Event) -> None:
        self.store.dispatch(event)

    def _on_state(self, state: SessionState) -> None:
        self.history.append((time.monotonic(), state))
        self.mic.on_state(state)

    async def _send(
        self,
        local_participant: rtc.LocalParticipant,
        *,
        agent_identity: str,
        track_sid: str,
        pcm: bytes,
        sample_rate: int,
        num_channels: int,
    ) -> None:
        if pcm and self._before_send is not None:
            await self._before_send(agent_identity)
        await send_preconnect_audio(
            local_participant,
            agent_identity=agent_identity,
            track_sid=track_sid,
            pcm=pcm,
            sample_rate=sample_rate,
            num_channels=num_channels,
        )
        self.sent.append(Sent(agent_identity, track_sid, len(pcm), time.monotonic()))

    @property
    def state(self) -> SessionState:
        return self.store.state

    async def start_capture(self) -> None:
        self.store.dispatch(ev.StartRequested(at=time.time()))
        self.capture_started = time.monotonic()
        await self.mic.start_capture()

    async def connect(self) -> None:
        self.source.attach()
        await self.room.connect(self.server.url, self.server.token(self.room_name, "user"))
        self.store.dispatch(
            ev.RoomConnected(
                at=time.time(),
                room_name=self.room.name,
                local_identity=self.room.local_participant.identity,
                server_url=self.server.url,
            )
        )
        self.source.seed()
        await self.mic.attach(self.room)
        publication = self.mic.publication
        assert publication is not None and isinstance(publication.track, rtc.LocalAudioTrack)
        self._track_reader = asyncio.create_task(self._read_track(publication.track))

    async def _read_track(self, track: rtc.LocalAudioTrack) -> None:
        stream = rtc.AudioStream.from_track(track=track, sample_rate=RATE, num_channels=1)
        try:
            async for event in stream:
                self.on_track += event.frame.data.cast("B")
        finally:
            await stream.aclose()

    async def spoken_to_the_end(self, seconds: float) -> None:
        """Wait until the whole input was captured and has had time to cross the wire."""
        await asyncio.sleep(max(0.0, self.capture_started + seconds + 2.0 - time.monotonic()))

    async def end(self) -> None:
        self.ending = True
        if self._track_reader is not None:
            self._track_reader.cancel()
            await asyncio.gather(self._track_reader, return_exceptions=True)
        await self.mic.detach(expected=True)
        if self.room.isconnected():
            await self.room.disconnect()
        await self.source.aclose()
        if self.state.connection.status.value != "disconnected":
            self.store.dispatch(ev.RoomDisconnected(at=time.time(), reason="You ended the session.", expected=True))
        await self.mic.aclose()

    async def wait_for(self, predicate: Callable[[SessionState], bool], timeout: float = 20.0) -> SessionState:
        return await wait_until(
            lambda: self.state if predicate(self.state) else None,
            timeout=timeout,
            message=lambda: f"the state; pre-connect is {self.state.preconnect}",
        )

    def first_time(self, predicate: Callable[[SessionState], bool]) -> float:
        return next(t for t, s in self.history if predicate(s))

    def saw(self, predicate: Callable[[SessionState], bool]) -> bool:
        return any(predicate(s) for _, s in self.history)


@pytest.fixture
async def users() -> AsyncIterator[list[User]]:
    made: list[User] = []
    yield made
    for user in made:
        await user.end()


def speaking(seconds: float) -> tuple[npt.NDArray[np.int16], GeneratorInput]:
    samples = speech(seconds)
    return samples, GeneratorInput([samples], sample_rate=RATE, realtime=True)


def agent_kept_waiting(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The agent framework's complaints about the pre-connect buffer (dropped, or waited for in vain)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("livekit.agents")
        and ("timeout waiting for pre-connect" in r.getMessage() or "too old" in r.getMessage())
    ]


def is_sent(state: SessionState) -> bool:
    return state.preconnect.status is PreConnectStatus.SENT


# ------------------------------------------------------------------------ the main path


async def test_speech_before_connect_reaches_the_agents_stt_first_whole_and_once(
    livekit_server: LiveKitServer,
    room_name: str,
    agent_factory: Callable[..., Awaitable[Any]],
    users: list[User],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="livekit.agents")
    seconds = 7.0
    spoken, audio = speaking(seconds)
    user = User(livekit_server, room_name, audio)
    users.append(user)

    await user.start_capture()
    await asyncio.sleep(1.0)  # the user talks while the app is still connecting
    assert user.state.agent.status.value == "pre-connect-buffering"
    await user.connect()
    agent = await agent_factory(room_name)
    sent = await user.wait_for(is_sent)
    await user.spoken_to_the_end(seconds)
    heard = agent.stt.received_pcm()

    publication = user.mic.publication
    assert publication is not None
    assert sent.preconnect.destination == agent.identity
    assert [(s.destination, s.track_sid, s.size) for s in user.sent] == [
        (agent.identity, publication.sid, sent.preconnect.bytes)
    ]
    # The client: every sample went to exactly one path, in order.
    assert spoken.tobytes() == heard[: sent.preconnect.bytes] + without_silence(user.on_track)
    # The agent: the buffer first, sample for sample, then the live track, whole and once.
    verdict = judge(heard, spoken, sent.preconnect.bytes)
    assert_whole_and_once(verdict, seconds)
    assert agent_kept_waiting(caplog) == []

    agent_seen = user.first_time(lambda s: s.agent.identity is not None)
    delivered = user.sent[0].at
    print(
        f"\nbuffer {verdict.buffer_bytes} bytes ({verdict.buffer_bytes / 2 / RATE:.2f} s); "
        f"agent present -> buffer delivered {(delivered - agent_seen) * 1000:.0f} ms; "
        f"agent subscribed -> delivered {(delivered - user.subscribed_at[0]) * 1000:.0f} ms; {verdict}"
    )


# ------------------------------------------------------------------------ edge cases


async def test_no_agent_within_the_timeout_discards_the_recording_and_a_late_agent_is_not_kept_waiting(
    livekit_server: LiveKitServer,
    room_name: str,
    agent_factory: Callable[..., Awaitable[Any]],
    users: list[User],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="livekit.agents")
    spoken, audio = speaking(9.0)
    user = User(livekit_server, room_name, audio, limits=PreConnectLimits(agent_wait_timeout=1.5))
    users.append(user)

    await user.start_capture()
    await user.connect()
    expired = await user.wait_for(lambda s: s.preconnect.status is PreConnectStatus.EXPIRED)

    assert expired.preconnect.detail == "No agent was ready within 1.5 s; the buffered audio was discarded."
    assert expired.preconnect.bytes > 0
    assert user.sent == []

    agent = await agent_factory(room_name)
    await wait_until(lambda: len(agent.stt.received_pcm()) >= 4 * RATE * 2, timeout=15, message="4 s of live audio")

    # The publication said a buffer would come; the late agent was told at once there is none
    # (it would complain after waiting 3 s in vain).
    assert agent_kept_waiting(caplog) == []
    publication = user.mic.publication
    assert publication is not None
    assert [(s.destination, s.track_sid, s.size) for s in user.sent] == [(agent.identity, publication.sid, 0)]
    assert user.state.preconnect.status is PreConnectStatus.EXPIRED
    assert not agent.stt.received_pcm().startswith(spoken.tobytes()[:4800])  # no old audio reached it


async def test_an_agent_present_before_the_microphone_is_published_gets_the_buffer_under_the_real_sid(
    livekit_server: LiveKitServer,
    room_name: str,
    agent_factory: Callable[..., Awaitable[Any]],
    users: list[User],
) -> None:
    seconds = 6.0
    spoken, audio = speaking(seconds)
    agent = await agent_factory(room_name)
    user = User(livekit_server, room_name, audio)
    users.append(user)

    await user.start_capture()
    await asyncio.sleep(1.0)
    await user.connect()
    sent = await user.wait_for(is_sent)
    await user.spoken_to_the_end(seconds)

    # The agent was in the state before the microphone had a sid...
    assert user.saw(lambda s: s.agent.identity == agent.identity and s.local_media.microphone.track_sid is None)
    # ...and the buffer went out once, under the publication's real sid.
    publication = user.mic.publication
    assert publication is not None and publication.sid
    assert [(s.destination, s.track_sid) for s in user.sent] == [(agent.identity, publication.sid)]
    assert_whole_and_once(judge(agent.stt.received_pcm(), spoken, sent.preconnect.bytes), seconds)


async def test_an_agent_that_leaves_before_the_send_leaves_the_whole_recording_for_the_next_agent(
    livekit_server: LiveKitServer,
    room_name: str,
    agent_factory: Callable[..., Awaitable[Any]],
    peer_factory: Callable[..., Awaitable[Peer]],
    users: list[User],
) -> None:
    seconds = 7.0
    spoken, audio = speaking(seconds)
    user = User(livekit_server, room_name, audio)
    users.append(user)
    await user.start_capture()
    await user.connect()

    # An agent that never listens (it subscribes to nothing), and then leaves.
    first = await peer_factory(
        room_name, "agent-first", kind="agent", auto_subscribe=False, byte_topics=[PRECONNECT_TOPIC]
    )
    await user.wait_for(lambda s: s.agent.identity == "agent-first")
    await asyncio.sleep(0.5)
    await first.disconnect()
    await user.wait_for(lambda s: s.agent.identity is None)
    assert user.state.preconnect.status is PreConnectStatus.RECORDING

    agent = await agent_factory(room_name)
    sent = await user.wait_for(is_sent)
    await user.spoken_to_the_end(seconds)

    assert first.byte_streams == []
    assert [s.destination for s in user.sent] == [agent.identity]
    assert_whole_and_once(judge(agent.stt.received_pcm(), spoken, sent.preconnect.bytes), seconds)


async def test_an_agent_that_leaves_during_the_send_has_it_all_resent_to_the_next_agent(
    livekit_server: LiveKitServer,
    room_name: str,
    agent_factory: Callable[..., Awaitable[Any]],
    peer_factory: Callable[..., Awaitable[Peer]],
    users: list[User],
) -> None:
    seconds = 8.0
    spoken, audio = speaking(seconds)
    leaving: dict[str, Peer] = {}

    async def the_agent_vanishes_first(destination: str) -> None:
        peer = leaving.pop(destination, None)
        if peer is not None:  # the send has begun: the agent is gone before a byte leaves
            await peer.disconnect()
            await wait_until(lambda: destination not in user.room.remote_participants, message="the agent to go")

    user = User(livekit_server, room_name, audio, before_send=the_agent_vanishes_first)
    users.append(user)
    await user.start_capture()
    await asyncio.sleep(0.5)
    await user.connect()
    first_sid = user.state.local_media.microphone.track_sid

    # This agent subscribes, so the controller starts sending to it.
    leaving["agent-first"] = await peer_factory(
        room_name, "agent-first", kind="agent", byte_topics=[PRECONNECT_TOPIC]
    )
    kept = await user.wait_for(
        lambda s: s.preconnect.status is PreConnectStatus.RECORDING
        and s.preconnect.detail is not None
        and "agent-first left" in s.preconnect.detail
        and s.local_media.microphone.published
        and s.local_media.microphone.track_sid not in (None, first_sid)
    )
    assert kept.preconnect.detail == (
        "The agent agent-first left before it could use the buffered audio; keeping the audio for the next agent."
    )

    agent = await agent_factory(room_name)
    sent = await user.wait_for(lambda s: is_sent(s) and s.preconnect.destination == agent.identity)
    await user.spoken_to_the_end(seconds)

    second_sid = user.state.local_media.microphone.track_sid
    assert [(s.destination, s.track_sid) for s in user.sent] == [
        ("agent-first", first_sid),
        (agent.identity, second_sid),
    ]
    assert user.sent[1].size >= user.sent[0].size  # what the first agent missed, and what came since
    assert_whole_and_once(judge(agent.stt.received_pcm(), spoken, sent.preconnect.bytes), seconds)


async def test_ending_while_buffering_stops_capture_and_releases_the_buffer(
    livekit_server: LiveKitServer, room_name: str
) -> None:
    _, audio = speaking(10.0)
    user = User(livekit_server, room_name, audio)
    await user.start_capture()
    await user.connect()
    await asyncio.sleep(1.0)

    await user.end()

    state = user.state
    assert state.preconnect.status is PreConnectStatus.IDLE
    assert state.preconnect.detail == "The session ended before an agent was ready; the buffered audio was discarded."
    assert state.preconnect.bytes > 0
    assert state.agent.status.value == "disconnected"
    assert not state.local_media.microphone.published
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("lkstate-")] == []


async def test_a_full_reconnect_sends_no_audio_twice_and_does_not_keep_the_agent_waiting(
    livekit_server: LiveKitServer,
    room_name: str,
    agent_factory: Callable[..., Awaitable[Any]],
    users: list[User],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="livekit.agents")
    seconds = 11.0
    spoken, audio = speaking(seconds)
    user = User(livekit_server, room_name, audio)
    users.append(user)
    await user.start_capture()
    await asyncio.sleep(1.0)
    await user.connect()
    # A full reconnect looks to the agent like the user leaving ("client initiated") and coming
    # back; by default AgentSession closes on that, so this agent is told to stay.
    agent = await agent_factory(room_name, options=room_options(close_on_disconnect=False))
    sent = await user.wait_for(is_sent)
    await asyncio.sleep(1.5)
    first_sid = user.state.local_media.microphone.track_sid

    await user.room.simulate_scenario(rtc.SimulateScenarioKind.SIMULATE_FULL_RECONNECT)
    await user.wait_for(lambda s: s.local_media.microphone.track_sid not in (None, first_sid))
    second_sid = user.state.local_media.microphone.track_sid
    await wait_until(lambda: len(user.sent) >= 2, timeout=10, message="the release for the new sid")
    before = len(agent.stt.received_pcm())
    await user.spoken_to_the_end(seconds)

    assert [(s.destination, s.track_sid, s.size) for s in user.sent] == [
        (agent.identity, first_sid, sent.preconnect.bytes),
        (agent.identity, second_sid, 0),
    ]
    assert user.state.preconnect == sent.preconnect
    heard = agent.stt.received_pcm()
    buffered = spoken.tobytes()[: sent.preconnect.bytes]
    assert heard.startswith(buffered) and heard.count(buffered[-48000:]) == 1  # the buffer was heard once
    assert len(heard) - before > 2 * RATE * 2  # live audio went on after the reconnect...
    assert agent_kept_waiting(caplog) == []  # ...and the agent did not wait 3 s for a second buffer
