"""The TUI's screens for each situation a person meets, checked by what they read.

Each test puts the real app (headless) in front of a real, unconnected
:class:`lkstate.Session` whose store is fed the events a room would produce,
then asserts on the text on screen and where the parts of the screen are.
Screenshots land in test-artifacts/screenshots/ (SVG, and PNG when
``rsvg-convert`` is installed) for a person to look at.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lkstate import (
    DevelopmentTokenSource,
    LocalTrackState,
    PreConnectState,
    PreConnectStatus,
    Session,
    TrackSource,
)
from lkstate._core import events as ev
from lkstate_textual.app import VoiceAgentApp
from lkstate_textual.testing import save_screenshot, screen_text
from lkstate_textual.widgets import (
    AgentStatusIndicator,
    CameraNotice,
    ChatInput,
    ConnectButton,
    MessageBubble,
    MicrophoneNotice,
    ProblemsBar,
    TranscriptView,
)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
AGENT = "agent-7f3a"


def offline_session() -> Session:
    return Session(DevelopmentTokenSource("ws://127.0.0.1:9", "devkey", "secret"), agent_name="lkstate-demo")


def feed(session: Session, *events: ev.Event) -> None:
    for event in events:
        session.store.dispatch(event)


def connect_events(t: float = 1.0) -> list[ev.Event]:
    return [
        ev.StartRequested(at=t, requested_agent="lkstate-demo"),
        ev.RoomConnected(at=t + 0.1, room_name="demo-room", local_identity="ada", server_url="ws://127.0.0.1:7880"),
    ]


def agent_joins(state: str = "listening", t: float = 2.0) -> ev.Event:
    return ev.ParticipantJoined(
        at=t, identity=AGENT, name="", kind="agent",
        attributes=(("lk.agent.name", "lkstate-demo"), ("lk.agent.state", state)),
    )


async def show(app: VoiceAgentApp, pilot: Any) -> str:
    """Wait until the app shows the session's current snapshot; return the screen text."""
    for _ in range(100):
        if app.binding.state is app.session.state:
            break
        await pilot.pause(0.02)
    await pilot.pause()
    return screen_text(app)


async def test_before_connecting_the_screen_says_so_and_offers_to_connect() -> None:
    app = VoiceAgentApp(offline_session(), autoconnect=False, agent_name="lkstate-demo")
    async with app.run_test(size=(110, 32)) as pilot:
        text = await show(app, pilot)
        save_screenshot(app, "textual-01-not-connected", SCREENSHOTS)
        assert "Not connected" in text
        assert "Connect to start talking to the agent." in text
        assert "No messages yet" in text
        assert "Not connected: connect first to chat" in text
        assert str(app.query_one(ConnectButton).label) == "Connect"
        assert "talking to lkstate-demo" in text
        for key in ("f2", "f3", "f4", "^q"):
            assert key in text, f"the footer lists {key}"


async def test_the_layout_puts_status_on_top_conversation_in_the_middle_and_input_at_the_bottom() -> None:
    for size in ((80, 24), (140, 40)):
        app = VoiceAgentApp(offline_session(), autoconnect=False)
        async with app.run_test(size=size) as pilot:
            await show(app, pilot)
            status = app.query_one(AgentStatusIndicator).region
            transcript = app.query_one(TranscriptView).region
            side = app.query_one("#side").region
            chat = app.query_one(ChatInput).region
            screen = app.screen.region
            assert status.bottom <= transcript.y < transcript.bottom <= chat.y
            assert side.x >= transcript.right and side.y == transcript.y
            assert transcript.width >= 40, f"the conversation keeps room to read at {size}"
            for region in (status, transcript, side, chat):
                assert screen.contains_region(region), f"{region} fits the {size} terminal"
            assert app.query_one(ChatInput).has_focus, "typing goes straight to the chat input"


