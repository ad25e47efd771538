"""The Gradio page as a voice front end, used as a person would: in Chromium, with a microphone.

Headless Debian Chromium (Playwright's Python package, ``executable_path``:
no browser download) gets a fake microphone that "speaks" a WAV file this
test writes (``--use-fake-device-for-media-stream --use-fake-ui-for-media-stream
--use-file-for-fake-audio-capture=<file>.wav%noloop``: the file plays once
from the moment the page opens the microphone, then silence). The page is
served by Gradio in this process against the real livekit-server, and the
real LiveKit Agents ``AgentSession`` with the offline demo plugins listens in
the same room: its ``ScriptedSTT`` keeps every PCM byte it heard, its
``ToneTTS`` speaks tones whose words and pitches are known.

What the visitor says is :func:`~tests.harness.audio_compare.speech` —
band-limited noise no two 20 ms of which look alike — so what the agent heard
can be compared with it by windowed correlation (see :func:`heard_whole_and_once`).

Screenshots (``test-artifacts/screenshots/``):

- gradio-voice-01-agent-speaking.png: the agent speaking, its voice as bars;
- gradio-voice-02-microphone-denied.png: a denied microphone, in words;
- gradio-voice-03-demo-conversation.png: ``lkstate demo --ui gradio`` after a spoken exchange;
- gradio-voice-04-visitor-speaking.png: the same, while the visitor speaks (the microphone's meter).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import pytest

from lkstate import DevelopmentTokenSource, PreConnectStatus
from tests.harness.audio_compare import HOP, RATE, RECOGNISED, WINDOW, locate, speech
from tests.harness.server import LiveKitServer
from tests.harness.browser import Launch, ServeDemo, eventually, launching_chromium, open_tab, screenshot_path, status
from tests.harness.browser import serve_demo as serving_demo

from lkstate_gradio.app import GradioDemo, build_demo, free_port

try:
    from playwright.async_api import expect
except ImportError:  # reported by the chromium fixture, in words
    expect = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.serial,
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore::Warning:gradio.queueing"),
]

SPOKEN_SECONDS = 4.0


def write_wav(path: Path, samples: npt.NDArray[np.int16], rate: int = RATE) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


@attrs.frozen
class Visitor:
    """What the fake microphone says: ``lead`` s of silence, the speech, then silence."""

    wav: Path
    spoken: npt.NDArray[np.int16]


LEAD = 0.3
"""Seconds of silence before the visitor starts speaking."""
AGENT_JOINS = 1.5
"""Seconds after Connect the agent joins: the visitor has been speaking for a while by then."""


def make_visitor(folder: Path, seed: int = 7) -> Visitor:
    spoken = speech(SPOKEN_SECONDS, seed=seed)
    lead = np.zeros(int(RATE * LEAD), dtype=np.int16)
    silence = np.zeros(int(RATE * 8), dtype=np.int16)
    return Visitor(write_wav(folder / f"visitor-{seed}.wav", np.concatenate([lead, spoken, silence])), spoken)


@pytest.fixture
def visitor(tmp_path: Path) -> Visitor:
    return make_visitor(tmp_path)


@pytest.fixture
async def chromium() -> AsyncIterator[Launch]:
    """``await chromium(wav=..., grant=True, extra=())``: headless Chromium with a fake microphone that plays ``wav``."""
    async with launching_chromium() as launch:
        yield functools.partial(launch, microphone=True)


@pytest.fixture
async def serve_demo(livekit_server: LiveKitServer) -> AsyncIterator[ServeDemo]:
    """``await serve_demo(room_name=..., rooms=[...], **build_demo_options)`` -> (demo, url), served until teardown."""
    async with serving_demo(livekit_server) as serve:
        yield serve


def only_session(demo: GradioDemo) -> Any:
    (key,) = demo.sessions.keys()
    session = demo.sessions.get(key)
    assert session is not None
    return session




def tab_key(demo: GradioDemo) -> str:
    (key,) = demo.sessions.keys()
    return key


# ------------------------------------------------------------------------ judging what the agent heard


@attrs.frozen
class Hearing:
    """How what an agent's STT heard compares with what the visitor said."""

    loud_windows: int
    recognised: int
    first_ms: float
    """Where in the speech the first recognised window lies (0: its very start)."""
    last_ms: float
    """Where the last recognised window ends."""
    repeats: int
    """Recognised windows from no later in the speech than the one before: speech heard twice."""
    worst_gap_ms: float
    loud_seconds: float


def hearing(heard: bytes, spoken: npt.NDArray[np.int16]) -> Hearing:
    """Locate every loud 20 ms window of what the STT heard (24 kHz) in what was spoken.

    The browser resampled the 24 kHz WAV to 48 kHz, the page sent it as PCM,
    the session's pre-connect buffer carried its start as PCM and the track the
    rest through Opus, and the agent resampled to 24 kHz again: no path is
    sample-exact, so every window is found by normalised cross-correlation;
    :data:`~tests.harness.audio_compare.RECOGNISED` (0.9) is the threshold.
    """
    samples = np.frombuffer(heard, dtype=np.int16).astype(np.float64)
    found = locate(samples, spoken.astype(np.float64))
    good = [w for w in found if w.score >= RECOGNISED]
    assert good, f"nothing the agent heard was recognised ({len(found)} loud windows)"
    instants = [w.instant for w in good]
    return Hearing(
        loud_windows=len(found),
        recognised=len(good),
        first_ms=instants[0] * 1000,
        last_ms=(instants[-1] + WINDOW / RATE) * 1000,
        repeats=sum(1 for a, b in zip(instants, instants[1:]) if b <= a),
        worst_gap_ms=max((b - a - HOP / RATE for a, b in zip(instants, instants[1:])), default=0.0) * 1000,
        loud_seconds=len(found) * HOP / RATE,
    )


