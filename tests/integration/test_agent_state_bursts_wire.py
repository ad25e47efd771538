"""Every agent state the wire carries reaches the snapshots, in order — even in bursts.

The agent changes ``lk.agent.state`` twice within a few milliseconds on most
turns (thinking → speaking). The SDK's ``participant_attributes_changed``
carries the values that changed, but by the time the callback runs
``participant.attributes`` may already hold the next change; a client that
reads the participant's current attributes then never shows the first one.
Here a raw agent-kind peer flips its state hundreds of times in bursts, a raw
``livekit.rtc`` peer reads what the wire carried, and lkstate's Session must
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
    wire: Peer = await peer_factory(room_name, "raw-reader")
    ahead: list[tuple[str, str | None]] = []  # (the change, what participant.attributes already said)

    def raw_reading(changed: dict[str, str], participant: rtc.Participant) -> None:
        if participant.identity == AGENT and KEY in changed and participant.attributes.get(KEY) != changed[KEY]:
            ahead.append((changed[KEY], participant.attributes.get(KEY)))

    wire.room.on("participant_attributes_changed", raw_reading)
    session = make_session(audio_input=None, audio_output=None, video_input=None, agent_connect_timeout=None)
    recording = io.StringIO()
    recorder = record(session, recording)
    seen, shown = states_of_agent(session)
    await session.start(wait_for_agent=False)
    await session.wait_until(lambda s: s.agent.identity == AGENT, timeout=15)
    await wire.wait_for_participant(AGENT)

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
    await wire.wait_for_attribute(AGENT, KEY, "idle", timeout=15)
    await session.wait_until(lambda s: s.agent.state == "idle", timeout=15)
    recorder.close()

    on_the_wire = wire.attribute_history(AGENT, KEY)
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
    assert collapsed(replayed) == on_the_wire, "and a recording replays every one of them"
