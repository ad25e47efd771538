"""The microphone and pre-connect audio, end to end through ``lkstate.Session``.

Every test drives the public API — ``Session(..., audio_input=GeneratorInput(...))``,
``start()``, ``set_microphone_enabled()``, ``end()``, ``session.state`` — against
the real livekit-server and livekit-agents' own ``AgentSession`` (in process,
with the offline demo plugins), and reads the outcome where a user and an
agent would see it:

* **the state** — ``state.agent.status`` (``pre-connect-buffering`` while the
  recording waits for the agent), ``state.preconnect`` (status, seconds,
  bytes, destination, detail in words), ``state.local_media.microphone``;
* **what the agent's speech-to-text heard** — ``ScriptedSTT`` keeps every PCM
  byte it is given; ``tests/harness/audio_compare.py`` says exactly how that
  is compared with what was spoken (the buffer sample for sample when it is
  sent as PCM, window by window in place when it is sent as Opus — the
  default —, the live part by windowed cross-correlation);
* **what the agent framework says** — its pre-connect handler logs every
  buffer it receives (``trackId``, duration) and complains when it waits for
  one in vain or finds it too old; :class:`AgentLog` collects those records.
  They are how these tests see each send without reaching into the session.

The user "speaks" :func:`~tests.harness.audio_compare.speech` in real time
through a :class:`GeneratorInput`, from ``start()`` on. Slow connections are
made with a token source that takes its time, as a token endpoint can.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import pytest
from livekit import rtc

from lkstate import (
    AgentStatus,
    ConnectionStatus,
    CustomTokenSource,
    DevelopmentTokenSource,
    PreConnectStatus,
    Session,
    SessionOptions,
    SessionState,
)
from lkstate.tokens import Credentials, TokenRequest
from lkstate._media.audio import GeneratorInput
from lkstate._core.options import PreConnectCodec, PreConnectLimits
from lkstate.demo_agent import room_options
from tests.harness.audio_compare import (
    RATE,
    assert_whole_and_once,
    judge,
    locate,
    loud_windows,
    speech,
    without_silence,
)
from tests.harness.peer import PRECONNECT_TOPIC, Peer, wait_until
from tests.harness.server import LiveKitServer

pytestmark = pytest.mark.serial

FRAME = RATE // 100  # 10 ms


# ------------------------------------------------------------------------ the user's voice


class Speaker:
    """``seconds`` of speech, fed to the session in real time by a :class:`GeneratorInput`.

    Counts the frames taken, so a test can tell which instant of the speech
    is being captured now, and whether capture stopped.
    """

    def __init__(self, seconds: float, *, frame_ms: int = 10) -> None:
        self.seconds = seconds
        self.samples = speech(seconds)
        self.finished_at: float | None = None
        self.taken = 0
        self.input = GeneratorInput(self._frames(), sample_rate=RATE, realtime=True, frame_ms=frame_ms)

    def _frames(self) -> Iterator[npt.NDArray[np.int16]]:
        for start in range(0, len(self.samples), FRAME):
            self.taken += 1
            yield self.samples[start : start + FRAME]
        self.finished_at = time.monotonic()

    @property
    def now(self) -> float:
        """How far into the speech capture has got, in seconds (counted in frames, not clock time)."""
        return self.taken * FRAME / RATE

    async def spoken(self) -> None:
        """Wait until all of it was captured and has had time to cross the wire."""
        await wait_until(lambda: self.finished_at is not None, timeout=self.seconds + 10, message="the speech to end")
        await asyncio.sleep(1.0)

    @property
    def pcm(self) -> bytes:
        return self.samples.tobytes()


# ------------------------------------------------------------------------ what the agent framework reports


@attrs.frozen
class Received:
    """One pre-connect buffer the agent's handler read to the end."""

    sender: str
    track_id: str
    seconds: float
    at: float
    """``time.time()`` when the agent had it."""