def assert_heard_whole_and_once(result: Hearing, seconds: float, *, captured_from_ms: float = 0.0) -> None:
    """All of the speech from ``captured_from_ms`` on, in order, once."""
    # Opus and the agent's jitter buffer hide a late packet with synthesised audio, which no longer
    # correlates; on two loaded cores up to a fifth of the windows were such.
    assert result.recognised >= 0.75 * result.loud_windows, f"the agent heard audio that is not the speech: {result}"
    assert result.first_ms <= captured_from_ms + 30, f"the start of the speech was lost: {result}"
    assert result.last_ms >= seconds * 1000 - 50, f"the end of the speech was lost: {result}"
    assert result.repeats == 0, f"speech was heard twice: {result}"
    assert result.worst_gap_ms <= 150, f"speech was lost on the way: {result}"
    expected = seconds - captured_from_ms / 1000
    assert result.loud_seconds >= expected - 0.25, f"the agent heard less than was spoken: {result}"
    # Speech heard twice correlates twice, so it is counted in the recognised windows. The loud ones
    # are no measure of it: when packets come late the receiver's jitter buffer stretches speech with
    # synthesised audio (on CI's loaded cores 4.35 s loud for 3.99 s spoken, 3.69 s of it recognised).
    recognised_seconds = result.recognised * HOP / RATE
    assert recognised_seconds <= expected + 0.25, f"the agent heard speech more than once: {result}"


class Received:
    """What the server received from a tab's page, frame by frame (it wraps the tab's microphone input).

    Chromium's fake microphone starts reading its file before the page's
    AudioWorklet gets its first sample: 0.5 to 1 s of the file were seen gone
    by then, more under load. That loss is the browser's, before the page
    could capture anything; what the page captured is what it sent, and what
    the server received is checked against it by count. So the agent's hearing
    is judged against the speech from where the page's capture begins.
    """

    def __init__(self, demo: GradioDemo, key: str) -> None:
        link = demo.voice.get(key)
        assert link is not None
        self.link = link
        self.pcm = bytearray()
        push = link.microphone.push

        def keep(pcm: Any) -> bool:
            self.pcm += pcm
            return push(pcm)

        link.microphone.push = keep  # type: ignore[method-assign]

    def at_agent_rate(self) -> npt.NDArray[np.int16]:
        """48 kHz to 24 kHz by taking every other sample: the speech holds nothing above 3.4 kHz."""
        return np.frombuffer(bytes(self.pcm), dtype=np.int16)[::2].copy()

    def captured_from_ms(self, spoken: npt.NDArray[np.int16]) -> float:
        return hearing(self.at_agent_rate().tobytes(), spoken).first_ms

    def loud_seconds_within(self, seconds: float) -> float:
        """Seconds of speech among the first ``seconds`` received."""
        head = self.at_agent_rate()[: int(seconds * RATE)].astype(np.float64)
        windows = [head[i : i + WINDOW] for i in range(0, len(head) - WINDOW + 1, WINDOW)]
        return sum(WINDOW / RATE for w in windows if np.sqrt(np.mean(w * w)) >= 1500)


async def heard_to_the_end(agent: Any, spoken: npt.NDArray[np.int16], timeout: float = 20.0) -> bytes:
    """What the agent's STT heard, once it has heard the last of the speech (or the time is up)."""
    end_ms = len(spoken) / RATE * 1000 - 50
    deadline = time.monotonic() + timeout
    while True:
        heard = agent.stt.received_audio().pcm
        try:
            if hearing(heard, spoken).last_ms >= end_ms:
                return heard
        except AssertionError:  # nothing recognised yet
            pass
        if time.monotonic() > deadline:
            return heard
        await asyncio.sleep(0.5)


# ------------------------------------------------------------------------ the visitor's microphone


async def test_the_visitor_speaks_from_connect_on_and_the_agent_hears_all_of_it_once(
    serve_demo: ServeDemo, chromium: Launch, visitor: Visitor, room_name: str, agent_factory: Any
) -> None:
    """The agent joins 3.5 s after Connect, mid-speech: the start reaches it through pre-connect."""
    demo, url = await serve_demo(room_name=room_name, browser_audio_processing=False)
    browser = await chromium(wav=visitor.wav)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await open_tab(context, url)
    await eventually(lambda: len(demo.voice.keys()) == 1, what="the tab's audio link")
    received = Received(demo, tab_key(demo))
    await expect(page.locator("#lk-voice .lk-voice-words")).to_have_text(
        "Press Connect to talk: your browser will ask to use your microphone."
    )
    await page.get_by_role("button", name="Connect", exact=True).click()
    await asyncio.sleep(AGENT_JOINS)  # the visitor is already speaking; no agent yet
    session = only_session(demo)
    assert session.state.preconnect.status is PreConnectStatus.RECORDING
    agent = await agent_factory(room_name)
    await expect(page.locator("#lk-voice .lk-voice-words")).to_have_text("Your microphone is on: speak to the agent.")
    await expect(status(page)).to_have_attribute("data-agent-state", "listening", timeout=20_000)
    heard_pcm = await heard_to_the_end(agent, visitor.spoken)

    preconnect = session.state.preconnect
    assert preconnect.status is PreConnectStatus.SENT and preconnect.destination == agent.identity
    heard = agent.stt.received_audio()
    assert heard.sample_rate == RATE
    captured_from = received.captured_from_ms(visitor.spoken)
    assert received.loud_seconds_within(preconnect.seconds) >= 0.3, "the visitor spoke before the agent was ready"
    assert_heard_whole_and_once(hearing(heard_pcm, visitor.spoken), SPOKEN_SECONDS, captured_from_ms=captured_from)
    await expect(page.locator("#lk-chat")).to_contain_text("Hello there.")  # the STT's transcript, spoken

    # Every frame the page sent reached the session's microphone, none refused or dropped.
    await page.get_by_role("button", name="Disconnect", exact=True).click()
    await expect(page.locator("#lk-voice .lk-voice-words")).to_have_text(
        "Press Connect to talk: your browser will ask to use your microphone."
    )
    link = received.link
    await eventually(lambda: not link.connected, what="the audio channel closed with the session")
    sent = await page.evaluate("lkVoice.sent")
    assert link.counts.frames_in == sent and link.counts.wrong_size == link.counts.flood == 0
    assert link.microphone.dropped_frames == 0
    assert session.state.problems == ()
    await context.close()


