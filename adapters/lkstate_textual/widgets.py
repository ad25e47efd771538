"""A widget kit for voice-agent TUIs, each widget one slice of the session state.

Every widget here is a :class:`~lkstate_textual.StateView`: it selects the
part of :class:`~lkstate.SessionState` it shows, and is touched only when that
part changes. Drop them into any Textual app that has a
:class:`~lkstate_textual.SessionBinding`; they find it themselves.

- :class:`AgentStatusIndicator` — the agent and connection in words and colour,
  failure reasons included.
- :class:`PreConnectIndicator` — audio buffered before the agent was ready.
- :class:`TranscriptView` — the conversation; interim speech styled apart from
  final, you apart from the agent, typed chat with its delivery status.
- :class:`ChatInput` — type and press Enter.
- :class:`MicrophoneToggle`, :class:`CameraToggle`, :class:`ConnectButton` —
  the switches; :class:`MicrophoneNotice` and :class:`CameraNotice` say why
  the microphone or the camera cannot work, when it cannot.
- :class:`ToolCallsPanel`, :class:`UsagePanel` — what the agent's tools did and
  what its models used (from the agent's ``lk.agent.session`` events).
- :class:`RpcPanel` — the last RPC calls between the app and the agent, how
  each went and why one failed; hidden until there is a call.
- :class:`ProblemsBar` — what went wrong, until dismissed.
- :class:`SessionInfo` — room, identity, server, who is present.
- :class:`VoiceVisualizer` — the agent's voice as bars and the microphone as a
  meter, from ``session.levels`` (not the state).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Button, Input, Static

from lkstate import (
    ConnectionStatus,
    LocalTrackState,
    Message,
    MessageOrigin,
    Messages,
    PreConnectState,
    Role,
    SessionState,
)
from lkstate.ui import (
    ProblemsWords,
    RpcWords,
    Words,
    describe_message,
    describe_problems,
    describe_rpc,
    describe_tool_call,
    describe_usage,
)

from ._binding import SessionBinding, StateView, StateWidget
from ._visualizer import VoiceVisualizer
from ._describe import (
    AgentDescription,
    Tone,
    delivery_label,
    describe_agent,
    describe_camera,
    describe_microphone,
    describe_tool_arguments,
    preconnect_line,
)

__all__ = [
    "AgentStatusIndicator",
    "CameraNotice",
    "CameraToggle",
    "ChatInput",
    "ConnectButton",
    "MessageBubble",
    "MicrophoneNotice",
    "MicrophoneToggle",
    "PreConnectIndicator",
    "ProblemsBar",
    "RpcPanel",
    "SessionInfo",
    "ToolCallsPanel",
    "TranscriptView",
    "UsagePanel",
    "VoiceVisualizer",
]


def _tone_rules(selector: str, declaration: str) -> str:
    """One CSS rule per tone: ``selector.-tone-<tone> { declaration }`` in the tone's colour.

    The colours are lkstate's (:attr:`~lkstate.ui.Tone.colour`), the same as the
    desktop and web clients', not the theme's: a tone looks alike everywhere.
    """
    return "\n".join(
        f"{selector}.-tone-{tone.value} {{ {declaration.format(colour=tone.colour)} }}" for tone in Tone
    )


def _set_tone(widget: Any, tone: Tone | None) -> None:
    """Give ``widget`` the class ``-tone-<tone>`` (and none of the other tones')."""
    for name in Tone:
        widget.set_class(name is tone, f"-tone-{name.value}")


# -- agent status ------------------------------------------------------------------


class AgentStatusIndicator(StateWidget[AgentDescription]):
    """The agent's status: a coloured label, the agent's name, how it sounds, and a sentence.

    Connecting, waiting for the agent, pre-connect buffering, listening,
    thinking, speaking, and failed (with every reason) each read as words; the
    colour only repeats them. When the agent's turn carries an expression
    (``lk.expression``), it follows the name: "sounds surprised (warm surprise)".
    """

    DEFAULT_CSS = """
    AgentStatusIndicator {
        height: auto;
        padding: 0 1;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
    }
    """ + _tone_rules("AgentStatusIndicator", "border: round {colour};")

    PLACEHOLDER = "…"
    _TONE_STYLES: ClassVar[dict[Tone, str]] = {tone: f"bold {tone.colour}" for tone in Tone}
    _DOTS: ClassVar[dict[Tone, str]] = {
        Tone.OK: "●",
        Tone.WAITING: "◌",
        Tone.BUFFERING: "◉",
        Tone.THINKING: "◐",
        Tone.SPEAKING: "◆",
        Tone.ERROR: "✗",
        Tone.NEUTRAL: "○",
    }

    def on_mount(self) -> None:
        self.border_title = "Agent"

    def select(self, state: SessionState) -> AgentDescription:
        return describe_agent(state)

    def show_slice(self, value: AgentDescription) -> None:
        _set_tone(self, value.tone)
        super().show_slice(value)

    def render_slice(self, value: AgentDescription) -> Content:
        style = self._TONE_STYLES.get(value.tone, "bold")
        parts: list[str | tuple[str, str]] = [
            (f"{self._DOTS.get(value.tone, '●')} {value.headline}", style),
        ]
        if value.name and value.name not in value.detail:  # named once is enough
            parts += ["   ", (value.name, "$text-muted")]
        if value.expression is not None:
            parts += ["   ", (f"♪ {value.expression.text}", f"italic {value.expression.tone.colour}")]
        parts += ["\n", (value.detail, "$text")]
        for reason in value.reasons:
            parts += ["\n", ("• " + reason, Tone.ERROR.colour)]
        return Content.assemble(*parts)


# -- pre-connect --------------------------------------------------------------------


class PreConnectIndicator(StateWidget[PreConnectState]):
    """One line about audio captured before the agent was ready; hidden when idle."""

    DEFAULT_CSS = """
    PreConnectIndicator {
        height: auto;
        padding: 0 1;
        display: none;
    }
    PreConnectIndicator.-active { display: block; }
    """ + _tone_rules("PreConnectIndicator", "color: {colour};")

    def select(self, state: SessionState) -> PreConnectState:
        return state.preconnect

    def show_slice(self, value: PreConnectState) -> None:
        described = preconnect_line(value)
        self.set_class(described is not None, "-active")
        _set_tone(self, described[1] if described else None)
        super().show_slice(value)

    def render_slice(self, value: PreConnectState) -> str:
        described = preconnect_line(value)
        return described[0] if described else ""


# -- microphone notice -------------------------------------------------------------


class _TrackNotice(StateWidget["str | None"]):
    """One line saying why a local track does not work, in full; hidden otherwise."""

    DEFAULT_CSS = f"""
    _TrackNotice {{
        height: auto;
        padding: 0 1;
        color: {Tone.ERROR.colour};
        display: none;
    }}
    _TrackNotice.-active {{ display: block; }}
    """

    def select(self, state: SessionState) -> str | None:
        raise NotImplementedError

    def sentence(self, error: str) -> str:
        raise NotImplementedError

    def show_slice(self, value: str | None) -> None:
        self.set_class(bool(value), "-active")
        super().show_slice(value)

    def render_slice(self, value: str | None) -> str:
        return self.sentence(value) if value else ""


class MicrophoneNotice(_TrackNotice):
    """Why the microphone does not work (no device, no permission…); hidden otherwise."""

    def select(self, state: SessionState) -> str | None:
        return state.local_media.microphone.error

    def sentence(self, error: str) -> str:
        return f"✗ Microphone: {error} You can still type."


class CameraNotice(_TrackNotice):
    """Why the camera does not work (no camera, OpenCV missing, the input ended…); hidden otherwise."""

    def select(self, state: SessionState) -> str | None:
        return state.local_media.camera.error

    def sentence(self, error: str) -> str:
        return f"✗ Camera: {error}"


# -- transcript ---------------------------------------------------------------------


class MessageBubble(Static):
    """One message: who, how (typed or spoken), delivery, and the text.

    Interim speech (``final`` false) is drawn dim and italic with a trailing
    ellipsis, so a person can tell words still being recognised from words
    that are settled.
    """

    DEFAULT_CSS = """
    MessageBubble {
        height: auto;
        margin: 0 0 1 0;
        padding: 0 1;
        border-left: outer $panel-lighten-2;
    }
    MessageBubble.-user { border-left: outer $success; margin: 0 0 1 6; }
    MessageBubble.-agent { border-left: outer $primary; margin: 0 6 1 0; }
    MessageBubble.-participant { border-left: outer $warning; margin: 0 6 1 0; }
    MessageBubble.-failed { border-left: outer $error; }
    MessageBubble.-earlier { border-left: outer $panel-lighten-2; }
    """

    def __init__(self, message: Message, *, agent_name: str | None = None) -> None:
        super().__init__()
        self.message = message
        self.agent_name = agent_name
        self._apply()

    def set_message(self, message: Message, *, agent_name: str | None = None) -> None:
        if message == self.message and agent_name == self.agent_name:
            return
        self.message = message
        self.agent_name = agent_name
        self._apply()

    def _apply(self) -> None:
        message = self.message
        self.set_class(message.role is Role.USER, "-user")
        self.set_class(message.role is Role.AGENT, "-agent")
        self.set_class(message.role is Role.PARTICIPANT, "-participant")
        self.set_class(not message.final, "-interim")
        self.set_class(message.error is not None and message.delivery is not None, "-failed")
        self.set_class(message.origin is not MessageOrigin.LIVE, "-earlier")
        self.update(self.describe(message, agent_name=self.agent_name))

    @staticmethod
    def describe(message: Message, *, agent_name: str | None = None) -> Content:
        name_style = {
            Role.USER: "bold $success",
            Role.AGENT: "bold $primary",
            Role.PARTICIPANT: "bold $warning",
        }[message.role]
        words = describe_message(message, agent_name=agent_name)
        parts: list[str | tuple[str, str]] = [
            (words.speaker, name_style),
            (f" · {words.how}", "$text-muted"),
        ]
        if words.earlier:
            parts.append((f" · {words.earlier}", "italic $text-muted"))
        if words.expression:
            parts.append((f" · {words.expression}", f"italic {Tone.SPEAKING.colour}"))
        delivery = delivery_label(message)
        if delivery is not None:
            label, tone = delivery
            parts.append(("  " + label, f"bold {tone.colour}" if tone is Tone.ERROR else tone.colour))
        if words.pending:
            parts.append((f"  ({words.pending})", "italic $text-muted"))
        if words.interrupted:
            parts.append((f"  ({words.interrupted})", f"italic {Tone.WAITING.colour}"))
        parts.append("\n")
        if message.final:
            # the earlier conversation (restored, or from before the join) is dimmed
            parts.append((message.text, "$text" if words.earlier is None else "$text-muted"))
        else:
            parts.append((message.text + " …", "italic $text-muted"))
        if message.error:
            parts += ["\n", (message.error, "$error")]
        return Content.assemble(*parts)


_TranscriptSlice = tuple[Messages, "str | None", "str | None"]


class TranscriptView(StateView[_TranscriptSlice], VerticalScroll):
    """The conversation, newest at the bottom, following new messages.

    Only the last ``max_messages`` messages are on screen (older ones are
    counted in a line at the top), so a conversation of hours costs the same
    to update as one of minutes. The view follows new messages while it is
    scrolled to the bottom, and stays put when the user scrolled up.
    """

    DEFAULT_CSS = """
    TranscriptView {
        height: 1fr;
        padding: 0 1;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
    }
    TranscriptView > .transcript-empty { color: $text-muted; padding: 1 2; }
    TranscriptView > .transcript-earlier { color: $text-muted; text-align: center; }
    """

    def __init__(self, *, max_messages: int = 300, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.max_messages = max_messages
        self._bubbles: dict[str, MessageBubble] = {}
        self._agent_names: dict[str, str] = {}
        """Agent identity -> name, remembered so a transcript keeps its labels after the agent left."""
        self._empty = Static(
            "No messages yet. Type below, or speak once the microphone is on.", classes="transcript-empty"
        )
        self._earlier = Static("", classes="transcript-earlier")
        self._earlier.display = False

    def compose(self) -> ComposeResult:
        yield self._earlier
        yield self._empty

    def on_mount(self) -> None:
        self.border_title = "Conversation"

    def select(self, state: SessionState) -> _TranscriptSlice:
        return (state.messages, state.agent.identity, state.agent.name)

    @property
    def bubbles(self) -> tuple[MessageBubble, ...]:
        """The message widgets on screen, oldest first."""
        return tuple(self._bubbles.values())

    def show_slice(self, value: _TranscriptSlice) -> None:
        messages, agent_identity, current_name = value
        if agent_identity and current_name:
            self._agent_names[agent_identity] = current_name
        # Follow the conversation while the reader is at the bottom; leave them
        # be when they scrolled up to read something older.
        following = self.scroll_y >= self.max_scroll_y - 1
        total = len(messages)
        window: tuple[Message, ...] | Messages = (
            messages[total - self.max_messages :] if total > self.max_messages else messages
        )
        hidden = total - len(window)
        self._earlier.display = hidden > 0
        if hidden:
            self._earlier.update(f"… {hidden} earlier message{'s' if hidden != 1 else ''} not shown")
        self._empty.display = total == 0

        wanted = {message.id for message in window}
        stale = [bubble for key, bubble in self._bubbles.items() if key not in wanted]
        for key in [key for key in self._bubbles if key not in wanted]:
            del self._bubbles[key]
        if stale:
            self.remove_children(stale)
        new: list[MessageBubble] = []
        for message in window:
            agent_name = self._agent_names.get(message.sender) if message.role is Role.AGENT else None
            bubble = self._bubbles.get(message.id)
            if bubble is None:
                bubble = MessageBubble(message, agent_name=agent_name)
                self._bubbles[message.id] = bubble
                new.append(bubble)
            elif bubble.message is not message or bubble.agent_name != agent_name:
                bubble.set_message(message, agent_name=agent_name)
        if new:
            self.mount_all(new)
        if following:
            self.call_after_refresh(self.scroll_end, animate=False)


# -- input and switches ---------------------------------------------------------------


class ChatInput(StateView[ConnectionStatus], Input):
    """Type a message and press Enter to send it to the agent.

    The text is cleared once it is handed to the session; the message then
    shows in the transcript as sending, sent or not sent. While disconnected
    the text stays put and a notice says why nothing was sent.
    """

    DEFAULT_CSS = """
    ChatInput {
        border: tall $panel-lighten-2;
    }
    ChatInput:focus { border: tall $accent; }
    """

    _PLACEHOLDERS: ClassVar[dict[ConnectionStatus, str]] = {
        ConnectionStatus.CONNECTED: "Type a message and press Enter",
        ConnectionStatus.CONNECTING: "Connecting… you can type already",
        ConnectionStatus.RECONNECTING: "Reconnecting… you can type already",
        ConnectionStatus.DISCONNECTED: "Not connected: connect first to chat",
    }

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(placeholder=self._PLACEHOLDERS[ConnectionStatus.DISCONNECTED], id=id, classes=classes)

    def select(self, state: SessionState) -> ConnectionStatus:
        return state.connection.status

    def show_slice(self, value: ConnectionStatus) -> None:
        self.placeholder = self._PLACEHOLDERS[value]

    @on(Input.Submitted)
    def _send(self, event: Input.Submitted) -> None:
        if event.input is not self:
            return
        text = event.value
        binding = self.binding
        if binding is None or not text.strip():
            return
        if binding.session.state.connection.status is ConnectionStatus.DISCONNECTED:
            self.app.notify("Not connected, so the message was not sent. Connect first.", severity="warning")
            return
        self.clear()
        binding.send_text(text)


class _TrackToggle(StateView[LocalTrackState], Button):
    """A button that turns one of the user's tracks on and off; the label follows the state, not the press.

    Subclasses say which track (:meth:`select`), how its state reads
    (:meth:`words`) and which command the press sends (:meth:`toggle`). The
    label is the state's headline, the reason its tooltip, the tone its colour.
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(self.words(LocalTrackState()).headline, id=id, classes=classes)

    def words(self, value: LocalTrackState) -> Words:
        raise NotImplementedError

    def toggle(self, binding: SessionBinding) -> None:
        raise NotImplementedError

    def show_slice(self, value: LocalTrackState) -> None:
        words = self.words(value)
        self.label = words.headline
        self.tooltip = words.detail
        _set_tone(self, words.tone)
        self.set_class(words.tone is Tone.OK, "-live")

    @on(Button.Pressed)
    def _toggle(self, event: Button.Pressed) -> None:
        if event.button is not self:
            return
        event.stop()
        binding = self.binding
        if binding is not None:
            self.toggle(binding)


class MicrophoneToggle(_TrackToggle):
    """Turns the microphone on and off; says when there is no device."""

    DEFAULT_CSS = """
    MicrophoneToggle { min-width: 14; }
    """ + _tone_rules("MicrophoneToggle", "color: {colour}; text-style: bold;")

    def select(self, state: SessionState) -> LocalTrackState:
        return state.local_media.microphone

    def words(self, value: LocalTrackState) -> Words:
        return describe_microphone(value)

    def toggle(self, binding: SessionBinding) -> None:
        binding.toggle_microphone()


class CameraToggle(_TrackToggle):
    """Turns the camera on and off (F5 in the app).

    Pressed before connecting, it chooses: the camera goes out once the
    session connects. When the camera cannot work the label says "No camera"
    and :class:`CameraNotice` says why.
    """

    DEFAULT_CSS = """
    CameraToggle { min-width: 14; }
    """ + _tone_rules("CameraToggle", "color: {colour}; text-style: bold;")

    def select(self, state: SessionState) -> LocalTrackState:
        return state.local_media.camera

    def words(self, value: LocalTrackState) -> Words:
        return describe_camera(value)

    def toggle(self, binding: SessionBinding) -> None:
        binding.toggle_camera()


class ConnectButton(StateView[ConnectionStatus], Button):
    """Connect when disconnected; disconnect (or cancel connecting) otherwise."""

    DEFAULT_CSS = """
    ConnectButton { min-width: 14; }
    """

    _LOOKS: ClassVar[dict[ConnectionStatus, tuple[str, str]]] = {
        ConnectionStatus.DISCONNECTED: ("Connect", "success"),
        ConnectionStatus.CONNECTING: ("Cancel", "warning"),
        ConnectionStatus.CONNECTED: ("Disconnect", "error"),
        ConnectionStatus.RECONNECTING: ("Disconnect", "warning"),
    }

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("Connect", variant="success", id=id, classes=classes)

    def select(self, state: SessionState) -> ConnectionStatus:
        return state.connection.status

    def show_slice(self, value: ConnectionStatus) -> None:
        label, variant = self._LOOKS[value]
        self.label = label
        self.variant = variant  # type: ignore[assignment]

    @on(Button.Pressed)
    def _toggle(self, event: Button.Pressed) -> None:
        if event.button is not self:
            return
        event.stop()
        binding = self.binding
        if binding is not None:
            binding.toggle_connection()


# -- tool calls and usage -----------------------------------------------------------------


class ToolCallsPanel(StateWidget[Any]):
    """The agent's tool calls, newest first: name, arguments, status, result."""

    DEFAULT_CSS = """
    ToolCallsPanel {
        height: auto;
        max-height: 50%;
        padding: 0 1;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
    }
    """

    def __init__(self, *, limit: int = 6, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.limit = limit

    def on_mount(self) -> None:
        self.border_title = "Tool calls"

    def select(self, state: SessionState) -> Any:
        return state.remote.tool_calls

    _ICONS: ClassVar[dict[str, str]] = {"started": "◌", "running": "◌", "done": "✓", "error": "✗", "cancelled": "⊘"}

    def render_slice(self, value: Any) -> Content:
        calls = list(value)
        if not calls:
            return Content.styled("No tool calls yet.", "$text-muted")
        parts: list[str | tuple[str, str]] = []
        shown = calls[-self.limit :][::-1]
        for index, call in enumerate(shown):
            words = describe_tool_call(call)
            icon, style = self._ICONS.get(call.status, "?"), words.tone.colour
            if index:
                parts.append("\n")
            parts += [(f"{icon} ", style), (words.headline, "bold"), (f"  {words.status}", style)]
            arguments = describe_tool_arguments(call.arguments)
            if arguments:
                parts += ["\n", ("  " + arguments, "$text-muted")]
            if words.detail and call.status in ("started", "running"):
                parts += ["\n", ("  … " + words.detail, "italic $text-muted")]
            elif words.detail:
                parts += ["\n", ("  → " + _clip(words.detail, 120), Tone.ERROR.colour if call.is_error else "$text")]
        if len(calls) > self.limit:
            parts += ["\n", (f"… and {len(calls) - self.limit} earlier", "$text-muted")]
        return Content.assemble(*parts)


class RpcPanel(StateWidget[RpcWords]):
    """The last RPC calls between the app and the agent, newest first; hidden until there is one.

    Each call is who called whom for what (``✓ agent → app: get_location``)
    over how it went (``ok · 12 ms``); one that failed, timed out or was
    refused says why on the line under that. The
    border counts every call, and the foot says which methods the app answers.
    """

    DEFAULT_CSS = """
    RpcPanel {
        height: auto;
        padding: 0 1;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        display: none;
    }
    RpcPanel.-active { display: block; }
    """

    _ICONS: ClassVar[dict[str, str]] = {"ok": "✓", "calling…": "◌", "refused": "⊘"}

    def __init__(self, *, limit: int = 4, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.limit = limit

    def select(self, state: SessionState) -> RpcWords:
        return describe_rpc(state, limit=self.limit)

    def show_slice(self, value: RpcWords) -> None:
        self.set_class(bool(value), "-active")
        self.border_title = value.headline or "RPC"
        super().show_slice(value)

    def render_slice(self, value: RpcWords) -> Content:
        parts: list[str | tuple[str, str]] = []
        for index, call in enumerate(value.calls):
            colour = call.tone.colour
            if index:
                parts.append("\n")
            # Two short lines rather than one that wraps mid-status in a narrow side column.
            parts += [(f"{self._ICONS.get(call.status, '✗')} ", colour), (call.headline, "bold"), "\n"]
            parts += [(f"  {call.status}", colour)]
            if call.took:
                parts.append((f" · {call.took}", "$text-muted"))
            if call.detail:
                parts += ["\n", ("  " + _clip(call.detail, 200), colour)]
        for foot in (value.earlier, value.answers):
            if foot:
                parts += ["\n", (foot, "$text-muted")]
        return Content.assemble(*parts)


class UsagePanel(StateWidget[Any]):
    """What the agent's models used so far, as the agent last reported it."""

    DEFAULT_CSS = """
    UsagePanel {
        height: auto;
        padding: 0 1;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
    }
    """

    def on_mount(self) -> None:
        self.border_title = "Usage"

    def select(self, state: SessionState) -> Any:
        return state.remote.usage

    def render_slice(self, value: Any) -> Content:
        if value is None or not value.models:
            return Content.styled("No usage reported yet.", "$text-muted")
        parts: list[str | tuple[str, str]] = []
        for index, line in enumerate(describe_usage(value.models)):
            if index:
                parts.append("\n")
            parts += [(f"{line.kind} ", "bold $accent"), (line.model, "$text")]
            parts += ["\n", ("     " + line.figures, "$text-muted")]
        return Content.assemble(*parts)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- problems and session info ------------------------------------------------------------


class ProblemsBar(StateWidget[ProblemsWords]):
    """What went wrong (refused input, lost connections, agent errors); hidden when nothing did.

    Dismissing clears the session's problems and hides the agent errors seen so far.
    """

    DEFAULT_CSS = """
    ProblemsBar {
        height: auto;
        max-height: 6;
        padding: 0 1;
        background: $error 15%;
        border-left: outer $error;
        display: none;
    }
    ProblemsBar.-active { display: block; }
    """

    def __init__(self, *, limit: int = 3, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.limit = limit
        self._dismissed_agent_errors = 0

    def select(self, state: SessionState) -> ProblemsWords:
        return describe_problems(state, agent_errors_dismissed=self._dismissed_agent_errors)

    def show_slice(self, value: ProblemsWords) -> None:
        self.set_class(bool(value), "-active")
        super().show_slice(value)

    def dismiss(self) -> None:
        """Clear the problems in the session and hide the agent errors shown so far."""
        binding = self.binding
        if binding is None:
            return
        self._dismissed_agent_errors = binding.state.remote.error_count
        self.lkstate_offer(binding.state)
        binding.dismiss_problems()

    def render_slice(self, value: ProblemsWords) -> Content:
        if not value:
            return Content("")
        parts: list[str | tuple[str, str]] = [
            (f"⚠ {value.headline}", f"bold {Tone.ERROR.colour}"),
            ("  (F4 dismisses)", "$text-muted"),
        ]
        for line in value.lines[-self.limit :]:
            parts += ["\n", (f"{line.source}: ", "bold"), (line.message, "$text")]
        return Content.assemble(*parts)


@attrs.frozen
class _InfoSlice:
    status: ConnectionStatus
    room: str | None
    identity: str | None
    server: str | None
    agent_identity: str | None
    participants: tuple[str, ...]
    messages: int


class SessionInfo(StateWidget[_InfoSlice]):
    """Where this session is: room, your identity, server, who else is present."""

    DEFAULT_CSS = """
    SessionInfo {
        height: auto;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
    }
    """

    def on_mount(self) -> None:
        self.border_title = "Session"

    def select(self, state: SessionState) -> _InfoSlice:
        return _InfoSlice(
            state.connection.status,
            state.connection.room_name,
            state.connection.local_identity,
            state.connection.server_url,
            state.agent.identity,
            tuple(p.identity for p in state.participants),
            len(state.messages),
        )

    def render_slice(self, value: _InfoSlice) -> Content:
        rows: list[tuple[str, str]] = [
            ("status", value.status.value),
            ("room", value.room or "—"),
            ("you", value.identity or "—"),
            ("server", value.server or "—"),
            ("agent", value.agent_identity or "—"),
            ("others", ", ".join(p for p in value.participants if p != value.agent_identity) or "—"),
            ("messages", str(value.messages)),
        ]
        parts: list[str | tuple[str, str]] = []
        for index, (key, text) in enumerate(rows):
            if index:
                parts.append("\n")
            parts += [(f"{key:<9}", "$text-muted"), (text, "$text")]
        return Content.assemble(*parts)
