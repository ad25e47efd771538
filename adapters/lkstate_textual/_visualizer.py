"""A voice visualizer for the terminal: bars while the agent speaks, a meter for the microphone.

It reads ``session.levels`` (:class:`~lkstate.media.AudioLevels`), not the
state: levels change twenty times a second and are kept out of the snapshot.
Delivery is the same as for snapshots — a :class:`~lkstate.ui.Mailbox`
(latest wins, woken across threads) and a :class:`~lkstate.ui.FrameLimiter`
on the app's timers — so a busy terminal skips to the newest levels instead of
queueing old ones. The widget subscribes when mounted in an app with a
:class:`~lkstate_textual.SessionBinding` and lets go when unmounted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.timer import Timer
from textual.widget import Widget

from lkstate.media import AudioLevels
from lkstate.ui import FrameLimiter, Mailbox, Tone

from ._binding import binding_of

__all__ = ["VoiceVisualizer", "bar_rows", "meter_line"]

logger = logging.getLogger(__name__)

_EIGHTHS_UP = " ▁▂▃▄▅▆▇█"
_EIGHTHS_RIGHT = " ▏▎▍▌▋▊▉█"


def bar_rows(bands: tuple[float, ...], *, height: int, width: int = 2) -> list[str]:
    """The bands as vertical bars ``height`` rows high (top row first), in eighth-block steps."""
    rows: list[str] = []
    for row in range(height - 1, -1, -1):
        cells: list[str] = []
        for value in bands:
            eighths = round(max(0.0, min(1.0, value)) * height * 8) - row * 8
            cells.append(_EIGHTHS_UP[max(0, min(8, eighths))] * width)
        rows.append(" ".join(cells))
    return rows


def meter_line(level: float, *, width: int) -> str:
    """``level`` as a horizontal meter ``width`` cells long, in eighth-block steps."""
    eighths = round(max(0.0, min(1.0, level)) * width * 8)
    full, part = divmod(eighths, 8)
    line = "█" * full + (_EIGHTHS_RIGHT[part] if part and full < width else "")
    return line.ljust(width, "·")


class VoiceVisualizer(Widget):
    """The agent's voice as bars (one per band) and the microphone as a meter below them.

    Bars are drawn in the speaking colour, the meter in the "ok" colour of
    :data:`lkstate.ui.PALETTE`; both grey when silent. ``max_rate`` caps
    redraws a second. :attr:`levels` is what is shown and :attr:`shown` how
    many values were drawn (for tests and curious apps).
    """

    DEFAULT_CSS = """
    VoiceVisualizer {
        width: 1fr;
        min-width: 24;
        height: 4;
        padding: 0 1;
    }
    """

    BAR_ROWS = 3

    def __init__(self, *, max_rate: float = 30.0, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.max_rate = max_rate
        self.levels = AudioLevels()
        self.shown = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._box: Mailbox[AudioLevels] | None = None
        self._limiter: FrameLimiter[AudioLevels] | None = None
        self._subscription: Any = None

    def on_mount(self) -> None:
        binding = binding_of(self.app)
        if binding is None:
            return
        self._loop = asyncio.get_running_loop()
        self._box = Mailbox(self._wake)
        self._limiter = FrameLimiter(self._show, max_rate=self.max_rate, call_later=self._call_later)
        self._subscription = binding.session.levels.subscribe(self._box.put)

    def on_unmount(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.dispose()
        self._box = self._limiter = None

    def _wake(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop closed between the check and the call
            pass

    def _drain(self) -> None:
        box, limiter = self._box, self._limiter
        if box is None or limiter is None:
            return
        has_value, value = box.take()
        if has_value and value is not None:
            limiter.offer(value)

    def _call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.set_timer(delay, callback, name="lkstate-levels")

    def _show(self, levels: AudioLevels) -> None:
        if self._subscription is None:
            return
        self.levels = levels
        self.shown += 1
        self.refresh()

    def render(self) -> Text:
        levels = self.levels
        quiet = Tone.NEUTRAL.colour
        bars_colour = Tone.SPEAKING.colour if levels.agent > 0 else quiet
        mic_colour = Tone.OK.colour if levels.microphone > 0 else quiet
        text = Text(no_wrap=True, overflow="crop")
        room = max(16, self.content_size.width - 6)  # what is left beside the labels
        bands = max(1, len(levels.agent_bands))
        rows = bar_rows(levels.agent_bands, height=self.BAR_ROWS, width=max(1, (room + 1) // bands - 1))
        for index, row in enumerate(rows):
            label = "agent " if index == len(rows) - 1 else "      "
            text.append(label, style="dim")
            text.append(row, style=bars_colour)
            text.append("\n")
        text.append("mic   ", style="dim")
        text.append(meter_line(levels.microphone, width=room), style=mic_colour)
        return text
