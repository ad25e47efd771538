"""The desktop client's voice visualizer, against a real server and a real agent.

The window runs offscreen on a real :class:`~lkstate.Session` (on its bridge's
loop thread) with a generated microphone tone that plays and ends, and the
demo agent (livekit-agents' ``AgentSession``, ``ToneTTS``) received through a
:class:`~lkstate.media.SilentOutput`. The checks look at the pictures the
visualizer paints: the meter while the tone plays, bars that change while the
agent speaks, and everything flat again in silence. Screenshots go to
test-artifacts/screenshots/qt-3*.png.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from lkstate import AgentStatus, GeneratorInput
from lkstate.media import SilentOutput
from lkstate.ui import Tone
from tests.ui.test_qt_app import (  # noqa: F401  (fixtures)
    WAIT_MS,
    WindowFactory,
    make_window,
    screenshot,
    start_agent,
    wait_for_agent_to_see,
)

pytestmark = pytest.mark.serial


def tone(seconds: float, amplitude: float = 0.3, rate: int = 48000) -> Iterator[npt.NDArray[np.int16]]:
    t = np.arange(int(rate * seconds)) / rate
    pcm = (amplitude * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16)
    for start in range(0, len(pcm), 480):
        yield pcm[start : start + 480]


def picture(widget: Any) -> QImage:
    return widget.grab().toImage()


def pixels_of(image: QImage, colour: str) -> int:
    """How many pixels are (nearly) ``colour``: each channel within 24 of it.

    Read as one array (a loop of ``pixelColor`` calls took long enough under load
    that only a few looks fitted in the agent's reply).
    """
    target = QColor(colour)
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = rgb.width(), rgb.height(), rgb.bytesPerLine()
    raw = np.frombuffer(bytes(rgb.constBits()), dtype=np.uint8)  # pyright: ignore[reportArgumentType]
    pixels = raw[: stride * height].reshape(height, stride)[:, : width * 3].reshape(height, width, 3).astype(np.int16)
    wanted = np.array([target.red(), target.green(), target.blue()], dtype=np.int16)
    return int(np.all(np.abs(pixels - wanted) < 24, axis=2).sum())


def test_the_meter_fills_with_the_microphone_and_the_bars_move_with_the_agents_voice(
    qtbot: QtBot, make_window: WindowFactory, start_agent: Callable[..., Any], room_name: str
) -> None:
    agent = start_agent(room_name)
    window = make_window(audio_input=GeneratorInput(tone(2.5), sample_rate=48000), audio_output=SilentOutput())
    voice = window.voice
    quiet = picture(voice)
    assert pixels_of(quiet, Tone.SPEAKING.colour) == 0 and pixels_of(quiet, Tone.OK.colour) == 0

    qtbot.mouseClick(window.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.bridge.state.local_media.microphone.published, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: voice.levels.microphone > 0.7, timeout=WAIT_MS)
    qtbot.wait(100)
    meter = pixels_of(picture(voice), Tone.OK.colour)
    # the meter is 6 px high across 168 px; a 0.775 level fills about 130 px of it
    assert 500 <= meter <= 6 * 168, meter
    screenshot(window, "qt-30-levels-microphone")

    qtbot.waitUntil(lambda: window.indicator.status is AgentStatus.LISTENING, timeout=WAIT_MS)
    wait_for_agent_to_see(qtbot, agent, window)
    qtbot.waitUntil(lambda: voice.levels.microphone == 0.0, timeout=WAIT_MS)  # the tone has ended

    window.chat.line.setText("tell me something long please")
    qtbot.mouseClick(window.chat.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.indicator.status is AgentStatus.SPEAKING, timeout=WAIT_MS)
    pictures: list[bytes] = []
    bars: list[int] = []
    # Look every 100 ms for as long as the agent speaks (its reply is about 2.4 s of speech):
    # under load its audio may start a second after its state says speaking.
    for _ in range(60):
        if window.indicator.status is not AgentStatus.SPEAKING:
            break
        qtbot.wait(100)
        image = picture(voice)
        blue = pixels_of(image, Tone.SPEAKING.colour)
        if blue:
            if blue > max(bars, default=0):
                screenshot(window, "qt-31-levels-agent-speaking")  # the tallest bars seen
            bars.append(blue)
            pictures.append(bytes(image.constBits()))  # pyright: ignore[reportArgumentType]
    assert len(bars) >= 5, "the bars stand in the speaking colour while the agent speaks"
    assert len(set(pictures)) >= 2, "and they move"
    assert max(bars) > 400, bars

    qtbot.waitUntil(lambda: window.indicator.status is AgentStatus.LISTENING, timeout=30_000)
    qtbot.waitUntil(lambda: voice.levels.silent, timeout=WAIT_MS)
    qtbot.wait(100)
    still = picture(voice)
    assert pixels_of(still, Tone.SPEAKING.colour) == 0 and pixels_of(still, Tone.OK.colour) == 0
    screenshot(window, "qt-32-levels-silent")