async def test_two_tabs_at_once_each_agent_hears_only_its_own_tab(
    serve_demo: ServeDemo, chromium: Launch, tmp_path: Path, room_name: str, agent_factory: Any
) -> None:
    first_visitor, second_visitor = make_visitor(tmp_path, seed=7), make_visitor(tmp_path, seed=11)
    rooms = [f"{room_name}-a", f"{room_name}-b"]
    agents = [await agent_factory(room) for room in rooms]
    demo, url = await serve_demo(rooms=rooms, browser_audio_processing=False)
    pages = []
    for who in (first_visitor, second_visitor):
        browser = await chromium(wav=who.wav)  # one fake microphone per browser
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        pages.append(await open_tab(context, url))
        await eventually(lambda: len(demo.voice.keys()) == len(pages), what="the tab's audio link")
    first_key, second_key = demo.voice.keys()  # in the order the tabs opened: rooms a, b
    captures = [Received(demo, first_key), Received(demo, second_key)]
    for page in pages:
        await page.get_by_role("button", name="Connect", exact=True).click()
    for page in pages:
        await expect(status(page)).to_have_attribute("data-agent-state", "listening", timeout=20_000)
    pairs = ((agents[0], captures[0], first_visitor, second_visitor), (agents[1], captures[1], second_visitor, first_visitor))
    for agent, capture, own, other in pairs:
        heard = await heard_to_the_end(agent, own.spoken)
        captured_from = capture.captured_from_ms(own.spoken)
        assert_heard_whole_and_once(hearing(heard, own.spoken), SPOKEN_SECONDS, captured_from_ms=captured_from)
        samples = np.frombuffer(heard, dtype=np.int16).astype(np.float64)
        strangers = [w for w in locate(samples, other.spoken.astype(np.float64)) if w.score >= RECOGNISED]
        assert not strangers, "an agent heard the other tab's visitor"


# ------------------------------------------------------------------------ the agent's voice in the page


@attrs.frozen
class Played:
    """What the page's player put out, from its tap: samples and the audio clock of the first."""

    start: float
    rate: int
    samples: npt.NDArray[np.float64]
    received: npt.NDArray[np.float64]
    """What reached the player from the channel, in order, before its jitter buffer: a gap here is upstream."""
    arrivals: tuple[float, ...]
    """The audio clock when each 20 ms frame reached the player."""
    underruns: tuple[int, ...]
    """Where in ``received`` the player ran dry and waited for audio that was late."""

    def at(self, index: int) -> float:
        return self.start + index / self.rate


async def played(page: Any) -> Played:
    answer = await page.evaluate("lkVoice.played()")
    assert answer is not None, "the page has no player"
    def decode(text: str) -> npt.NDArray[np.float64]:
        return np.frombuffer(base64.b64decode(text), dtype=np.int16).astype(np.float64) / 32768

    return Played(float(answer["start"]), int(answer["rate"]), decode(answer["pcm"]), decode(answer["received"]),
                  tuple(float(t) for t in answer["arrivals"]), tuple(int(u) for u in answer["underruns"]))


@attrs.frozen
class Word:
    start: float
    """Seconds into the audio."""
    seconds: float
    hertz: float


