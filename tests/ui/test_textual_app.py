"""The terminal client, used as a person would, against a real server and a real agent.

Pilot drives the real TUI (headless): it connects through a real
livekit-server to a real livekit-agents ``AgentSession`` running the demo
agent, keys are pressed, and every check reads the screen. Screenshots of the
key moments go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.message import Message

from livekit import rtc

from lkstate import AgentStatus, DevelopmentTokenSource, Role, Session, SessionState
from lkstate.media import PATTERN_COLOURS, PatternVideoInput
from lkstate._media.audio import GeneratorInput
from lkstate_textual import SessionStateChanged, StateWidget
from lkstate_textual.app import VoiceAgentApp
from lkstate_textual.testing import save_screenshot, screen_text
from lkstate_textual.widgets import (
    CameraNotice,
    CameraToggle,
    ConnectButton,
    MicrophoneToggle,
    RpcPanel,
    ToolCallsPanel,
    UsagePanel,
)
from lkstate.agent_session import RpcInvocation
from lkstate.demo_agent import ScriptedLLM
from lkstate.errors import RpcCallError
from lkstate.ui import describe_rpc_call
from tests.harness.agent import WHERE_AM_I_RULE, RpcAgent
from tests.harness.peer import Peer, wait_until
from tests.harness.server import LiveKitServer
from tests.harness.sessions import SessionFactory, agent_sees_user
from tests.harness.video import bar_colours, close_to, first_picture, video_of

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
SIZE = (120, 36)


@pytest.fixture(autouse=True)
def keys_do_not_wait_for_a_silent_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let Pilot's key presses proceed while LiveKit's native threads hum along.

    Pilot waits after each key until the process looks idle (under 5 % CPU
    over 20 ms), giving up after a second. The in-process agent and the two
    rooms' WebRTC threads keep the process just above that, so every key would
    cost a second. A 25 % threshold still waits for Textual's own work.
    """
    import textual._wait

    monkeypatch.setattr(textual._wait, "SLEEP_IDLE", textual._wait.SLEEP_GRANULARITY / 4, raising=False)


@pytest.fixture
def make_session(make_session: SessionFactory) -> SessionFactory:
    """The shared factory, without a microphone unless a test gives one: the same on a laptop as in CI."""
    return functools.partial(make_session, audio_input=None)


