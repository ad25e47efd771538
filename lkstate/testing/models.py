"""Offline, deterministic models for a LiveKit agent: run your agent's own code with no network.

A real :class:`~livekit.agents.AgentSession` needs an STT, an LLM and a TTS;
hosted ones need keys and network and never answer the same way twice. These
three implement the same base classes the real plugins do, so everything
between them — turn taking, tool execution, transcription streams, agent
state, audio tracks — is the real framework at work. Give them to your
agent's session in tests (for example when an environment variable says so)::

    from lkstate.testing.models import ScriptedLLM, ScriptedSTT, ToneTTS, ToolRule

    session = AgentSession(
        stt=ScriptedSTT(transcripts=["What's the weather in Paris?"]),
        llm=ScriptedLLM(["Hello!"], tool_rules=[ToolRule(r"weather in (?P<city>\\w+)", "get_weather")]),
        tts=ToneTTS(),
        vad=None,                                   # offline: no Silero download
        turn_handling={"turn_detection": "stt"},    # offline: no hosted turn detector
    )

- :class:`ScriptedLLM` streams its replies token by token, in turn (or a
  function of the chat context, like :func:`echo_reply`), and calls a function
  tool when the user's last words match a :class:`ToolRule` (named groups
  become the arguments); after the tool returns, it answers with the tool's
  output.
- :class:`ToneTTS` "speaks" a soft tone whose length follows the text, so the
  agent publishes real audio and really spends time speaking.
- :class:`ScriptedSTT` hears the user's audio, keeps every PCM byte it was
  given (:meth:`~ScriptedSTT.received_pcm`; the final texts it produced are in
  :attr:`~ScriptedSTT.utterances`), and turns each stretch of
  speech (by an energy rule, no VAD model) into its next scripted transcript.

Offline needs two settings of the session besides the models: ``vad=None``
and an explicit ``turn_detection`` (``"stt"``); left out, livekit-agents
1.8.9 reaches for the hosted Silero VAD and turn detector.
:func:`lkstate.demo_agent.build_session` makes such a session.

These are the models of lkstate's own demo agent (:mod:`lkstate.demo_agent`,
which ``lkstate demo`` runs); this module is their supported home for tests.
It needs the ``agent`` extra (``livekit-agents``).
"""

from __future__ import annotations

from ..demo_agent.agent import build_session
from ..demo_agent.plugins import WEATHER_RULE, ReceivedAudio, ScriptedLLM, ScriptedSTT, ToneTTS, ToolRule, echo_reply

__all__ = [
    "ScriptedLLM",
    "ToolRule",
    "echo_reply",
    "WEATHER_RULE",
    "ToneTTS",
    "ScriptedSTT",
    "ReceivedAudio",
    "build_session",
]
