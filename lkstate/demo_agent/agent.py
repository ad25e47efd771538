"""The demo agent: a real LiveKit Agents voice agent that needs no network.

It is the agent ``lkstate demo`` talks to and the agent the wire tests run
against. Everything is the genuine framework — :class:`AgentSession`, room
I/O, transcription streams, the ``lk.agent.state`` attribute, the remote
session host, worker registration and dispatch — except the three models,
which are the deterministic stand-ins from :mod:`lkstate.demo_agent.plugins`.

Offline requirements, learned from livekit-agents 1.8.9:

- ``vad=None`` must be passed explicitly; left out, the session loads the
  Silero VAD through LiveKit inference.
- ``turn_detection`` must be set; left out, the session builds the hosted
  ``inference.TurnDetector``. ``"stt"`` lets the STT's start/end-of-speech
  and final transcripts drive turns.
- With ``vad=None`` adaptive interruption detection is off, so nothing else
  reaches for the network.
- Typed text interrupts the agent's current speech (the framework's default).
  A speech interrupted before its first audio is played — the greeting, when
  the user types the moment the agent is ready — leaves the next reply silent:
  generated and added to the history, but never played nor transcribed (the
  user sees "thinking", then "listening", then nothing). :func:`answer_text`
  lets such a speech become audible first (at most :data:`AUDIBLE_WAIT`).

Run a worker with ``python -m lkstate.demo_agent`` (LIVEKIT_URL,
LIVEKIT_API_KEY and LIVEKIT_API_SECRET from the environment); it registers
under the agent name ``lkstate-demo`` for explicit dispatch.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from livekit import rtc
from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    JobExecutorType,
    function_tool,
    room_io,
)

from .plugins import ScriptedLLM, ScriptedSTT, ToneTTS

__all__ = [
    "DEFAULT_AGENT_NAME",
    "DEFAULT_INSTRUCTIONS",
    "DemoAgent",
    "weather_report",
    "build_session",
    "room_options",
    "answer_text",
    "AUDIBLE_WAIT",
    "create_server",
    "entrypoint",
    "main",
]

logger = logging.getLogger(__name__)

DEFAULT_AGENT_NAME = "lkstate-demo"
DEFAULT_INSTRUCTIONS = (
    "You are the lkstate demo agent. Answer briefly. "
    "Use get_weather when someone asks about the weather."
)
_GREETING_ENV = "LKSTATE_DEMO_GREETING"
_E2EE_KEY_ENV = "LKSTATE_AGENT_E2EE_KEY"
"""A shared key: the demo agent joins end-to-end encrypted with it (see :func:`entrypoint`)."""


def weather_report(city: str) -> str:
    """The deterministic answer of the ``get_weather`` tool."""
    return f"The weather in {city} is sunny and 21 degrees."


class DemoAgent(Agent):
    """A polite agent with one tool, ``get_weather(city)``.

    ``greeting`` is spoken when the agent enters the session (none by
    default, so tests start from a quiet, listening agent).
    """

    def __init__(self, *, instructions: str = DEFAULT_INSTRUCTIONS, greeting: str | None = None) -> None:
        super().__init__(instructions=instructions)  # pyright: ignore[reportUnknownMemberType]
        self.greeting = greeting

    async def on_enter(self) -> None:
        if self.greeting:
            self.session.say(self.greeting)  # pyright: ignore[reportUnknownMemberType]

    @function_tool
    async def get_weather(self, city: str) -> str:
        """Look up the current weather in a city.

        Args:
            city: The name of the city.
        """
        return weather_report(city)


def build_session(
    *,
    stt: ScriptedSTT | None = None,
    llm: ScriptedLLM | None = None,
    tts: ToneTTS | None = None,
    min_endpointing_delay: float = 0.3,
    max_endpointing_delay: float = 2.0,
    allow_interruptions: bool = True,
    aec_warmup_duration: float | None = None,
    user_away_timeout: float | None = 15.0,
    close_transcript_timeout: float = 2.0,
) -> AgentSession[Any]:
    """An :class:`AgentSession` wired to the offline plugins.

    Defaults differ from the framework's in three deterministic-minded ways:
    preemptive generation is off (it would ask the LLM twice per turn), the
    AEC warm-up is off (it replaces the user's audio by silence for the first
    seconds of agent speech, which would hide audio from the STT), and the
    endpointing delay is short, so tests are quick.
    ``close_transcript_timeout`` is how long closing waits for a last user
    transcript (the framework's default, 2 s, is every close's cost).
    """
    return AgentSession(
        stt=stt or ScriptedSTT(),
        llm=llm or ScriptedLLM(),
        tts=tts or ToneTTS(),
        vad=None,
        turn_handling={
            "turn_detection": "stt",
            "endpointing": {"min_delay": min_endpointing_delay, "max_delay": max_endpointing_delay},
            "interruption": {"enabled": allow_interruptions},
            "preemptive_generation": {"enabled": False},
        },
        aec_warmup_duration=aec_warmup_duration,
        user_away_timeout=user_away_timeout,
        session_close_transcript_timeout=close_transcript_timeout,
    )


AUDIBLE_WAIT = 3.0
"""How long :func:`answer_text` lets a speech that is not yet audible start before interrupting it."""


async def answer_text(session: AgentSession[Any], event: room_io.TextInputEvent) -> None:
    """Answer typed text as the framework does, but never cut off a speech that has not started.

    See the module docstring: interrupting a speech before its audio plays
    silences the reply that follows (livekit-agents 1.8.9). So if a speech is
    under way but the agent is not speaking yet, wait until it is (or the
    speech is over, or :data:`AUDIBLE_WAIT` passed), then interrupt and reply.
    """
    speech = session.current_speech
    if speech is not None and not speech.done() and session.agent_state != "speaking":
        audible = asyncio.Event()

        def on_state(changed: Any) -> None:
            if changed.new_state == "speaking":
                audible.set()

        session.on("agent_state_changed", on_state)  # pyright: ignore[reportUnknownMemberType]
        try:
            waits = [asyncio.ensure_future(audible.wait()), asyncio.ensure_future(speech.wait_for_playout())]
            _, pending = await asyncio.wait(waits, timeout=AUDIBLE_WAIT, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        finally:
            session.off("agent_state_changed", on_state)  # pyright: ignore[reportUnknownMemberType]
    async with session._claim_user_turn():  # pyright: ignore[reportPrivateUsage]
        await session.interrupt()
        session.generate_reply(user_input=event.text)  # pyright: ignore[reportUnknownMemberType]


def room_options(
    *,
    participant_identity: str | None = None,
    close_on_disconnect: bool = True,
    auto_gain_control: bool = False,
    pre_connect_audio_timeout: float = 3.0,
) -> room_io.RoomOptions:
    """Room I/O options for the demo: the framework's, but with AGC off.

    Automatic gain control would rescale the user's audio before the STT sees
    it; off, the STT hears what arrived over the wire.
    """
    options = room_io.RoomOptions(
        audio_input=room_io.AudioInputOptions(
            auto_gain_control=auto_gain_control,
            pre_connect_audio_timeout=pre_connect_audio_timeout,
        ),
        text_input=room_io.TextInputOptions(text_input_cb=answer_text),
        close_on_disconnect=close_on_disconnect,
    )
    if participant_identity is not None:
        options.participant_identity = participant_identity
    return options


async def entrypoint(ctx: JobContext) -> None:
    """The worker's job: start a demo session in the dispatched room.

    With ``LKSTATE_AGENT_E2EE_KEY`` set, the agent joins end-to-end encrypted
    with that shared key, through the framework's own
    ``JobContext.connect(encryption=...)``: a client needs the same key.
    """
    key = os.environ.get(_E2EE_KEY_ENV)
    if key:
        await ctx.connect(
            encryption=rtc.E2EEOptions(key_provider_options=rtc.KeyProviderOptions(shared_key=key.encode("utf-8")))
        )
    session = build_session(close_transcript_timeout=0.5)
    greeting = os.environ.get(_GREETING_ENV, "Hello! I am the lkstate demo agent.")
    await session.start(  # pyright: ignore[reportUnknownMemberType]
        agent=DemoAgent(greeting=greeting or None),
        room=ctx.room,
        room_options=room_options(),
    )


def _no_load() -> float:
    """The load the demo worker reports: none, whatever the machine's CPU is doing."""
    return 0.0


