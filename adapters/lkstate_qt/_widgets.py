"""A small widget kit that renders :class:`~lkstate.SessionState` snapshots.

Every widget has ``render_state(state)``: connect it to
:attr:`~lkstate_qt.SessionBridge.state_changed` (or call it yourself). Each one
looks only at its own slice of the snapshot and does nothing when that slice
is unchanged, which is cheap because unchanged parts of consecutive snapshots
are the very same objects. Widgets that ask for something (send a message,
switch the microphone or the camera, connect) emit a signal; the app wires those to the
bridge's commands, so the kit never touches a session itself.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any, TypeVar

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from lkstate import AgentStatus, ConnectionStatus, DeliveryStatus, LocalTrackState, Message, Role, SessionState
from lkstate.ui import RpcCallWords, RpcWords, Tone, describe_agent, describe_problems, describe_rpc

from ._words import (
    Palette,
    StatusWords,
    agent_status_words,
    camera_words,
    message_header,
    microphone_words,
    preconnect_words,
    tool_call_words,
    usage_lines,
)

__all__ = [
    "AgentStateIndicator",
    "CameraNotice",
    "CameraToggle",
    "ChatInput",
    "ConnectButton",
    "MicrophoneToggle",
    "PreConnectIndicator",
    "ProblemsBar",
    "RpcPanel",
    "SessionDetails",
    "StatusDot",
    "ToolCallsPanel",
    "TranscriptView",
    "connect_widgets",
]

_W = TypeVar("_W", bound=QWidget)
_UNSET: Any = object()


class _Slice:
    """Remembers the last slice a widget rendered, to skip unchanged ones."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: object = _UNSET

    def changed(self, value: object) -> bool:
        if value is self._last or value == self._last:
            return False
        self._last = value
        return True


def connect_widgets(signal: Any, widgets: Iterable[Any]) -> None:
    """Connect ``signal`` (e.g. ``bridge.state_changed``) to each widget's ``render_state``.

    One connection per widget: Qt calls them one by one, so a widget that
    raises does not keep the others from rendering.
    """
    for widget in widgets:
        signal.connect(widget.render_state)


# -- agent state ---------------------------------------------------------------------