async def test_waiting_for_the_agent_and_pre_connect_buffering_read_differently() -> None:
    session = offline_session()
    app = VoiceAgentApp(session, autoconnect=False)
    async with app.run_test(size=(110, 32)) as pilot:
        feed(session, *connect_events())
        text = await show(app, pilot)
        assert "Waiting for the agent" in text
        assert "the agent has not joined yet" in text
        assert str(app.query_one(ConnectButton).label) == "Disconnect"

        feed(
            session,
            ev.LocalTrackChanged(at=1.5, source=TrackSource.MICROPHONE,
                                 track=LocalTrackState(enabled=True, device="default microphone")),
            ev.PreConnectChanged(at=1.6, preconnect=PreConnectState(status=PreConnectStatus.RECORDING, seconds=2.4)),
        )
        text = await show(app, pilot)
        save_screenshot(app, "textual-02-pre-connect-buffering", SCREENSHOTS)
        assert "Listening (buffering)" in text
        assert "what you say is kept and handed to the agent" in text
        assert "● Early speech: 2.4 s kept until the agent is ready." in text

        feed(
            session,
            agent_joins("listening"),
            ev.PreConnectChanged(at=2.5, preconnect=PreConnectState(
                status=PreConnectStatus.SENT, seconds=2.4, destination=AGENT)),
        )
        text = await show(app, pilot)
        assert "● Listening" in text
        assert f"✓ Early speech: 2.4 s handed over to {AGENT}." in text


async def test_a_conversation_shows_who_said_what_interim_speech_and_delivery() -> None:
    session = offline_session()
    app = VoiceAgentApp(session, autoconnect=False)
    async with app.run_test(size=(110, 34)) as pilot:
        feed(
            session, *connect_events(), agent_joins("speaking"),
            ev.ChatSendRequested(at=3.0, message_id="c1", text="What's the weather in Paris?", sender="ada"),
            ev.ChatSendSucceeded(at=3.1, message_id="c1"),
            ev.TranscriptReceived(at=3.5, sender=AGENT, segment_id="S1", stream_seq=1,
                                  text="The weather in Paris is sunny and 21 degrees.", final=True, closed=True),
            ev.ChatSendRequested(at=4.0, message_id="c2", text="And tomorrow?", sender="ada"),
            ev.ChatSendFailed(at=4.1, message_id="c2", error="Could not send the message: the room closed."),
            ev.ParticipantJoined(at=4.4, identity="grace", name="Grace", kind="standard"),
            ev.ChatReceived(at=4.5, sender="grace", stream_id="x1", text="Hi all, joining late."),
            ev.TranscriptReceived(at=5.0, sender=AGENT, segment_id="S2", stream_seq=2,
                                  text="Tomorrow looks", final=False),
        )
        text = await show(app, pilot)
        save_screenshot(app, "textual-03-conversation-styles", SCREENSHOTS)
        assert "You · typed  ✓ sent" in text
        assert "What's the weather in Paris?" in text
        assert "lkstate-demo · spoke" in text
        assert "The weather in Paris is sunny and 21 degrees." in text
        assert "✗ not sent" in text and "the room closed" in text
        assert "grace · typed" in text
        assert "Tomorrow looks …" in text and "(speaking…)" in text, "the agent is still saying it"
        assert "◆ Speaking" in text

        bubbles = app.query_one(TranscriptView).bubbles
        assert [b.has_class("-interim") for b in bubbles] == [False, False, False, False, True]
        assert [b.has_class("-user") for b in bubbles] == [True, False, True, False, False]
        assert bubbles[2].has_class("-failed")
        user, agent = bubbles[0].region, bubbles[1].region
        assert user.x > agent.x, "your messages are indented to the right of the agent's"

        feed(session, ev.TranscriptReceived(at=5.5, sender=AGENT, segment_id="S2", stream_seq=2,
                                            text=" will be rainy.", final=True, closed=True))
        text = await show(app, pilot)
        assert "Tomorrow looks will be rainy." in text
        assert not app.query_one(TranscriptView).bubbles[-1].has_class("-interim")


async def test_an_agent_that_never_came_shows_failed_with_the_reason() -> None:
    session = offline_session()
    app = VoiceAgentApp(session, autoconnect=False)
    async with app.run_test(size=(110, 30)) as pilot:
        feed(session, *connect_events(), ev.AgentWaitTimedOut(at=21.0, timeout=20.0))
        text = await show(app, pilot)
        save_screenshot(app, "textual-04-agent-failed-offline", SCREENSHOTS)
        reasons = session.state.agent.failure_reasons
        assert reasons
        assert "✗ Agent unavailable" in text
        assert "• " + reasons[0] in " ".join(text.split()) or reasons[0][:40] in text
        assert app.query_one(AgentStatusIndicator).has_class("-tone-error")