class AgentLog(logging.Handler):
    """The agent framework's pre-connect log records: each buffer received, each complaint."""

    _COMPLAINTS = (
        "timeout waiting for pre-connect audio buffer",
        "pre-connect audio buffer is too old",
        "pre-connect audio received but no trackId",
        "pre-connect audio received but not completed in time",
        "error reading pre-connect audio buffer",
    )

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.received: list[Received] = []
        self.complaints: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message == "pre-connect audio received":
            fields: dict[str, Any] = record.__dict__
            self.received.append(
                Received(
                    str(fields["participant"]), str(fields["track_id"]), round(float(fields["duration"]), 3),
                    record.created,
                )
            )
        elif message in self._COMPLAINTS:
            self.complaints.append(f"{message} {record.__dict__.get('track_id', '')}".strip())


@pytest.fixture
def agent_log() -> Iterator[AgentLog]:
    logger = logging.getLogger("livekit.agents")
    handler = AgentLog()
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# ------------------------------------------------------------------------ sessions


@attrs.define
class Watched:
    """A session and every snapshot it delivered, with the wall-clock time it came."""

    session: Session
    history: list[tuple[float, SessionState]] = attrs.field(factory=list)

    @property
    def state(self) -> SessionState:
        return self.session.state

    def first(self, predicate: Callable[[SessionState], bool]) -> tuple[float, SessionState]:
        return next((t, s) for t, s in self.history if predicate(s))

    def saw(self, predicate: Callable[[SessionState], bool]) -> bool:
        return any(predicate(s) for _, s in self.history)

    def preconnect_statuses(self) -> list[PreConnectStatus]:
        return _changes(s.preconnect.status for _, s in self.history)

    async def wait(self, predicate: Callable[[SessionState], bool], timeout: float = 15.0) -> SessionState:
        try:
            return await self.session.wait_until(predicate, timeout=timeout)
        except TimeoutError:
            state = self.session.state
            raise AssertionError(
                f"the state never got there; agent {state.agent.status.value}, pre-connect {state.preconnect}, "
                f"microphone {state.local_media.microphone}"
            ) from None


def _changes(values: Any) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if not out or out[-1] != value:
            out.append(value)
    return out


MakeSession = Callable[..., Watched]


@pytest.fixture
async def make_session(livekit_server: LiveKitServer, room_name: str) -> AsyncIterator[MakeSession]:
    """``make_session(audio_input=..., limits=..., connect_delay=seconds | None, ...)`` -> Watched.

    ``connect_delay`` makes the token source take that long (``None``:
    forever), so the user talks while the session is still connecting.
    """
    made: list[Session] = []

    def factory(*, limits: PreConnectLimits | None = None, connect_delay: float | None = 0.0, **kwargs: Any) -> Watched:
        tokens = DevelopmentTokenSource(livekit_server.url, livekit_server.api_key, livekit_server.api_secret)

        async def slowly(request: TokenRequest) -> Credentials:
            if connect_delay is None:
                await asyncio.Event().wait()
            await asyncio.sleep(connect_delay or 0.0)
            return await tokens.fetch(request)

        options = SessionOptions(preconnect_limits=limits or PreConnectLimits())
        session = Session(CustomTokenSource(slowly), room_name=room_name, participant_identity="user", options=options,
                          **kwargs)
        made.append(session)
        watched = Watched(session)
        session.states.subscribe(lambda state: watched.history.append((time.time(), state)))
        return watched

    yield factory
    for session in made:
        await session.end()


def microphone_publication(session: Session) -> rtc.LocalTrackPublication:
    room = session.room
    assert room is not None
    (publication,) = [
        p for p in room.local_participant.track_publications.values() if p.source == rtc.TrackSource.SOURCE_MICROPHONE
    ]
    return publication


