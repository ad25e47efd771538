"""A voice visualizer for the desktop: bars while the agent speaks, a meter for the microphone.

It paints :class:`~lkstate.media.AudioLevels`, which
:attr:`~lkstate_qt.SessionBridge.levels_changed` brings to the GUI thread
(``session.levels``, kept apart from the state, through its own
:class:`~lkstate.ui.Mailbox` and :class:`~lkstate.ui.FrameLimiter`). The
colours are lkstate's tones, so the bars are the blue of "speaking" here as in
the terminal client.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from lkstate.media import AudioLevels
from lkstate.ui import Tone

__all__ = ["VoiceVisualizer"]

_MIN_BAR = 0.04
"""A silent band still shows as a sliver, so the bars have a place before anyone speaks."""


class VoiceVisualizer(QWidget):
    """The agent's voice as a row of bars (one per band) above the microphone's meter.

    Connect :meth:`render_levels` to :attr:`~lkstate_qt.SessionBridge.levels_changed`.
    :attr:`levels` is what is painted; :attr:`shown` counts the values
    received (for tests).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("VoiceVisualizer")
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setFixedSize(self.sizeHint())
        self.setToolTip("The agent's voice (bars) and your microphone (meter)")
        self.levels = AudioLevels()
        self.shown = 0

    def sizeHint(self) -> QSize:
        return QSize(168, 60)

    def render_levels(self, levels: AudioLevels) -> None:
        self.shown += 1
        if levels != self.levels:
            self.levels = levels
            self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        levels = self.levels
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        width, height = float(self.width()), float(self.height())
        meter_height, gap = 6.0, 6.0
        bars_height = height - meter_height - gap
        bands = levels.agent_bands or (0.0,)
        slot = width / len(bands)
        speaking = QColor(Tone.SPEAKING.colour if levels.agent > 0 else Tone.NEUTRAL.colour)
        for index, value in enumerate(bands):
            bar = max(_MIN_BAR, min(1.0, value)) * bars_height
            rect = QRectF(index * slot + slot * 0.15, bars_height - bar, slot * 0.7, bar)
            painter.setBrush(speaking)
            painter.drawRoundedRect(rect, 2.0, 2.0)
        track = QColor(Tone.NEUTRAL.colour)
        track.setAlpha(70)
        painter.setBrush(track)
        top = height - meter_height
        painter.drawRoundedRect(QRectF(0, top, width, meter_height), 3.0, 3.0)
        if levels.microphone > 0:
            painter.setBrush(QColor(Tone.OK.colour))
            painter.drawRoundedRect(QRectF(0, top, width * min(1.0, levels.microphone), meter_height), 3.0, 3.0)
        painter.end()
