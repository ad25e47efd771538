"""atheris harness: ``lk.agent.session`` payloads through the reducer.

Each input is one payload from the tracked agent, folded into a session that
already holds a conversation (the real seed payloads). Checked for every
input, beyond "did not raise":

- the decoder's last-resort catch ("This is a bug in lkstate") is never hit;
- only the agent's report (``state.remote``), the problems and the time change;
- conversation items already there are neither dropped nor reordered;
- the same payload folded into the same state twice gives equal, equally
  hashed snapshots (recordings replay exactly).

See fuzz/README.md for how to run it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import attrs  # noqa: E402
from _common import instrument_modules, seed_first_corpus  # noqa: E402  (this directory is on sys.path)

from lkstate import SessionState  # noqa: E402
from lkstate._core import events as ev  # noqa: E402
from lkstate._core import reducer as _reducer  # noqa: E402
from lkstate._core import remote_state as _remote_state  # noqa: E402
from lkstate.lowlevel import reduce  # noqa: E402

instrument_modules(_remote_state, _reducer)

SEED_DIR = Path(__file__).resolve().parent / "corpus" / "remote_payload"
SEEDS = [p.read_bytes() for p in sorted(SEED_DIR.glob("*.bin"))]
AGENT = "agent-AJ_1"
BUG = "This is a bug in lkstate"


def _start() -> SessionState:
    state = SessionState()
    for event in (
        ev.StartRequested(at=1.0),
        ev.RoomConnected(at=1.1, room_name="room", local_identity="user-1", server_url="ws://x"),
        ev.ParticipantJoined(
            at=2.0, identity=AGENT, name="", kind="agent", attributes=(("lk.agent.state", "listening"),)
        ),
    ):
        state = reduce(state, event)
    for i, payload in enumerate(SEEDS[:8]):
        state = reduce(state, ev.AgentSessionPayload(at=3.0 + i, sender=AGENT, payload=payload))
    return state


START = _start()


def test_one_input(data: bytes) -> None:
    event = ev.AgentSessionPayload(at=50.0, sender=AGENT, payload=data)
    after = reduce(START, event)
    again = reduce(START, event)
    if after != again or hash(after) != hash(again):
        raise AssertionError("the same payload gave unequal snapshots")
    problems = after.remote.problems
    if problems and BUG in problems[-1]:
        raise AssertionError(problems[-1])
    if attrs.evolve(after, remote=START.remote, problems=START.problems, updated_at=START.updated_at) != START:
        raise AssertionError("a payload changed more than the agent's report")
    ids_before = [item.id for item in START.remote.items if item.id]
    ids_after = [item.id for item in after.remote.items if item.id]
    if ids_after[: len(ids_before)] != ids_before:
        raise AssertionError("a payload dropped or reordered conversation items")


def main() -> None:
    if not any(a.startswith("-dict=") for a in sys.argv):
        sys.argv.append(f"-dict={Path(__file__).resolve().parent / 'remote_payload.dict'}")
    seeded = seed_first_corpus(sys.argv, SEEDS)
    if seeded:
        print(f"seeded the corpus with {seeded} real payloads", file=sys.stderr)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