class TrackTap:
    """Every sample the session's microphone track carried, read from the local track itself."""

    def __init__(self, track: rtc.Track) -> None:
        self.pcm = bytearray()
        self._task = asyncio.create_task(self._read(track))

    async def _read(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream.from_track(track=track, sample_rate=RATE, num_channels=1)
        try:
            async for event in stream:
                self.pcm += event.frame.data.cast("B")
        finally:
            await stream.aclose()

    async def aclose(self) -> bytes:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return bytes(self.pcm)


def is_sent(state: SessionState) -> bool:
    return state.preconnect.status is PreConnectStatus.SENT


def is_ready(state: SessionState) -> bool:
    return state.agent.is_ready


# ------------------------------------------------------------------------ the main path


def buffer_pcm_bytes(state: SessionState) -> int:
    """The length of the recording as PCM at :data:`RATE` (``bytes`` counts what was sent, Opus or PCM)."""
    return round(state.preconnect.seconds * RATE) * 2


def heard_whole_and_once(heard: bytes, speaker: Speaker, sent: SessionState, *, codec: str = "opus") -> Any:
    verdict = judge(heard, speaker.samples, buffer_pcm_bytes(sent), coded=codec == "opus")
    assert_whole_and_once(verdict, speaker.seconds)
    return verdict


@pytest.mark.parametrize("codec", ["opus", "pcm"])
async def test_speech_before_connect_reaches_the_agents_stt_first_whole_and_once(
    make_session: MakeSession, room_name: str, agent_factory: Any, agent_log: AgentLog, codec: PreConnectCodec
) -> None:
    speaker = Speaker(5.0)
    user = make_session(audio_input=speaker.input, connect_delay=1.0, limits=PreConnectLimits(codec=codec))

    await user.session.start(wait_for_agent=False)
    # The user talked while the app was still connecting, and the state showed it.
    _, early = user.first(lambda s: s.preconnect.seconds >= 0.5)
    assert early.connection.status is ConnectionStatus.CONNECTING
    assert early.agent.status is AgentStatus.PRE_CONNECT_BUFFERING
    assert early.preconnect.status is PreConnectStatus.RECORDING
    if codec == "pcm":
        assert early.preconnect.bytes == round(early.preconnect.seconds * RATE) * 2
    else:  # encoded as it is recorded: the Ogg/Opus written so far, 48 kb/s plus the pages
        assert 0 < early.preconnect.bytes <= early.preconnect.seconds * 7000 + 1000
    tap = TrackTap(microphone_publication(user.session).track)  # pyright: ignore[reportArgumentType]
    agent = await agent_factory(room_name)
    sent = await user.wait(is_sent)
    await speaker.spoken()
    heard = agent.stt.received_pcm()
    on_track = await tap.aclose()

    # The state told the story: recording, sending, sent — how much, and to whom.
    assert user.preconnect_statuses() == [
        PreConnectStatus.IDLE, PreConnectStatus.RECORDING, PreConnectStatus.SENDING, PreConnectStatus.SENT
    ]
    _, sending = user.first(lambda s: s.preconnect.status is PreConnectStatus.SENDING)
    size = buffer_pcm_bytes(sent)
    assert sending.preconnect == attrs.evolve(sent.preconnect, status=PreConnectStatus.SENDING)
    assert sent.preconnect.destination == agent.identity
    assert sent.preconnect.seconds > 1.0
    # The state's bytes are what went on the wire: the PCM itself, or about a seventh of it in Opus.
    if codec == "pcm":
        assert sent.preconnect.bytes == size
    else:
        assert 0 < sent.preconnect.bytes <= sent.preconnect.seconds * 7000 + 1000 < size / 6
    recorded = [s.preconnect.seconds for _, s in user.history if s.preconnect.status is PreConnectStatus.RECORDING]
    assert recorded == sorted(recorded) and len(set(recorded)) > 3, "the seconds grew while it recorded"
    # While it recorded and no agent was ready, the agent showed as pre-connect-buffering.
    assert all(
        s.agent.status is AgentStatus.PRE_CONNECT_BUFFERING
        for _, s in user.history
        if s.preconnect.status is PreConnectStatus.RECORDING and not s.agent.is_ready
    )
    # The agent got one buffer, for the microphone's publication, and was not kept waiting.
    sid = user.state.local_media.microphone.track_sid
    assert sid == microphone_publication(user.session).sid
    assert [(r.sender, r.track_id, r.seconds) for r in agent_log.received] == [("user", sid, sent.preconnect.seconds)]
    assert agent_log.complaints == []
    # The client: every captured sample took exactly one path — the buffer or the track — in order.
    assert without_silence(on_track) == speaker.pcm[size:]
    # The agent's STT: the buffer first (sample for sample, or every window alike in place), then the
    # live track, whole and once.
    verdict = heard_whole_and_once(heard, speaker, sent, codec=codec)

    present_at, _ = user.first(lambda s: s.agent.identity == agent.identity)
    ready_at, _ = user.first(is_ready)
    sent_at, _ = user.first(is_sent)
    print(
        f"\n[measure] {codec}: buffer {sent.preconnect.bytes} bytes sent ({size / 2 / RATE:.2f} s at {RATE} Hz mono); "
        f"agent present -> state sent {(sent_at - present_at) * 1000:.0f} ms, "
        f"agent ready -> state sent {(sent_at - ready_at) * 1000:+.0f} ms, "
        f"agent present -> agent had the buffer {(agent_log.received[0].at - present_at) * 1000:.0f} ms; {verdict}"
    )


@pytest.mark.parametrize("frame_ms", [10, 20])
async def test_a_microphone_in_10_or_20_ms_frames_reaches_the_agents_stt_whole_and_once(
    make_session: MakeSession, room_name: str, agent_factory: Any, frame_ms: int
) -> None:
    """20 ms frames make half the SDK calls per second of 10 ms ones (a server holding many sessions
    wants that), and the agent hears the same: the buffer, then the live track, nothing lost or doubled."""
    speaker = Speaker(4.0, frame_ms=frame_ms)
    user = make_session(audio_input=speaker.input, connect_delay=1.0)

    await user.session.start(wait_for_agent=False)
    tap = TrackTap(microphone_publication(user.session).track)  # pyright: ignore[reportArgumentType]
    agent = await agent_factory(room_name)
    sent = await user.wait(is_sent)
    await speaker.spoken()
    heard = agent.stt.received_pcm()
    on_track = await tap.aclose()

    assert without_silence(on_track) == speaker.pcm[buffer_pcm_bytes(sent) :]
    heard_whole_and_once(heard, speaker, sent)


# ------------------------------------------------------------------------ edge cases


async def test_no_agent_within_the_wait_discards_the_recording_and_a_late_agent_is_not_kept_waiting(
    make_session: MakeSession, room_name: str, agent_factory: Any, agent_log: AgentLog
) -> None:
    speaker = Speaker(6.0)
    user = make_session(audio_input=speaker.input, limits=PreConnectLimits(agent_wait_timeout=1.5))
    await user.session.start(wait_for_agent=False)

    expired = await user.wait(lambda s: s.preconnect.status is PreConnectStatus.EXPIRED, timeout=10)
    assert expired.preconnect.detail == "No agent was ready within 1.5 s; the buffered audio was discarded."
    assert expired.preconnect.bytes > 0 and expired.preconnect.destination is None
    assert expired.agent.status is AgentStatus.CONNECTING  # no longer buffering: still waiting for an agent

    agent = await agent_factory(room_name)
    await user.wait(is_ready)
    await wait_until(lambda: loud_windows(agent.stt.received_pcm()) >= 50, timeout=10, message="1 s of live speech")

    # The publication said a buffer would come; the late agent was told at once there is none
    # (an empty buffer) instead of waiting 3 s for it — and none of the old audio reached it.
    sid = user.state.local_media.microphone.track_sid
    assert [(r.sender, r.track_id, r.seconds) for r in agent_log.received] == [("user", sid, 0.0)]
    assert agent_log.complaints == []
    assert speaker.pcm[: 2 * FRAME * 10] not in agent.stt.received_pcm()
    assert user.state.preconnect == expired.preconnect


async def test_an_agent_ready_before_the_microphone_is_published_gets_the_buffer_under_the_real_sid(
    make_session: MakeSession, room_name: str, agent_factory: Any, agent_log: AgentLog
) -> None:
    agent = await agent_factory(room_name)
    speaker = Speaker(4.0)
    user = make_session(audio_input=speaker.input, connect_delay=0.5)

    await user.session.start()
    sent = await user.wait(is_sent)
    await speaker.spoken()

    # The agent was in the state, ready, before the microphone had a sid...
    assert user.saw(
        lambda s: s.agent.identity == agent.identity and s.agent.is_ready and s.local_media.microphone.track_sid is None
    )
    # ...and its one buffer went out under the publication's real sid (an empty trackId would be dropped).
    sid = microphone_publication(user.session).sid
    assert sid and sent.preconnect.destination == agent.identity
    assert [(r.track_id, r.seconds) for r in agent_log.received] == [(sid, sent.preconnect.seconds)]
    assert agent_log.complaints == []
    heard_whole_and_once(agent.stt.received_pcm(), speaker, sent)


async def test_an_agent_that_leaves_before_the_send_leaves_the_whole_recording_for_the_next_agent(
    make_session: MakeSession, room_name: str, agent_factory: Any, peer_factory: Any, agent_log: AgentLog
) -> None:
    speaker = Speaker(5.0)
    user = make_session(audio_input=speaker.input)
    await user.session.start(wait_for_agent=False)

    # An agent that never listens (it subscribes to nothing), and then leaves.
    first: Peer = await peer_factory(
        room_name, "agent-first", kind="agent", auto_subscribe=False, byte_topics=[PRECONNECT_TOPIC]
    )
    await first.publish_audio(None)  # a publisher is announced (and its leaving too) at once
    await user.wait(lambda s: s.agent.identity == "agent-first")
    await asyncio.sleep(0.5)
    await first.disconnect()
    gone = await user.wait(lambda s: s.agent.identity is None)
    assert gone.preconnect.status is PreConnectStatus.RECORDING and gone.preconnect.detail is None

    agent = await agent_factory(room_name)
    sent = await user.wait(is_sent)
    await speaker.spoken()

    assert first.byte_streams == []
    assert sent.preconnect.destination == agent.identity
    assert [(r.sender, r.seconds) for r in agent_log.received] == [("user", sent.preconnect.seconds)]
    heard_whole_and_once(agent.stt.received_pcm(), speaker, sent)


def leaves_when_sent_to(user: Watched, peer: Peer) -> None:
    """Make ``peer`` leave the moment the session starts sending it the recording."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []

    def check(state: SessionState) -> None:
        if not tasks and state.preconnect.status is PreConnectStatus.SENDING and state.preconnect.destination == peer.identity:
            tasks.append(loop.create_task(peer.disconnect()))

    user.session.states.subscribe(check)


async def test_an_agent_that_leaves_during_the_send_has_it_all_resent_to_the_next_agent(
    make_session: MakeSession, room_name: str, agent_factory: Any, peer_factory: Any, agent_log: AgentLog
) -> None:
    speaker = Speaker(7.0)
    user = make_session(audio_input=speaker.input, connect_delay=0.5)
    # This agent is there first and subscribes, so the session sends to it — and it vanishes.
    # It publishes nothing, so the server announces its leaving only in its next 3 s batch:
    # that late news must still count as leaving with the audio.
    first: Peer = await peer_factory(room_name, "agent-first", kind="agent", byte_topics=[PRECONNECT_TOPIC])
    leaves_when_sent_to(user, first)
    await user.session.start(wait_for_agent=False)

    kept = await user.wait(lambda s: s.preconnect.status is PreConnectStatus.RECORDING and s.preconnect.detail is not None)
    assert kept.preconnect.detail == (
        "The agent agent-first left before it could use the buffered audio; keeping the audio for the next agent."
    )
    _, sending = user.first(lambda s: s.preconnect.status is PreConnectStatus.SENDING)
    assert sending.preconnect.destination == "agent-first"
    first_sid = sending.local_media.microphone.track_sid
    # Published again, so the next agent's subscription is a fresh signal.
    await user.wait(lambda s: s.local_media.microphone.published and s.local_media.microphone.track_sid != first_sid)

    agent = await agent_factory(room_name)
    sent = await user.wait(lambda s: is_sent(s) and s.preconnect.destination == agent.identity)
    await wait_until(lambda: agent_log.received, timeout=5, message="the agent to have the buffer")
    await speaker.spoken()

    # The next agent got everything: what the first one missed, and all that was said since.
    second_sid = user.state.local_media.microphone.track_sid
    assert [(r.sender, r.track_id, r.seconds) for r in agent_log.received] == [
        ("user", second_sid, sent.preconnect.seconds)
    ]
    assert agent_log.complaints == []
    heard_whole_and_once(agent.stt.received_pcm(), speaker, sent)


async def test_an_agent_that_leaves_during_the_send_with_no_successor_is_reported_in_words(
    make_session: MakeSession, room_name: str, peer_factory: Any
) -> None:
    speaker = Speaker(6.0)
    user = make_session(audio_input=speaker.input, limits=PreConnectLimits(agent_wait_timeout=1.5))
    await user.session.start(wait_for_agent=False)

    first: Peer = await peer_factory(room_name, "agent-first", kind="agent", byte_topics=[PRECONNECT_TOPIC])
    leaves_when_sent_to(user, first)
    await first.publish_audio(None)
    failed = await user.wait(lambda s: s.preconnect.status is PreConnectStatus.FAILED, timeout=10)

    assert failed.preconnect.detail == (
        "The agent agent-first left before it could use the buffered audio, and no other agent was ready "
        "within 1.5 s; the audio was discarded."
    )
    assert failed.preconnect.bytes > 0
    assert failed.agent.status is AgentStatus.FAILED
    assert failed.agent.failure_reasons == ("The agent left the room unexpectedly.",)


@pytest.mark.parametrize("when", ["while connecting", "while connected with no agent"])
async def test_ending_while_buffering_stops_capture_and_releases_the_buffer(
    make_session: MakeSession, when: str
) -> None:
    speaker = Speaker(10.0)
    user = make_session(audio_input=speaker.input, connect_delay=None if when == "while connecting" else 0.0)
    starting = asyncio.ensure_future(user.session.start(wait_for_agent=False))
    if when == "while connecting":
        await user.wait(lambda s: s.preconnect.seconds >= 0.5, timeout=5)
    else:
        await starting
        await user.wait(lambda s: s.preconnect.seconds >= 0.5 and s.local_media.microphone.published, timeout=5)

    await user.session.end()
    await asyncio.gather(starting, return_exceptions=True)
    taken = speaker.taken
    await asyncio.sleep(0.3)

    state = user.state
    assert state.preconnect.status is PreConnectStatus.IDLE
    assert state.preconnect.detail == "The session ended before an agent was ready; the buffered audio was discarded."
    assert state.preconnect.bytes > 0  # how much was discarded
    assert state.agent.status is AgentStatus.DISCONNECTED
    assert state.connection.status is ConnectionStatus.DISCONNECTED
    assert not state.local_media.microphone.published
    assert speaker.taken == taken, "capture stopped"
    assert [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("lkstate-")] == []


async def test_a_full_reconnect_sends_no_audio_twice_and_does_not_keep_the_agent_waiting(
    make_session: MakeSession, room_name: str, agent_factory: Any, agent_log: AgentLog
) -> None:
    speaker = Speaker(6.0)
    # Sent as PCM, so "heard once" can be checked byte for byte; the rule does not depend on the codec.
    user = make_session(audio_input=speaker.input, connect_delay=0.5, limits=PreConnectLimits(codec="pcm"))
    # A full reconnect looks to the agent like the user leaving and coming back;
    # by default AgentSession closes on that, so this agent is told to stay.
    agent = await agent_factory(room_name, options=room_options(close_on_disconnect=False))
    await user.session.start()
    sent = await user.wait(is_sent)
    first_sid = user.state.local_media.microphone.track_sid
    # At once when the agent has it: the agent vanishing in the reconnect must not be taken for a
    # departure with the audio (a full reconnect removes and re-adds every participant).
    await wait_until(lambda: agent_log.received, timeout=5, message="the agent to have the buffer")
    assert user.state.preconnect == sent.preconnect

    room = user.session.room
    assert room is not None
    await room.simulate_scenario(rtc.SimulateScenarioKind.SIMULATE_FULL_RECONNECT)
    await user.wait(lambda s: s.local_media.microphone.track_sid not in (None, first_sid))
    second_sid = user.state.local_media.microphone.track_sid
    await user.wait(lambda s: s.connection.status is ConnectionStatus.CONNECTED and s.agent.is_ready)
    await wait_until(lambda: len(agent_log.received) >= 2, timeout=10, message="the agent to hear about the new sid")
    reconnected_at = speaker.now
    await speaker.spoken()

    # The audio went once; the new publication got an empty buffer, so the agent did not wait 3 s for one.
    assert [(r.track_id, r.seconds) for r in agent_log.received] == [
        (first_sid, sent.preconnect.seconds),
        (second_sid, 0.0),
    ]
    assert agent_log.complaints == []
    assert user.state.preconnect == sent.preconnect
    assert not user.saw(lambda s: s.preconnect.status is PreConnectStatus.SENDING and s.updated_at > sent.updated_at)
    # The agent heard the buffer once, and live audio from after the reconnect.
    heard = agent.stt.received_pcm()
    buffered = speaker.pcm[: sent.preconnect.bytes]
    assert heard.startswith(buffered) and heard.count(buffered[-2 * FRAME * 10 :]) == 1
    live = locate(np.frombuffer(heard[len(buffered) :], dtype=np.int16).astype(np.float64), speaker.samples.astype(np.float64))
    assert any(w.score >= 0.9 and w.instant > reconnected_at for w in live)


# ------------------------------------------------------------------------ the microphone toggle


async def test_a_muted_microphone_sends_the_agent_no_speech_and_unmuting_resumes_from_now(
    make_session: MakeSession, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    speaker = Speaker(5.0)
    user = make_session(audio_input=speaker.input)
    await user.session.start()
    await user.wait(is_sent)
    await wait_until(lambda: loud_windows(agent.stt.received_pcm()) >= 50, timeout=10, message="1 s of speech")

    await user.session.set_microphone_enabled(False)
    muted_at = speaker.now
    muted = user.state.local_media.microphone
    assert (muted.enabled, muted.muted, muted.published) == (False, True, True)
    sid = muted.track_sid
    assert sid is not None
    # The agent sees the track muted...
    await wait_until(
        lambda: (p := agent.room.remote_participants.get("user")) is not None
        and sid in p.track_publications
        and p.track_publications[sid].muted,
        timeout=5,
        message="the agent to see the microphone muted",
    )
    await asyncio.sleep(0.3)  # what was already on the wire arrives
    quiet_from = len(agent.stt.received_pcm())
    await asyncio.sleep(1.0)
    quiet_to = len(agent.stt.received_pcm())
    await user.session.set_microphone_enabled(True)
    unmuted_at = speaker.now
    unmuted = user.state.local_media.microphone
    assert (unmuted.enabled, unmuted.muted, unmuted.published, unmuted.track_sid) == (True, False, True, sid)
    await speaker.spoken()

    heard = agent.stt.received_pcm()
    # ...and its STT got no speech while muted;
    assert loud_windows(heard[quiet_from:quiet_to]) == 0
    # after unmuting it hears the user again, from the moment of unmuting: what was said while
    # muted was dropped, not held back and delivered late.
    after = [w for w in locate(np.frombuffer(heard[quiet_to:], dtype=np.int16).astype(np.float64),
                               speaker.samples.astype(np.float64)) if w.score >= 0.9]
    assert after, "speech resumed after unmuting"
    assert after[0].instant >= unmuted_at - 0.1
    assert not any(muted_at + 0.1 < w.instant < unmuted_at - 0.1 for w in after)
    assert _changes(s.local_media.microphone.muted for _, s in user.history)[-3:] == [False, True, False]


async def test_a_microphone_muted_before_start_starts_muted_records_nothing_and_unmutes_live(
    make_session: MakeSession, room_name: str, agent_factory: Any
) -> None:
    # Push-to-talk: the user chooses "muted" before connecting.
    agent = await agent_factory(room_name)
    speaker = Speaker(4.0)
    user = make_session(audio_input=speaker.input)
    await user.session.set_microphone_enabled(False)
    chosen = user.state.local_media.microphone
    assert (chosen.enabled, chosen.muted, chosen.published) == (False, True, False), "the choice shows at once"
    await user.session.start()
    state = await user.wait(lambda s: s.local_media.microphone.published)
    microphone = state.local_media.microphone
    assert (microphone.enabled, microphone.muted) == (False, True)
    sid = microphone.track_sid
    await wait_until(
        lambda: (p := agent.room.remote_participants.get("user")) is not None
        and sid in p.track_publications
        and p.track_publications[sid].muted,
        timeout=5,
        message="the agent to see the microphone muted",
    )
    assert not user.saw(lambda s: s.preconnect.bytes > 0), "nothing was recorded while muted"
    await asyncio.sleep(0.5)
    assert loud_windows(agent.stt.received_pcm()) == 0, "the agent heard nothing"

    await user.session.set_microphone_enabled(True)
    unmuted_at = speaker.now
    await speaker.spoken()
    heard = agent.stt.received_pcm()
    live = [w for w in locate(np.frombuffer(heard, dtype=np.int16).astype(np.float64),
                              speaker.samples.astype(np.float64)) if w.score >= 0.9]
    assert live and live[0].instant >= unmuted_at - 0.1, "it hears the user from the moment of unmuting"


async def test_the_default_microphone_on_a_machine_without_one_is_an_error_in_words_and_the_session_works(
    make_session: MakeSession, room_name: str, agent_factory: Any, agent_log: AgentLog
) -> None:
    agent = await agent_factory(room_name)
    user = make_session(audio_input="default")

    state = await user.session.start()

    assert state.agent.is_ready and state.agent.identity == agent.identity
    microphone = state.local_media.microphone
    assert (microphone.enabled, microphone.published, microphone.track_sid) == (False, False, None)
    assert microphone.error is not None and microphone.error.startswith("No microphone found:")
    assert "WavFileInput" in microphone.error  # the remedy, in the same words
    assert state.preconnect.status is PreConnectStatus.IDLE
    assert state.preconnect.detail == "There is no microphone, so nothing is recorded before the agent listens."
    assert not user.saw(lambda s: s.agent.status is AgentStatus.PRE_CONNECT_BUFFERING)
    assert state.problems == ()

    await user.session.set_microphone_enabled(True)  # asking again changes nothing and breaks nothing
    assert user.state.local_media.microphone == microphone
    assert agent_log.received == [] and agent_log.complaints == []
