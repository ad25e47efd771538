"""A trio program talking to a real agent through a real livekit-server.

The agent (a real livekit-agents ``AgentSession``) runs on the test's asyncio
loop; the trio program runs under ``trio.run`` in a worker thread, with its
session on a :class:`lkstate.LoopThread` of its own, exactly as a trio
application would have it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import trio

import lkstate_trio
from lkstate import AgentStatus, DeliveryStatus, DevelopmentTokenSource, Role, SessionState
from tests.harness.server import LiveKitServer


async def test_a_trio_program_chats_with_the_agent_and_follows_the_state(
    livekit_server: LiveKitServer, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    tokens = DevelopmentTokenSource(livekit_server.url, livekit_server.api_key, livekit_server.api_secret)
    seen: list[SessionState] = []

    def is_replied(state: SessionState) -> bool:
        return any(m.role is Role.AGENT and m.final and "hello from trio" in m.text for m in state.messages)

    async def trio_main() -> SessionState:
        with trio.fail_after(40):
            async with lkstate_trio.open_session(tokens, room_name=room_name, audio_input=None) as session:
                assert session.state.agent.is_ready
                identity = session.state.connection.local_identity
                while identity not in agent.room.remote_participants:  # the agent drops chat from strangers
                    await trio.sleep(0.025)

                async with session.states(max_rate=30) as stream:
                    sent = await session.send_text("hello from trio")
                    assert sent.delivery is DeliveryStatus.SENT
                    async for state in stream:
                        seen.append(state)
                        if is_replied(state) and state.agent.status is AgentStatus.LISTENING:
                            break
                final = session.state
            assert session.state.connection.status.value == "disconnected", "leaving the block ended the session"
            return final

    final = await asyncio.to_thread(trio.run, trio_main)

    assert is_replied(seen[-1]), "the consumer's last snapshot holds the agent's reply"
    reply = next(m for m in final.messages if m.role is Role.AGENT)
    assert reply.text == "You said: hello from trio"
    statuses = [state.agent.status for state in seen]
    assert AgentStatus.SPEAKING in statuses, "the agent was seen speaking through the stream"
    assert all(a is not b for a, b in zip(seen, seen[1:])), "each snapshot delivered is a change"
