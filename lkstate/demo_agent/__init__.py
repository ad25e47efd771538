"""An offline, deterministic LiveKit Agents voice agent for demos and tests.

Needs the ``agent`` extra (``pip install "lkstate[agent]"``): it imports
``livekit.agents``, which the core library never does. ``lkstate`` itself does
not import this package.
"""

from __future__ import annotations

from .agent import (
    DEFAULT_AGENT_NAME,
    DEFAULT_INSTRUCTIONS,
    DemoAgent,
    build_session,
    create_server,
    entrypoint,
    main,
    room_options,
    weather_report,
)
from .plugins import WEATHER_RULE, ReceivedAudio, ScriptedLLM, ScriptedSTT, ToneTTS, ToolRule, echo_reply

__all__ = [
    "DEFAULT_AGENT_NAME",
    "DEFAULT_INSTRUCTIONS",
    "DemoAgent",
    "build_session",
    "create_server",
    "entrypoint",
    "main",
    "room_options",
    "weather_report",
    "WEATHER_RULE",
    "ReceivedAudio",
    "ScriptedLLM",
    "ScriptedSTT",
    "ToneTTS",
    "ToolRule",
    "echo_reply",
]