class StatusDot(QWidget):
    """A filled circle in a status colour."""

    def __init__(self, diameter: int = 12, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._color = QColor(Tone.NEUTRAL.colour)
        self._diameter = diameter
        self.setFixedSize(diameter + 4, diameter + 4)

    @property
    def color(self) -> str:
        return self._color.name()

    def set_color(self, color: str) -> None:
        if QColor(color) != self._color:
            self._color = QColor(color)
            self.update()

    def sizeHint(self) -> QSize:
        return QSize(self._diameter + 4, self._diameter + 4)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        halo = QColor(self._color)
        halo.setAlpha(60)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(halo)
        painter.drawEllipse(0, 0, self._diameter + 4, self._diameter + 4)
        painter.setBrush(self._color)
        painter.drawEllipse(2, 2, self._diameter, self._diameter)
        painter.end()


class AgentStateIndicator(QFrame):
    """The agent's state in words and colour: connecting, buffering, listening, failed and why.

    Beside the headline, how the agent sounds when its turn says
    (``lk.expression``): "sounds surprised (warm surprise)" in :attr:`expression`.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AgentStateIndicator")
        self._slice = _Slice()
        self.dot = StatusDot(14)
        self.title = QLabel("Not connected")
        self.title.setObjectName("AgentStateTitle")
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.title.setFont(font)
        self.detail = QLabel("Connect to start talking to the agent.")
        self.detail.setObjectName("AgentStateDetail")
        self.detail.setWordWrap(True)
        self.detail.setStyleSheet(f"color: {Palette.MUTED};")
        self.expression = QLabel()
        self.expression.setObjectName("AgentExpression")
        self.expression.setStyleSheet(f"color: {Tone.SPEAKING.colour}; font-style: italic;")
        self.expression.setVisible(False)
        head = QHBoxLayout()
        head.setSpacing(12)
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.title)
        head.addWidget(self.expression, 0, Qt.AlignmentFlag.AlignBottom)
        head.addStretch(1)
        text = QVBoxLayout()
        text.setSpacing(1)
        text.setContentsMargins(0, 0, 0, 0)
        text.addLayout(head)
        text.addWidget(self.detail)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(10)
        row.addWidget(self.dot, 0, Qt.AlignmentFlag.AlignVCenter)
        row.addLayout(text, 1)
        self.status = AgentStatus.DISCONNECTED
        """The agent status shown now."""

    def render_state(self, state: SessionState) -> None:
        part = (state.connection.status, state.connection.error, state.connection.disconnect_reason,
                state.connection.room_name, state.agent.status, state.agent.failure_reasons, state.agent.name,
                state.agent.expression)
        if not self._slice.changed(part):
            return
        words = agent_status_words(state)
        expression = describe_agent(state).expression
        self.expression.setText(expression.text if expression is not None else "")
        self.expression.setVisible(expression is not None)
        self.status = state.agent.status
        self.title.setText(words.title)
        self.title.setStyleSheet(f"color: {words.color};")
        self.detail.setText(words.detail)
        self.detail.setVisible(bool(words.detail))
        self.dot.set_color(words.color)
        self.setToolTip(f"agent: {state.agent.state} · connection: {state.connection.status.value}")


# -- transcript ----------------------------------------------------------------------


_BUBBLE_STYLES = {
    Role.USER: ("#dbeafe", "#bfdbfe"),
    Role.AGENT: ("#ffffff", Palette.BORDER),
    Role.PARTICIPANT: ("#fef9c3", "#fde68a"),
}


class _MessageBubble(QFrame):
    """One message: a small header (who, how, when, delivery) over the text."""

    def __init__(self, message: Message, agent_name: str | None) -> None:
        super().__init__()
        self.setObjectName("MessageBubble")
        self.message: Message | None = None
        self._agent_name: str | None = None
        self.header = QLabel()
        self.header.setObjectName("MessageHeader")
        self.body = QLabel()
        self.body.setObjectName("MessageBody")
        self.body.setWordWrap(True)
        self.body.setTextFormat(Qt.TextFormat.PlainText)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error = QLabel()
        self.error.setObjectName("MessageError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet(f"color: {Tone.ERROR.colour}; font-size: 11px;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 7, 12, 8)
        layout.setSpacing(2)
        layout.addWidget(self.header)
        layout.addWidget(self.body)
        layout.addWidget(self.error)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.update_message(message, agent_name)

    def sizeHint(self) -> QSize:
        # A word-wrapped label guesses a narrow, square-ish width; a chat bubble
        # should be as wide as its longest line, up to the maximum width.
        hint = super().sizeHint()
        layout = self.layout()
        margins = layout.contentsMargins() if layout is not None else None
        extra = 4 + (margins.left() + margins.right() if margins is not None else 0)
        widths = [_text_width(self.header, self.header.text()), _text_width(self.body, self.body.text())]
        if self.error.isVisibleTo(self):
            widths.append(_text_width(self.error, self.error.text()))
        width = min(self.maximumWidth(), max(widths) + extra)
        height = self.heightForWidth(width) if self.hasHeightForWidth() else hint.height()
        return QSize(width, height)

    @property
    def interim(self) -> bool:
        return self.message is not None and not self.message.final

    def update_message(self, message: Message, agent_name: str | None) -> None:
        if message is self.message and agent_name == self._agent_name:
            return
        previous, self.message, self._agent_name = self.message, message, agent_name
        self.header.setText(message_header(message, agent_name))
        self.body.setText(message.text or "…")
        self.error.setText(message.error or "")
        self.error.setVisible(bool(message.error))
        if (
            previous is None
            or previous.final != message.final
            or previous.delivery != message.delivery
            or previous.role != message.role
        ):
            self._restyle(message)

    def _restyle(self, message: Message) -> None:
        background, border = _BUBBLE_STYLES[message.role]
        failed = message.delivery is DeliveryStatus.FAILED
        if failed:
            border = Tone.ERROR.colour
        if message.final:
            frame = f"border: 1px solid {border};"
            body = f"color: {Palette.TEXT};"
        else:
            # Interim text is still changing: dashed, lighter and in italics,
            # so nobody mistakes it for what was finally said.
            frame = f"border: 1px dashed {Palette.MUTED};"
            body = f"color: {Palette.MUTED}; font-style: italic;"
            background = "#f9fafb"
        self.setStyleSheet(
            f"#MessageBubble {{ background: {background}; {frame} border-radius: 10px; }}"
            f"#MessageHeader {{ color: {Palette.MUTED}; font-size: 11px; }}"
            f"#MessageBody {{ {body} font-size: 14px; }}"
        )


def _text_width(label: QLabel, text: str) -> int:
    label.ensurePolished()
    metrics = label.fontMetrics()
    return max((metrics.horizontalAdvance(line) for line in text.splitlines()), default=0)


class TranscriptView(QScrollArea):
    """The conversation: your messages on the right, the agent's on the left.

    Interim transcripts (still being spoken) are dashed, grey and italic until
    final. Typed chat shows whether it was sent. Follows the newest message
    while the view is scrolled to the bottom, and stays put when you scroll up.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TranscriptView")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self._messages: object = _UNSET
        self._agent_name: str | None = None
        self._bubbles: list[_MessageBubble] = []
        self._rows: list[QWidget] = []
        self._follow = True
        content = QWidget()
        content.setObjectName("TranscriptContent")
        self._column = QVBoxLayout(content)
        self._column.setContentsMargins(14, 14, 14, 14)
        self._column.setSpacing(10)
        self._placeholder = QLabel("No messages yet.\nSpeak, or type a message below.")
        self._placeholder.setObjectName("TranscriptPlaceholder")
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setStyleSheet(f"color: {Palette.MUTED}; font-size: 14px;")
        self._column.addWidget(self._placeholder, 1)
        self._column.addStretch(1)
        self.setWidget(content)
        bar = self.verticalScrollBar()
        bar.rangeChanged.connect(self._on_range_changed)
        bar.valueChanged.connect(self._on_scrolled)

    # -- reading (for tests and apps) ---------------------------------------------------

    def messages(self) -> tuple[Message, ...]:
        """The messages shown, in order."""
        return tuple(b.message for b in self._bubbles if b.message is not None)

    def bubble_texts(self) -> tuple[tuple[str, str, bool], ...]:
        """``(role, text, interim)`` of each shown message, as displayed."""
        return tuple(
            (b.message.role.value, b.body.text(), b.interim) for b in self._bubbles if b.message is not None
        )

    def header_texts(self) -> tuple[str, ...]:
        return tuple(b.header.text() for b in self._bubbles)

    # -- rendering ------------------------------------------------------------------------

    def render_state(self, state: SessionState) -> None:
        # Keep naming the agent after it left: its messages are still its own.
        messages, agent_name = state.messages, state.agent.name or self._agent_name
        if messages is self._messages and agent_name == self._agent_name:
            return
        self._messages, self._agent_name = messages, agent_name
        bubbles = self._bubbles
        if bubbles and (
            len(messages) < len(bubbles)
            or _id(bubbles[0].message) != messages[0].id
            or _id(bubbles[-1].message) != messages[len(bubbles) - 1].id
        ):
            # Messages only ever grow at the end within one conversation; anything
            # else is a new conversation (a restart that did not keep history).
            self._clear()
        for i, message in enumerate(messages):
            if i < len(bubbles):
                bubbles[i].update_message(message, agent_name)
            else:
                self._append(message, agent_name)
        self._placeholder.setVisible(not self._bubbles)

    def _append(self, message: Message, agent_name: str | None) -> None:
        bubble = _MessageBubble(message, agent_name)
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        mine = message.role is Role.USER
        bubble.setMaximumWidth(self._bubble_width())
        if mine:
            line.addStretch(1)
        line.addWidget(bubble)
        if not mine:
            line.addStretch(1)
        # After the (hidden) placeholder, before the trailing stretch.
        self._column.insertWidget(self._column.count() - 1, row)
        self._bubbles.append(bubble)
        self._rows.append(row)

    def _bubble_width(self) -> int:
        return max(240, int(self.viewport().width() * 0.78))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        width = self._bubble_width()
        for bubble in self._bubbles:
            bubble.setMaximumWidth(width)

    def _clear(self) -> None:
        for row in self._rows:
            self._column.removeWidget(row)
            row.deleteLater()
        self._rows.clear()
        self._bubbles.clear()

    def _on_scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._follow = value >= bar.maximum() - 8

    def _on_range_changed(self, _minimum: int, maximum: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(maximum)


# -- input ------------------------------------------------------------------------------


def _id(message: Message | None) -> str | None:
    return None if message is None else message.id


class ChatInput(QFrame):
    """A line to type in and a Send button. Emits :attr:`submitted` with the text.

    Enabled while the session is connected; Enter sends. The text is cleared
    once submitted (the transcript shows it at once, with its delivery status).
    """

    submitted = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ChatInput")
        self._slice = _Slice()
        self.line = QLineEdit()
        self.line.setObjectName("ChatLine")
        self.line.setPlaceholderText("Type a message to the agent…")
        self.line.setClearButtonEnabled(True)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("SendButton")
        self.send_button.setDefault(True)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)
        row.addWidget(self.line, 1)
        row.addWidget(self.send_button)
        self.line.returnPressed.connect(self._submit)
        self.send_button.clicked.connect(self._submit)
        self.line.textChanged.connect(self._update_button)
        self._connected = False
        self._update_button()

    def render_state(self, state: SessionState) -> None:
        connected = state.connection.status is ConnectionStatus.CONNECTED
        if not self._slice.changed(connected):
            return
        self._connected = connected
        self.line.setEnabled(connected)
        self.line.setPlaceholderText(
            "Type a message to the agent…" if connected else "Connect to send messages."
        )
        self._update_button()

    def _update_button(self, *_: object) -> None:
        self.send_button.setEnabled(self._connected and bool(self.line.text().strip()))

    def _submit(self) -> None:
        text = self.line.text().strip()
        if not text or not self._connected:
            return
        self.line.clear()
        self.submitted.emit(text)


class _TrackToggle(QPushButton):
    """A local track (microphone, camera) as the state has it; a click asks for the opposite.

    Emits :attr:`requested` with the wanted setting. The label follows the
    state, not the click: it changes once the session has done what was asked,
    and says why when it cannot (the reason in full as the tooltip).
    """

    requested = Signal(bool)

    def __init__(self, name: str, glyph: str, parent: QWidget | None = None) -> None:
        super().__init__("", parent)
        self.setObjectName(name)
        self._glyph = glyph
        self._slice = _Slice()
        self._enabled = False
        self.setCheckable(True)
        self.setMinimumWidth(118)
        self.clicked.connect(self._clicked)
        self._apply(self._words(LocalTrackState()))

    def _track(self, state: SessionState) -> LocalTrackState:
        raise NotImplementedError

    def _words(self, track: LocalTrackState) -> StatusWords:
        raise NotImplementedError

    def render_state(self, state: SessionState) -> None:
        track = self._track(state)
        if not self._slice.changed(track):
            return
        self._enabled = track.enabled
        self.setChecked(track.enabled)
        self._apply(self._words(track))

    def _apply(self, words: StatusWords) -> None:
        self.setText(f"{self._glyph}  {words.title}")
        self.setToolTip(words.detail)
        self.setStyleSheet(f"#{self.objectName()} {{ color: {words.color}; }}")

    def _clicked(self) -> None:
        # Keep showing the state's value until the state changes.
        self.setChecked(self._enabled)
        self.requested.emit(not self._enabled)


class MicrophoneToggle(_TrackToggle):
    """The microphone: "Mic on" once the session has it on, "No microphone" when there is no device."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("MicrophoneToggle", "●", parent)

    def _track(self, state: SessionState) -> LocalTrackState:
        return state.local_media.microphone

    def _words(self, track: LocalTrackState) -> StatusWords:
        return microphone_words(track)


class CameraToggle(_TrackToggle):
    """The camera, checked while it is on; "No camera" when it cannot work (:class:`CameraNotice` says why)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("CameraToggle", "■", parent)

    def _track(self, state: SessionState) -> LocalTrackState:
        return state.local_media.camera

    def _words(self, track: LocalTrackState) -> StatusWords:
        return camera_words(track)


class CameraNotice(QLabel):
    """Why the camera does not work, in full words; hidden while it works or is off."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("CameraNotice")
        self._slice = _Slice()
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setStyleSheet(f"#CameraNotice {{ color: {Tone.ERROR.colour}; }}")
        self.setContentsMargins(24, 2, 0, 0)  # under the indicator's words, not its dot
        self.setVisible(False)

    def render_state(self, state: SessionState) -> None:
        error = state.local_media.camera.error
        if not self._slice.changed(error):
            return
        self.setText(f"Camera: {error}" if error else "")
        self.setVisible(bool(error))


class ConnectButton(QPushButton):
    """Connect / Cancel / Disconnect, following the connection state."""

    connect_requested = Signal()
    disconnect_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Connect", parent)
        self.setObjectName("ConnectButton")
        self._slice = _Slice()
        self._status = ConnectionStatus.DISCONNECTED
        self.setMinimumWidth(110)
        self.setProperty("role", "primary")
        self.clicked.connect(self._clicked)

    def render_state(self, state: SessionState) -> None:
        status = state.connection.status
        if not self._slice.changed(status):
            return
        self._status = status
        text, role = {
            ConnectionStatus.DISCONNECTED: ("Connect", "primary"),
            ConnectionStatus.CONNECTING: ("Cancel", "secondary"),
            ConnectionStatus.CONNECTED: ("Disconnect", "danger"),
            ConnectionStatus.RECONNECTING: ("Disconnect", "danger"),
        }[status]
        self.setText(text)
        self.setProperty("role", role)
        self.style().unpolish(self)
        self.style().polish(self)

    def _clicked(self) -> None:
        if self._status is ConnectionStatus.DISCONNECTED:
            self.connect_requested.emit()
        else:
            self.disconnect_requested.emit()


# -- pre-connect ----------------------------------------------------------------------------


class PreConnectIndicator(QFrame):
    """Audio captured before the agent was ready: recording, handed over, dropped. Hidden when idle."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("PreConnectIndicator")
        self._slice = _Slice()
        self.dot = StatusDot(8)
        self.label = QLabel()
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 4, 12, 4)
        row.setSpacing(6)
        row.addWidget(self.dot)
        row.addWidget(self.label)
        self.setVisible(False)

    def render_state(self, state: SessionState) -> None:
        preconnect = state.preconnect
        if not self._slice.changed(preconnect):
            return
        words = preconnect_words(preconnect)
        if words is None:
            self.setVisible(False)
            return
        self.dot.set_color(words.color)
        self.label.setText(f"<b>{html.escape(words.title)}</b> · {html.escape(words.detail)}")
        self.setStyleSheet(
            f"#PreConnectIndicator {{ border: 1px solid {words.color}; border-radius: 11px; background: white; }}"
        )
        self.setVisible(True)


