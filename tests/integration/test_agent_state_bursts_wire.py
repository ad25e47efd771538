"""Every agent state the wire carries reaches the snapshots, in order — even in bursts.

The agent changes ``lk.agent.state`` twice within a few milliseconds on most
turns (thinking → speaking). The SDK's ``participant_attributes_changed``
carries the values that changed, but by the time the callback runs
``participant.attributes`` may already hold the next change; a client that
reads the participant's current attributes then never shows the first one.
Here a raw agent-kind peer flips its state hundreds of times in bursts, a raw
``livekit.rtc`` listener on the session's own connection reads what the wire carried, and lkstate's Session must
have seen exactly that sequence: nothing lost, nothing reordered — in its
snapshots and in a recording of them.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from livekit import rtc

from lkstate import Session
from lkstate._core.state import attribute
from lkstate._session.recording import Replay, read_recording, record
from tests.harness.peer import Peer
from tests.harness.sessions import SessionFactory

AGENT = "agent-flipper"
KEY = "lk.agent.state"
STATES = ("listening", "thinking", "speaking")
BURSTS = 60
PER_BURST = 5


def collapsed(values: list[str | None]) -> list[str]:
    """The values in order, consecutive repeats dropped (a snapshot may change something else)."""
    out: list[str] = []
    for value in values:
        if value is not None and (not out or out[-1] != value):
            out.append(value)
    return out


def states_of_agent(session: Session) -> tuple[list[str | None], list[str | None]]:
    """In every snapshot the store delivers from now on: the agent's ``lk.agent.state``, and the agent view's state."""
    attributes: list[str | None] = []
    views: list[str | None] = []

    def on_state(state: Any) -> None:
        participant = next((p for p in state.participants if p.identity == AGENT), None)
        attributes.append(attribute(participant.attributes, KEY) if participant is not None else None)
        views.append(state.agent.state if state.agent.identity == AGENT else None)

    session.states.subscribe(on_state)
    return attributes, views


async def test_every_state_the_agent_flips_through_in_bursts_is_in_the_snapshots_in_order(
    make_session: SessionFactory, room_name: str, peer_factory: Any
) -> None:
    agent: Peer = await peer_factory(room_name, AGENT, kind="agent", attributes={KEY: "initializing"})
    session = make_session(audio_input=None, audio_output=None, video_input=None, agent_connect_timeout=None)
    recording = io.StringIO()
    recorder = record(session, recording)
    await session.start(wait_for_agent=False)
    await session.wait_until(lambda s: s.agent.identity == AGENT and s.agent.state == "initializing", timeout=15)

    # The raw reading, on the session's own connection: the server may send
    # each participant its own (coalesced) sequence of updates, so only this
    # connection's wire is the one to compare with.
    on_the_wire: list[str] = ["initializing"]
    ahead: list[tuple[str, str | None]] = []  # (the change, what participant.attributes already said)

    def raw_reading(changed: dict[str, str], participant: rtc.Participant) -> None:
        if participant.identity == AGENT and KEY in changed:
            on_the_wire.append(changed[KEY])
            if participant.attributes.get(KEY) != changed[KEY]:
                ahead.append((changed[KEY], participant.attributes.get(KEY)))

    room = session.room
    assert room is not None
    room.on("participant_attributes_changed", raw_reading)
    seen, shown = states_of_agent(session)

    # Each burst is a handful of updates sent at once, as an agent's state
    # machine does when a turn moves on; a short pause, then the next.
    sending: list[asyncio.Future[None]] = []
    for burst in range(BURSTS):
        for step in range(PER_BURST):
            value = STATES[(burst + step) % len(STATES)]
            sending.append(asyncio.ensure_future(agent.set_attributes({KEY: value})))
        await asyncio.sleep(0.03)
    await asyncio.gather(*sending)
    await agent.set_attributes({KEY: "idle"})  # the end marker: no burst sends it
    await session.wait_until(lambda s: s.agent.state == "idle", timeout=15)
    recorder.close()
    room.off("participant_attributes_changed", raw_reading)
    on_the_wire = collapsed([*on_the_wire])
    in_the_snapshots = collapsed(seen)
    print(
        f"\n{BURSTS * PER_BURST} updates sent, {len(on_the_wire)} transitions on the wire, "
        f"{len(ahead)} of them already overwritten in participant.attributes when the callback ran"
    )
    assert len(on_the_wire) > BURSTS, "the wire carried hundreds of transitions"
    assert in_the_snapshots == on_the_wire, "every transition, in the wire's order"
    assert collapsed(shown) == on_the_wire, "and the agent's state, as a UI shows it, went through each"

    header, events = read_recording(io.StringIO(recording.getvalue()))
    replay = Replay(events, header=header)
    replayed: list[str | None] = []
    replay.states.subscribe(
        lambda s: replayed.append(next((attribute(p.attributes, KEY) for p in s.participants if p.identity == AGENT), None))
    )
    replay.step(len(events))
    assert collapsed(replayed)[-len(on_the_wire) :] == on_the_wire, "and a recording replays every one of them"
