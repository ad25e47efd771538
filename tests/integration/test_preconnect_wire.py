"""Pre-connect audio over a real livekit-server, judged by the agent framework.

A user records speech before the agent can hear it, publishes the microphone
with the pre-connect feature, stops recording when the agent subscribes, and
sends the recording with :func:`send_preconnect_audio`. Two receivers judge it:
a raw byte-stream handler (exact bytes, attributes, mime type, addressed to the
agent only) and livekit-agents' own ``PreConnectAudioHandler``, the code a real
agent runs.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import attrs
import numpy as np
import numpy.typing as npt
import pytest
from livekit import rtc
from livekit.rtc._proto.track_pb2 import AudioTrackFeature

from lkstate._core.options import PreConnectCodec, PreConnectLimits
from lkstate._media.audio import GeneratorInput, pump
from lkstate._media.preconnect import PRECONNECT_TOPIC, PreConnectBuffer, send_preconnect_audio

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
from tests.harness.server import LiveKitServer, find_livekit_server  # noqa: E402

pytestmark = [pytest.mark.wire, pytest.mark.serial]

GOBIN_SERVER = Path(_ROOT) / ".tools" / "gobin" / "server"


@pytest.fixture(scope="module")
def server() -> Iterator[LiveKitServer]:
    binary = find_livekit_server() or (GOBIN_SERVER if GOBIN_SERVER.is_file() else None)
    if binary is None:
        pytest.skip("no livekit-server binary; run scripts/install-livekit-server")
    lk = LiveKitServer(binary).start()
    try:
        yield lk
    finally:
        lk.cleanup()


@attrs.frozen
class Received:
    sender: str
    topic: str
    mime_type: str
    attributes: dict[str, str]
    data: bytes


class ByteInbox:
    """Registers (before connect) a handler for the pre-connect topic and reads every stream to the end."""

    def __init__(self, room: rtc.Room) -> None:
        self.streams: asyncio.Queue[Received] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        room.register_byte_stream_handler(PRECONNECT_TOPIC, self._on_stream)

    def _on_stream(self, reader: rtc.ByteStreamReader, sender: str) -> None:
        task = asyncio.create_task(self._read(reader, sender))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, reader: rtc.ByteStreamReader, sender: str) -> None:
        chunks = [chunk async for chunk in reader]
        info = reader.info
        await self.streams.put(
            Received(sender, info.topic, info.mime_type, dict(info.attributes or {}), b"".join(chunks))
        )


async def stop(task: asyncio.Task[object]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


def speech(seconds: float) -> npt.NDArray[np.int16]:
    """Distinct sample values, so a lost, repeated or reordered frame would show."""
    return (np.arange(int(48000 * seconds)) % 30011).astype(np.int16)


def voice(seconds: float) -> npt.NDArray[np.int16]:
    """Band-limited noise (300–3400 Hz) at 48 kHz: what a lossy codec can be judged on, window by window."""
    n = int(48000 * seconds)
    spectrum = np.fft.rfft(np.random.default_rng(11).standard_normal(n))
    frequencies = np.fft.rfftfreq(n, 1 / 48000)
    spectrum[(frequencies < 300) | (frequencies > 3400)] = 0
    x = np.fft.irfft(spectrum, n)
    return (x / np.std(x) * 5000).clip(-32000, 32000).astype(np.int16)


@pytest.fixture
async def rooms() -> AsyncIterator[list[rtc.Room]]:
    opened: list[rtc.Room] = []
    yield opened
    for room in opened:
        await room.disconnect()


async def record_then_hand_over(
    server: LiveKitServer,
    room_name: str,
    buffer: PreConnectBuffer,
    rooms: list[rtc.Room],
    spoken: npt.NDArray[np.int16] | None = None,
    speak_before_connecting: float = 1.0,
) -> tuple[rtc.Room, rtc.LocalTrackPublication, asyncio.Task[object]]:
    """The user's side: record before connecting, publish, stop recording when subscribed.

    Returns the user's room, its microphone publication and the pump task
    (which keeps feeding the live track after the handover).
    """
    source = rtc.AudioSource(48000, 1)
    mic = GeneratorInput([speech(3.0) if spoken is None else spoken], sample_rate=48000, realtime=True)
    recorded = 0.0
    spoke_a_while = asyncio.Event()

    def record(frame: rtc.AudioFrame) -> bool:
        nonlocal recorded
        recorded += frame.samples_per_channel / frame.sample_rate
        if recorded >= speak_before_connecting:
            spoke_a_while.set()
        return buffer.append(frame)

    pumping: asyncio.Task[object] = asyncio.create_task(pump(mic, source, on_frame=record))
    # The user speaks while the app connects; a fast server must not make the recording tiny.
    await asyncio.wait_for(spoke_a_while.wait(), 10)

    user = rtc.Room()
    rooms.append(user)
    subscribed = asyncio.Event()

    @user.on("local_track_subscribed")
    def _on_subscribed(track: rtc.Track) -> None:  # pyright: ignore[reportUnusedFunction]
        buffer.stop()  # between two frames: no frame both buffered and sent live
        subscribed.set()

    await user.connect(server.url, server.token(room_name, "user"))
    track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, preconnect_buffer=True)
    publication = await user.local_participant.publish_track(track, options)
    await asyncio.wait_for(subscribed.wait(), 10)
    return user, publication, pumping


async def test_the_recording_reaches_the_agent_alone_with_exact_bytes_and_attributes(
    server: LiveKitServer, rooms: list[rtc.Room]
) -> None:
    room_name = "preconnect-raw"
    agent = rtc.Room()
    agent_inbox = ByteInbox(agent)
    bystander = rtc.Room()
    bystander_inbox = ByteInbox(bystander)
    rooms.extend([agent, bystander])
    agent_saw_publication: asyncio.Future[rtc.RemoteTrackPublication] = asyncio.get_running_loop().create_future()

    @agent.on("track_subscribed")
    def _on_track(track: rtc.Track, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:  # pyright: ignore[reportUnusedFunction]
        if participant.identity == "user" and not agent_saw_publication.done():
            agent_saw_publication.set_result(publication)

    await agent.connect(server.url, server.token(room_name, "agent-1", kind="agent"))
    # The bystander must not be auto-subscribed, or its subscription could trigger the handover.
    await bystander.connect(
        server.url, server.token(room_name, "bystander"), rtc.RoomOptions(auto_subscribe=False)
    )

    buffer = PreConnectBuffer(PreConnectLimits(codec="pcm"))
    user, publication, pumping = await record_then_hand_over(server, room_name, buffer, rooms)
    pcm = buffer.data()
    await send_preconnect_audio(
        user.local_participant,
        agent_identity="agent-1",
        track_sid=publication.sid,
        audio=pcm,
        sample_rate=48000,
        num_channels=1,
    )

    got = await asyncio.wait_for(agent_inbox.streams.get(), 10)
    remote_publication = await asyncio.wait_for(agent_saw_publication, 10)
    await stop(pumping)

    assert buffer.num_frames > 0 and not buffer.overflowed
    assert got.sender == "user" and got.topic == PRECONNECT_TOPIC
    assert got.mime_type == "application/octet-stream"
    assert got.attributes == {"trackId": publication.sid, "sampleRate": "48000", "channels": "1"}
    assert got.data == pcm
    # What was recorded is the start of the speech, whole and in order.
    assert np.array_equal(np.frombuffer(got.data, dtype=np.int16), speech(3.0)[: len(pcm) // 2])
    # The agent only waits for a buffer when the publication says one is coming.
    assert remote_publication.sid == publication.sid
    assert AudioTrackFeature.TF_PRECONNECT_BUFFER in remote_publication.audio_features
    # Addressed to the agent only: give a misrouted stream time to arrive, then look.
    await asyncio.sleep(0.5)
    assert bystander_inbox.streams.empty()


@pytest.mark.parametrize("codec", ["opus", "pcm"])
async def test_the_agent_frameworks_own_handler_accepts_the_recording(
    server: LiveKitServer, rooms: list[rtc.Room], codec: PreConnectCodec
) -> None:
    from livekit.agents.voice.room_io._pre_connect_audio import PreConnectAudioHandler

    room_name = f"preconnect-agent-{codec}"
    agent = rtc.Room()
    rooms.append(agent)
    handler = PreConnectAudioHandler(agent, timeout=10.0)
    handler.register()  # before connect, as RoomIO does
    await agent.connect(server.url, server.token(room_name, "agent-1", kind="agent"))

    buffer = PreConnectBuffer(PreConnectLimits(codec=codec))
    user, publication, pumping = await record_then_hand_over(server, room_name, buffer, rooms, voice(3.0))
    audio = buffer.audio()
    # The agent asks for the buffer as soon as it subscribes; the user sends it on learning of that.
    waiting = asyncio.create_task(handler.wait_for_data(publication.sid))
    await send_preconnect_audio(
        user.local_participant,
        agent_identity="agent-1",
        track_sid=publication.sid,
        audio=audio.data,
        sample_rate=audio.sample_rate,
        num_channels=audio.num_channels,
        codec=audio.codec,
    )
    frames = await asyncio.wait_for(waiting, 10)
    await stop(pumping)
    await handler.aclose()

    assert frames, "the agent's handler dropped the buffer"
    assert audio.codec == codec
    assert all((f.sample_rate, f.num_channels) == (48000, 1) for f in frames)
    heard = np.concatenate([np.frombuffer(f.data.cast("B"), dtype=np.int16) for f in frames])
    recorded = np.frombuffer(buffer.data(), dtype=np.int16)
    if codec == "pcm":
        assert np.array_equal(heard, recorded)
    else:
        # Decoded by the agent framework: as long as the recording, and alike from its first sample.
        assert len(audio.data) < len(audio.pcm) / 10
        assert len(heard) == len(recorded)
        for start in range(0, len(recorded) - 960, 480):  # 20 ms windows, 10 ms hop
            a, b = heard[start : start + 960].astype(np.float64), recorded[start : start + 960].astype(np.float64)
            assert np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)) >= 0.9, f"window at {start / 48000} s"
