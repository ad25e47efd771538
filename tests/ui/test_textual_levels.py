"""The terminal's voice visualizer, against a real server and a real agent.

The TUI runs headless under Pilot with a live :class:`~lkstate.Session`: the
microphone is a generated tone that plays for a while and ends, the agent is
livekit-agents' ``AgentSession`` speaking with ``ToneTTS`` (received through a
:class:`~lkstate.media.SilentOutput`, so nothing is played). Checks read the
visualizer as drawn: the meter while the tone plays, bars that change while
the agent speaks, and everything flat again in silence. Screenshots go to
test-artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from lkstate import AgentStatus, GeneratorInput, Session
from lkstate.media import SilentOutput
from lkstate_textual.app import VoiceAgentApp
from lkstate_textual.testing import save_screenshot, screen_text
from lkstate_textual.widgets import VoiceVisualizer
from tests.harness.sessions import agent_sees_user

pytestmark = pytest.mark.serial

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
SIZE = (120, 36)
BLOCKS = set("▁▂▃▄▅▆▇█▏▎▍▌▋▊▉")


@pytest.fixture(autouse=True)
def keys_do_not_wait_for_a_silent_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in test_textual_app: Pilot's idle wait would cost a second per pause next to WebRTC's threads."""
    import textual._wait

    monkeypatch.setattr(textual._wait, "SLEEP_IDLE", textual._wait.SLEEP_GRANULARITY / 4, raising=False)


def tone(seconds: float, amplitude: float = 0.3, rate: int = 48000) -> Iterator[npt.NDArray[np.int16]]:
    t = np.arange(int(rate * seconds)) / rate
    pcm = (amplitude * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16)
    for start in range(0, len(pcm), 480):
        yield pcm[start : start + 480]


def drawn(widget: VoiceVisualizer) -> tuple[str, str]:
    """The bars and the meter as drawn: (bar rows, meter row), without labels."""
    lines = widget.render().plain.split("\n")
    return "\n".join(line[6:] for line in lines[:-1]), lines[-1][6:]


async def test_the_meter_moves_with_the_microphone_and_the_bars_with_the_agents_voice(
    make_session: Callable[..., Session], room_name: str, agent_factory: Any
) -> None:
    agent = await agent_factory(room_name)
    session = make_session(audio_input=GeneratorInput(tone(2.5), sample_rate=48000), audio_output=SilentOutput())
    app = VoiceAgentApp(session, agent_name="lkstate-demo")
    async with app.run_test(size=SIZE) as pilot:
        visualizer = app.query_one(VoiceVisualizer)
        await session.wait_until(lambda s: s.local_media.microphone.published, timeout=20)
        await pilot.pause(0.3)
        bars, meter = drawn(visualizer)
        assert set(meter) & BLOCKS and not set(bars) & BLOCKS, (bars, meter)
        assert meter.count("█") >= 15, f"a -13.5 dBFS tone fills about 3/4 of the meter: {meter!r}"
        save_screenshot(app, "textual-30-levels-microphone", SCREENSHOTS)

        await session.wait_until(lambda s: s.agent.status is AgentStatus.LISTENING, timeout=20)
        await agent_sees_user(agent, session)
        # The tone (2.5 s from the start) has ended or ends soon; under load the last of it
        # may still be on its way through the microphone's pump, so look for up to 10 s.
        for _ in range(100):
            await pilot.pause(0.1)
            if drawn(visualizer)[1].strip("·") == "":
                break
        assert drawn(visualizer)[1].strip("·") == "", "the meter is empty once the tone ends"

        await pilot.press(*"tell me something long please")
        await pilot.press("enter")
        await session.wait_until(lambda s: s.agent.status is AgentStatus.SPEAKING, timeout=20)
        renders: list[str] = []
        # Look every 100 ms for as long as the agent speaks: under load its audio may start a
        # second after its state says speaking.
        for _ in range(60):
            if session.state.agent.status is not AgentStatus.SPEAKING:
                break
            await pilot.pause(0.1)
            bars, _ = drawn(visualizer)
            if set(bars) & BLOCKS:
                renders.append(bars)
                if len(renders) == 3:  # mid-speech
                    save_screenshot(app, "textual-31-levels-agent-speaking", SCREENSHOTS)
        assert len(renders) >= 5, "the bars stand while the agent speaks"
        assert len(set(renders)) >= 2, "and they move"
        assert "agent" in screen_text(app) and "mic" in screen_text(app)

        await session.wait_until(lambda s: s.agent.status is AgentStatus.LISTENING, timeout=30)
        await asyncio.sleep(1.0)
        await pilot.pause(0.3)
        bars, meter = drawn(visualizer)
        assert not (set(bars) | set(meter)) & BLOCKS, "silence: flat bars, empty meter"
        assert visualizer.shown > 10
        save_screenshot(app, "textual-32-levels-silent", SCREENSHOTS)