# -- tool calls and usage ----------------------------------------------------------------------


class ToolCallsPanel(QFrame):
    """The agent's tool calls (name, arguments, status, result) and its model usage."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ToolCallsPanel")
        self._calls_slice = _Slice()
        self._usage_slice = _Slice()
        tools_title = QLabel("Tool calls")
        tools_title.setObjectName("PanelTitle")
        self._calls = QVBoxLayout()
        self._calls.setSpacing(6)
        self._no_calls = QLabel("No tool calls yet.")
        self._no_calls.setStyleSheet(f"color: {Palette.MUTED};")
        usage_title = QLabel("Usage")
        usage_title.setObjectName("PanelTitle")
        self._usage = QGridLayout()
        self._usage.setHorizontalSpacing(10)
        self._usage.setVerticalSpacing(3)
        self._no_usage = QLabel("No usage reported yet.")
        self._no_usage.setWordWrap(True)
        self._no_usage.setStyleSheet(f"color: {Palette.MUTED};")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(8)
        layout.addWidget(tools_title)
        layout.addWidget(self._no_calls)
        layout.addLayout(self._calls)
        layout.addSpacing(10)
        layout.addWidget(usage_title)
        layout.addWidget(self._no_usage)
        layout.addLayout(self._usage)
        layout.addStretch(1)
        self._call_cards: list[QWidget] = []
        self._usage_labels: list[QLabel] = []

    def call_texts(self) -> tuple[tuple[str, str], ...]:
        """``(call, outcome)`` as shown, one per tool call (for tests)."""
        return tuple((_label_text(card, "ToolCallTitle"), _label_text(card, "ToolCallDetail")) for card in self._call_cards)

    def usage_texts(self) -> tuple[str, ...]:
        return tuple(label.text() for label in self._usage_labels)

    def render_state(self, state: SessionState) -> None:
        remote = state.remote
        if self._calls_slice.changed(remote.tool_calls):
            self._show_calls(tuple(remote.tool_calls))
        if self._usage_slice.changed(remote.usage):
            self._show_usage(remote.usage.models if remote.usage is not None else ())

    def _show_calls(self, calls: tuple[Any, ...]) -> None:
        _clear_layout(self._calls, self._call_cards)
        for call in calls:
            words = tool_call_words(call)
            card = _call_card("ToolCall", words.title, call.status, words.color, words.detail, detail_color=Palette.TEXT)
            self._calls.addWidget(card)
            self._call_cards.append(card)
        self._no_calls.setVisible(not calls)

    def _show_usage(self, models: tuple[Any, ...]) -> None:
        _clear_layout(self._usage, self._usage_labels)
        for row, (name, figures) in enumerate(usage_lines(models)):
            left = QLabel(name)
            left.setStyleSheet(f"color: {Palette.MUTED};")
            right = QLabel(figures)
            right.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self._usage.addWidget(left, row, 0)
            self._usage.addWidget(right, row, 1)
            self._usage_labels.extend((left, right))
        self._no_usage.setVisible(not models)


class RpcPanel(QFrame):
    """The last RPC calls between the app and the agent, newest first; hidden until there is one.

    A card per call: who called whom for what (``agent → app: get_location``),
    a status in its tone's colour with the time the answer took, and for a
    call that failed, timed out or was refused the reason in full. The title
    counts every call; the foot says which methods the app answers.
    """

    def __init__(self, parent: QWidget | None = None, *, limit: int = 4) -> None:
        super().__init__(parent)
        self.setObjectName("RpcPanel")
        self._slice = _Slice()
        self._limit = limit
        self.title = QLabel("RPC")
        self.title.setObjectName("PanelTitle")
        self._calls = QVBoxLayout()
        self._calls.setSpacing(6)
        self.foot = QLabel()
        self.foot.setObjectName("RpcFoot")
        self.foot.setWordWrap(True)
        self.foot.setStyleSheet(f"color: {Palette.MUTED}; font-size: 11px;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(8)
        layout.addWidget(self.title)
        layout.addLayout(self._calls)
        layout.addWidget(self.foot)
        self._cards: list[QWidget] = []
        self.setVisible(False)

    def call_texts(self) -> tuple[tuple[str, str, str], ...]:
        """``(call, status, reason)`` as shown, newest first (for tests)."""
        return tuple(
            (_label_text(c, "RpcCallTitle"), _label_text(c, "RpcCallStatus"), _label_text(c, "RpcCallDetail"))
            for c in self._cards
        )

    def render_state(self, state: SessionState) -> None:
        words = describe_rpc(state, limit=self._limit)
        if not self._slice.changed(words):
            return
        self.setVisible(bool(words))
        if not words:
            return
        self.title.setText(words.headline)
        _clear_layout(self._calls, self._cards)
        for call in words.calls:
            card = self._card(call)
            self._calls.addWidget(card)
            self._cards.append(card)
        foot = "\n".join(line for line in (words.earlier, words.answers) if line)
        self.foot.setText(foot)
        self.foot.setVisible(bool(foot))

    @staticmethod
    def _card(call: RpcCallWords) -> QFrame:
        colour = call.tone.colour
        return _call_card("RpcCall", call.headline, call.status, colour, call.detail, took=call.took, detail_color=colour)


def _call_card(
    kind: str, title: str, status: str, colour: str, detail: str, *, detail_color: str, took: str | None = None
) -> QFrame:
    """A tool or RPC call as a card: the call as code, its status in ``colour`` (and time), the outcome under it.

    The labels are named ``<kind>Title``, ``<kind>Status``, ``<kind>Took`` and
    ``<kind>Detail`` (the card ``<kind>Card``) so tests and style sheets find
    them; without a ``took`` or a ``detail`` there is no label for it.
    """
    card = QFrame()
    card.setObjectName(f"{kind}Card")
    card.setStyleSheet(
        f"#{kind}Card {{ border: 1px solid {Palette.BORDER}; border-left: 3px solid {colour};"
        " border-radius: 6px; background: white; }"
    )
    title_label = QLabel(title)
    title_label.setObjectName(f"{kind}Title")
    title_label.setWordWrap(True)
    title_label.setStyleSheet("font-family: monospace; font-weight: bold;")
    status_label = QLabel(status)
    status_label.setObjectName(f"{kind}Status")
    status_label.setStyleSheet(f"color: {colour}; font-size: 11px; font-weight: bold;")
    head = QHBoxLayout()
    head.addWidget(title_label, 1)
    head.addWidget(status_label, 0, Qt.AlignmentFlag.AlignTop)
    if took:
        took_label = QLabel(took)
        took_label.setObjectName(f"{kind}Took")
        took_label.setStyleSheet(f"color: {Palette.MUTED}; font-size: 11px;")
        head.addWidget(took_label, 0, Qt.AlignmentFlag.AlignTop)
    box = QVBoxLayout(card)
    box.setContentsMargins(10, 6, 10, 7)
    box.setSpacing(2)
    box.addLayout(head)
    if detail:
        detail_label = QLabel(detail)
        detail_label.setObjectName(f"{kind}Detail")
        detail_label.setWordWrap(True)
        detail_label.setStyleSheet(f"color: {detail_color};")
        box.addWidget(detail_label)
    return card


def _label_text(widget: QWidget, name: str) -> str:
    """The text of ``widget``'s label called ``name``; empty when it has none."""
    label = widget.findChild(QLabel, name)
    return label.text() if label is not None else ""


