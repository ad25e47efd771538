"""The Gradio web demo, used the way a person uses it: in a real browser.

The demo is served in this process on a free loopback port (Gradio's own
uvicorn thread), against the real livekit-server and, where a reply is
needed, the real LiveKit Agents ``AgentSession`` joined to the same room.
Debian's Chromium, headless, is driven through Playwright's Python package
pointed at ``/usr/bin/chromium`` (``executable_path``: no browser is ever
downloaded; each launch gets a fresh temporary profile). The tests type,
click and read the page; screenshots go to ``test-artifacts/screenshots/``:

- gradio-01-not-connected.png: the page as it opens;
- gradio-02-send-before-connect.png: Enter before Connect: a toast, the text kept;
- gradio-03-agent-replied.png: the real agent's reply, its tool call and usage;
- gradio-04-agent-unavailable.png: no agent came: red, with the reason;
- gradio-05-interim-speech-and-a-problem.png: speech still arriving (grey italics),
  early audio sent, the microphone on, a refused message under Problems;
- gradio-06-replay.png: a recorded session played back (``lkstate replay --ui gradio``);
- gradio-07-no-camera.png: the camera button on a machine without a camera: why, in words;
- gradio-08-camera-on.png: the camera on (a generated pattern), seen by the agent.
- gradio-09-rpc-and-expression.png: RPC calls between the app and the agent (one
  failed, in words) and how the speaking agent sounds, replayed from the wire's events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from livekit import rtc

from lkstate import AudioInput, ConnectionStatus, GeneratorInput
from lkstate.media import PATTERN_COLOURS, PatternVideoInput
from lkstate.agent_session import RpcDirection, RpcStatus
from lkstate.recording import read_recording, Replay
from lkstate._core import events as ev
from tests.harness.browser import REPO, ServeDemo, eventually, launching_chromium, open_tab, screenshot_path, status
from tests.harness.browser import serve_demo as serving_demo
from tests.harness.peer import wait_until
from tests.harness.server import LiveKitServer
from tests.harness.video import bar_colours, close_to, first_picture, video_of

from lkstate_gradio.app import build_demo, free_port

try:
    from playwright.async_api import expect
except ImportError:  # reported by the browser fixture, in words
    expect = None  # type: ignore[assignment]


pytestmark = [
    pytest.mark.timeout(90),
    # gradio's own queue analytics use a pandas option pandas 3 deprecates
    pytest.mark.filterwarnings("ignore::Warning:gradio.queueing"),
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Debian Chromium (a fresh temporary profile per launch)."""
    async with launching_chromium() as launch:
        yield await launch()


@pytest.fixture
async def serve_demo(livekit_server: LiveKitServer) -> AsyncIterator[ServeDemo]:
    """``await serve_demo(room_name=..., **build_demo_options)`` -> (demo, url), served until teardown."""
    async with serving_demo(livekit_server) as serve:
        yield serve


