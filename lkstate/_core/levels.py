"""How loud the microphone and the agent are right now: :class:`AudioLevels`.

Levels change fifty times a second while anyone speaks. Folded into the
:class:`~lkstate.SessionState` they would wake every subscriber for nothing a
person reads and fill recordings with numbers nobody replays, so they travel
apart: ``session.levels`` is an observable of its own, rate-capped, delivered
like the states (on the session's loop thread, one call at a time) and never
recorded. This module holds only the value; the meter that measures it lives
with the media (``lkstate._media.levels``).
"""

from __future__ import annotations

import attrs

__all__ = ["AudioLevels", "SILENT_BANDS", "BAND_COUNT"]

BAND_COUNT = 8
"""How many frequency bands :attr:`AudioLevels.agent_bands` holds."""

SILENT_BANDS: tuple[float, ...] = (0.0,) * BAND_COUNT


@attrs.frozen
class AudioLevels:
    """The microphone's and the agent's loudness, for meters and voice visualizers.

    Every level is 0..1 on a decibel scale: 0 is -60 dBFS or quieter
    (silence, or nothing playing), 1 is full scale. A decibel scale because
    that is how loudness is heard: a quiet voice at -40 dBFS still moves a
    meter by a third instead of a hundredth.
    """

    microphone: float = 0.0
    """What the microphone sends: 0 while it is muted or absent (nothing is sent)."""
    agent: float = 0.0
    """The agent's voice (or its avatar's) as received, whether or not the speaker is muted."""
    agent_bands: tuple[float, ...] = SILENT_BANDS
    """The agent's voice in eight log-spaced bands from 100 Hz to 8 kHz, low to high (``BAND_COUNT``)."""
    at: float = 0.0
    """When it was measured, on the session's clock (the clock its events use)."""

    @property
    def silent(self) -> bool:
        """Nothing is heard on either side."""
        return self.microphone == 0.0 and self.agent == 0.0 and not any(self.agent_bands)