def _clear_layout(layout: QVBoxLayout | QGridLayout, widgets: list[_W]) -> None:
    for widget in widgets:
        layout.removeWidget(widget)
        widget.deleteLater()
    widgets.clear()


# -- problems and details ------------------------------------------------------------------------


class ProblemsBar(QFrame):
    """The newest problem in words, how many more there are, and a Dismiss button. Hidden when none.

    Shows the session's problems and the errors the agent reported. Emits
    :attr:`dismissed` when the user dismisses them (wire it to
    ``bridge.dismiss_problems``); the agent errors seen until then are hidden
    too. With ``skip_connection_error`` (the default) a problem that only
    repeats ``state.connection.error`` is left out, since
    :class:`AgentStateIndicator` already says it.
    """

    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None, *, skip_connection_error: bool = True) -> None:
        super().__init__(parent)
        self._skip_connection_error = skip_connection_error
        self.setObjectName("ProblemsBar")
        self._slice = _Slice()
        self.setStyleSheet(
            "#ProblemsBar { background: #fff7ed; border: 1px solid #fdba74; border-radius: 8px; }"
            "#ProblemsBar QLabel { color: #9a3412; }"
        )
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.dismiss_button = QPushButton("Dismiss")
        self.dismiss_button.setObjectName("DismissButton")
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 6, 8, 6)
        row.addWidget(self.label, 1)
        row.addWidget(self.dismiss_button)
        self.dismiss_button.clicked.connect(self._dismiss)
        self.setVisible(False)
        self._agent_errors_seen = 0
        self._agent_errors_dismissed = 0

    def _dismiss(self) -> None:
        self._agent_errors_dismissed = self._agent_errors_seen
        self._slice = _Slice()  # show the next snapshot even if the session's problems were already empty
        self.setVisible(False)
        self.dismissed.emit()

    def render_state(self, state: SessionState) -> None:
        self._agent_errors_seen = state.remote.error_count
        words = describe_problems(
            state,
            agent_errors_dismissed=self._agent_errors_dismissed,
            skip_connection_error=self._skip_connection_error,
        )
        if not self._slice.changed(words):
            return
        if not words:
            self.setVisible(False)
            return
        lines = words.lines
        newest = lines[-1]
        more = f" <i>(and {len(lines) - 1} more)</i>" if len(lines) > 1 else ""
        self.label.setText(f"<b>⚠ {html.escape(newest.source)}:</b> {html.escape(newest.message)}{more}")
        self.setToolTip("\n".join(f"{line.source}: {line.message}" for line in lines))
        self.setVisible(True)


