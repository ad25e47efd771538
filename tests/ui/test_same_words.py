"""The terminal, the desktop and the web page say the same words, in the same colour, about the same state.

``lkstate.ui`` promises one wording for every front end: what the agent is
doing, why it failed, what went wrong, what a tool call did, how a message
came and whether it went out, how the agent sounds (its ``lk.expression``),
and the RPC calls between the app and the agent. Each tone (connecting, buffering, listening,
thinking, speaking, failed…) has one colour. Here the same handful of
snapshots is drawn by the Textual widgets (in a running app, read off the
screen), the Qt widgets (offscreen, read off their labels) and the Gradio
render functions (the HTML the page shows), and each must show the words
``lkstate.ui`` chose, with the tone's colour on the agent's headline and on a
tool call's and an RPC call's status. The RPC and expression snapshots are
folded by the reducer from the events the wire emits. A front end that words something its own way, or paints a
tone its own colour, fails here.
"""

from __future__ import annotations

import html
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import attrs
import pytest
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget
from pytestqt.qtbot import QtBot
from rich.console import Console
from textual.app import App, ComposeResult
from textual.widget import Widget

from lkstate import (
    AgentState,
    AgentStatus,
    ConnectionState,
    ConnectionStatus,
    DeliveryStatus,
    Message,
    MessageKind,
    Messages,
    Problem,
    Role,
    SessionState,
)
from lkstate.agent_session import RemoteSessionState, RpcDirection, RpcStatus, ToolCall, ToolCalls
from lkstate.lowlevel import reduce
from lkstate.ui import Tone, describe_agent, describe_message, describe_problems, describe_rpc, describe_tool_call
from lkstate._core import events as ev
from lkstate_gradio import _render as gradio
from lkstate_qt import AgentStateIndicator, ProblemsBar, RpcPanel, ToolCallsPanel, TranscriptView
from lkstate_textual import StateView
from lkstate_textual.testing import save_screenshot, screen_text
from lkstate_textual.widgets import AgentStatusIndicator
from lkstate_textual.widgets import ProblemsBar as TextualProblemsBar
from lkstate_textual.widgets import RpcPanel as TextualRpcPanel
from lkstate_textual.widgets import ToolCallsPanel as TextualToolCallsPanel
from lkstate_textual.widgets import TranscriptView as TextualTranscriptView

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
SCREENSHOT_STATES = {
    "failed with reasons": "failed", "speaking": "speaking", "rpc calls": "rpc", "an expression": "expression"
}

# -- the states ---------------------------------------------------------------------------

CONNECTED = ConnectionState(
    status=ConnectionStatus.CONNECTED, room_name="demo-room", local_identity="ada", server_url="ws://127.0.0.1:7880"
)


def _agent(status: AgentStatus, **fields: Any) -> SessionState:
    agent = AgentState(status=status, identity="agent-1", name="lkstate-demo", **fields)
    return SessionState(connection=CONNECTED, agent=agent)


def _message(id: str, role: Role, text: str, **fields: Any) -> Message:
    base: dict[str, Any] = dict(
        id=id, role=role, kind=MessageKind.TRANSCRIPT, text=text, final=True,
        sender="ada" if role is Role.USER else "agent-1", first_seen=10.0, updated=10.0,
    )
    base.update(fields)
    return Message(**base)


LISTENING = _agent(AgentStatus.LISTENING)


def _fold(state: SessionState, *events: ev.Event) -> SessionState:
    for event in events:
        state = reduce(state, event)
    return state


def _rpc(call_id: str, method: str, caller: str, callee: str, at: float) -> ev.Event:
    direction = RpcDirection.INCOMING if callee == "ada" else RpcDirection.OUTGOING
    return ev.RpcCallStarted(at=at, call_id=call_id, direction=direction, method=method, caller=caller, callee=callee)


def _settled(call_id: str, at: float, status: RpcStatus, error: str | None = None) -> ev.Event:
    return ev.RpcCallFinished(at=at, call_id=call_id, status=status, error=error, error_code=1500 if error else None)