async def screen_shows(app: VoiceAgentApp, pilot: Any, *words: str, timeout: float = 20.0) -> str:
    """Wait until every one of ``words`` is on the screen; return the screen text."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    text = ""
    while loop.time() < deadline:
        text = screen_text(app)
        if all(word in text for word in words):
            await pilot.pause(0.1)  # let the layout that follows the change settle
            return screen_text(app)
        await pilot.pause(0.05)
    missing = [word for word in words if word not in text]
    raise AssertionError(f"the screen never showed {missing!r}; it shows:\n{text}")


class StatusLog:
    """Every snapshot message the app received, as agent statuses in order."""

    def __init__(self) -> None:
        self.statuses: list[AgentStatus] = []

    def __call__(self, message: Message) -> None:
        if isinstance(message, SessionStateChanged):
            status = message.state.agent.status
            if not self.statuses or self.statuses[-1] is not status:
                self.statuses.append(status)


async def test_a_person_connects_chats_asks_for_the_weather_and_disconnects(
    make_session: Callable[..., Session], room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    session = make_session()
    app = VoiceAgentApp(session, agent_name="lkstate-demo")
    log = StatusLog()
    async with app.run_test(size=SIZE, message_hook=log) as pilot:
        await screen_shows(app, pilot, "● Listening", "lkstate-demo", "Disconnect")
        save_screenshot(app, "textual-10-live-connected", SCREENSHOTS)
        await agent_sees_user(agent, session)

        await pilot.press(*"hello there")
        assert "hello there" in screen_text(app), "what is typed shows in the input"
        await pilot.press("enter")
        text = await screen_shows(app, pilot, "You · typed  ✓ sent", "You said: hello there")
        assert app.query_one("#chat-input").value == "", "the input is cleared once sent"  # type: ignore[attr-defined]
        save_screenshot(app, "textual-11-live-reply", SCREENSHOTS)

        await pilot.press(*"What's the weather in Paris?")
        await pilot.press("enter")
        text = await screen_shows(
            app, pilot, "The weather in Paris is sunny and 21 degrees.", "get_weather  done", "city: Paris"
        )
        await screen_shows(app, pilot, "LLM", "lkstate/scripted", "out tokens")
        await session.wait_until(lambda s: s.agent.status is AgentStatus.LISTENING, timeout=15)
        text = await screen_shows(app, pilot, "● Listening")
        save_screenshot(app, "textual-12-live-tool-call-and-usage", SCREENSHOTS)
        assert app.query_one(ToolCallsPanel).has_slice and app.query_one(UsagePanel).has_slice
        replies = [m for m in session.state.messages if m.role is Role.AGENT and m.final]
        assert len(replies) == 2

        await pilot.press("f3")
        text = await screen_shows(app, pilot, "Disconnected", "You ended the session.")
        assert str(app.query_one(ConnectButton).label) == "Connect"
        assert "The weather in Paris is sunny" in text, "the conversation stays on screen after leaving"
        assert "lkstate-demo · spoke" in text, "and keeps the agent's name on its messages"
        save_screenshot(app, "textual-13-live-disconnected", SCREENSHOTS)

    assert AgentStatus.LISTENING in log.statuses
    assert AgentStatus.SPEAKING in log.statuses, "the agent was seen speaking its reply"
    assert log.statuses[-1] is AgentStatus.DISCONNECTED


def agent_said(text: str) -> Callable[[SessionState], bool]:
    return lambda s: any(m.role is Role.AGENT and m.final and m.text.strip() == text for m in s.messages)


def _in_panel(screen: str) -> str:
    """The screen's lines cut to the RPC panel's column, border and padding left out."""
    lines = [line for line in screen.splitlines() if "RPC ·" in line]
    start = lines[0].index("RPC ·") - 3 if lines else 0
    return "\n".join(line[start + 2:].rstrip(" │").rstrip() for line in screen.splitlines())


async def test_an_agent_tool_asking_the_app_through_rpc_shows_in_the_rpc_panel_and_the_reply_how_it_sounds(
    make_session: Callable[..., Session], room_name: str, agent_factory: Any
) -> None:
    # The real AgentSession's function tool calls the app's get_location over
    # RPC; the model then says the answer with expressive markup, which the
    # framework turns into lk.expression on the reply.
    llm = ScriptedLLM(
        tool_rules=(WHERE_AM_I_RULE,),
        follow_up=lambda output: f'<expression value="warm surprise"/> {output.output}',
        token_delay=0.01,
    )
    agent = await agent_factory(room_name, llm=llm, agent=RpcAgent())
    session = make_session()

    def get_location(invocation: RpcInvocation) -> str:
        return "Lisbon"

    session.register_rpc_method("get_location", get_location)
    app = VoiceAgentApp(session, agent_name="lkstate-demo")
    async with app.run_test(size=SIZE) as pilot:
        await screen_shows(app, pilot, "● Listening")
        await agent_sees_user(agent, session)
        assert not app.query_one(RpcPanel).display, "no call yet: no RPC panel to clutter the screen"
        assert "RPC" not in screen_text(app)

        await pilot.press(*"Where am I?")
        await pilot.press("enter")
        # While the agent says it: how it sounds, beside its status and on its words.
        await screen_shows(app, pilot, "◆ Speaking   ♪ sounds surprised (warm surprise)",
                           "lkstate-demo · spoken · sounds surprised (warm surprise)")
        save_screenshot(app, "textual-13-live-rpc-and-expression", SCREENSHOTS)
        await session.wait_until(agent_said("You are in Lisbon."), timeout=20)
        text = await screen_shows(
            app, pilot, "● Listening", "RPC · 1 call", "✓ agent → app: get_location", "This app answers get_location.",
            "lkstate-demo · spoken · sounds surprised (warm surprise)",
        )
        assert "♪" not in text, "once the turn is said, the indicator stops saying how it sounded; the message keeps it"
        assert agent.agent.rpc_answers == ["Lisbon"]
        (call,) = session.state.rpc.calls
        assert call.duration is not None
        took = describe_rpc_call(call).took
        assert took is not None and took.endswith("ms")
        assert f"✓ agent → app: get_location\n  ok · {took}" in _in_panel(text)
        assert "<expression" not in text, "the markup is for the voice, not the screen"

        # The app calls the agent: a method it does not have fails, in words, on screen.
        with pytest.raises(RpcCallError):
            await session.perform_rpc("agent.nope", timeout=5)
        text = await screen_shows(app, pilot, "RPC · 2 calls", "✗ app → agent: agent.nope", "has no RPC method")
        assert "✗ app → agent: agent.nope\n  failed ·" in _in_panel(text)
        assert text.index("agent.nope") < text.index("agent → app: get_location"), "newest first"
        save_screenshot(app, "textual-14-live-rpc-failed", SCREENSHOTS)


async def test_an_agent_that_does_not_come_shows_failed_with_the_reason_and_recovers_when_it_joins(
    make_session: Callable[..., Session], room_name: str, agent_factory: Any
) -> None:
    session = make_session(agent_connect_timeout=1.5)
    app = VoiceAgentApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await screen_shows(app, pilot, "Waiting for the agent", "the agent has not joined yet")
        save_screenshot(app, "textual-14-live-waiting-for-agent", SCREENSHOTS)

        text = await screen_shows(app, pilot, "✗ Agent unavailable", "No agent joined within 1.5 s")
        assert "Still connected" in text
        save_screenshot(app, "textual-15-live-agent-failed", SCREENSHOTS)

        await agent_factory(room_name)
        text = await screen_shows(app, pilot, "● Listening")
        assert "Agent unavailable" not in text


async def test_a_session_that_cannot_reach_the_server_says_why_and_stays_usable(
    make_session: Callable[..., Session], livekit_server: LiveKitServer
) -> None:
    tokens = DevelopmentTokenSource("ws://127.0.0.1:9", livekit_server.api_key, livekit_server.api_secret)
    session = Session(tokens)
    app = VoiceAgentApp(session)
    async with app.run_test(size=SIZE) as pilot:
        text = await screen_shows(app, pilot, "Could not connect", "ws://127.0.0.1:9", timeout=30)
        save_screenshot(app, "textual-16-live-server-unreachable", SCREENSHOTS)
        assert str(app.query_one(ConnectButton).label) == "Connect"
        await pilot.press(*"anyone?")
        await pilot.press("enter")
        assert app.query_one("#chat-input").value == "anyone?", "nothing typed is lost"  # type: ignore[attr-defined]
        assert app.is_running
    await session.end()


class Exploding(StateWidget[int]):
    """A buggy widget: raises while rendering as soon as there is a message."""

    def select(self, state: SessionState) -> int:
        return len(state.messages)

    def render_slice(self, value: int) -> str:
        if value:
            raise ZeroDivisionError("a bug in someone's widget")
        return "nothing to draw yet"


async def test_a_widget_that_raises_while_rendering_does_not_break_the_session_or_the_app(
    make_session: Callable[..., Session], room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    session = make_session()
    app = VoiceAgentApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await app.query_one("#side").mount(Exploding(), before=0)
        await screen_shows(app, pilot, "● Listening", "nothing to draw yet")
        await agent_sees_user(agent, session)
        await pilot.press(*"still there?")
        await pilot.press("enter")
        text = await screen_shows(app, pilot, "You said: still there?", "Exploding could not draw this")
        assert "ZeroDivisionError" in text
        assert app.is_running
        assert not any(p.source == "subscriber" for p in session.state.problems)
        assert app.query_one(Exploding).render_failures >= 1


def quiet_voice(seconds: float = 60.0, rate: int = 48000) -> GeneratorInput:
    """A microphone that hears a faint hum, paced like a real one."""
    import math

    frame = b"".join(int(300 * math.sin(2 * math.pi * 220 * n / rate)).to_bytes(2, "little", signed=True)
                     for n in range(rate // 100))
    return GeneratorInput((frame for _ in range(int(seconds * 100))), sample_rate=rate, realtime=True)


async def test_audio_captured_before_the_agent_is_ready_shows_as_buffering_then_is_handed_over(
    make_session: Callable[..., Session], room_name: str, agent_factory: Any
) -> None:
    session = make_session(audio_input=quiet_voice())
    app = VoiceAgentApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await screen_shows(app, pilot, "Listening (buffering)", "● Early speech:")
        save_screenshot(app, "textual-17-live-pre-connect-buffering", SCREENSHOTS)

        agent = await agent_factory(room_name)
        text = await screen_shows(app, pilot, "● Listening", "● Mic on", f"handed over to {agent.identity}")
        save_screenshot(app, "textual-18-live-buffer-sent-mic-on", SCREENSHOTS)
        assert "Microphone:" not in text, "no microphone complaint when it works"

        await pilot.press("f2")
        await session.wait_until(lambda s: not s.local_media.microphone.enabled, timeout=10)
        text = await screen_shows(app, pilot, "○ ")
        assert str(app.query_one(MicrophoneToggle).label) in ("○ Mic off", "○ Mic muted")


async def test_f5_turns_the_camera_on_for_the_room_to_see_and_off_again(
    make_session: Callable[..., Session], room_name: str, peer_factory: Any
) -> None:
    session = make_session(video_input=PatternVideoInput(320, 180), agent_connect_timeout=None)
    app = VoiceAgentApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await screen_shows(app, pilot, "Waiting for the agent", "○ Camera off")
        viewer: Peer = await peer_factory(room_name)
        identity = session.state.connection.local_identity
        assert identity is not None

        await pilot.press("f5")
        text = await screen_shows(app, pilot, "● Camera on")
        camera = session.state.local_media.camera
        assert camera.enabled and camera.published and camera.error is None
        assert "Camera:" not in text, "no camera complaint when it works"
        assert app.query_one(CameraToggle).tooltip == "The room sees your camera (test pattern 320×180 at 15 fps)."
        publication = await video_of(viewer, identity, rtc.TrackSource.SOURCE_CAMERA)
        assert publication.sid == camera.track_sid and publication.track is not None
        assert close_to(bar_colours(await first_picture(publication.track, width=320)), PATTERN_COLOURS, tolerance=48)
        save_screenshot(app, "textual-19-live-camera-on", SCREENSHOTS)

        await pilot.click("#camera")  # the button does what the key does
        await screen_shows(app, pilot, "○ Camera off")
        assert not session.state.local_media.camera.published
        await wait_until(
            lambda: (p := viewer.remote(identity)) is not None
            and not any(t.source == rtc.TrackSource.SOURCE_CAMERA for t in p.track_publications.values()),
            timeout=10,
            message="the camera track to be gone for the viewer",
        )


async def test_without_a_camera_f5_says_why_in_words_and_the_session_goes_on(
    make_session: Callable[..., Session],
) -> None:
    # This machine has no camera (CI has none): "default" cannot open one.
    session = make_session(agent_connect_timeout=None, video_input="default")
    app = VoiceAgentApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await screen_shows(app, pilot, "Waiting for the agent", "○ Camera off")
        assert not app.query_one(CameraNotice).display, "no notice while nothing is wrong"
        await pilot.press("f5")
        text = await screen_shows(app, pilot, "✗ No camera", "✗ Camera: No camera")
        assert "PatternVideoInput" in " ".join(text.split()), "the notice says what to do instead"
        assert str(app.query_one(ConnectButton).label) == "Disconnect", "still connected"
        notice = app.query_one(CameraNotice)
        assert notice.display and notice.region.height >= 2, "the notice is shown, in full"
        save_screenshot(app, "textual-20-live-no-camera", SCREENSHOTS)
