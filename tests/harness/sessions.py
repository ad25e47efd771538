"""lkstate's own :class:`~lkstate.Session` in the wire tests, and waiting for the agent to see it.

The ``make_session`` fixture (the test kit's, :mod:`lkstate_pytest`) makes
sessions with development tokens for the test server, in the test's room,
with no devices, recorded; this module holds what tests import next to it.
"""

from __future__ import annotations

from typing import Any

from lkstate import Session
from lkstate.testing import SessionMaker

__all__ = ["SessionFactory", "agent_sees_user"]

SessionFactory = SessionMaker
"""``make_session(**session_kwargs) -> Session``: unstarted, in the test's room; ended at teardown."""


async def agent_sees_user(agent: Any, session: Session, timeout: float = 10.0) -> None:
    """Wait until the agent's own room has seen this (started) session's user join.

    The agent framework ignores chat from a participant its room has not seen
    join yet ("participant not found, ignoring text input"); join (signal
    channel) and data (data channel) are not ordered, so a message sent the
    instant the user connects can beat the join. ``agent`` is an
    :class:`~tests.harness.agent.InProcessAgent`.
    """
    identity = session.state.connection.local_identity
    assert identity is not None, "the session is not connected yet"
    await agent.wait_for_participant(identity, timeout=timeout)
