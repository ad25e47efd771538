"""RPC with the agent over ``livekit.rtc``: methods the app answers, calls the app makes.

An agent's function tool may need something only the client has (the user's
location, what is on screen, a yes from the user). LiveKit RPC is how the
official SDKs let it ask: the client registers a method, the agent calls
``perform_rpc`` on the user's identity and waits for the answer. This module
does the client's half of that and the reverse direction, and reports every
call as events (:mod:`lkstate._core.rpc` folds them into ``state.rpc``).

Rules it keeps:

- **Only the agent, unless you say otherwise.** A method answers participants
  of kind agent (the agent and its avatar worker) by default; an explicit
  allow-list of identities replaces that. A call from anyone else is refused
  before the handler runs, reported in the state in words, and the caller is
  told the method is not supported (a stranger learns nothing about which
  methods exist).
- **Payloads stay private unless asked.** Requests and answers go into the
  state (and so into recordings) only with ``keep_payloads=True``.
- **Every outcome has words.** A handler that raises, answers too late or
  returns no string; an agent that has no such method, left, or never
  acknowledged: each ends the call with a sentence in the state.
- **Registrations outlive connections.** Methods can be registered before
  ``start()``; they are registered with every room the session joins.

Only the RPC API shared by livekit 1.1 and 1.2 is used: ``register_rpc_method``
with a handler, ``unregister_rpc_method``, ``perform_rpc`` and ``RpcError``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable

import attrs
from livekit import rtc

from .._core import events as ev
from .._core.errors import RpcCallError
from .._core.rpc import RpcDirection, RpcStatus

__all__ = ["RpcInvocation", "RpcHandler", "RpcBridge", "describe_rpc_error"]

logger = logging.getLogger(__name__)

_Code = rtc.RpcError.ErrorCode

_ANNOUNCE_WAIT = 4.0
"""How long an incoming call from a participant the room has not announced yet waits for the join (s)."""

_TIMEOUT_SLACK = 0.05
"""A handler cancelled this close to the caller's deadline was cancelled by the deadline (s)."""


@attrs.frozen
class RpcInvocation:
    """An incoming call, as a handler registered with ``register_rpc_method`` receives it."""

    method: str
    caller: str
    """Identity of the participant calling (the agent, unless the allow-list says otherwise)."""
    payload: str
    request_id: str
    response_timeout: float
    """Seconds the caller waits for the answer; the handler is cancelled after that."""


RpcHandler = Callable[[RpcInvocation], "str | Awaitable[str]"]
"""A method's handler: takes the invocation, returns (or awaits) the answer as a string.

Raise ``livekit.rtc.RpcError(code, message, data)`` to send the caller a
specific error; anything else it raises reaches the caller as an application
error (1500) and the state as the exception, in words.
"""


@attrs.frozen
class _Registration:
    handler: RpcHandler
    allowed_callers: frozenset[str] | None
    keep_payloads: bool


def describe_rpc_error(error: rtc.RpcError, method: str, peer: str, timeout: float | None = None) -> str:
    """An RPC error the SDK raised for our call of ``method`` on ``peer``, in words."""
    code = error.code
    if code == _Code.UNSUPPORTED_METHOD:
        return f"{peer!r} has no RPC method {method!r} (or does not let this app call it)."
    if code == _Code.RECIPIENT_NOT_FOUND:
        return f"{peer!r} is not in the room, so {method!r} could not be called."
    if code == _Code.RESPONSE_TIMEOUT:
        within = f" within {timeout:g} s" if timeout is not None else " in time"
        return f"{peer!r} did not answer {method!r}{within}."
    if code == _Code.CONNECTION_TIMEOUT:
        return f"The call of {method!r} never reached {peer!r} (no acknowledgement)."
    if code == _Code.RECIPIENT_DISCONNECTED:
        return f"{peer!r} left before answering {method!r}."
    if code == _Code.APPLICATION_ERROR:
        return f"{peer!r} failed to answer {method!r}: {error.message}."
    if code in (_Code.REQUEST_PAYLOAD_TOO_LARGE, _Code.RESPONSE_PAYLOAD_TOO_LARGE):
        return f"The call of {method!r} was refused: {error.message.lower()} (RPC payloads are limited to 15 KiB)."
    if code in (_Code.UNSUPPORTED_SERVER, _Code.UNSUPPORTED_VERSION):
        return f"RPC is not available here: {error.message.lower()}."
    detail = f" ({error.data})" if error.data else ""
    return f"{peer!r} answered {method!r} with error {code}: {error.message}{detail}."


