"""Real LiveKit Agents sessions for tests, in-process or through a real worker.

Two ways to bring the demo agent (:mod:`lkstate.demo_agent`) into a room:

- :func:`start_agent` runs an :class:`AgentSession` **in this process**
  against a real room, with ``livekit.agents.testing.fake_job_context``
  standing in for the job a worker would have received. The test gets the
  session, the agent's room and the plugin instances (the STT keeps every PCM
  byte it heard). Fast — no subprocess — and fully inspectable.
- :func:`start_worker` runs ``python -m lkstate.demo_agent`` **as a
  subprocess**: a genuine worker that registers with the server under an
  agent name and is dispatched into rooms whose creating token names it
  (``RoomConfiguration(agents=[RoomAgentDispatch(agent_name=...)])``). This
  is the path a deployed agent takes. It is the published test kit's
  (:mod:`lkstate.testing.workers`), re-exported here.

Both can leave the room abruptly for failure tests: the in-process agent by
dropping its room connection while the session keeps running, the worker by
being SIGKILLed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any, Literal

from livekit import api, rtc
from livekit.agents import AgentSession, function_tool, get_job_context, room_io
from livekit.agents.testing import fake_job_context

from lkstate.demo_agent import DemoAgent, ScriptedLLM, ScriptedSTT, ToneTTS, ToolRule, build_session, room_options

from lkstate.testing.workers import WorkerProcess, start_worker

from .server import LiveKitServer

__all__ = [
    "InProcessAgent",
    "start_agent",
    "WorkerProcess",
    "start_worker",
    "RpcAgent",
    "WHERE_AM_I_RULE",
]

logger = logging.getLogger(__name__)


WHERE_AM_I_RULE = ToolRule(r"where am i", "where_is_the_user")
"""Give to a ScriptedLLM so "where am I?" makes the agent call :meth:`RpcAgent.where_is_the_user`."""


class RpcAgent(DemoAgent):
    """The demo agent with RPC both ways, as a real agent would use it.

    Its function tool ``where_is_the_user`` asks the user's app through RPC
    (method ``get_location``) and says the answer; the app's error or silence
    becomes what it says instead. On entering it registers ``agent.state``,
    which answers the session's agent state, for the app to call.
    """

    def __init__(self, *, rpc_timeout: float = 5.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rpc_timeout = rpc_timeout
        self.rpc_answers: list[str] = []
        """What the tool got back (the answer or the error), in order."""

    def _room(self) -> rtc.Room:
        """The job's room; in-process (``start_agent``) the job context is gone after start, so the session's."""
        context = get_job_context(required=False)
        return context.room if context is not None else self.session.room_io.room

    async def on_enter(self) -> None:
        await super().on_enter()
        room = self._room()

        async def agent_state(data: rtc.RpcInvocationData) -> str:
            del data
            return str(self.session.agent_state)

        room.local_participant.register_rpc_method("agent.state", agent_state)

    @function_tool
    async def where_is_the_user(self) -> str:
        """Ask the user's app where the user is."""
        room = self._room()
        user = self.session.room_io.linked_participant
        assert user is not None, "the agent answers a linked user"
        try:
            answer = await room.local_participant.perform_rpc(
                destination_identity=user.identity,
                method="get_location",
                payload='{"precision": "city"}',
                response_timeout=self.rpc_timeout,
            )
        except rtc.RpcError as error:
            self.rpc_answers.append(f"error {error.code}")
            return f"Your app could not tell me: {error.message}."
        self.rpc_answers.append(answer)
        return f"You are in {answer}."