RPC_CALLS = _fold(
    LISTENING,
    ev.RpcMethodsChanged(at=20.0, methods=("get_location", "ui.confirm")),
    _rpc("rpc/in/1", "get_location", "agent-1", "ada", 21.0),
    _settled("rpc/in/1", 21.012, RpcStatus.SUCCEEDED),
    _rpc("rpc/out/1", "agent.nope", "ada", "agent-1", 22.0),
    _settled("rpc/out/1", 22.04, RpcStatus.FAILED,
             "'agent-1' has no RPC method 'agent.nope' (or does not let this app call it)."),
    _rpc("rpc/in/2", "get_location", "mallory", "ada", 23.0),
    _settled("rpc/in/2", 23.0, RpcStatus.REFUSED,
             "Refused a call of 'get_location' from 'mallory': only the agent may call it."),
    _rpc("rpc/in/3", "ui.confirm", "agent-1", "ada", 24.0),
)
"""Four calls, one of each outcome; the refusal is also a problem, as the reducer makes it."""

EXPRESSIVE = _fold(
    SessionState(),
    ev.StartRequested(at=29.0),
    ev.RoomConnected(at=29.1, room_name="demo-room", local_identity="ada", server_url="ws://127.0.0.1:7880"),
    ev.ParticipantJoined(at=29.2, identity="agent-1", name="", kind="agent",
                         attributes=(("lk.agent.name", "lkstate-demo"), ("lk.agent.state", "speaking"))),
    ev.TranscriptReceived(at=30.0, sender="agent-1", segment_id="seg-1", stream_seq=1, text="Oh, hello there!",
                          final=True, closed=True,
                          attributes=(("lk.expression", '{"expression": "warm surprise", "mood": "surprised"}'),
                                      ("lk.segment_id", "seg-1"))),
)
"""The agent speaks with an expression: it shows beside its status and on its message."""


def test_the_folded_snapshots_hold_what_they_are_named_for() -> None:
    assert [call.status for call in RPC_CALLS.rpc.calls] == [
        RpcStatus.SUCCEEDED, RpcStatus.FAILED, RpcStatus.REFUSED, RpcStatus.PENDING
    ]
    (message,) = EXPRESSIVE.messages
    assert message.role is Role.AGENT and message.expression is not None
    assert EXPRESSIVE.agent.expression == message.expression and not EXPRESSIVE.problems

STATES: dict[str, tuple[SessionState, str, str]] = {
    # name: (snapshot, the agent's headline, its colour) — the headline and colour
    # are spelled out so the shared wording cannot drift unnoticed either.
    "not connected": (SessionState(), "Not connected", "#6b7280"),
    "connecting": (
        SessionState(connection=ConnectionState(status=ConnectionStatus.CONNECTING, room_name="demo-room")),
        "Connecting…",
        "#d97706",
    ),
    "buffering": (_agent(AgentStatus.PRE_CONNECT_BUFFERING), "Listening (buffering)", "#0891b2"),
    "listening": (LISTENING, "Listening", "#16a34a"),
    "thinking": (
        attrs.evolve(
            _agent(AgentStatus.THINKING),
            messages=Messages([_message("u1", Role.USER, "what is the weather in Paris")]),
        ),
        "Thinking…",
        "#7c3aed",
    ),
    "speaking": (
        attrs.evolve(
            _agent(AgentStatus.SPEAKING),
            messages=Messages([
                _message("c1", Role.USER, "hello there", kind=MessageKind.CHAT, delivery=DeliveryStatus.SENT),
                _message("a1", Role.AGENT, "It is sunny in Par", final=False),
            ]),
        ),
        "Speaking",
        "#2563eb",
    ),
    "failed with reasons": (
        _agent(
            AgentStatus.FAILED,
            failure_reasons=("The agent did not join within 20 s.", "Check that the agent worker is running."),
        ),
        "Agent unavailable",
        "#dc2626",
    ),
    "a problem": (
        attrs.evolve(
            LISTENING,
            problems=(Problem(at=11.0, source="lk.chat", message="A message of 70000 bytes was refused."),),
        ),
        "Listening",
        "#16a34a",
    ),
    "a tool call": (
        attrs.evolve(
            LISTENING,
            remote=RemoteSessionState(tool_calls=ToolCalls([
                ToolCall(call_id="call-1", name="get_weather", arguments='{"city": "Paris"}', status="done",
                         output="Sunny, 21 degrees"),
                ToolCall(call_id="call-2", name="book_table", arguments="{}", status="running",
                         progress=("Calling the restaurant",)),
            ])),
        ),
        "Listening",
        "#16a34a",
    ),
    "rpc calls": (RPC_CALLS, "Listening", "#16a34a"),
    "an expression": (EXPRESSIVE, "Speaking", "#2563eb"),
}


