"""What the widgets say: the state in words, as pure functions.

Every widget of the kit draws from one of these. Keeping the wording here,
away from Textual, means the sentences a person reads can be tested without
a terminal, and the widgets stay thin: select a slice, describe it, draw it.

Each description carries a ``tone`` (``ok``, ``busy``, ``buffer``, ``think``,
``speak``, ``error``, ``off``) that the widgets turn into a colour class, so
colour never carries meaning on its own: the words always say it too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import attrs

from lkstate import (
    AgentStatus,
    ConnectionStatus,
    DeliveryStatus,
    LocalTrackState,
    Message,
    PreConnectState,
    PreConnectStatus,
    Role,
    SessionState,
)

__all__ = [
    "AgentDescription",
    "MicrophoneDescription",
    "describe_agent",
    "describe_microphone",
    "describe_preconnect",
    "describe_tool_arguments",
    "message_label",
    "delivery_words",
]


@attrs.frozen
class AgentDescription:
    """The agent indicator's content: a short label, a sentence, and a tone."""

    label: str
    detail: str
    tone: str
    name: str | None = None
    reasons: tuple[str, ...] = ()


def describe_agent(state: SessionState) -> AgentDescription:
    """The agent and connection status in words a person would use."""
    connection, agent = state.connection, state.agent
    name = agent.name or agent.identity
    if connection.status is ConnectionStatus.DISCONNECTED:
        if connection.error:
            return AgentDescription("Could not connect", connection.error, "error", name)
        reason = connection.disconnect_reason
        if reason:
            return AgentDescription("Not connected", f"{reason} Connect to talk again.", "off", name)
        return AgentDescription("Not connected", "Connect to start talking to the agent.", "off", name)
    if connection.status is ConnectionStatus.CONNECTING:
        return AgentDescription("Connecting…", "Joining the room.", "busy", name)
    if connection.status is ConnectionStatus.RECONNECTING:
        return AgentDescription(
            "Reconnecting…", "The connection dropped; trying to restore it.", "busy", name
        )
    status = agent.status
    extra = f" (the agent says it is {agent.unknown_state!r})" if agent.unknown_state else ""
    if status is AgentStatus.FAILED:
        reasons = agent.failure_reasons or ("The agent is not available.",)
        return AgentDescription(
            "Agent unavailable",
            "Still connected: an agent that joins later is picked up.",
            "error",
            name,
            reasons,
        )
    if status is AgentStatus.PRE_CONNECT_BUFFERING:
        return AgentDescription(
            "Listening (buffering)",
            "The microphone is on; what you say is kept for the agent until it is ready.",
            "buffer",
            name,
        )
    if status is AgentStatus.CONNECTING or status is AgentStatus.DISCONNECTED:
        return AgentDescription(
            "Waiting for the agent", "Connected to the room; the agent has not joined yet.", "busy", name
        )
    if status is AgentStatus.INITIALIZING:
        return AgentDescription("Agent starting", f"The agent joined and is getting ready{extra}.", "busy", name)
    if status is AgentStatus.IDLE:
        return AgentDescription("Agent idle", f"The agent is present but not listening yet{extra}.", "busy", name)
    if status is AgentStatus.LISTENING:
        return AgentDescription("Listening", "Speak, or type a message below.", "ok", name)
    if status is AgentStatus.THINKING:
        return AgentDescription("Thinking…", "The agent is working on a reply.", "think", name)
    return AgentDescription("Speaking", "The agent is replying.", "speak", name)


@attrs.frozen
class MicrophoneDescription:
    label: str
    tone: str
    detail: str


def describe_microphone(mic: LocalTrackState, *, supported: bool = True) -> MicrophoneDescription:
    """The microphone toggle's label and tooltip."""
    if not supported:
        return MicrophoneDescription(
            "Mic n/a", "off", "This lkstate version cannot capture a microphone."
        )
    device = f" ({mic.device})" if mic.device else ""
    if mic.error:
        return MicrophoneDescription("✗ No mic", "error", mic.error)
    if mic.enabled and mic.published and not mic.muted:
        return MicrophoneDescription("● Mic on", "live", f"The agent hears you{device}.")
    if mic.enabled and mic.muted:
        return MicrophoneDescription("○ Muted", "off", f"The microphone is muted{device}.")
    if mic.enabled:
        return MicrophoneDescription(
            "◌ Mic ready", "busy", f"The microphone is on{device}; it is sent once connected."
        )
    return MicrophoneDescription("○ Mic off", "off", "The microphone is off.")


def describe_preconnect(pre: PreConnectState) -> tuple[str, str] | None:
    """``(sentence, tone)`` about audio captured before the agent was ready; ``None`` when idle."""
    seconds = f"{pre.seconds:.1f} s"
    to = f" to {pre.destination}" if pre.destination else " to the agent"
    detail = f" {pre.detail}" if pre.detail else ""
    if pre.status is PreConnectStatus.IDLE:
        return None
    if pre.status is PreConnectStatus.RECORDING:
        return f"● Pre-connect: buffering your audio until the agent is ready ({seconds}).", "buffer"
    if pre.status is PreConnectStatus.SENDING:
        return f"▸ Pre-connect: sending {seconds} of buffered audio{to}…", "busy"
    if pre.status is PreConnectStatus.SENT:
        return f"✓ Pre-connect: {seconds} of buffered audio sent{to}.", "ok"
    if pre.status is PreConnectStatus.EXPIRED:
        return f"⚠ Pre-connect: the buffered audio expired before the agent took it.{detail}", "error"
    return f"✗ Pre-connect: the buffered audio could not be sent.{detail}", "error"


def message_label(message: Message, *, agent_name: str | None = None) -> str:
    """Who said it, as a conversation header shows it."""
    if message.role is Role.USER:
        return "You"
    if message.role is Role.AGENT:
        return agent_name or "Agent"
    return message.sender


def delivery_words(message: Message) -> tuple[str, str] | None:
    """``(words, tone)`` for a typed message's delivery; ``None`` for others."""
    if message.delivery is DeliveryStatus.SENDING:
        return "… sending", "busy"
    if message.delivery is DeliveryStatus.SENT:
        return "✓ sent", "ok"
    if message.delivery is DeliveryStatus.FAILED:
        return "✗ not sent", "error"
    return None


def describe_tool_arguments(arguments: str, *, limit: int = 60) -> str:
    """A tool call's JSON arguments as ``key: value, …`` (raw text if not an object)."""
    text = arguments.strip()
    try:
        parsed: object = json.loads(text) if text else {}
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        items: Iterable[tuple[object, object]] = parsed.items()  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
        text = ", ".join(f"{key}: {_short(value)}" for key, value in items)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)
