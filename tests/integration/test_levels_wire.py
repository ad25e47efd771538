"""``session.levels`` over the wire: meters that move when someone speaks, and only then.

The agent is livekit-agents' own ``AgentSession`` with the offline ``ToneTTS``
(a soft tone near 330 Hz per word, amplitude 0.12: about -21 dBFS RMS, 0.64
on the meters' scale); the microphone is a :class:`~lkstate.GeneratorInput`
playing a known tone and then ending. The levels are collected as an app would
subscribe to them, and compared with what was sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from lkstate import AgentStatus, GeneratorInput, Session, SessionState
from lkstate.media import BAND_EDGES, LEVELS_INTERVAL, AudioLevels, SilentOutput

pytestmark = pytest.mark.serial

SessionFactory = Callable[..., Session]

TONE_BAND = next(i for i, (lo, hi) in enumerate(zip(BAND_EDGES, BAND_EDGES[1:])) if lo <= 330.0 < hi)


async def wait_for_reply(session: Session, agent: Any, text: str) -> None:
    await agent.wait_for_participant(session.state.connection.local_identity)
    spoke = agent.states.count("speaking")
    await session.send_text(text)
    for _ in range(400):
        if agent.states.count("speaking") > spoke and agent.states[-1] == "listening":
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"the agent did not finish speaking; states {agent.states}")


async def test_the_agents_level_and_bands_rise_while_it_speaks_and_fall_to_zero_after(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    session = make_session(audio_input=None, audio_output=SilentOutput())
    levels: list[AudioLevels] = []
    speaking: list[bool] = []

    def on_state(state: SessionState) -> None:
        speaking.append(state.agent.status is AgentStatus.SPEAKING)

    session.levels.subscribe(levels.append)
    session.states.subscribe(on_state)
    await session.start()
    assert session.state.local_media.speaker.device == "SilentOutput()", "nothing is played, yet it is received"
    before = len(levels)
    await wait_for_reply(session, agent, "hello there, how are you")
    await asyncio.sleep(1.0)  # the last words arrive, then silence

    spoken = levels[before:]
    loudest = max(spoken, key=lambda v: v.agent)
    assert 0.5 <= loudest.agent <= 0.8, loudest  # the tone's -21 dBFS, give or take the codec
    assert loudest.agent_bands.index(max(loudest.agent_bands)) == TONE_BAND, loudest.agent_bands
    assert loudest.microphone == 0.0, "no microphone, no microphone level"
    assert levels[-1].silent, "after the reply the meters are back at zero"
    # rate-capped: at most one value per interval over the whole conversation
    span = levels[-1].at - levels[before].at
    assert len(spoken) <= span / LEVELS_INTERVAL + 2, (len(spoken), span)
    assert [v.at for v in levels] == sorted(v.at for v in levels)

    count = len(levels)
    await asyncio.sleep(0.5)
    assert len(levels) == count, "silence sends nothing"
    await session.end()
    assert levels[-1].silent


def tone_then_end(seconds: float, amplitude: float, rate: int = 48000) -> Iterator[npt.NDArray[np.int16]]:
    t = np.arange(int(rate * seconds)) / rate
    pcm = (amplitude * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16)
    for start in range(0, len(pcm), 480):
        yield pcm[start : start + 480]


async def test_the_microphones_level_follows_what_it_sends_and_falls_when_it_stops(
    make_session: SessionFactory, room_name: str, agent_factory: Any
) -> None:
    await agent_factory(room_name)
    session = make_session(
        audio_input=GeneratorInput(tone_then_end(3.0, 0.3), sample_rate=48000), audio_output=None
    )
    levels: list[AudioLevels] = []
    session.levels.subscribe(levels.append)
    await session.start()
    await session.wait_until(lambda s: s.local_media.microphone.published, timeout=10)
    await asyncio.sleep(0.5)
    during = levels[-1]
    # a sine of amplitude 0.3 has RMS 0.212: -13.5 dBFS, 0.775 on the scale
    assert abs(during.microphone - 0.775) < 0.03, during
    assert during.agent == 0.0, "without an audio output the agent is not received, so not measured"

    await session.set_microphone_enabled(False)
    await asyncio.sleep(0.6)
    assert levels[-1].microphone == 0.0, "muted, nothing is sent, and the meter says so"
    await session.set_microphone_enabled(True)
    await asyncio.sleep(0.3)
    assert levels[-1].microphone > 0.7

    await asyncio.sleep(3.0)  # the input has ended
    assert levels[-1].microphone == 0.0
    await session.end()
