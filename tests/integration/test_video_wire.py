"""The camera and the screen share over a real livekit-server, seen by another participant.

The session publishes a :class:`~lkstate.VideoInput` as a track with the right
source; a raw ``livekit.rtc`` peer in the room subscribes and decodes what
arrives, so each test checks what a person on the other side would see.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit import rtc

from lkstate import ConnectionStatus, SessionState
from lkstate.errors import LkstateError
from lkstate.media import CameraInput, PATTERN_COLOURS, PatternVideoInput, VideoGeneratorInput
from tests.harness.peer import Peer, wait_until
from tests.harness.video import bar_colours, close_to, first_picture, video_of
from tests.harness.sessions import SessionFactory

WIDTH, HEIGHT = 640, 360


async def test_the_camera_is_published_seen_with_its_colours_and_unpublished_when_turned_off(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    session = make_session(audio_input=None, audio_output=None, video_input=PatternVideoInput(WIDTH, HEIGHT))
    await session.start(wait_for_agent=False)
    assert session.state.local_media.camera.enabled is False, "the camera starts off"
    viewer: Peer = await peer_factory(room_name)
    identity = session.state.connection.local_identity
    assert identity is not None

    await session.set_camera_enabled(True)
    camera = session.state.local_media.camera
    assert camera.enabled and camera.published and camera.track_sid and camera.error is None
    assert camera.device == f"test pattern {WIDTH}×{HEIGHT} at 15 fps"
    publication = await video_of(viewer, identity, rtc.TrackSource.SOURCE_CAMERA)
    assert publication.sid == camera.track_sid and publication.name == "camera"
    assert publication.track is not None
    picture = await first_picture(publication.track, width=WIDTH)
    assert picture.shape == (HEIGHT, WIDTH, 4)
    assert close_to(bar_colours(picture), PATTERN_COLOURS), bar_colours(picture)

    await session.set_camera_enabled(False)
    camera = session.state.local_media.camera
    assert not camera.enabled and not camera.published and camera.track_sid is None and camera.error is None
    await wait_until(
        lambda: (p := viewer.remote(identity)) is not None
        and not any(t.source == rtc.TrackSource.SOURCE_CAMERA for t in p.track_publications.values()),
        timeout=10,
        message="the camera track to be gone for the viewer",
    )

    # On again: a new publication, and pictures again.
    await session.set_camera_enabled(True)
    second = session.state.local_media.camera.track_sid
    assert second and second != publication.sid
    again = await video_of(viewer, identity, rtc.TrackSource.SOURCE_CAMERA)
    assert again.sid == second and again.track is not None
    assert close_to(bar_colours(await first_picture(again.track, width=WIDTH)), PATTERN_COLOURS)
    assert session.state.connection.status is ConnectionStatus.CONNECTED


async def test_the_screen_share_is_a_screen_share_track_of_your_frames(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    async def screen() -> AsyncIterator[Any]:
        for n in range(100_000):
            picture = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
            picture[:, : WIDTH // 2] = (200, 40, 40)
            picture[:, WIDTH // 2 :] = (40, 40, 200)
            picture[-10:, (n * 8) % WIDTH : (n * 8) % WIDTH + 8] = 255
            yield picture
            await asyncio.sleep(1 / 10)

    session = make_session(
        audio_input=None,
        audio_output=None,
        video_input=None,
        screen_share_input=VideoGeneratorInput(screen(), width=WIDTH, height=HEIGHT, description="my screen"),
    )
    await session.start(wait_for_agent=False)
    viewer: Peer = await peer_factory(room_name)
    identity = session.state.connection.local_identity
    assert identity is not None
    await session.set_screen_share_enabled(True)
    share = session.state.local_media.screen_share
    assert share.enabled and share.published and share.device == "my screen"
    assert session.state.local_media.camera.published is False
    publication = await video_of(viewer, identity, rtc.TrackSource.SOURCE_SCREENSHARE)
    assert publication.name == "screen_share" and publication.track is not None
    picture = await first_picture(publication.track, width=WIDTH)
    left, right = picture[HEIGHT // 2, WIDTH // 4, :3], picture[HEIGHT // 2, 3 * WIDTH // 4, :3]
    assert np.abs(left.astype(int) - (200, 40, 40)).max() <= 40, left
    assert np.abs(right.astype(int) - (40, 40, 200)).max() <= 40, right
    with pytest.raises(LkstateError, match="no camera input") as refused:
        await session.set_camera_enabled(True)
    assert "video_input=" in refused.value.remedy


async def test_without_a_camera_the_state_says_so_and_the_session_goes_on(
    make_session: SessionFactory, room_name: str
) -> None:
    # CI machines have no camera: "default" finds none (or no OpenCV) and says so in words.
    session = make_session(audio_input=None, audio_output=None, video_input="default")
    await session.start(wait_for_agent=False)
    await session.set_camera_enabled(True)
    camera = session.state.local_media.camera
    assert not camera.enabled and not camera.published
    assert camera.error is not None and camera.error.startswith("No camera"), camera.error
    assert "PatternVideoInput" in camera.error, "the words say what to do instead"
    assert session.state.connection.status is ConnectionStatus.CONNECTED
    message = await session.send_text("still here")
    assert message.text == "still here"


async def test_a_video_file_plays_as_the_camera_and_its_end_is_reported(
    make_session: SessionFactory, room_name: str, peer_factory: Any, tmp_path: Path
) -> None:
    cv2 = pytest.importorskip("cv2")
    pattern = PatternVideoInput(320, 180)
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (320, 180))
    for n in range(30):  # two seconds
        writer.write(cv2.cvtColor(pattern.picture(n), cv2.COLOR_RGBA2BGR))
    writer.release()

    clip = CameraInput(path)
    assert (clip.width, clip.height, clip.fps) == (320, 180, 15)
    session = make_session(audio_input=None, audio_output=None, video_input=clip)
    await session.start(wait_for_agent=False)
    viewer: Peer = await peer_factory(room_name)
    identity = session.state.connection.local_identity
    assert identity is not None
    await session.set_camera_enabled(True)
    assert session.state.local_media.camera.device == f"video {path} 320×180 at 15 fps"
    publication = await video_of(viewer, identity, rtc.TrackSource.SOURCE_CAMERA)
    assert publication.track is not None
    picture = await first_picture(publication.track, width=320)
    assert close_to(bar_colours(picture), PATTERN_COLOURS, tolerance=48), bar_colours(picture)

    def ended(state: SessionState) -> bool:
        return state.local_media.camera.error is not None

    state = await session.wait_until(ended, timeout=10)
    assert state.local_media.camera.error == "The camera input ended."
    assert not state.local_media.camera.enabled and not state.local_media.camera.published
    assert state.connection.status is ConnectionStatus.CONNECTED


async def test_the_camera_chosen_before_start_comes_on_at_start_and_again_after_a_restart(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    session = make_session(audio_input=None, audio_output=None, video_input=PatternVideoInput(320, 180))
    await session.set_camera_enabled(True)
    camera = session.state.local_media.camera
    assert camera.enabled and not camera.published, "the choice shows at once; nothing is published yet"
    await session.start(wait_for_agent=False)
    state = await session.wait_until(lambda s: s.local_media.camera.published, timeout=10)
    first = state.local_media.camera.track_sid
    await session.end()
    assert not session.state.local_media.camera.published
    await session.start(wait_for_agent=False)
    state = await session.wait_until(lambda s: s.local_media.camera.published, timeout=10)
    assert state.local_media.camera.enabled and state.local_media.camera.track_sid not in (None, first)
    viewer: Peer = await peer_factory(room_name)
    identity = state.connection.local_identity
    assert identity is not None
    publication = await video_of(viewer, identity, rtc.TrackSource.SOURCE_CAMERA)
    assert publication.sid == state.local_media.camera.track_sid


async def test_the_camera_survives_a_full_reconnect(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    session = make_session(audio_input=None, audio_output=None, video_input=PatternVideoInput(320, 180))
    await session.start(wait_for_agent=False)
    await session.set_camera_enabled(True)
    first = session.state.local_media.camera.track_sid
    room = session.room
    assert room is not None
    await room.simulate_scenario(rtc.SimulateScenarioKind.SIMULATE_FULL_RECONNECT)
    state = await session.wait_until(
        lambda s: s.connection.status is ConnectionStatus.CONNECTED
        and s.local_media.camera.track_sid not in (None, first),
        timeout=20,
    )
    assert state.local_media.camera.enabled and state.local_media.camera.published
    viewer: Peer = await peer_factory(room_name)
    identity = state.connection.local_identity
    assert identity is not None
    publication = await video_of(viewer, identity, rtc.TrackSource.SOURCE_CAMERA)
    assert publication.sid == state.local_media.camera.track_sid and publication.track is not None
    assert close_to(bar_colours(await first_picture(publication.track, width=320)), PATTERN_COLOURS, tolerance=48)


async def test_a_frame_of_the_wrong_size_stops_the_track_with_words_and_the_session_goes_on(
    make_session: SessionFactory, room_name: str
) -> None:
    async def frames() -> AsyncIterator[Any]:
        for _ in range(5):
            yield np.zeros((180, 320, 4), dtype=np.uint8)
            await asyncio.sleep(0.05)
        yield np.zeros((100, 100, 4), dtype=np.uint8)

    session = make_session(
        audio_input=None, audio_output=None, video_input=VideoGeneratorInput(frames(), width=320, height=180)
    )
    await session.start(wait_for_agent=False)
    await session.set_camera_enabled(True)
    state = await session.wait_until(lambda s: s.local_media.camera.error is not None, timeout=10)
    camera = state.local_media.camera
    assert camera.error is not None and "shape (100, 100, 4)" in camera.error, camera.error
    assert not camera.enabled and not camera.published
    assert state.connection.status is ConnectionStatus.CONNECTED


async def test_ending_with_the_camera_on_leaves_no_task_thread_or_descriptor_behind(
    make_session: SessionFactory, room_name: str
) -> None:
    import gc
    import os
    import threading

    session = make_session(audio_input=None, audio_output=None, video_input=PatternVideoInput(320, 180))

    async def cycle() -> None:
        await session.start(wait_for_agent=False)
        await session.set_camera_enabled(True)
        assert session.state.local_media.camera.published
        await session.end()

    def usage() -> tuple[int, int, list[str]]:
        gc.collect()
        tasks = sorted(t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("lkstate-"))
        # Native threads that called back into Python show up as dummy threads: the
        # native runtime's fixed pool, not ours.
        ours = [t for t in threading.enumerate() if not isinstance(t, threading._DummyThread)]  # pyright: ignore[reportPrivateUsage]
        return len(ours), len(os.listdir("/proc/self/fd")), tasks

    await cycle()  # the first cycle loads what stays loaded (the native library, the executor)
    await asyncio.sleep(0.5)
    threads, fds, tasks = usage()
    assert tasks == []
    for _ in range(8):
        await cycle()
    await asyncio.sleep(0.5)
    after_threads, after_fds, after_tasks = usage()
    assert after_tasks == []
    assert after_threads <= threads, [t.name for t in threading.enumerate()]
    assert after_fds <= fds + 4, (fds, after_fds)
    camera = session.state.local_media.camera
    assert not camera.published and camera.track_sid is None
    assert camera.enabled, "the choice is kept for the next start"
