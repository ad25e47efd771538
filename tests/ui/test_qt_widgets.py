"""The Qt widget kit, fed snapshots built by hand.

The wire tests (``test_qt_app.py``) show the widgets following a real
session; these pin down what each widget shows for states a local test server
and agent do not reach on demand: interim speech, pre-connect buffering, a
missing microphone, running and failed tool calls, several problems.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import attrs
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel
from pytestqt.qtbot import QtBot

from lkstate import (
    AgentState,
    AgentStatus,
    ConnectionState,
    ConnectionStatus,
    DeliveryStatus,
    DevelopmentTokenSource,
    LocalMedia,
    LocalTrackState,
    Message,
    MessageKind,
    Messages,
    PreConnectState,
    PreConnectStatus,
    Problem,
    Role,
    Session,
    SessionState,
)
from lkstate._core.remote_state import LLMUsage, RemoteSessionState, SessionUsage, STTUsage, ToolCall, ToolCalls, TTSUsage
from lkstate_qt import (
    AgentStateIndicator,
    MicrophoneToggle,
    PreConnectIndicator,
    ProblemsBar,
    SessionBridge,
    ToolCallsPanel,
    TranscriptView,
)
from lkstate_qt.app import MainWindow
from lkstate.agent_session import RpcDirection, RpcStatus
from lkstate.lowlevel import reduce
from lkstate._core import events as ev

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def message(
    id: str, role: Role, text: str, *, final: bool = True, kind: MessageKind = MessageKind.TRANSCRIPT,
    delivery: DeliveryStatus | None = None, error: str | None = None,
) -> Message:
    return Message(
        id=id, role=role, kind=kind, text=text, final=final, sender="user-1" if role is Role.USER else "agent-1",
        first_seen=1_700_000_000.0, updated=1_700_000_000.0, delivery=delivery, error=error,
    )


def connected(**changes: object) -> SessionState:
    state = SessionState(
        connection=ConnectionState(status=ConnectionStatus.CONNECTED, room_name="kitchen", local_identity="user-1",
                                   server_url="ws://127.0.0.1:7880"),
        agent=AgentState(status=AgentStatus.LISTENING, identity="agent-1", name="lkstate-demo"),
    )
    return attrs.evolve(state, **changes)


def test_interim_speech_is_styled_apart_from_final_text_until_it_is_final(qtbot: QtBot) -> None:
    view = TranscriptView()
    qtbot.addWidget(view)
    interim = connected(messages=Messages([
        message("m1", Role.AGENT, "Hello! How can I help?"),
        message("m2", Role.USER, "what is the wea", final=False),
    ]))
    view.render_state(interim)
    assert view.bubble_texts() == (("agent", "Hello! How can I help?", False), ("user", "what is the wea", True))
    bubble = view._bubbles[1]  # pyright: ignore[reportPrivateUsage]
    assert "italic" in bubble.styleSheet() and "dashed" in bubble.styleSheet()
    assert view.header_texts()[1].startswith("You · spoken · speaking… · ")

    final = connected(messages=Messages([
        message("m1", Role.AGENT, "Hello! How can I help?"),
        message("m2", Role.USER, "what is the weather in Paris", final=True),
    ]))
    view.render_state(final)
    assert view.bubble_texts()[1] == ("user", "what is the weather in Paris", False)
    assert view._bubbles[1] is bubble, "a growing message updates its bubble in place"  # pyright: ignore[reportPrivateUsage]
    assert "italic" not in bubble.styleSheet()


def test_typed_chat_shows_whether_it_was_sent(qtbot: QtBot) -> None:
    view = TranscriptView()
    qtbot.addWidget(view)

    def typed(delivery: DeliveryStatus, error: str | None = None) -> SessionState:
        return connected(messages=Messages([
            message("c1", Role.USER, "hi", kind=MessageKind.CHAT, delivery=delivery, error=error)
        ]))

    view.render_state(typed(DeliveryStatus.SENDING))
    assert view.header_texts()[0].endswith("sending…")
    view.render_state(typed(DeliveryStatus.FAILED, "Could not send the message: gone."))
    assert "not sent" in view.header_texts()[0]
    assert view._bubbles[0].error.text() == "Could not send the message: gone."  # pyright: ignore[reportPrivateUsage]


def test_a_new_conversation_replaces_the_old_one_on_screen(qtbot: QtBot) -> None:
    view = TranscriptView()
    qtbot.addWidget(view)
    view.render_state(connected(messages=Messages([message("a", Role.USER, "one"), message("b", Role.AGENT, "two")])))
    view.render_state(connected(messages=Messages([message("c", Role.USER, "three")])))
    assert view.bubble_texts() == (("user", "three", False),)


def test_the_indicator_says_buffering_and_failure_reasons_in_words(qtbot: QtBot) -> None:
    indicator = AgentStateIndicator()
    qtbot.addWidget(indicator)
    indicator.render_state(SessionState(
        connection=ConnectionState(status=ConnectionStatus.CONNECTING),
        agent=AgentState(status=AgentStatus.PRE_CONNECT_BUFFERING),
    ))
    assert indicator.title.text() == "Listening (buffering)"
    indicator.render_state(connected(agent=AgentState(
        status=AgentStatus.FAILED, failure_reasons=("The agent left the room.",)
    )))
    assert indicator.title.text() == "Agent unavailable"
    assert indicator.detail.text() == "The agent left the room. Still connected: an agent that joins later is picked up."
    assert indicator.dot.color == "#dc2626"


def test_the_preconnect_indicator_shows_what_happens_to_early_speech_and_hides_when_idle(qtbot: QtBot) -> None:
    pill = PreConnectIndicator()
    qtbot.addWidget(pill)
    pill.show()
    pill.render_state(connected(preconnect=PreConnectState(status=PreConnectStatus.RECORDING, seconds=1.5)))
    assert pill.isVisible() and "Early speech" in pill.label.text() and "1.5 s kept" in pill.label.text()
    pill.render_state(connected(preconnect=PreConnectState(status=PreConnectStatus.SENT, seconds=2.0,
                                                           destination="agent-1")))
    assert "handed over to agent-1" in pill.label.text()
    pill.render_state(connected())
    assert not pill.isVisible()


def test_the_microphone_toggle_follows_the_state_not_the_click(qtbot: QtBot) -> None:
    toggle = MicrophoneToggle()
    qtbot.addWidget(toggle)
    toggle.render_state(connected())
    with qtbot.waitSignal(toggle.requested) as asked:
        qtbot.mouseClick(toggle, Qt.MouseButton.LeftButton)
    assert asked.args == [True]
    assert toggle.text().endswith("Mic off") and not toggle.isChecked(), "nothing changes until the state does"
    on = LocalMedia(microphone=LocalTrackState(enabled=True, published=True, device="USB Mic"))
    toggle.render_state(connected(local_media=on))
    assert toggle.text().endswith("Mic on") and toggle.isChecked()
    missing = LocalMedia(microphone=LocalTrackState(error="No audio input device was found."))
    toggle.render_state(connected(local_media=missing))
    assert toggle.text().endswith("No microphone")
    assert toggle.toolTip() == "No audio input device was found."


def test_the_problems_bar_shows_the_newest_problem_and_asks_to_dismiss(qtbot: QtBot) -> None:
    bar = ProblemsBar()
    qtbot.addWidget(bar)
    bar.show()
    problems = (Problem(at=1.0, source="lk.chat", message="Refused a message of 2 MB."),
                Problem(at=2.0, source="agent-1", message="The agent sent garbage."))
    bar.render_state(connected(problems=problems))
    assert bar.isVisible() and "The agent sent garbage." in bar.label.text() and "1 more" in bar.label.text()
    with qtbot.waitSignal(bar.dismissed):
        qtbot.mouseClick(bar.dismiss_button, Qt.MouseButton.LeftButton)
    bar.render_state(connected())
    assert not bar.isVisible()
    refused = "Could not connect to ws://x: refused"
    bar.render_state(SessionState(connection=ConnectionState(error=refused),
                                  problems=(Problem(at=3.0, source="connection", message=refused),)))
    assert not bar.isVisible(), "the indicator already says it"


def test_tool_calls_show_their_progress_outcome_and_the_usage_reported(qtbot: QtBot) -> None:
    panel = ToolCallsPanel()
    qtbot.addWidget(panel)
    calls = ToolCalls([
        ToolCall(call_id="c1", name="get_weather", arguments='{"city": "Paris"}', status="done",
                 output="Sunny, 21 degrees."),
        ToolCall(call_id="c2", name="book_table", arguments='{"people": 2}', status="running",
                 progress=("Calling the restaurant…",)),
        ToolCall(call_id="c3", name="send_mail", arguments="{}", status="error", is_error=True,
                 output="The mail server refused."),
    ])
    usage = SessionUsage(models=(LLMUsage(provider="lkstate", model="scripted", input_tokens=44, output_tokens=10),
                                 TTSUsage(provider="lkstate", model="tone", characters_count=45, audio_duration=2.8),
                                 STTUsage(provider="lkstate", model="scripted", audio_duration=3.25)))
    panel.render_state(connected(remote=RemoteSessionState(tool_calls=calls, usage=usage)))
    assert panel.call_texts() == (
        ('get_weather(city="Paris")', "Sunny, 21 degrees."),
        ("book_table(people=2)", "Calling the restaurant…"),
        ("send_mail()", "The mail server refused."),
    )
    assert panel.usage_texts() == (
        "LLM lkstate/scripted", "44 in · 10 out tokens",
        "TTS lkstate/tone", "45 chars · 2.8 s audio",
        "STT lkstate/scripted", "3.2 s audio heard",
    )


def composed_window(qtbot: QtBot) -> tuple[SessionBridge, MainWindow]:
    """The app's window, shown, on a session that never connects: the test hands it snapshots."""
    bridge = SessionBridge(Session(DevelopmentTokenSource("ws://127.0.0.1:9", "devkey", "secret")))
    window = MainWindow(bridge, title="lkstate kit")
    qtbot.addWidget(window)
    window.resize(1000, 680)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: bridge.delivered >= 1)
    return bridge, window


