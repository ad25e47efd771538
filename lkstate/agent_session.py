"""The agent's own account of the session: its ``lk.agent.session`` events, requests and timeline.

A LiveKit Agents agent broadcasts what its ``AgentSession`` does — state
changes, conversation items, tool calls, usage, interruptions — and answers
requests. lkstate folds the events into ``state.remote``
(:class:`RemoteSessionState`) and sends requests through ``session.remote``
(:class:`RemoteSessionClient`). :func:`timeline` merges transcripts, agent
items and tool calls into one ordered story; :func:`check_agent_state`
compares the two reports of the agent's state (attribute and protocol).

RPC both ways lives here too: ``session.register_rpc_method`` answers the
agent's calls (an :class:`RpcInvocation` each), ``session.perform_rpc`` calls
the agent, and ``state.rpc`` (:class:`RpcState`) lists the recent
:class:`RpcCall` s with their :class:`RpcStatus`. The agent's expression
(``lk.expression``) arrives as an :class:`AgentExpression`. What the agent
said before the user joined is fetched from its chat history when it is ready
(``state.agent_history``, an :class:`AgentHistoryState`) and shown as messages
of origin ``agent_history``.
"""

from __future__ import annotations

from ._core.crosscheck import AgentStateCheck, check_agent_state
from ._core.messages import AgentExpression
from ._core.rpc import RpcCall, RpcDirection, RpcState, RpcStatus
from ._core.exports import publish as _publish
from ._core.remote_state import (
    AgentConfigUpdateItem,
    AgentHandoffItem,
    AgentStateName,
    ChatRoleName,
    ConversationItem,
    ConversationItems,
    EotUsage,
    FalseInterruption,
    FunctionCallItem,
    FunctionCallOutputItem,
    InterruptionUsage,
    LLMUsage,
    MessageItem,
    MessageMetrics,
    ModelUsage,
    OverlappingSpeech,
    RemoteSessionState,
    SessionUsage,
    STTUsage,
    ToolCall,
    ToolCalls,
    ToolCallStatus,
    ToolReplyStatus,
    TTSUsage,
    UserStateName,
)
from ._core.state import AgentHistoryState
from ._core.timeline import EntryKind, TimelineBuilder, TimelineEntry, timeline
from ._wire.remote_client import AgentInfo, AgentSessionInfo, FrameworkInfo, RemoteSessionClient, RtcStats
from ._wire.rpc import RpcHandler, RpcInvocation

__all__ = [
    "AgentConfigUpdateItem",
    "AgentHistoryState",
    "AgentExpression",
    "AgentHandoffItem",
    "AgentInfo",
    "AgentSessionInfo",
    "AgentStateCheck",
    "AgentStateName",
    "ChatRoleName",
    "ConversationItem",
    "ConversationItems",
    "EntryKind",
    "EotUsage",
    "FalseInterruption",
    "FrameworkInfo",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "InterruptionUsage",
    "LLMUsage",
    "MessageItem",
    "MessageMetrics",
    "ModelUsage",
    "OverlappingSpeech",
    "RemoteSessionClient",
    "RemoteSessionState",
    "RpcCall",
    "RpcDirection",
    "RpcHandler",
    "RpcInvocation",
    "RpcState",
    "RpcStatus",
    "RtcStats",
    "SessionUsage",
    "STTUsage",
    "TimelineBuilder",
    "TimelineEntry",
    "ToolCall",
    "ToolCalls",
    "ToolCallStatus",
    "ToolReplyStatus",
    "TTSUsage",
    "UserStateName",
    "check_agent_state",
    "timeline",
]

_publish(__name__, globals(), __all__)