class SessionDetails(QFrame):
    """Where the session is: server, room, your identity, the agent, who else is there."""

    _FIELDS = ("Server", "Room", "You", "Agent", "Others")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("SessionDetails")
        self._slice = _Slice()
        grid = QGridLayout(self)
        grid.setContentsMargins(12, 10, 12, 10)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(3)
        title = QLabel("Session")
        title.setObjectName("PanelTitle")
        grid.addWidget(title, 0, 0, 1, 2)
        self.values: dict[str, QLabel] = {}
        for row, name in enumerate(self._FIELDS, start=1):
            key = QLabel(name)
            key.setStyleSheet(f"color: {Palette.MUTED};")
            value = QLabel("—")
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setWordWrap(True)
            grid.addWidget(key, row, 0, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(value, row, 1)
            self.values[name] = value
        grid.setColumnStretch(1, 1)

    def render_state(self, state: SessionState) -> None:
        c, a = state.connection, state.agent
        others = tuple(p.identity for p in state.participants if not p.is_agent_kind)
        part = (c.server_url, c.room_name, c.local_identity, a.identity, a.name, others)
        if not self._slice.changed(part):
            return
        agent = a.name if a.name and a.name != a.identity else None
        texts = {
            "Server": c.server_url or "—",
            "Room": c.room_name or "—",
            "You": c.local_identity or "—",
            "Agent": f"{agent} ({a.identity})" if agent and a.identity else (a.identity or agent or "—"),
            "Others": ", ".join(others) or "nobody else",
        }
        for name, text in texts.items():
            self.values[name].setText(text)