def test_the_window_shows_early_listening_a_running_tool_and_problems(qtbot: QtBot) -> None:
    """A screenshot of the states the wire tests cannot reach on demand, composed by hand."""
    bridge, window = composed_window(qtbot)
    state = SessionState(
        connection=ConnectionState(status=ConnectionStatus.CONNECTING, room_name="kitchen",
                                   server_url="ws://127.0.0.1:7880"),
        agent=AgentState(status=AgentStatus.PRE_CONNECT_BUFFERING),
        local_media=LocalMedia(microphone=LocalTrackState(enabled=True, published=False, device="Built-in Mic")),
        preconnect=PreConnectState(status=PreConnectStatus.RECORDING, seconds=2.4, bytes=76_800),
        messages=Messages([message("m1", Role.USER, "book a table for two tonight", final=False)]),
        remote=RemoteSessionState(tool_calls=ToolCalls([
            ToolCall(call_id="c2", name="book_table", arguments='{"people": 2}', status="running",
                     progress=("Calling the restaurant…",))])),
        problems=(Problem(at=1.0, source="lk.transcription", message="Ignored a transcript stream without a segment id."),),
    )
    for widget in (window.indicator, window.microphone, window.connect_button, window.problems, window.transcript,
                   window.details, window.tools, window.preconnect, window.chat):
        widget.render_state(state)
    QApplication.processEvents()
    assert window.indicator.title.text() == "Listening (buffering)"
    assert window.preconnect.isVisible() and window.problems.isVisible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(SCREENSHOTS / "qt-08-early-listening-composed.png"))
    window.close()
    assert not bridge.loop_thread.is_running