class RpcBridge:
    """The app's RPC methods and calls, reported through ``emit``.

    One per :class:`~lkstate.Session`, living as long as it: :meth:`attach`
    registers the methods with each room after it connects, :meth:`detach`
    forgets the room when it is torn down.
    """

    def __init__(
        self,
        emit: Callable[[ev.Event], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._emit = emit
        self._clock = clock
        self._registrations: dict[str, _Registration] = {}
        self._room: rtc.Room | None = None
        self._wait_known: Callable[[str, float], Awaitable[bool]] | None = None

    # -- registrations ----------------------------------------------------------------

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(sorted(self._registrations))

    def register(
        self,
        method: str,
        handler: RpcHandler,
        *,
        allowed_callers: Iterable[str] | None = None,
        keep_payloads: bool = False,
    ) -> None:
        if not method:
            raise ValueError("An RPC method needs a name.")
        if not callable(handler):
            raise TypeError(f"The handler of {method!r} must be callable, not {type(handler).__name__}.")
        if isinstance(allowed_callers, str):
            raise TypeError("allowed_callers is a collection of identities; wrap a single identity in a list.")
        allowed = None if allowed_callers is None else frozenset(allowed_callers)
        self._registrations[method] = _Registration(handler, allowed, keep_payloads)
        room = self._room
        if room is not None:
            try:
                room.local_participant.register_rpc_method(method, self._handler_for(method))
            except Exception:  # a connection on its way out: the next room gets it
                logger.info("Could not register the RPC method %r with the room now", method, exc_info=True)
        self._emit(ev.RpcMethodsChanged(at=self._clock(), methods=self.methods))

    def unregister(self, method: str) -> None:
        if self._registrations.pop(method, None) is None:
            return
        room = self._room
        if room is not None:
            try:
                room.local_participant.unregister_rpc_method(method)
            except Exception:  # a connection on its way out takes its handlers with it
                logger.info("Could not unregister the RPC method %r from the room now", method, exc_info=True)
        self._emit(ev.RpcMethodsChanged(at=self._clock(), methods=self.methods))

    # -- connection ---------------------------------------------------------------------

    def attach(self, room: rtc.Room, wait_known: Callable[[str, float], Awaitable[bool]] | None = None) -> None:
        """Register every method with ``room`` (connected: the local participant exists only then)."""
        self._room = room
        self._wait_known = wait_known
        for method in self._registrations:
            room.local_participant.register_rpc_method(method, self._handler_for(method))

    def detach(self) -> None:
        """Forget the room; the SDK drops its handlers with the connection."""
        self._room = None
        self._wait_known = None

    # -- incoming -------------------------------------------------------------------------

    def _handler_for(self, method: str) -> Callable[[rtc.RpcInvocationData], Awaitable[str]]:
        async def handle(data: rtc.RpcInvocationData) -> str:
            return await self._answer(method, data)

        return handle

    async def _answer(self, method: str, data: rtc.RpcInvocationData) -> str:
        room = self._room
        caller = data.caller_identity
        callee = room.local_participant.identity if room is not None else ""
        registration = self._registrations.get(method)
        call_id = f"rpc/in/{data.request_id}"
        keep = registration is not None and registration.keep_payloads
        self._emit(
            ev.RpcCallStarted(
                at=self._clock(),
                call_id=call_id,
                direction=RpcDirection.INCOMING,
                method=method,
                caller=caller,
                callee=callee,
                request=data.payload if keep else None,
            )
        )
        if registration is None:  # unregistered while the call was on its way
            self._finish(call_id, RpcStatus.FAILED, f"{caller!r} called {method!r}, which is no longer registered.",
                         _Code.UNSUPPORTED_METHOD)
            raise rtc.RpcError(_Code.UNSUPPORTED_METHOD, "Method not supported at destination")
        refusal = await self._refusal(registration, method, caller)
        if refusal is not None:
            self._finish(call_id, RpcStatus.REFUSED, refusal, _Code.UNSUPPORTED_METHOD)
            raise rtc.RpcError(_Code.UNSUPPORTED_METHOD, "Method not supported at destination")

        invocation = RpcInvocation(
            method=method,
            caller=caller,
            payload=data.payload,
            request_id=data.request_id,
            response_timeout=data.response_timeout,
        )
        loop = asyncio.get_running_loop()
        began = loop.time()
        deadline = asyncio.timeout(data.response_timeout)
        try:
            async with deadline:
                answer = registration.handler(invocation)
                if inspect.isawaitable(answer):
                    answer = await answer
        except TimeoutError as error:
            if not deadline.expired():
                self._handler_failed(call_id, method, error)
                raise rtc.RpcError(_Code.APPLICATION_ERROR, "Application error in method handler") from error
            self._finish(call_id, RpcStatus.TIMED_OUT, self._too_late(method, caller, data.response_timeout),
                         _Code.RESPONSE_TIMEOUT)
            raise rtc.RpcError(_Code.RESPONSE_TIMEOUT, "Response timeout") from None
        except asyncio.CancelledError:
            # The SDK cancels the handler at the caller's deadline, and when the room goes.
            if loop.time() - began >= data.response_timeout - _TIMEOUT_SLACK:
                self._finish(call_id, RpcStatus.TIMED_OUT, self._too_late(method, caller, data.response_timeout),
                             _Code.RESPONSE_TIMEOUT)
            else:
                self._finish(call_id, RpcStatus.FAILED,
                             f"The call of {method!r} from {caller!r} was cut off: the connection ended.",
                             _Code.RECIPIENT_DISCONNECTED)
            raise
        except rtc.RpcError as error:
            detail = f" ({error.data})" if error.data else ""
            self._finish(call_id, RpcStatus.FAILED,
                         f"The handler of {method!r} answered {caller!r} with error {error.code}: {error.message}{detail}.",
                         error.code)
            raise
        except Exception as error:
            self._handler_failed(call_id, method, error)
            raise rtc.RpcError(_Code.APPLICATION_ERROR, "Application error in method handler") from error
        if not isinstance(answer, str):  # pyright: ignore[reportUnnecessaryIsInstance] - handlers are user code
            self._finish(call_id, RpcStatus.FAILED,
                         f"The handler of {method!r} returned {type(answer).__name__}, not a string; "
                         f"{caller!r} was told it failed.",
                         _Code.APPLICATION_ERROR)
            raise rtc.RpcError(_Code.APPLICATION_ERROR, "Application error in method handler")
        self._finish(call_id, RpcStatus.SUCCEEDED, None, None, answer if registration.keep_payloads else None)
        return answer

    async def _refusal(self, registration: _Registration, method: str, caller: str) -> str | None:
        """Why ``caller`` may not call ``method``, or ``None`` when it may."""
        if registration.allowed_callers is not None:
            if caller in registration.allowed_callers:
                return None
            return f"Refused a call of {method!r} from {caller!r}, who is not among the callers it allows."
        room = self._room
        if room is None:
            return f"Refused a call of {method!r} from {caller!r}: the session is not connected."
        if caller not in room.remote_participants and self._wait_known is not None:
            # Data can overtake the server's announcement of a participant that publishes no track.
            await self._wait_known(caller, _ANNOUNCE_WAIT)
        participant = room.remote_participants.get(caller)
        if participant is not None and participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            return None
        return f"Refused a call of {method!r} from {caller!r}: only the agent may call it."

    def _too_late(self, method: str, caller: str, timeout: float) -> str:
        return (
            f"The handler of {method!r} did not answer {caller!r} within {timeout:g} s; "
            "the caller was told it timed out."
        )

    def _handler_failed(self, call_id: str, method: str, error: BaseException) -> None:
        logger.warning("The RPC handler of %r raised", method, exc_info=error)
        detail = str(error).strip()
        words = f"The handler of {method!r} raised {type(error).__name__}" + (f": {detail}" if detail else "") + "."
        self._finish(call_id, RpcStatus.FAILED, words, _Code.APPLICATION_ERROR)

    def _finish(
        self,
        call_id: str,
        status: RpcStatus,
        error: str | None,
        code: int | None,
        response: str | None = None,
    ) -> None:
        self._emit(
            ev.RpcCallFinished(
                at=self._clock(),
                call_id=call_id,
                status=status,
                error=error,
                error_code=int(code) if code is not None else None,
                response=response,
            )
        )

    # -- outgoing -------------------------------------------------------------------------

    async def perform(
        self,
        room: rtc.Room,
        *,
        destination: str,
        method: str,
        payload: str,
        timeout: float,
        keep_payloads: bool,
    ) -> str:
        """Call ``method`` on ``destination``; the answer, or :class:`~lkstate.errors.RpcCallError`."""
        if not method:
            raise ValueError("Name the RPC method to call.")
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        call_id = f"rpc/out/{uuid.uuid4().hex}"
        self._emit(
            ev.RpcCallStarted(
                at=self._clock(),
                call_id=call_id,
                direction=RpcDirection.OUTGOING,
                method=method,
                caller=room.local_participant.identity,
                callee=destination,
                request=payload if keep_payloads else None,
            )
        )
        try:
            answer = await room.local_participant.perform_rpc(
                destination_identity=destination, method=method, payload=payload, response_timeout=timeout
            )
        except rtc.RpcError as error:
            words = describe_rpc_error(error, method, destination, timeout)
            timed_out = error.code in (_Code.RESPONSE_TIMEOUT, _Code.CONNECTION_TIMEOUT)
            self._finish(call_id, RpcStatus.TIMED_OUT if timed_out else RpcStatus.FAILED, words, error.code)
            raise RpcCallError(words, code=error.code, data=error.data, remedy=_remedy(error.code)) from error
        except asyncio.CancelledError:
            self._finish(call_id, RpcStatus.FAILED, f"The call of {method!r} was cancelled before {destination!r} answered.",
                         None)
            raise
        except Exception as error:
            words = f"The call of {method!r} on {destination!r} failed: {error}"
            self._finish(call_id, RpcStatus.FAILED, words, _Code.SEND_FAILED)
            raise RpcCallError(words, code=_Code.SEND_FAILED, remedy="Check the connection and call again.") from error
        self._finish(call_id, RpcStatus.SUCCEEDED, None, None, answer if keep_payloads else None)
        return answer


def _remedy(code: int) -> str:
    if code == _Code.UNSUPPORTED_METHOD:
        return "Check the method name against what the agent registers."
    if code in (_Code.RESPONSE_TIMEOUT, _Code.CONNECTION_TIMEOUT):
        return "Call again, or give the agent more time with a larger timeout."
    if code in (_Code.RECIPIENT_NOT_FOUND, _Code.RECIPIENT_DISCONNECTED):
        return "Wait for the agent to be in the room (state.agent.is_ready) and call again."
    return ""
