"""The machinery under :class:`~lkstate.Session`: the store, the pure reducer and its events.

Most apps never need this. It is for tools that fold events themselves — a
replay viewer, a test that drives the reducer directly, a benchmark:
``reduce(state, event)`` is pure and deterministic, :class:`Store` holds one
current value and delivers each snapshot once, in order, and :mod:`events`
(``lkstate.lowlevel.events``) lists every input the reducer accepts.
"""

from __future__ import annotations

from ._core import events
from ._core.exports import publish as _publish
from ._core.reducer import reduce
from ._core.state import Attributes
from ._core.store import Store

__all__ = ["Attributes", "Store", "events", "reduce"]

_publish(__name__, globals(), ["Store", "reduce"])