def words_in(samples: npt.NDArray[np.float64], rate: int) -> list[Word]:
    """The tone words in ``samples``, each with its pitch and how long it sounded.

    A word is a run of 1 ms blocks louder than a tenth of the loudest. A late
    packet the page's jitter buffer could not hide puts a few ms of silence in
    a word (the player waits to refill its target, 60 ms or more); so consecutive runs of one pitch
    (within 2.5 %: a piece of 0.1 s has a coarser pitch; the tone's neighbouring
    words differ by 4 % or more) are
    one word, and its length is the time it sounded, the silence left out.
    """
    block = rate // 1000
    blocks = samples[: len(samples) // block * block].reshape(-1, block)
    level = np.sqrt(np.mean(blocks * blocks, axis=1))
    if len(level) == 0 or level.max() <= 0:
        return []
    loud = level > level.max() / 10
    runs: list[list[int]] = []
    for index in np.flatnonzero(loud):
        if runs and index - runs[-1][1] <= 5:
            runs[-1][1] = int(index)
        else:
            runs.append([int(index), int(index)])
    words: list[Word] = []
    for first, last in runs:
        if last - first + 1 < 20:
            continue  # too short to have a pitch: a sliver a refill cut off
        piece = samples[first * block : (last + 1) * block]
        spectrum = np.abs(np.fft.rfft(piece * np.hanning(len(piece)), 1 << 18))
        hertz = float(np.argmax(spectrum)) * rate / (1 << 18)
        seconds = (last - first + 1) / 1000
        if words and abs(words[-1].hertz - hertz) <= 0.025 * hertz:
            previous = words[-1]
            words[-1] = Word(previous.start, previous.seconds + seconds, previous.hertz)
        else:
            words.append(Word(first / 1000, seconds, hertz))
    return words


async def open_connected(serve_demo: ServeDemo, chromium: Launch, room_name: str, **options: Any) -> tuple[GradioDemo, Any]:
    demo, url = await serve_demo(room_name=room_name, **options)
    browser = await chromium()
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await open_tab(context, url)
    await page.get_by_role("button", name="Connect", exact=True).click()
    await expect(status(page)).to_have_attribute("data-agent-state", "listening", timeout=20_000)
    await page.wait_for_function("window.lkVoice && lkVoice.ready")
    return demo, page


SILENT = 0.002
"""The player's silence (``SILENT`` in ``static/voice-worklet.js``): what it may skip while catching up."""


def late_audio_in_sounds(heard: Played, stats: dict[str, Any]) -> list[float]:
    """Check the page's player changed nothing inside a sound by itself; return where it waited for late audio.

    The player may only wait — before it starts, and when it runs dry
    because audio is late (an underrun, whose place it records) — and skip
    silences of 10 ms or more while catching up. So every sample above
    :data:`SILENT` that reached it is played, in order, with its value; and
    within one sound (sound samples less than 10 ms apart) each is played as
    long after the one before as it arrived, unless the player ran dry right
    there. A jump anywhere else is the player's own gap or skip: a cut word.
    The tap may end while the last frames are still queued: what was played
    is then a prefix. Returns the seconds (into what was received) at which a
    sound was interrupted by late audio: the channel's or the server's
    stalls, which the caller judges.
    """
    rate = heard.rate
    arrived = np.flatnonzero(np.abs(heard.received) >= SILENT)
    played_at = np.flatnonzero(np.abs(heard.samples) >= SILENT)
    count = len(played_at)
    assert count > 0, "the page played nothing"
    assert stats["droppedSamples"] == 0 and stats["flushed"] == 0, f"the page dropped audio: {stats}"
    assert count <= len(arrived) and len(arrived) - count <= 0.25 * rate, (
        f"the page played {count} sound samples of the {len(arrived)} it received (player: {stats})"
    )
    assert np.array_equal(heard.samples[played_at], heard.received[arrived[:count]]), "the page played other audio"
    shift = played_at - arrived[:count]
    one_sound = np.diff(arrived[:count]) < rate // 100
    jumps = np.flatnonzero(one_sound & (np.diff(shift) != 0))
    dry = np.array(heard.underruns, dtype=np.int64)
    late: list[float] = []
    for j in jumps:
        before, after = int(arrived[j]), int(arrived[j + 1])
        waited = bool(np.any((dry > before) & (dry <= after)))
        assert waited and shift[j + 1] > shift[j], (
            f"the page cut a sound at {before / rate:.3f} s of what it received ({int(shift[j + 1] - shift[j])} "
            f"samples) with audio at hand (player: {stats})"
        )
        late.append(round(before / rate, 3))
    return late


async def neteq_samples(demo: GradioDemo, session: Any) -> int:
    """Samples the session's WebRTC receiver (NetEq) concealed, stretched or squeezed so far, over all its tracks.

    Upstream of the browser channel, libwebrtc's jitter buffer adapts when
    a talk spurt starts: it conceals (plays synthesised audio for a late
    packet: a word up to ~160 ms longer, seen 33-164 ms), decelerates
    (longer) or accelerates (20 ms shorter). That is what made the first word of
    an agent's utterance sound "glitched" in the page: measured, the page
    received it so, and a local ``AudioOutput`` hears the same (see
    ``docs/ARCHITECTURE.md``). Its inbound-RTP statistics count every such sample.
    """
    stats = await asyncio.wrap_future(demo.sessions.loop_thread.submit(session.room.get_rtc_stats()))
    total = 0
    for entry in [*stats.subscriber_stats, *stats.publisher_stats]:  # livekit-ffi 1.1.21 files inbound under publisher
        if entry.WhichOneof("stats") == "inbound_rtp":
            inbound = entry.inbound_rtp.inbound
            total += (inbound.concealed_samples + inbound.inserted_samples_for_deceleration
                      + inbound.removed_samples_for_acceleration)
    return total


async def test_the_agents_voice_plays_in_the_page_as_spoken_and_its_bars_move(
    serve_demo: ServeDemo, chromium: Launch, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    demo, page = await open_connected(serve_demo, chromium, room_name, audio_input=None)
    await expect(page.locator("#lk-voice .lk-voice-words")).to_have_text("You hear the agent here; type to talk to it.")
    session = only_session(demo)
    assert await page.evaluate("lkVoice.tap()")
    neteq_before = await neteq_samples(demo, session)
    text = "alpha bravo charlie delta echo"
    handle = agent.session.say(text)
    await page.wait_for_function("lkVoice.agentLevel > 0.01", timeout=10_000)
    await page.wait_for_function("Math.max(...lkVoice.bars) > 0.3")  # the visualizer shows the voice
    await page.screenshot(path=str(screenshot_path("gradio-voice-01-agent-speaking.png")))
    await handle.wait_for_playout()
    await asyncio.sleep(0.5)  # the last frames cross to the page and its jitter buffer
    heard = await played(page)
    neteq_ms = (await neteq_samples(demo, session) - neteq_before) / 48
    stats = await page.evaluate("lkVoice.stats()")

    # The page's own path: what reached the player is what it played, sample for sample, every word whole,
    # unless its audio came late; and since the channel runs in a worker, it came in time (on two cores
    # under a load of 10 the main thread once held frames back 100 ms, longer than the 60 ms buffer).
    # Where a word did wait for late audio, the audio was late: a frame reached the player at least
    # 40 ms after the one before it (a stall longer than what the buffer holds beyond its 20 ms). On two
    # cores under a load of 11 the server's loop held frames back up to 270 ms; since the channel runs in
    # a worker, the page's own main thread no longer does (it held them 60-100 ms, cutting first words).
    for second in late_audio_in_sounds(heard, stats):
        frame = int(second * heard.rate) // 960
        gaps = np.diff(heard.arrivals[max(0, frame - 4) : frame + 2])
        assert len(gaps) and gaps.max() >= 0.04, (
            f"a word waited at {second} s although its audio arrived in time (arrival gaps {gaps * 1000} ms)"
        )
    link = demo.voice.get(tab_key(demo))
    assert link is not None and link.counts.out_dropped == 0

    # What reached the page is what the agent said: each word's pitch, its first 100 ms, its length. Only the
    # session's WebRTC receiver may change a length, by what its own statistics say it concealed or stretched.
    rendered = np.frombuffer(agent.tts.render(text), dtype=np.int16).astype(np.float64) / 32768
    expected = words_in(rendered, agent.tts.sample_rate)
    got = words_in(heard.received, heard.rate)
    assert len(expected) == 5 and len(got) == len(expected), f"the page got {got}, the agent said {expected}"
    for want, have in zip(expected, got):
        assert abs(have.hertz - want.hertz) <= 0.01 * want.hertz, f"pitch {have} is not {want}"
        onset = words_in(heard.received[int(have.start * heard.rate):][: heard.rate // 10], heard.rate)
        assert len(onset) == 1 and abs(onset[0].hertz - want.hertz) <= 0.025 * want.hertz, (
            f"the first 100 ms of {have} are {onset}, not one tone at {want.hertz:.0f} Hz"
        )
        allowed = 0.006 + neteq_ms / 1000
        assert abs(have.seconds - want.seconds) <= allowed, (
            f"length {have} is not {want}: more than the receiver's {neteq_ms:.0f} ms of concealment and stretching"
        )


async def test_a_burst_after_a_stall_is_caught_up_in_the_silences_never_inside_a_word(
    serve_demo: ServeDemo, chromium: Launch, room_name: str
) -> None:
    """The server's loop stalls, then the agent's frames arrive at once: the player catches up between words."""
    from lkstate.demo_agent import ToneTTS

    from lkstate_gradio._voice import FRAME_BYTES

    demo, url = await serve_demo(room_name=room_name, audio_input=None, agent_connect_timeout=None)
    browser = await chromium()
    page = await open_tab(await browser.new_context(), url)
    await page.get_by_role("button", name="Connect", exact=True).click()
    await page.wait_for_function("window.lkVoice && lkVoice.ready", timeout=20_000)
    link = demo.voice.get(tab_key(demo))
    assert link is not None
    assert await page.evaluate("lkVoice.tap()")
    tone = ToneTTS(sample_rate=48000)
    words = np.frombuffer(tone.render("alpha bravo charlie delta echo foxtrot"), dtype=np.int16)
    audio = np.concatenate([np.zeros(4800, dtype=np.int16), words, np.zeros(48000, dtype=np.int16)]).tobytes()
    frames = [audio[i : i + FRAME_BYTES] for i in range(0, len(audio) - FRAME_BYTES + 1, FRAME_BYTES)]
    burst = 20  # 400 ms at once: past the player's target, so it catches up
    for frame in frames[:burst]:
        link.send_to_page(frame)
    began = time.monotonic()
    for index, frame in enumerate(frames[burst:]):  # then in real time, by the clock (sleeps alone run late)
        await asyncio.sleep(max(0.0, began + (index + 1) * 0.02 - time.monotonic()))
        link.send_to_page(frame)
    await asyncio.sleep(0.3)
    heard = await played(page)
    stats = await page.evaluate("lkVoice.stats()")
    sent = np.frombuffer(b"".join(frames), dtype=np.int16).astype(np.float64) / 32768
    assert np.array_equal(heard.received[: len(sent)], sent), "the channel changed the audio"
    assert stats["skippedSilence"] > 0, f"the player never caught up: {stats}"
    assert late_audio_in_sounds(heard, stats) == [], "a word was cut while the player caught up"


async def test_an_interrupted_agent_stops_at_once_in_the_page(
    serve_demo: ServeDemo, chromium: Launch, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    demo, page = await open_connected(serve_demo, chromium, room_name, audio_input=None)
    assert await page.evaluate("lkVoice.tap()")
    text = "a long answer that would go on speaking for many many seconds if nobody stopped it right now"
    full = agent.tts.duration_for(text)
    assert full >= 5.0
    agent.session.say(text)
    await page.wait_for_function("lkVoice.agentLevel > 0.01", timeout=10_000)
    await asyncio.sleep(1.0)
    interrupted_at = await page.evaluate("lkVoice.now()")
    await agent.session.interrupt()
    await asyncio.sleep(1.5)
    heard = await played(page)
    loud = np.flatnonzero(np.abs(heard.samples) > 0.01)
    assert len(loud), "the page played nothing"
    stopped_after = heard.at(int(loud[-1])) - interrupted_at
    # What was already on its way: the agent's last frames, the server's receiver, the channel and the
    # page's jitter buffer (60-120 ms, caught up to that in silences): 0.2-0.37 s seen on two loaded cores,
    # never the rest of the answer.
    assert stopped_after <= 0.5, f"the page played on for {stopped_after:.2f} s after the interruption"
    played_seconds = (loud[-1] - loud[0]) / heard.rate
    assert played_seconds < full - 2.0


# ------------------------------------------------------------------------ who may use a tab's channel, and bad input


async def refused(url: str, hello: str | None) -> tuple[int | None, int]:
    """Open the channel, say ``hello`` (or nothing), and return (close code, binary messages received)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    frames = 0
    async with connect(url) as ws:
        if hello is not None:
            await ws.send(hello)
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    frames += 1
                else:
                    assert '"ready"' not in message, "a channel without the tab's secret was served"
        except ConnectionClosed:
            pass
        return ws.close_code, frames


class NonReader:
    """A WebSocket client that says its hello and then never reads: a page that hangs."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    @classmethod
    async def open(cls, url: str, secret: str) -> NonReader:
        host, port = url.split("//", 1)[1].rstrip("/").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.write(
            f"GET /lkstate/voice HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        hello = ('{"key": "%s", "rate": 48000}' % secret).encode()
        mask = b"\x01\x02\x03\x04"
        assert len(hello) < 126
        writer.write(bytes([0x81, 0x80 | len(hello)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(hello)))
        await writer.drain()
        return cls(writer)  # and the reader is never read again

    def close(self) -> None:
        self.writer.close()


def microphone_fact(page: Any) -> Any:
    """The microphone's few words in the facts line under the agent's state (its tooltip: why)."""
    return page.locator("#lk-status .lk-mic")


def problems_of(session: Any) -> str:
    return " | ".join(p.message for p in session.state.problems if p.source == "browser audio")


async def test_a_tabs_audio_channel_needs_its_secret_and_bad_frames_are_refused_in_words(
    serve_demo: ServeDemo, chromium: Launch, room_name: str
) -> None:
    from websockets.asyncio.client import connect

    from lkstate_gradio._voice import FRAME_BYTES, MAX_BURST_FRAMES

    demo, url = await serve_demo(room_name=room_name, audio_input=None, agent_connect_timeout=None)
    browser = await chromium()
    context = await browser.new_context()
    pages = [await open_tab(context, url), await open_tab(context, url)]
    await eventually(lambda: len(demo.voice.keys()) == 2, what="an audio link for each tab")
    for page in pages:
        await page.get_by_role("button", name="Connect", exact=True).click()
        await expect(status(page)).to_have_attribute("data-connection", "connected", timeout=15_000)
    first_key, second_key = demo.voice.keys()
    first, second = demo.voice.get(first_key), demo.voice.get(second_key)
    assert first is not None and second is not None
    first_session, second_session = demo.sessions.get(first_key), demo.sessions.get(second_key)
    channel = url.replace("http://", "ws://") + "lkstate/voice"

    # Without the tab's secret nothing is served: no hello, garbage, a session hash, an old guess.
    assert await refused(channel, None) == (4401, 0)
    assert await refused(channel, "not json at all") == (4401, 0)
    assert await refused(channel, '{"key": "%s", "rate": 48000}' % first_key) == (4401, 0)
    assert await refused(channel, '{"key": "%s", "rate": 48000}' % ("x" * 2000)) == (4401, 0)
    assert first.counts.frames_in == second.counts.frames_in == 0

    # The second tab's secret feeds the second tab's session only.
    loud = (np.full(FRAME_BYTES // 2, 8000, dtype=np.int16)).tobytes()
    async with connect(channel) as ws:
        await ws.send('{"key": "%s", "rate": 48000}' % second.secret)
        assert '"ready"' in str(await ws.recv())
        for _ in range(5):
            await ws.send(loud)
        await eventually(lambda: second.counts.frames_in == 5, what="the frames in the second tab's session")
    assert first.counts.frames_in == 0 and first.microphone.pushed_frames == 0

    # Bad input on the first tab's channel: dropped, said in its state, never in the other tab's.
    async with connect(channel, max_size=None) as ws:
        await ws.send('{"key": "%s", "rate": 48000}' % first.secret)
        assert '"ready"' in str(await ws.recv())
        await ws.send(b"\x01" * 1000)
        await ws.send("{not a note")
        flood = 2 * MAX_BURST_FRAMES  # 20 s of audio, sent in well under 10 s
        for _ in range(flood):
            await ws.send(loud)
        await eventually(lambda: "must be 1920 bytes" in problems_of(first_session), what="the wrong size in words")
        await eventually(lambda: "faster than real time" in problems_of(first_session), what="the flood in words")
        assert "unreadable message" in problems_of(first_session)
        assert first.counts.wrong_size == 1 and first.counts.unreadable == 1
        await eventually(lambda: first.counts.frames_in + first.counts.flood == flood, what="every frame counted")
        assert first.counts.flood > 0 and first.counts.frames_in >= MAX_BURST_FRAMES
        await ws.send(b"\x00" * 5000)
        await ws.wait_closed()
        assert ws.close_code == 1009
    await eventually(lambda: "at most 4096" in problems_of(first_session), what="the oversized message in words")
    assert problems_of(second_session) == ""

    # A page that stops reading: the agent's audio for it is dropped, then its channel closed;
    # the session and the other tab carry on.
    stuck = await NonReader.open(url, first.secret)
    async with connect(channel) as other:
        await other.send('{"key": "%s", "rate": 48000}' % second.secret)
        assert '"ready"' in str(await other.recv())
        silence = bytes(FRAME_BYTES)
        started = time.monotonic()
        while "took none of the agent's audio" not in problems_of(first_session):
            assert time.monotonic() - started < 30, f"a page that stopped reading was never cut off: {first.counts} {first.connected}"
            for _ in range(200):
                first.send_to_page(silence)
            second.send_to_page(silence)
            assert isinstance(await other.recv(), bytes)  # the other tab still hears
            await asyncio.sleep(0.01)
        assert first.counts.out_dropped > 0
        await first_session.wait_until(lambda s: True, timeout=1)  # the session still answers
    stuck.close()
    await pages[0].locator("#lk-input textarea").fill("typing still works")
    await pages[0].locator("#lk-input textarea").press("Enter")
    await expect(pages[0].locator("#lk-chat")).to_contain_text("typing still works")


# ------------------------------------------------------------------------ what the visitor is told


async def test_a_denied_microphone_an_insecure_page_and_a_dropped_channel_are_told_in_words_and_typing_goes_on(
    serve_demo: ServeDemo, chromium: Launch, visitor: Visitor, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    demo, url = await serve_demo(room_name=room_name)
    words = "#lk-voice .lk-voice-words"

    # The visitor says no when the browser asks for the microphone.
    denying = await chromium(wav=visitor.wav, grant=False)
    context = await denying.new_context(viewport={"width": 1280, "height": 900})
    page = await open_tab(context, url)
    await page.get_by_role("button", name="Connect", exact=True).click()
    await expect(page.locator(words)).to_have_attribute("data-voice", "denied", timeout=15_000)
    await expect(page.locator(words)).to_have_text(
        "The browser was not allowed to use your microphone. Allow it with the microphone icon in the address "
        "bar (or the site settings), then press Disconnect and Connect again. You can still type."
    )
    await expect(status(page)).to_have_attribute("data-agent-state", "listening", timeout=20_000)
    # The page and the session agree: the microphone is unavailable, and why, in the page's words.
    denied = (
        "The browser was not allowed to use your microphone. Allow it with the microphone icon in the address "
        "bar (or the site settings), then press Disconnect and Connect again. You can still type."
    )
    await expect(microphone_fact(page)).to_have_text("No microphone")
    await expect(microphone_fact(page)).to_have_attribute("title", denied)
    await expect(page.locator("#lk-mic")).to_have_text("Microphone unavailable")
    await expect(page.locator("#lk-mic")).to_be_disabled()
    assert only_session(demo).state.local_media.microphone.error == denied
    # Nothing was recorded before the agent came, and no line says "0.0 s handed over".
    preconnect = only_session(demo).state.preconnect
    assert preconnect.status is PreConnectStatus.IDLE and preconnect.seconds == 0, preconnect
    assert preconnect.detail == "Nothing was recorded before the agent was ready: the microphone was unavailable."
    await expect(page.locator("body")).not_to_contain_text("handed over")
    await expect(page.locator("#lk-problems")).to_contain_text("The browser was not allowed to use your microphone.")
    identity = only_session(demo).state.connection.local_identity
    await agent.wait_for_participant(identity)
    await page.locator("#lk-input textarea").fill("hello by typing")
    await page.locator("#lk-input textarea").press("Enter")
    await expect(page.locator("#lk-chat")).to_contain_text("You said: hello by typing", timeout=20_000)
    await page.screenshot(path=str(screenshot_path("gradio-voice-02-microphone-denied.png")))
    await context.close()

    # The page is reached by a name that is not localhost, over http: no microphone there.
    port = url.rstrip("/").rsplit(":", 1)[1]
    remote = await chromium(wav=visitor.wav, extra=("--host-resolver-rules=MAP voice.test 127.0.0.1",))
    context = await remote.new_context()
    page = await open_tab(context, f"http://voice.test:{port}/")
    await page.get_by_role("button", name="Connect", exact=True).click()
    await expect(page.locator(words)).to_have_attribute("data-voice", "insecure", timeout=15_000)
    await expect(page.locator(words)).to_contain_text("this page is not served over https")
    await expect(microphone_fact(page)).to_have_text("No microphone", timeout=15_000)
    await expect(microphone_fact(page)).to_have_attribute("title", re.compile("only on https:// pages and on localhost"))
    await expect(page.locator("#lk-mic")).to_have_text("Microphone unavailable")
    # A page that can play nothing is sent none of the agent's voice: its tab's speaker is off.
    silent = [link for k in demo.voice.keys() if (link := demo.voice.get(k)) is not None and link.connected]
    assert len(silent) == 1 and not silent[0].plays
    for _ in range(10):  # the agent's voice, as the tab's speaker passes it on
        silent[0].send_to_page(bytes(1920))
    await asyncio.sleep(0.5)
    assert silent[0].counts.frames_out == 0, f"the server sent audio to a page that cannot play: {silent[0].counts}"
    await context.close()

    # The channel drops under a connected visitor.
    granted = await chromium(wav=visitor.wav)
    context = await granted.new_context()
    page = await open_tab(context, url)
    await page.get_by_role("button", name="Connect", exact=True).click()
    await expect(page.locator(words)).to_have_attribute("data-voice", "live", timeout=15_000)
    await expect(status(page)).to_have_attribute("data-connection", "connected", timeout=15_000)
    keys = [k for k in demo.voice.keys() if (link := demo.voice.get(k)) is not None and link.connected]
    assert len(keys) == 1
    link = demo.voice.get(keys[0])
    assert link is not None and link.drop()
    await expect(page.locator(words)).to_have_attribute("data-voice", "dropped")
    await expect(page.locator(words)).to_contain_text("The audio channel to the server dropped")
    await page.locator("#lk-input textarea").fill("still typing")
    await page.locator("#lk-input textarea").press("Enter")
    await expect(page.locator("#lk-chat")).to_contain_text("still typing", timeout=15_000)
    await context.close()


async def test_over_https_a_page_reached_by_its_name_gets_the_microphone_and_the_audio_channel(
    livekit_server: LiveKitServer, chromium: Launch, visitor: Visitor, tmp_path: Path, room_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the README tells remote visitors' hosts to do: ``launch(ssl_certfile=..., ssl_keyfile=...)``.

    Over http a page reached by a name other than localhost gets no
    microphone (see the test above); served with a certificate, the same page
    is a secure context: the microphone opens and the channel runs over wss.
    The certificate is self-signed for ``voice.test`` (Chromium told to accept it).
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=voice.test", "-addext", "subjectAltName=DNS:voice.test"],
                   check=True, capture_output=True)
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build_demo(
        lambda: DevelopmentTokenSource(livekit_server.url, livekit_server.api_key, livekit_server.api_secret),
        "lkstate-demo", room_name=room_name, agent_connect_timeout=None,
    )
    port = free_port()
    try:
        url = await asyncio.to_thread(
            lambda: demo.launch(port=port, block=False, quiet=True, ssl_certfile=str(cert), ssl_keyfile=str(key))
        )
        assert url == f"https://127.0.0.1:{port}/"
        browser = await chromium(wav=visitor.wav, extra=("--host-resolver-rules=MAP voice.test 127.0.0.1",
                                                         "--ignore-certificate-errors"))
        context = await browser.new_context(ignore_https_errors=True)
        page = await open_tab(context, f"https://voice.test:{port}/")
        assert await page.evaluate("window.isSecureContext")
        await page.get_by_role("button", name="Connect", exact=True).click()
        await expect(page.locator("#lk-voice .lk-voice-words")).to_have_attribute("data-voice", "live", timeout=15_000)
        await page.wait_for_function("lkVoice.ready && lkVoice.sent > 10", timeout=15_000)
        await expect(microphone_fact(page)).to_have_text("Mic on", timeout=15_000)
        await context.close()
    finally:
        await asyncio.to_thread(demo.close)


# ------------------------------------------------------------------------ the one-command demo, in a browser


async def test_lkstate_demo_ui_gradio_in_a_browser_is_a_voice_conversation_with_the_agent(
    chromium: Launch, tmp_path: Path
) -> None:
    """The README's ``lkstate demo --ui gradio``, as a person runs it: its own server and demo agent, a browser tab.

    The tab connects by itself (the demo serves with auto-connect); the visitor
    speaks into the fake microphone (with the browser's echo cancellation,
    noise suppression and gain control on, as for anyone); the demo agent's
    STT hears it and the agent answers in voice: its reply is in the
    transcript and its tones are what the page played, word for word.
    The agent's greeting is off (``--greeting ''``) so that the visitor's
    words, which start as soon as the microphone opens, interrupt nothing.
    """
    from lkstate.demo_agent import ToneTTS
    from tests.harness.cli import assert_nothing_left, ctrl_c_works, lkstate_command, marked_env, stop
    from tests.harness.server import require_livekit_server

    require_livekit_server()
    visitor = make_visitor(tmp_path, seed=5)
    marker = uuid.uuid4().hex
    process = subprocess.Popen(
        [*lkstate_command(), "demo", "--ui", "gradio", "--greeting", ""], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=tmp_path, env={**marked_env(marker), "GRADIO_ANALYTICS_ENABLED": "False"},
        preexec_fn=ctrl_c_works,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 90)
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert match, f"no address in {line!r}"
        browser = await chromium(wav=visitor.wav)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await open_tab(context, match.group(1))
        await page.wait_for_function("window.lkVoice && lkVoice.ready && lkVoice.status === 'live'", timeout=30_000)
        assert await page.evaluate("lkVoice.tap()")
        await page.wait_for_function("lkVoice.micLevel > 0.02", timeout=10_000)  # the meter shows the visitor
        await page.screenshot(path=str(screenshot_path("gradio-voice-04-visitor-speaking.png")))
        await expect(status(page)).to_have_attribute("data-agent-state", re.compile("listening|thinking|speaking"),
                                                     timeout=30_000)
        reply = "You said: Hello there."  # the demo STT's transcript, echoed by the demo LLM
        await expect(page.locator("#lk-chat")).to_contain_text(reply, timeout=30_000)
        await expect(status(page)).to_have_attribute("data-agent-state", "listening", timeout=20_000)
        await asyncio.sleep(0.5)  # the last frames cross to the page and its jitter buffer
        heard = await played(page)
        stats = await page.evaluate("lkVoice.stats()")
        await page.screenshot(path=str(screenshot_path("gradio-voice-03-demo-conversation.png")))
        await context.close()
    finally:
        err = stop(process, signal.SIGINT)
    tts = ToneTTS()  # what the demo agent speaks with
    expected = words_in(np.frombuffer(tts.render(reply), dtype=np.int16).astype(np.float64) / 32768, tts.sample_rate)
    late_audio_in_sounds(heard, stats)  # the page cut nothing itself (late audio on a loaded machine may)
    # Each word at its pitch, in order. The demo's session (in its own process) receives the agent's voice
    # through WebRTC, whose jitter buffer may conceal or stretch a word at the start of a talk spurt (see
    # neteq_samples: up to 164 ms seen) and split off a sliver of it: slivers under 40 ms are not words.
    got = [word for word in words_in(heard.samples, heard.rate) if word.seconds >= 0.04]
    assert len(expected) == 4 and len(got) == len(expected), f"the page played {got}, the agent said {expected}"
    for want, have in zip(expected, got):
        assert abs(have.hertz - want.hertz) <= 0.01 * want.hertz, f"pitch {have} is not {want}"
        assert -0.045 <= have.seconds - want.seconds <= 0.2, f"length {have} is not {want}"
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert_nothing_left(marker)