async def test_a_typed_question_gets_the_agents_reply_and_tool_call_on_the_page(
    serve_demo: ServeDemo, browser: Any, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    demo, url = await serve_demo(room_name=room_name, audio_input=None)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await open_tab(context, url)

    await expect(status(page)).to_have_attribute("data-agent-state", "disconnected")
    await expect(page.locator("#lk-status .lk-title")).to_have_text("Not connected")
    await expect(page.locator("#lk-send")).to_be_disabled()
    await page.screenshot(path=str(screenshot_path("gradio-01-not-connected.png")))
    await page.locator("#lk-input textarea").fill("too early")
    await page.locator("#lk-input textarea").press("Enter")
    await expect(page.get_by_text("Not connected yet: press Connect")).to_be_visible()
    await expect(page.locator("#lk-input textarea")).to_have_value("too early")  # kept, not lost
    await page.wait_for_timeout(600)  # the toast slides in; let the picture show it
    await page.screenshot(path=str(screenshot_path("gradio-02-send-before-connect.png")))

    await page.get_by_role("button", name="Connect", exact=True).click()
    await expect(status(page)).to_have_attribute("data-agent-state", "listening", timeout=20_000)
    await expect(page.locator("#lk-status .lk-title")).to_have_text("Listening")
    await expect(page.locator("#lk-send")).to_be_enabled()
    await expect(page.locator("#lk-connect")).to_be_disabled()

    (session,) = [demo.sessions.get(key) for key in demo.sessions.keys()]
    assert session is not None
    identity = session.state.connection.local_identity
    assert identity is not None
    await agent.wait_for_participant(identity)

    await page.locator("#lk-input textarea").fill("What's the weather in Paris?")
    await page.get_by_role("button", name="Send", exact=True).click()
    chat = page.locator("#lk-chat")
    await expect(chat).to_contain_text("What's the weather in Paris?")
    await expect(page.locator("#lk-input textarea")).to_have_value("")
    await expect(chat).to_contain_text("sunny and 21 degrees", timeout=20_000)
    await expect(chat).to_contain_text("✓ sent")
    await expect(page.locator("#lk-tools")).to_contain_text("get_weather")
    await expect(page.locator("#lk-tools .lk-tool")).to_have_attribute("data-status", "done", timeout=10_000)
    # The reply ends final: no interim styling is left in the transcript.
    await expect(page.locator("#lk-chat .lk-interim")).to_have_count(0, timeout=15_000)
    await page.screenshot(path=str(screenshot_path("gradio-03-agent-replied.png")))

    await page.get_by_role("button", name="Disconnect", exact=True).click()
    await expect(status(page)).to_have_attribute("data-agent-state", "disconnected", timeout=10_000)
    await expect(page.locator("#lk-status .lk-title")).to_have_text("Disconnected")
    await expect(page.locator("#lk-status .lk-detail")).to_have_text("You ended the session. Connect to talk again.")
    await expect(chat).to_contain_text("sunny and 21 degrees")  # the conversation stays on screen
    await context.close()


async def test_each_tab_is_its_own_session_and_closing_a_tab_ends_its_session(
    serve_demo: ServeDemo, browser: Any
) -> None:
    demo, url = await serve_demo(agent_connect_timeout=1.5, audio_input=None)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    first = await open_tab(context, url)
    second = await open_tab(context, url)
    await eventually(lambda: len(demo.sessions) == 2, what="a session for each tab")

    for page in (first, second):
        await page.get_by_role("button", name="Connect", exact=True).click()
    for page in (first, second):
        await expect(status(page)).to_have_attribute("data-connection", "connected", timeout=15_000)

    by_identity = {}
    for key in demo.sessions.keys():
        session = demo.sessions.get(key)
        assert session is not None
        by_identity[session.state.connection.local_identity] = (key, session)
    assert len(by_identity) == 2, "two tabs, two identities"
    rooms = {session.state.connection.room_name for _, session in by_identity.values()}
    assert len(rooms) == 2, "each tab has its own room"

    for page, text in ((first, "alpha from the first tab"), (second, "beta from the second tab")):
        await page.locator("#lk-input textarea").fill(text)
        await page.locator("#lk-input textarea").press("Enter")
    await expect(first.locator("#lk-chat")).to_contain_text("alpha from the first tab")
    await expect(second.locator("#lk-chat")).to_contain_text("beta from the second tab")
    assert "beta" not in await first.locator("#lk-chat").inner_text()
    assert "alpha" not in await second.locator("#lk-chat").inner_text()

    # No agent was ever dispatched here: each tab says so, with the reason.
    await expect(status(first)).to_have_attribute("data-agent-state", "failed", timeout=10_000)
    await expect(first.locator("#lk-status .lk-title")).to_have_text("Agent unavailable")
    await expect(first.locator("#lk-status .lk-reasons li")).not_to_have_count(0)
    await first.screenshot(path=str(screenshot_path("gradio-04-agent-unavailable.png")))

    first_identity = (await first.locator("#lk-status .lk-facts b").nth(1).inner_text()).strip()
    first_key, first_session = by_identity[first_identity]
    second_key, second_session = next(v for k, v in by_identity.items() if k != first_identity)

    # This machine has no camera (CI has none): the second tab's camera button says why, in words.
    await second.get_by_role("button", name="Turn camera on").click()
    await expect(second.locator("#lk-status .lk-camera")).to_have_text("No camera", timeout=10_000)
    await expect(second.locator("#lk-status .lk-camera-error")).to_contain_text("Camera: No camera")
    await expect(second.locator("#lk-status .lk-camera-error")).to_contain_text("PatternVideoInput")
    await expect(second.get_by_role("button", name="Turn camera on")).to_be_visible()
    await second.screenshot(path=str(screenshot_path("gradio-07-no-camera.png")))

    await first.close(run_before_unload=True)
    await eventually(lambda: first_key not in demo.sessions, timeout=15, what="the closed tab's session released")
    assert first_session.state.connection.status is ConnectionStatus.DISCONNECTED
    assert first_session.room is None
    assert second_key in demo.sessions
    assert second_session.state.connection.status is ConnectionStatus.CONNECTED
    await second.locator("#lk-input textarea").fill("still here")
    await second.locator("#lk-input textarea").press("Enter")
    await expect(second.locator("#lk-chat")).to_contain_text("still here")
    await context.close()


def silent_microphone() -> AudioInput:
    """A microphone that hears silence, paced in real time, for as long as it is read."""

    async def silence() -> AsyncIterator[bytes]:
        while True:
            yield bytes(480 * 2)
            await asyncio.sleep(0)

    return GeneratorInput(silence(), sample_rate=48_000)


async def test_the_microphone_and_camera_toggle_speech_still_arriving_is_set_apart_and_problems_can_be_dismissed(
    serve_demo: ServeDemo, browser: Any, room_name: str, peer_factory: Any
) -> None:
    agent = await peer_factory(room_name, "agent-scripted", kind="agent", attributes={"lk.agent.state": "listening"})
    demo, url = await serve_demo(
        room_name=room_name, audio_input=silent_microphone, video_input=lambda: PatternVideoInput(320, 180)
    )
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await open_tab(context, url)
    await page.get_by_role("button", name="Connect", exact=True).click()
    await expect(status(page)).to_have_attribute("data-agent-state", "listening", timeout=15_000)
    microphone = page.locator("#lk-status .lk-mic")
    await expect(microphone).to_have_text("Mic on", timeout=10_000)
    await expect(microphone).to_have_attribute("title", "The agent can hear you (GeneratorInput).")
    await page.get_by_role("button", name="Turn microphone off").click()
    await expect(microphone).to_have_text("Mic off")
    await page.get_by_role("button", name="Turn microphone on").click()
    await expect(microphone).to_have_text("Mic on")
    (key,) = demo.sessions.keys()
    session = demo.sessions.get(key)
    assert session is not None and session.state.connection.local_identity is not None
    user = session.state.connection.local_identity

    spoken = {"lk.segment_id": "SG_user_1", "lk.transcribed_track_id": "TR_mic", "lk.transcription_final": "true"}
    await agent.stream_text(["what is the weather like"], topic="lk.transcription", sender_identity=user,
                            attributes=spoken)
    reply = asyncio.ensure_future(agent.stream_text(
        ["It is sunny ", "with a light breeze ", "all afternoon."],
        topic="lk.transcription",
        attributes={"lk.segment_id": "SG_agent_1", "lk.transcription_final": "false"},
        close_attributes={"lk.transcription_final": "true"},
        delay=1.5,
    ))
    chat = page.locator("#lk-chat")
    await expect(chat).to_contain_text("what is the weather like")
    await expect(chat).to_contain_text("spoken")
    await expect(page.locator("#lk-chat .lk-interim")).to_contain_text("It is sunny")
    stranger = await peer_factory(room_name, "stranger")
    await stranger.send_bytes(b"not a session message", topic="lk.agent.session")
    await expect(page.locator("#lk-problems")).to_contain_text("stranger")
    await page.screenshot(path=str(screenshot_path("gradio-05-interim-speech-and-a-problem.png")))

    await reply
    await expect(chat).to_contain_text("all afternoon.")
    await expect(page.locator("#lk-chat .lk-interim")).to_have_count(0)
    await page.get_by_role("button", name="Dismiss problems").click()
    await expect(page.locator("#lk-problems")).to_contain_text("No problems.")

    camera = page.locator("#lk-status .lk-camera")
    await expect(camera).to_have_text("Camera off")
    await page.get_by_role("button", name="Turn camera on").click()
    await expect(camera).to_have_attribute("title", "The room sees your camera (test pattern 320×180 at 15 fps).",
                                           timeout=10_000)
    await expect(camera).to_have_text("Camera on")
    await expect(page.locator("#lk-status .lk-camera-error")).to_have_count(0)
    publication = await video_of(agent, user, rtc.TrackSource.SOURCE_CAMERA)
    assert publication.sid == session.state.local_media.camera.track_sid and publication.track is not None
    assert close_to(bar_colours(await first_picture(publication.track, width=320)), PATTERN_COLOURS, tolerance=48)
    await page.screenshot(path=str(screenshot_path("gradio-08-camera-on.png")))

    await page.get_by_role("button", name="Turn camera off").click()
    await expect(camera).to_have_text("Camera off")
    await wait_until(
        lambda: (p := agent.remote(user)) is not None
        and not any(t.source == rtc.TrackSource.SOURCE_CAMERA for t in p.track_publications.values()),
        timeout=10,
        message="the camera track to be gone for the agent",
    )
    await context.close()


async def test_a_recording_plays_back_in_every_tab_and_commands_are_refused_in_words(
    browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``lkstate replay --ui gradio FILE`` serves: no server, a replay per tab."""
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    header, events = read_recording(REPO / "examples" / "recordings" / "demo.jsonl")
    demo = build_demo(session_factory=lambda: Replay(events, header=header, speed=4.0), auto_connect=True)
    url = await asyncio.to_thread(lambda: demo.launch(port=free_port(), block=False, quiet=True))
    try:
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await open_tab(context, url)
        chat = page.locator("#lk-chat")
        await expect(chat).to_contain_text("The weather in Paris is sunny and 21 degrees.", timeout=20_000)
        await expect(page.locator("#lk-tools")).to_contain_text("get_weather")
        await expect(page.locator("#lk-status .lk-title")).to_have_text("Disconnected", timeout=10_000)
        await expect(page.locator("#lk-status .lk-detail")).to_have_text("You ended the session. Connect to talk again.")
        await page.get_by_role("button", name="Dismiss problems").click()
        await expect(page.get_by_text("A replay is read-only: it cannot dismiss problems.")).to_be_visible()
        await page.wait_for_timeout(600)  # the toast slides in; let the picture show it
        await page.screenshot(path=str(screenshot_path("gradio-06-replay.png")))

        second = await open_tab(context, url)
        await expect(second.locator("#lk-chat")).to_contain_text("Hello! I am the lkstate demo agent.", timeout=20_000)
        await eventually(lambda: len(demo.sessions) == 2, what="a replay for each tab")
        replays = [demo.sessions.get(key) for key in demo.sessions.keys()]
        assert replays[0] is not replays[1]
        await context.close()
    finally:
        await asyncio.to_thread(demo.close)


def rpc_and_expression_events() -> list[ev.Event]:
    """What the wire emits when an agent's tool asks the app, the app's call fails, and the agent answers warmly."""
    at = 1_800_000_000.0
    agent, user = "agent-AJ_rpc", "user-rpc"
    return [
        ev.StartRequested(at=at),
        ev.RoomConnected(at=at + 0.1, room_name="rpc-room", local_identity=user, server_url="ws://127.0.0.1:7880"),
        ev.ParticipantJoined(at=at + 0.2, identity=agent, name="", kind="agent",
                             attributes=(("lk.agent.name", "lkstate-demo"), ("lk.agent.state", "listening"))),
        ev.RpcMethodsChanged(at=at + 0.2, methods=("get_location",)),
        ev.RpcCallStarted(at=at + 0.3, call_id="rpc/in/1", direction=RpcDirection.INCOMING, method="get_location",
                          caller=agent, callee=user),
        ev.RpcCallFinished(at=at + 0.304, call_id="rpc/in/1", status=RpcStatus.SUCCEEDED),
        ev.RpcCallStarted(at=at + 0.4, call_id="rpc/out/1", direction=RpcDirection.OUTGOING, method="agent.nope",
                          caller=user, callee=agent),
        ev.RpcCallFinished(at=at + 0.42, call_id="rpc/out/1", status=RpcStatus.FAILED, error_code=1400,
                           error=f"{agent!r} has no RPC method 'agent.nope' (or does not let this app call it)."),
        ev.ParticipantAttributesChanged(at=at + 0.5, identity=agent,
                                        attributes=(("lk.agent.name", "lkstate-demo"), ("lk.agent.state", "speaking"))),
        ev.TranscriptReceived(at=at + 0.6, sender=agent, segment_id="seg-1", stream_seq=1, text="You are in Lisbon!",
                              final=True, closed=True,
                              attributes=(("lk.expression", '{"expression": "warm surprise", "mood": "surprised"}'),
                                          ("lk.segment_id", "seg-1"))),
    ]


async def test_rpc_calls_and_how_the_agent_sounds_show_on_the_page(browser: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    events = rpc_and_expression_events()
    demo = build_demo(session_factory=lambda: Replay(events, speed=4.0), auto_connect=True)
    url = await asyncio.to_thread(lambda: demo.launch(port=free_port(), block=False, quiet=True))
    try:
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await open_tab(context, url)
        rpc = page.locator("#lk-tools .lk-rpc")
        await expect(page.locator("#lk-status .lk-expression")).to_have_text(
            "sounds surprised (warm surprise)", timeout=20_000
        )
        await expect(rpc.locator(".lk-panel-title")).to_have_text("RPC · 2 calls")
        calls = rpc.locator(".lk-rpc-call")
        await expect(calls).to_have_count(2)
        await expect(calls.nth(0)).to_have_attribute("data-status", "failed")
        await expect(calls.nth(0)).to_contain_text("app → agent: agent.nope")
        await expect(calls.nth(0).locator(".lk-rpc-error")).to_have_text(
            "'agent-AJ_rpc' has no RPC method 'agent.nope' (or does not let this app call it)."
        )
        await expect(calls.nth(1)).to_contain_text("agent → app: get_location")
        await expect(calls.nth(1).locator(".lk-took")).to_have_text("4 ms")
        await expect(page.locator("#lk-chat")).to_contain_text("spoken · sounds surprised (warm surprise)")
        # The reason is red in the browser as in the other front ends, not only in the markup.
        colour = await calls.nth(0).locator(".lk-rpc-error").evaluate("e => getComputedStyle(e).color")
        assert colour == "rgb(220, 38, 38)", colour
        await page.screenshot(path=str(screenshot_path("gradio-09-rpc-and-expression.png")))
        await context.close()
    finally:
        await asyncio.to_thread(demo.close)