def test_the_window_shows_rpc_calls_once_there_is_one_and_how_the_agent_sounds(qtbot: QtBot) -> None:
    """RPC calls of every outcome and an expressive reply, folded by the reducer from the wire's events."""
    _, window = composed_window(qtbot)
    widgets = (window.indicator, window.transcript, window.details, window.tools, window.rpc, window.problems)

    def show(state: SessionState) -> None:
        for widget in widgets:
            widget.render_state(state)
        QApplication.processEvents()

    events: list[ev.Event] = [
        ev.StartRequested(at=1.0),
        ev.RoomConnected(at=1.1, room_name="kitchen", local_identity="user-1", server_url="ws://127.0.0.1:7880"),
        ev.ParticipantJoined(at=1.2, identity="agent-1", name="", kind="agent",
                             attributes=(("lk.agent.name", "lkstate-demo"), ("lk.agent.state", "listening"))),
        ev.RpcMethodsChanged(at=1.3, methods=("get_location",)),
    ]
    state = SessionState()
    for event in events:
        state = reduce(state, event)
    show(state)
    assert not window.rpc.isVisible(), "methods registered but no call yet: nothing to show"

    for event in [
        ev.RpcCallStarted(at=2.0, call_id="rpc/in/1", direction=RpcDirection.INCOMING, method="get_location",
                          caller="agent-1", callee="user-1"),
        ev.RpcCallFinished(at=2.003, call_id="rpc/in/1", status=RpcStatus.SUCCEEDED),
        ev.RpcCallStarted(at=3.0, call_id="rpc/out/1", direction=RpcDirection.OUTGOING, method="agent.lookup",
                          caller="user-1", callee="agent-1"),
        ev.RpcCallFinished(at=8.0, call_id="rpc/out/1", status=RpcStatus.TIMED_OUT, error_code=1502,
                           error="'agent-1' did not answer 'agent.lookup' within 5 s."),
        ev.ParticipantAttributesChanged(at=8.1, identity="agent-1",
                                        attributes=(("lk.agent.name", "lkstate-demo"), ("lk.agent.state", "speaking"))),
        ev.TranscriptReceived(at=8.2, sender="agent-1", segment_id="s1", stream_seq=1, text="You are in Lisbon!",
                              final=True, closed=True,
                              attributes=(("lk.expression", '{"expression": "bright and warm", "mood": "happy"}'),
                                          ("lk.segment_id", "s1"))),
    ]:
        state = reduce(state, event)
    show(state)
    assert window.rpc.isVisible()
    assert window.rpc.title.text() == "RPC · 2 calls"
    assert window.rpc.call_texts() == (
        ("app → agent: agent.lookup", "timed out", "'agent-1' did not answer 'agent.lookup' within 5 s."),
        ("agent → app: get_location", "ok", ""),
    )
    assert window.rpc.foot.text() == "This app answers get_location."
    assert (window.indicator.title.text(), window.indicator.expression.text()) == (
        "Speaking", "sounds happy (bright and warm)"
    )
    assert window.indicator.expression.isVisible()
    headers = [label.text() for label in window.transcript.findChildren(QLabel, "MessageHeader")]
    assert headers and headers[0].startswith("lkstate-demo · spoken · sounds happy (bright and warm) · ")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(SCREENSHOTS / "qt-09-rpc-and-expression-composed.png"))
    window.close()