class InProcessAgent:
    """A running in-process agent. Close with :meth:`aclose`."""

    def __init__(
        self,
        *,
        server: LiveKitServer,
        room: rtc.Room,
        session: AgentSession[Any],
        agent: DemoAgent,
        stt: ScriptedSTT,
        llm: ScriptedLLM,
        tts: ToneTTS,
        identity: str,
        states: list[str],
    ) -> None:
        self.server = server
        self.room = room
        self.session = session
        self.agent = agent
        self.stt = stt
        self.llm = llm
        self.tts = tts
        self.identity = identity
        self.states = states
        """Every ``agent_state`` the session went through, from ``initializing``."""
        self._closed = False

    @property
    def room_name(self) -> str:
        return self.room.name

    async def wait_for_participant(self, identity: str, timeout: float = 10.0) -> rtc.RemoteParticipant:
        """Wait until the agent's own room has seen ``identity`` join.

        The agent ignores chat from participants it has not seen yet ("participant
        not found, ignoring text input"), and a user who joins and types at once
        can beat the join notification; tests wait for this first.
        """
        deadline = time.monotonic() + timeout
        while (participant := self.room.remote_participants.get(identity)) is None:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"agent {self.identity} did not see {identity} join within {timeout:.0f} s")
            await asyncio.sleep(0.02)
        return participant

    async def leave_abruptly(self, how: Literal["disconnect", "kick"] = "disconnect") -> None:
        """Make the agent vanish from the room without closing its session.

        ``"disconnect"`` drops this process's room connection (the server sees
        a client disconnect); ``"kick"`` has the server remove the participant
        (``RemoveParticipant``). Either way the session is left running, as an
        agent whose process hangs would be; :meth:`aclose` still cleans up.
        """
        if how == "kick":
            client = self.server.api()
            try:
                await client.room.remove_participant(
                    api.RoomParticipantIdentity(room=self.room_name, identity=self.identity)
                )
            finally:
                await client.aclose()
        elif self.room.isconnected():
            await self.room.disconnect()

    async def aclose(self) -> None:
        """Close the session, then the room. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self.session.aclose(), timeout=10.0)
        except asyncio.TimeoutError:
            logger.warning("AgentSession.aclose() took longer than 10 s in %s", self.room_name)
        finally:
            if self.room.isconnected():
                await self.room.disconnect()


async def start_agent(
    server: LiveKitServer,
    room_name: str,
    *,
    identity: str | None = None,
    agent: DemoAgent | None = None,
    stt: ScriptedSTT | None = None,
    llm: ScriptedLLM | None = None,
    tts: ToneTTS | None = None,
    session: AgentSession[Any] | None = None,
    options: room_io.RoomOptions | None = None,
    agent_name: str = "lkstate-demo",
    session_kwargs: dict[str, Any] | None = None,
    encryption: rtc.E2EEOptions | None = None,
) -> InProcessAgent:
    """Join ``room_name`` as an agent and start a real :class:`AgentSession` there.

    The room connection uses an agent token (kind AGENT, ``agent`` grant) and
    the ``lk.agent.name`` attribute, as a dispatched worker's would. Returns
    once ``session.start`` has finished (the agent then publishes
    ``lk.agent.state = listening``). The agent's stream handlers are
    registered right after connecting — before anyone can address it in a
    fresh room, though later than a real worker, which registers them first.
    """
    identity = identity or f"agent-{uuid.uuid4().hex[:8]}"
    stt = stt or ScriptedSTT()
    llm = llm or ScriptedLLM()
    tts = tts or ToneTTS()
    if session is None:
        kwargs: dict[str, Any] = {"close_transcript_timeout": 0.2, **(session_kwargs or {})}
        session = build_session(stt=stt, llm=llm, tts=tts, **kwargs)
    agent = agent or DemoAgent()
    states: list[str] = [session.agent_state]
    session.on("agent_state_changed", lambda event: states.append(event.new_state))
    room = rtc.Room()
    token = server.token(room_name, identity, kind="agent", attributes={"lk.agent.name": agent_name})
    # Connect first, then start: under fake_job_context, JobContext.connect()
    # is a no-op, so session.start() would not wait for the connection, and
    # state changes made before it completes are never published.
    await room.connect(server.url, token, options=rtc.RoomOptions(auto_subscribe=True, encryption=encryption))
    try:
        with fake_job_context(room=room, agent_identity=identity, job_id=f"job-{uuid.uuid4().hex[:8]}"):
            await asyncio.wait_for(
                session.start(agent=agent, room=room, room_options=options or room_options()),
                timeout=15.0,
            )
    except BaseException:
        with contextlib.suppress(Exception):
            await session.aclose()
        await room.disconnect()
        raise
    return InProcessAgent(
        server=server,
        room=room,
        session=session,
        agent=agent,
        stt=stt,
        llm=llm,
        tts=tts,
        identity=identity,
        states=states,
    )