@attrs.frozen
class Expected:
    """What every front end must show for one snapshot, from ``lkstate.ui``."""

    words: tuple[str, ...]
    agent_headline: str
    agent_colour: str
    tool_colours: dict[str, str]
    """Tool call status word -> its colour."""
    rpc_colours: dict[str, str]
    """RPC call status word -> its colour."""


def expected(state: SessionState) -> Expected:
    agent = describe_agent(state)
    words: list[str] = [agent.headline, agent.detail, *agent.reasons]
    if agent.expression is not None:
        words.append(agent.expression.text)
    rpc = describe_rpc(state)
    rpc_colours: dict[str, str] = {}
    if rpc:
        words += [rpc.headline, rpc.answers]
    for call in rpc.calls:
        words += [call.headline, call.status] + [text for text in (call.took, call.detail) if text]
        rpc_colours[call.status] = call.tone.colour
    for line in describe_problems(state).lines:
        words += [line.source, line.message]
    tool_colours: dict[str, str] = {}
    for call in state.remote.tool_calls:
        tool = describe_tool_call(call)
        words += [tool.headline, tool.status] + ([tool.detail] if tool.detail else [])
        tool_colours[tool.status] = tool.tone.colour
    for message in state.messages:
        words += [message.text, *describe_message(message).notes]
    return Expected(tuple(words), agent.headline, agent.tone.colour, tool_colours, rpc_colours)


def test_the_states_cover_every_tone_an_agent_headline_can_have() -> None:
    tones = {describe_agent(state).tone for state, _, _ in STATES.values()}
    assert tones == set(Tone), "one snapshot per tone"
    for name, (state, headline, colour) in STATES.items():
        words = expected(state)
        assert (words.agent_headline, words.agent_colour) == (headline, colour), name


def _flat(text: str) -> str:
    return " ".join(text.split())


def _missing(words: tuple[str, ...], shown: str) -> list[str]:
    flat = _flat(shown)
    return [word for word in words if _flat(word) not in flat]


# -- Textual: a running app, read off the screen -------------------------------------------


class Board(App[None]):
    """The Textual kit's widgets that speak about these states, fed snapshots by hand."""

    CSS = "Screen { layout: vertical; } TranscriptView { height: 8; }"

    def compose(self) -> ComposeResult:
        yield AgentStatusIndicator()
        yield TextualProblemsBar()
        yield TextualToolCallsPanel()
        yield TextualRpcPanel()
        yield TextualTranscriptView()

    def show(self, state: SessionState) -> None:
        for widget in self.query(Widget):
            if isinstance(widget, StateView):
                widget.lkstate_offer(state)