def create_server(
    *,
    agent_name: str = DEFAULT_AGENT_NAME,
    ws_url: str | None = None,
    api_key: str | None = None,
    api_secret: str | None = None,
    executor: JobExecutorType = JobExecutorType.THREAD,
    http_host: str = "127.0.0.1",
) -> AgentServer:
    """An :class:`AgentServer` that runs :func:`entrypoint` for ``agent_name``.

    Jobs run in threads by default: the demo agent is light, and a thread
    starts in milliseconds where a job process needs seconds. The health
    endpoint listens on a free port of ``http_host`` (never the fixed 8081 of
    production mode, so several workers can share a machine), and load
    shedding is off: a busy laptop must not refuse its only demo job. That
    takes two settings: ``load_threshold=inf`` keeps the worker saying it is
    available, and a load that always reads 0 keeps livekit-server dispatching
    to it: the server weighs each worker by ``max(0, 1 - load)``
    (``JobRequestAffinity`` in v1.13.5's ``pkg/service/agentservice.go``), so a
    worker reporting a saturated CPU gets no job at all ("no servers available").
    """
    server = AgentServer(
        job_executor_type=executor,
        ws_url=ws_url,
        api_key=api_key,
        api_secret=api_secret,
        host=http_host,
        port=0,
        num_idle_processes=1,
        load_threshold=math.inf,
        load_fnc=_no_load,
        drain_timeout=5,
        shutdown_process_timeout=5.0,
    )
    server.rtc_session(entrypoint, agent_name=agent_name)
    return server


