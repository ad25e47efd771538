"""A real session, recorded and replayed: every snapshot comes back equal.

The session talks to a real livekit-server and a real livekit-agents
``AgentSession`` (the offline demo agent): it connects, the agent becomes
ready, the user asks about the weather, the agent calls its tool and answers,
the session ends. Everything the store folded is written by a
:class:`Recorder`; the file is read back and replayed through the same reducer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lkstate import Role, SessionState
from lkstate._core import events as ev
from lkstate._session.recording import Replay, read_recording, record
from tests.harness.server import LiveKitServer
from tests.harness.sessions import SessionFactory, agent_sees_user


def answered_weather(state: SessionState) -> bool:
    return any(m.role is Role.AGENT and m.final and "sunny" in m.text for m in state.messages) and any(
        call.status == "completed" or call.output is not None for call in state.remote.tool_calls
    )


async def test_a_recorded_real_session_replays_to_every_same_snapshot(
    livekit_server: LiveKitServer, make_session: SessionFactory, room_name: str, agent_factory: Any, tmp_path: Path
) -> None:
    session = make_session()
    live: list[SessionState] = []
    session.states.subscribe(live.append)
    path = tmp_path / "session.jsonl"
    recorder = record(session, path, secrets=[livekit_server.api_secret, livekit_server.api_key])
    agent = await agent_factory(room_name)
    try:
        await asyncio.wait_for(session.start(), timeout=15)
        await agent_sees_user(agent, session)
        await session.send_text("What's the weather in Paris?")
        await session.wait_until(answered_weather, timeout=30)
    finally:
        await session.end()
        recorder.close()

    header, events = read_recording(path)
    kinds = {type(event) for event in events}
    assert {ev.RoomConnected, ev.ParticipantJoined, ev.ChatSendRequested, ev.TranscriptReceived,
            ev.AgentSessionPayload, ev.RoomDisconnected} <= kinds, "the recording holds the whole session"
    assert header.limits == session.options.limits
    text = path.read_text()
    assert livekit_server.api_secret not in text and recorder.redactor.count == 0, "nothing needed redacting"

    replay = Replay(events, header=header)
    replayed: list[SessionState] = []
    replay.states.subscribe(replayed.append)
    final = await replay.run(speed=float("inf"))

    assert len(replayed) == len(live) > 20
    for index, (again, seen) in enumerate(zip(replayed, live, strict=True)):
        assert again == seen, f"snapshot {index} differs after replay"
    assert final == session.state
    assert final.remote.tool_calls and final.remote.tool_calls[0].name == "get_weather"