async def test_problems_show_in_a_bar_until_dismissed_with_f4() -> None:
    session = offline_session()
    app = VoiceAgentApp(session, autoconnect=False)
    async with app.run_test(size=(110, 30)) as pilot:
        feed(
            session, *connect_events(),
            ev.ProblemObserved(at=2.0, source="lk.transcription", message="Ignored a transcript chunk of 3 MB."),
            ev.ProblemObserved(at=2.1, source="connection", message="The connection was lost for 2 s."),
        )
        text = await show(app, pilot)
        save_screenshot(app, "textual-05-problems", SCREENSHOTS)
        bar = app.query_one(ProblemsBar)
        assert bar.display and bar.region.height > 0
        assert "⚠ 2 problems" in text
        assert "lk.transcription: Ignored a transcript chunk of 3 MB." in text
        await pilot.press("f4")
        text = await show(app, pilot)
        assert session.state.problems == ()
        assert "problems" not in text.split("Conversation")[-1].split("Type a message")[0]
        assert app.query_one(ProblemsBar).region.height == 0


async def test_a_long_conversation_keeps_only_the_latest_messages_on_screen() -> None:
    session = offline_session()
    app = VoiceAgentApp(session, autoconnect=False)
    async with app.run_test(size=(110, 30)) as pilot:
        feed(session, *connect_events(), agent_joins())
        t = time.time()
        feed(session, *(ev.ChatSendRequested(at=t + i, message_id=f"m{i}", text=f"message number {i}", sender="ada")
                        for i in range(450)))
        text = await show(app, pilot)
        view = app.query_one(TranscriptView)
        assert len(app.query(MessageBubble)) == view.max_messages == 300
        assert view.bubbles[-1].message.text == "message number 449"
        assert "message number 449" in text, "the view follows the newest message"
        view.scroll_home(animate=False)
        text = await show(app, pilot)
        assert "150 earlier messages not shown" in text


async def test_a_recorded_session_plays_back_and_commands_are_refused_without_breaking_the_app() -> None:
    from lkstate._session.recording import Replay

    replay = Replay(
        [
            *connect_events(),
            agent_joins("listening"),
            ev.ChatSendRequested(at=3.0, message_id="c1", text="Is this a recording?", sender="ada"),
            ev.ChatSendSucceeded(at=3.1, message_id="c1"),
            ev.TranscriptReceived(at=3.5, sender=AGENT, segment_id="S1", stream_seq=1,
                                  text="Yes, played back from a file.", final=True, closed=True),
        ],
        speed=float("inf"),
    )
    app = VoiceAgentApp(replay, agent_name="lkstate-demo")
    told: list[str] = []
    original_notify = app.notify

    def notify(message: str, **kwargs: Any) -> None:
        told.append(message)
        original_notify(message, **kwargs)

    app.notify = notify  # type: ignore[method-assign]
    async with app.run_test(size=(110, 30)) as pilot:
        for _ in range(100):
            if "Yes, played back from a file." in screen_text(app):
                break
            await pilot.pause(0.02)
        text = screen_text(app)
        assert "Is this a recording?" in text and "Yes, played back from a file." in text
        assert "● Listening" in text
        await pilot.press(*"hi", "enter", "f4")
        await pilot.pause(0.2)
        assert app.is_running
        assert len(told) == 2 and all("replay" in words.lower() for words in told), (
            f"both refusals are told to the person: {told}"
        )


class MicrophoneSession(Session):
    """A session whose microphone command only records the wish and reports it as the real one would.

    The wire behaviour of the microphone is the core's business (and its tests');
    this checks the toggle's wiring and words.
    """

    def __init__(self) -> None:
        super().__init__(DevelopmentTokenSource("ws://127.0.0.1:9", "devkey", "secret"))
        self.wishes: list[bool] = []

    async def set_microphone_enabled(self, enabled: bool) -> None:
        self.wishes.append(enabled)
        self.store.dispatch(ev.LocalTrackChanged(
            at=time.time(), source=TrackSource.MICROPHONE,
            track=LocalTrackState(enabled=enabled, published=enabled, device="USB mic" if enabled else None),
        ))


