"""Remote procedure calls between the app and the agent, as the state shows them.

LiveKit RPC lets one participant call a named method on another and wait for
a string answer. An agent uses it to ask the app something only the app knows
(where the user is, what is on screen, a confirmation) from inside a function
tool; the app uses it to call methods the agent registered. Both directions
end up here as :class:`RpcCall` entries in ``state.rpc``: which method, who
called whom, how it went and how long it took, and in words why it failed.

Payloads can hold anything the app and the agent exchange, personal data
included, so they are kept (in the state and in recordings) only when the
registration or the call asks for it.

Pure: the wire (:mod:`lkstate._wire.rpc`) turns calls into events carrying
their own times; the functions here fold them.
"""

from __future__ import annotations

import enum

import attrs

__all__ = ["RpcDirection", "RpcStatus", "RpcCall", "RpcState", "rpc_started", "rpc_finished", "rpc_methods"]


class RpcDirection(enum.StrEnum):
    """Which way a call went."""

    INCOMING = "incoming"
    """Another participant (normally the agent) called a method this app registered."""
    OUTGOING = "outgoing"
    """This app called a method on another participant (normally the agent)."""


class RpcStatus(enum.StrEnum):
    PENDING = "pending"
    """Under way: no answer yet."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """The handler raised or answered with an error, the method is unknown, the peer left…"""
    REFUSED = "refused"
    """An incoming call from a participant the method does not allow; the handler did not run."""
    TIMED_OUT = "timed-out"


@attrs.frozen(slots=True)
class RpcCall:
    """One call, in either direction."""

    id: str
    """Unique within the session: ``rpc/in/<request id>`` or ``rpc/out/<uuid>``."""
    direction: RpcDirection
    method: str
    caller: str
    """Identity of the participant that called."""
    callee: str
    """Identity of the participant that was called."""
    status: RpcStatus
    started_at: float
    """When the call was made or arrived (seconds since the epoch)."""
    finished_at: float | None = None
    error: str | None = None
    """Why it failed, timed out or was refused, in words."""
    error_code: int | None = None
    """The RPC error code the caller received (1500 application error, 1502 response timeout…)."""
    request: str | None = None
    """The request payload, only when payloads are kept for this method or call."""
    response: str | None = None
    """The answer, only when payloads are kept."""

    @property
    def duration(self) -> float | None:
        """Seconds from the call to its outcome; ``None`` while pending."""
        return None if self.finished_at is None else max(0.0, self.finished_at - self.started_at)

    @property
    def is_finished(self) -> bool:
        return self.status is not RpcStatus.PENDING


@attrs.frozen(slots=True)
class RpcState:
    """The app's RPC methods and its recent calls."""

    methods: tuple[str, ...] = ()
    """Methods this app answers, sorted."""
    calls: tuple[RpcCall, ...] = ()
    """Recent calls, oldest first (bounded by ``Limits.max_rpc_calls``; the oldest go first)."""
    total: int = 0
    """How many calls this session has seen, including those no longer in ``calls``."""

    def call(self, call_id: str) -> RpcCall | None:
        """The call with this id, if it is still among the recent ones."""
        for call in reversed(self.calls):
            if call.id == call_id:
                return call
        return None

    @property
    def pending(self) -> tuple[RpcCall, ...]:
        return tuple(call for call in self.calls if call.status is RpcStatus.PENDING)


def rpc_methods(rpc: RpcState, methods: tuple[str, ...]) -> RpcState:
    methods = tuple(sorted(set(methods)))
    return rpc if methods == rpc.methods else attrs.evolve(rpc, methods=methods)


def rpc_started(rpc: RpcState, call: RpcCall, max_calls: int) -> RpcState:
    """``rpc`` with ``call`` added (a call id seen before changes nothing)."""
    if rpc.call(call.id) is not None:
        return rpc
    calls = (*rpc.calls, call)
    if len(calls) > max_calls:
        calls = calls[len(calls) - max(max_calls, 0) :]
    return attrs.evolve(rpc, calls=calls, total=rpc.total + 1)


def rpc_finished(
    rpc: RpcState,
    call_id: str,
    *,
    at: float,
    status: RpcStatus,
    error: str | None,
    error_code: int | None,
    response: str | None,
) -> RpcState:
    """``rpc`` with the pending call ``call_id`` settled; unknown or settled calls change nothing."""
    for position in range(len(rpc.calls) - 1, -1, -1):
        call = rpc.calls[position]
        if call.id != call_id:
            continue
        if call.is_finished:
            return rpc
        settled = attrs.evolve(
            call, status=status, finished_at=at, error=error, error_code=error_code, response=response
        )
        return attrs.evolve(rpc, calls=(*rpc.calls[:position], settled, *rpc.calls[position + 1 :]))
    return rpc