async def _serve(server: AgentServer) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def _registered(worker_id: str, *_: object) -> None:
        # a line other processes (the test harness, `lkstate demo`) wait for
        print(f"lkstate-demo: registered worker {worker_id}", flush=True)

    server.on("worker_registered", _registered)  # pyright: ignore[reportUnknownMemberType]
    run = asyncio.create_task(server.run(devmode=False))
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({run, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if run in done:
        run.result()  # a failed start (bad URL, bad keys) surfaces here
        return
    logger.info("stopping the demo worker")
    await server.aclose()
    await asyncio.gather(run, return_exceptions=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lkstate.demo_agent``: run a worker until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m lkstate.demo_agent",
        description="Run the offline lkstate demo agent as a LiveKit Agents worker.",
    )
    parser.add_argument("--agent-name", default=os.environ.get("LKSTATE_AGENT_NAME", DEFAULT_AGENT_NAME))
    parser.add_argument("--url", default=os.environ.get("LIVEKIT_URL"))
    parser.add_argument("--api-key", default=os.environ.get("LIVEKIT_API_KEY"))
    parser.add_argument("--api-secret", default=os.environ.get("LIVEKIT_API_SECRET"))
    parser.add_argument("--executor", choices=("thread", "process"), default="thread")
    parser.add_argument(
        "--greeting",
        default=None,
        help="what the agent says on joining (empty for nothing)",
    )
    parser.add_argument("--log-level", default=os.environ.get("LKSTATE_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)

    missing = [
        name
        for name, value in (("LIVEKIT_URL", args.url), ("LIVEKIT_API_KEY", args.api_key), ("LIVEKIT_API_SECRET", args.api_secret))
        if not value
    ]
    if missing:
        parser.error(f"{', '.join(missing)} not set; pass --url/--api-key/--api-secret or set the variables")
    if args.greeting is not None:
        os.environ[_GREETING_ENV] = args.greeting

    logging.basicConfig(
        level=str(args.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    server = create_server(
        agent_name=args.agent_name,
        ws_url=args.url,
        api_key=args.api_key,
        api_secret=args.api_secret,
        executor=JobExecutorType(args.executor),
    )
    try:
        asyncio.run(_serve(server))
    except KeyboardInterrupt:
        pass
    return 0