async def test_f2_turns_the_microphone_on_and_off_and_the_toggle_says_so() -> None:
    from lkstate_textual.widgets import MicrophoneToggle

    session = MicrophoneSession()
    app = VoiceAgentApp(session, autoconnect=False)
    async with app.run_test(size=(110, 30)) as pilot:
        feed(session, *connect_events(), agent_joins())
        await show(app, pilot)
        toggle = app.query_one(MicrophoneToggle)
        assert str(toggle.label) == "○ Mic off"
        await pilot.press("f2")
        await show(app, pilot)
        assert session.wishes == [True]
        assert str(toggle.label) == "● Mic on" and "USB mic" in str(toggle.tooltip)
        save_screenshot(app, "textual-06-microphone-on", SCREENSHOTS)
        await pilot.click(MicrophoneToggle)
        await show(app, pilot)
        assert session.wishes == [True, False]
        assert str(toggle.label) == "○ Mic off"

        feed(session, ev.LocalTrackChanged(
            at=time.time(), source=TrackSource.MICROPHONE,
            track=LocalTrackState(enabled=True, error="No microphone was found on this computer."),
        ))
        await show(app, pilot)
        assert str(toggle.label) == "✗ No microphone"
        assert toggle.tooltip == "No microphone was found on this computer."


async def test_a_session_without_a_microphone_input_says_so_when_f2_asks_for_one() -> None:
    session = Session(
        DevelopmentTokenSource("ws://127.0.0.1:9", "devkey", "secret"), agent_name="lkstate-demo", audio_input=None
    )
    app = VoiceAgentApp(session, autoconnect=False)
    told: list[str] = []
    original_notify = app.notify

    def notify(message: str, **kwargs: Any) -> None:
        told.append(message)
        original_notify(message, **kwargs)

    app.notify = notify  # type: ignore[method-assign]
    async with app.run_test(size=(110, 30)) as pilot:
        await show(app, pilot)
        await pilot.press("f2")
        for _ in range(100):
            if told:
                break
            await pilot.pause(0.02)
        assert len(told) == 1 and told[0].startswith("This session has no microphone input.")
        assert 'audio_input="default"' in told[0], "the toast says what to do"
        assert app.is_running and not session.state.local_media.microphone.enabled


class EndingSession(Session):
    """A real, unconnected session that remembers being ended."""

    def __init__(self) -> None:
        super().__init__(DevelopmentTokenSource("ws://127.0.0.1:9", "devkey", "secret"))
        self.ended = 0

    async def end(self) -> None:
        self.ended += 1
        await super().end()


async def test_ctrl_c_quits_and_ends_the_session() -> None:
    session = EndingSession()
    app = VoiceAgentApp(session, autoconnect=False)
    async with app.run_test(size=(110, 30)) as pilot:
        await show(app, pilot)
        assert app.query_one(ChatInput).has_focus
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert not app.is_running, "Ctrl+C quits, it does not just say how to quit"
    assert session.ended == 1


async def test_ctrl_c_with_text_selected_in_the_input_copies_it_instead_of_quitting() -> None:
    from textual.widgets.input import Selection

    session = EndingSession()
    app = VoiceAgentApp(session, autoconnect=False)
    async with app.run_test(size=(110, 30)) as pilot:
        await show(app, pilot)
        await pilot.press(*"hello")
        chat = app.query_one(ChatInput)
        chat.selection = Selection(0, 5)
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app.is_running and app.clipboard == "hello"
        assert session.ended == 0


