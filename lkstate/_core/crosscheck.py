"""Does the agent say the same thing on both roads?

The agent reports its state twice: as the ``lk.agent.state`` participant
attribute (which :attr:`SessionState.agent` follows) and as
``agent_state_changed`` events of its session host (:attr:`RemoteSessionState.agent_state`).
The two travel separately — attributes through the signalling connection,
session events as byte streams — so they disagree for a moment at every
change, and for good when one road is broken: a session host that stopped, an
attribute that is no longer published, events from an agent that has since
been replaced. :func:`check_agent_state` puts the two side by side for a
debug panel or a test; show a disagreement only once it has lasted.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import attrs

from .remote_state import AgentStateName
from .state import SessionState, attribute

__all__ = ["AgentStateCheck", "Agreement", "check_agent_state"]

Agreement: TypeAlias = Literal["agree", "disagree", "unknown"]


@attrs.frozen(slots=True)
class AgentStateCheck:
    """The agent's two reports of its state, and whether they agree.

    ``attribute`` is the tracked agent's ``lk.agent.state`` as published
    (``None`` with no agent tracked or no attribute yet; unknown values are kept
    as they are). ``remote`` is the state its session host last reported
    (``None`` before its first report). ``agreement`` is ``"unknown"`` when
    either report is missing, else ``"agree"`` or ``"disagree"``.
    """

    attribute: str | None
    remote: AgentStateName | None

    @property
    def agreement(self) -> Agreement:
        if self.attribute is None or self.remote is None:
            return "unknown"
        return "agree" if self.attribute == self.remote else "disagree"

    @property
    def agrees(self) -> bool | None:
        """``True``/``False``, or ``None`` when there is nothing to compare yet."""
        agreement = self.agreement
        return None if agreement == "unknown" else agreement == "agree"


def check_agent_state(state: SessionState) -> AgentStateCheck:
    """Compare the tracked agent's ``lk.agent.state`` attribute with its session host's report.

    The comparison uses the raw attribute, not :attr:`AgentState.status`: the
    status adds the client's own lifecycle (``connecting``, ``failed``,
    ``pre-connect-buffering``…) which the agent never reports. With no agent
    tracked, the attribute side is ``None`` and the answer is ``"unknown"``:
    the remote report then describes an agent that is gone.
    """
    agent = state.agent
    published = attribute(agent.attributes, "lk.agent.state") if agent.identity is not None else None
    return AgentStateCheck(attribute=published, remote=state.remote.agent_state)