def _textual_segments(app: App[Any]) -> Iterator[tuple[str, str | None]]:
    """``(text, foreground colour)`` of each run of text on the screen."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", legacy_windows=False, safe_box=False)
    update = app.screen._compositor.render_update(  # pyright: ignore[reportPrivateUsage]
        full=True, screen_stack=app._background_screens  # pyright: ignore[reportPrivateUsage]
    )
    assert update is not None
    for segment in console.render(update):
        colour = segment.style.color if segment.style is not None else None
        yield segment.text, (colour.get_truecolor().hex if colour is not None else None)


def _textual_colour(app: App[Any], text: str) -> str | None:
    for run, colour in _textual_segments(app):
        if text in run:
            return colour
    raise AssertionError(f"{text!r} is not on the screen")


@pytest.mark.parametrize("name", list(STATES))
async def test_textual_shows_the_shared_words_and_colours(name: str) -> None:
    state = STATES[name][0]
    want = expected(state)
    app = Board()
    async with app.run_test(size=(150, 48)) as pilot:
        app.show(state)
        await pilot.pause()
        await pilot.pause()
        shown = screen_text(app)
        assert _missing(want.words, shown) == [], shown
        assert _textual_colour(app, want.agent_headline) == want.agent_colour
        for status, colour in (want.tool_colours | want.rpc_colours).items():
            assert _textual_colour(app, f"  {status}") == colour, status
        if name in SCREENSHOT_STATES:
            save_screenshot(app, f"same-words-textual-{SCREENSHOT_STATES[name]}", SCREENSHOTS)


# -- Qt: offscreen widgets, read off their labels --------------------------------------------


class QtBoard(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.agent = AgentStateIndicator()
        self.problems = ProblemsBar()
        self.tools = ToolCallsPanel()
        self.rpc = RpcPanel()
        self.transcript = TranscriptView()
        column = QVBoxLayout(self)
        for widget in (self.agent, self.problems, self.tools, self.rpc, self.transcript):
            column.addWidget(widget)
        self.resize(640, 900)

    def show_state(self, state: SessionState) -> None:
        for widget in (self.agent, self.problems, self.tools, self.rpc, self.transcript):
            widget.render_state(state)

    def text(self) -> str:
        labels = [label for label in self.findChildren(QLabel) if label.isVisibleTo(self)]
        rich = " ".join([label.text() for label in labels] + [self.problems.toolTip()])
        return html.unescape(re.sub(r"<[^>]+>", " ", rich))


@pytest.mark.parametrize("name", list(STATES))
def test_qt_shows_the_shared_words_and_colours(qtbot: QtBot, name: str) -> None:
    state = STATES[name][0]
    want = expected(state)
    board = QtBoard()
    qtbot.addWidget(board)
    board.show()
    board.show_state(state)

    def drawn(name: str, count: int) -> bool:
        return sum(label.isVisible() for label in board.findChildren(QLabel, name)) == count

    # Cards and bubbles are laid out (and shown) once the event loop runs.
    qtbot.waitUntil(lambda: drawn("ToolCallStatus", len(state.remote.tool_calls)) and drawn(
        "MessageHeader", len(state.messages)
    ) and drawn("RpcCallStatus", len(describe_rpc(state).calls)))
    shown = board.text()
    assert _missing(want.words, shown) == [], shown
    assert board.agent.title.text() == want.agent_headline
    assert board.agent.dot.color == want.agent_colour
    assert want.agent_colour in board.agent.title.styleSheet()
    statuses = {label.text(): label.styleSheet() for label in board.tools.findChildren(QLabel, "ToolCallStatus")}
    assert set(statuses) == set(want.tool_colours)
    for status, colour in want.tool_colours.items():
        assert f"color: {colour};" in statuses[status], status
    rpc_statuses = {label.text(): label.styleSheet() for label in board.rpc.findChildren(QLabel, "RpcCallStatus")}
    assert set(rpc_statuses) == set(want.rpc_colours)
    for status, colour in want.rpc_colours.items():
        assert f"color: {colour};" in rpc_statuses[status], status
    assert board.rpc.isVisible() == bool(state.rpc.calls), "the RPC panel is hidden until there is a call"
    if name in SCREENSHOT_STATES:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        assert board.grab().save(str(SCREENSHOTS / f"same-words-qt-{SCREENSHOT_STATES[name]}.png"))


# -- Gradio: the HTML the page shows ------------------------------------------------------------


def _gradio_page(state: SessionState) -> str:
    chat = " ".join(m["content"] for m in gradio.chat_messages(state.messages))
    return " ".join((gradio.status_html(state), gradio.problems_html(state), gradio.activity_html(state), chat))


@pytest.mark.parametrize("name", list(STATES))
def test_gradio_shows_the_shared_words_and_colours(name: str) -> None:
    state = STATES[name][0]
    want = expected(state)
    page = _gradio_page(state)
    shown = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert _missing(want.words, shown) == [], shown
    status = gradio.status_html(state)
    assert f'<span class="lk-title">{html.escape(want.agent_headline)}</span>' in status
    assert f"--lk-color: {want.agent_colour}" in status
    badges = dict(
        (text, colour)
        for colour, text in re.findall(r'class="lk-badge" style="--lk-color: (#[0-9a-f]{6})">([^<]+)<', page)
    )
    assert badges == want.tool_colours | want.rpc_colours