async def test_f5_before_connecting_chooses_the_camera_which_goes_out_once_connected() -> None:
    app = VoiceAgentApp(offline_session(), autoconnect=False)
    async with app.run_test(size=(110, 30)) as pilot:
        text = await show(app, pilot)
        assert "○ Camera off" in text and "f5" in text, "the camera button and its key are on screen"
        await pilot.press("f5")
        for _ in range(100):
            if "◌ Camera on" in screen_text(app):
                break
            await pilot.pause(0.02)
        assert "◌ Camera on" in screen_text(app)
        assert app.session.state.local_media.camera.enabled and not app.session.state.local_media.camera.published
        assert str(app.query_one("#camera").tooltip) == "The camera is on; it is sent once connected."  # type: ignore[attr-defined]
        await pilot.press("f5")
        for _ in range(100):
            if "○ Camera off" in screen_text(app):
                break
            await pilot.pause(0.02)
        assert "○ Camera off" in screen_text(app)


async def test_a_broken_microphone_and_camera_each_say_why_under_the_status_and_go_when_fixed() -> None:
    session = offline_session()
    app = VoiceAgentApp(session, autoconnect=False)
    mic_error = "No microphone found: this machine has no audio input device."
    camera_error = "The camera input ended."
    async with app.run_test(size=(110, 30)) as pilot:
        feed(session, *connect_events())
        await show(app, pilot)
        assert not app.query_one(MicrophoneNotice).display and not app.query_one(CameraNotice).display
        feed(
            session,
            ev.LocalTrackChanged(at=2.0, source=TrackSource.MICROPHONE, track=LocalTrackState(error=mic_error)),
            ev.LocalTrackChanged(at=2.1, source=TrackSource.CAMERA, track=LocalTrackState(error=camera_error)),
        )
        text = " ".join((await show(app, pilot)).split())
        assert f"✗ Microphone: {mic_error} You can still type." in text
        assert f"✗ Camera: {camera_error}" in text
        for notice in (app.query_one(MicrophoneNotice), app.query_one(CameraNotice)):
            assert notice.display and notice.region.height > 0
        feed(session, ev.LocalTrackChanged(at=3.0, source=TrackSource.CAMERA, track=LocalTrackState(enabled=True)))
        await show(app, pilot)
        assert not app.query_one(CameraNotice).display, "the camera works again: its notice goes"
        assert app.query_one(MicrophoneNotice).display


async def test_the_earlier_conversation_shows_first_dimmed_and_says_where_it_came_from() -> None:
    from livekit.protocol.agent_pb import agent_session as pb

    from lkstate import Message, MessageKind, Role

    session = offline_session()
    app = VoiceAgentApp(session, autoconnect=False)
    earlier = Message(id="old-1", role=Role.USER, kind=MessageKind.CHAT, text="Book a table for two.", final=True,
                      sender="ada", first_seen=0.5, updated=0.5)
    greeting = pb.ChatMessage(id="item_g", role=pb.ASSISTANT,
                              content=[pb.ChatMessage.ChatContent(text="Hello! I am the lkstate demo agent.")])
    answer = pb.AgentSessionMessage(response=pb.SessionResponse(
        request_id="r1", get_chat_history=pb.SessionResponse.GetChatHistoryResponse(
            items=[pb.ChatContext.ChatItem(message=greeting)]))).SerializeToString()
    async with app.run_test(size=(110, 30)) as pilot:
        feed(
            session, *connect_events(), ev.HistoryRestored(at=1.2, messages=(earlier,)), agent_joins(),
            ev.AgentHistoryRequested(at=2.1, agent=AGENT, request_id="r1"),
            ev.AgentSessionPayload(at=2.2, sender=AGENT, payload=answer),
            ev.TranscriptReceived(at=3.0, sender=AGENT, segment_id="S1", stream_seq=1,
                                  text="How can I help today?", final=True, closed=True),
        )
        text = await show(app, pilot)
        save_screenshot(app, "textual-20-earlier-conversation", SCREENSHOTS)
        assert "You · typed · earlier session" in text and "Book a table for two." in text
        assert "lkstate-demo · spoken · before you joined" in text
        assert "Hello! I am the lkstate demo agent." in text
        assert "How can I help today?" in text
        bubbles = app.query_one(TranscriptView).bubbles
        assert [b.has_class("-earlier") for b in bubbles] == [True, True, False]
        assert bubbles[0].region.y < bubbles[1].region.y < bubbles[2].region.y
