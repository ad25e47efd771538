"""Asking the agent's session host questions, and getting typed answers back.

The session host that broadcasts events on ``lk.agent.session`` also answers
requests: each ``SessionRequest`` carries a ``request_id``, and the matching
``SessionResponse`` carries it back, with an ``error`` when the agent could not
do what was asked. :class:`RemoteSessionClient` is the asking side. It does not
own a transport: it is handed a ``send`` coroutine function that delivers bytes
to the agent, and it hears the answers from the store
(:meth:`RemoteSessionClient.follow`): the room source emits every
``lk.agent.session`` message as an event, and a tap passes the client those the
reducer took as the agent's. So the answers travel the one path everything
else does, and the client stays free of ``livekit.rtc``.

Every request ends in exactly one of: a typed, frozen result; a
:class:`~lkstate.RemoteSessionError` carrying the agent's own message; a
:class:`~lkstate.RequestTimeoutError`; or a :class:`~lkstate.SessionClosedError`
when :meth:`RemoteSessionClient.aclose` ends the wait. Nothing is left pending
afterwards, whichever way it ended (including the caller being cancelled).

The answers mirror what ``livekit.agents.voice.remote_session.SessionHost``
sends for each request type.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, cast

import attrs
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError
from livekit.protocol.agent_pb import agent_session as pb

from .._core import events as ev
from .._core.errors import RemoteSessionError, RequestTimeoutError, SessionClosedError
from .._core.state import SessionState
from .._core.store import Store
from google.protobuf.struct_pb2 import Struct

from .._core.remote_state import (
    AgentStateName,
    ConversationItem,
    SessionUsage,
    UserStateName,
    agent_state_name,
    decode_chat_item,
    decode_session_usage,
    timestamp_seconds,
    user_state_name,
)

__all__ = [
    "AgentInfo",
    "AgentSessionInfo",
    "FrameworkInfo",
    "RemoteSessionClient",
    "RtcStats",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
"""Seconds to wait for an answer to a quick request (ping, history, info)."""

DEFAULT_RUN_TIMEOUT = 60.0
"""Seconds to wait for ``run_input``: the agent answers only after a whole turn
(LLM, tools, speech), which takes far longer than a lookup."""

DEFAULT_MAX_RESPONSE_BYTES = 64 << 20
"""Largest payload the client will parse. Responses can be big — a long chat
history comes back whole — so this is far above the event limit."""


@attrs.frozen
class AgentInfo:
    """The agent currently in charge: its id, instructions, tool names and context."""

    id: str
    instructions: str
    tools: tuple[str, ...]
    chat_ctx: tuple[ConversationItem, ...]


@attrs.frozen
class AgentSessionInfo:
    """The session as the agent sees it right now.

    ``options`` are the session's settings as the agent stringifies them
    (endpointing, interruption, max_tool_steps, …). ``started_at`` is when the
    session started, on the agent's clock. A state number this version does
    not know reads as ``None``.
    """

    agent_state: AgentStateName | None
    user_state: UserStateName | None
    agent_id: str
    options: Mapping[str, str] = attrs.field(hash=False)
    """Read-only. Left out of the hash (a mapping has none); still compared."""
    started_at: float | None


@attrs.frozen
class FrameworkInfo:
    """Which agent SDK runs the agent: ``sdk`` (e.g. ``"python"``) and its version."""

    sdk: str
    sdk_version: str


@attrs.frozen
class RtcStats:
    """The agent's WebRTC statistics, one frozen mapping per stats report.

    Empty when the agent is not connected to a room.
    """

    publisher: tuple[Mapping[str, Any], ...] = attrs.field(hash=False)
    """Read-only mappings (lists inside are tuples). Left out of the hash; still compared."""
    subscriber: tuple[Mapping[str, Any], ...] = attrs.field(hash=False)


def _items(chat_items: Iterable[pb.ChatContext.ChatItem]) -> tuple[ConversationItem, ...]:
    decoded = (decode_chat_item(item) for item in chat_items)
    return tuple(item for item in decoded if item is not None)


def _read_only(value: Any) -> Any:
    """JSON-like ``value`` with every dict made a read-only mapping and every list a tuple."""
    if isinstance(value, dict):
        entries = cast(dict[str, Any], value)
        return MappingProxyType({key: _read_only(inner) for key, inner in entries.items()})
    if isinstance(value, list):
        return tuple(_read_only(inner) for inner in cast(list[Any], value))
    return value


def _frozen_stats(structs: Iterable[Struct]) -> tuple[Mapping[str, Any], ...]:
    return tuple(_read_only(MessageToDict(s)) for s in structs)


class RemoteSessionClient:
    """Requests to the agent's session host, matched to their responses.

    ``send`` delivers one serialized ``AgentSessionMessage`` to the agent (on a
    room: ``send_bytes`` on topic ``lk.agent.session`` to the agent's identity
    only). :meth:`follow` a store to hear the answers (or feed every payload
    received from that agent to :meth:`handle_payload`). Use it on one event
    loop; it is not thread-safe.
    """

    def __init__(
        self,
        send: Callable[[bytes], Awaitable[None]],
        *,
        default_timeout: float = DEFAULT_TIMEOUT,
        run_timeout: float = DEFAULT_RUN_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._send = send
        self._default_timeout = default_timeout
        self._run_timeout = run_timeout
        self._max_response_bytes = max_response_bytes
        self._pending: dict[str, asyncio.Future[pb.SessionResponse]] = {}
        self._closed = False
        self._unfollow: Callable[[], None] | None = None

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` was called; every request then fails at once."""
        return self._closed

    @property
    def pending_requests(self) -> int:
        """How many requests are waiting for an answer right now."""
        return len(self._pending)

    def follow(self, store: Store) -> None:
        """Hear the agent's answers from ``store``'s events, until :meth:`aclose`.

        A tap sees each ``AgentSessionPayload`` with the snapshot it produced,
        and passes on those from the agent that snapshot tracks: the reducer's
        rule, not a second copy of it.
        """
        if self._unfollow is not None:
            self._unfollow()

        def tap(event: ev.Event, state: SessionState) -> None:
            if isinstance(event, ev.AgentSessionPayload) and event.sender == state.agent.identity:
                self.handle_payload(event.payload)

        self._unfollow = store.add_tap(tap)

    def handle_payload(self, payload: bytes) -> None:
        """Take one payload received from the agent; resolve the request it answers.

        Anything that is not a response to a pending request — events, garbage,
        a response nobody is waiting for — is ignored here. (Events and garbage
        are the state decoder's business.)
        """
        if self._closed or not self._pending or len(payload) > self._max_response_bytes:
            return
        msg = pb.AgentSessionMessage()
        try:
            msg.ParseFromString(bytes(payload))
        except DecodeError:
            return
        if msg.WhichOneof("message") != "response":
            return
        future = self._pending.get(msg.response.request_id)
        if future is None:
            logger.debug("ignoring a response to unknown request %r", msg.response.request_id)
            return
        if not future.done():
            future.set_result(msg.response)

    async def aclose(self) -> None:
        """Stop: every waiting request fails with :class:`SessionClosedError`."""
        if self._unfollow is not None:
            self._unfollow()
            self._unfollow = None
        if self._closed:
            return
        self._closed = True
        for request_id, future in list(self._pending.items()):
            if not future.done():
                future.set_exception(
                    SessionClosedError(
                        f"The remote-session request {request_id} was still waiting for the "
                        "agent when the session closed.",
                        remedy="Start the session again to ask the agent.",
                    )
                )
        self._pending.clear()

    async def _request(
        self,
        what: str,
        request: pb.SessionRequest,
        answer: str,
        timeout: float | None,
        request_id: str | None = None,
    ) -> pb.SessionResponse:
        """Send ``request`` and wait for the response carrying field ``answer``."""
        if self._closed:
            raise SessionClosedError(
                f"Cannot ask the agent for {what}: the remote session is closed.",
                remedy="Start the session again to ask the agent.",
            )
        limit = self._default_timeout if timeout is None else timeout
        request_id = request_id or uuid.uuid4().hex
        if request_id in self._pending:
            raise RemoteSessionError(
                f"A request with the id {request_id!r} is already waiting for the agent.",
                remedy="Give each request its own id (or let the client choose one).",
            )
        request.request_id = request_id
        future: asyncio.Future[pb.SessionResponse] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            try:
                await self._send(pb.AgentSessionMessage(request=request).SerializeToString())
            except Exception as exc:
                raise RemoteSessionError(
                    f"Could not send the request for {what} to the agent: {exc}",
                    remedy="Check that the room is still connected and the agent is in it.",
                ) from exc
            try:
                async with asyncio.timeout(limit):
                    response = await future
            except TimeoutError:
                raise RequestTimeoutError(
                    f"The agent did not answer the request for {what} within {limit:g} seconds.",
                    remedy="Check that the agent is still in the room and running its session "
                    "host; a busy agent may need a longer timeout.",
                ) from None
        finally:
            self._pending.pop(request_id, None)
            # an answer or a close that raced with a failed send must not be
            # reported later as "exception never retrieved"
            if future.done() and not future.cancelled():
                future.exception()
            else:
                future.cancel()

        if response.error:
            raise RemoteSessionError(
                f"The agent could not provide {what}: {response.error}",
                remedy="The agent's message says what went wrong; its logs say more.",
            )
        if response.WhichOneof("response") != answer:
            raise RemoteSessionError(
                f"The agent answered the request for {what} with something else "
                f"({response.WhichOneof('response') or 'an empty response'}).",
                remedy="The agent may run a livekit-agents version this lkstate does not "
                "understand; check both versions.",
            )
        return response

    async def ping(self, *, timeout: float | None = None) -> float:
        """Round trip to the agent's session host, in seconds."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._request("a pong", pb.SessionRequest(ping=pb.SessionRequest.Ping()), "pong", timeout)
        return loop.time() - started

    async def get_chat_history(
        self, *, timeout: float | None = None, request_id: str | None = None
    ) -> tuple[ConversationItem, ...]:
        """The whole conversation so far, oldest first, as the session records it.

        ``request_id`` is the id the request goes out with (a fresh one by
        default): a caller that announces the request before sending it
        (:class:`~lkstate.lowlevel.events.AgentHistoryRequested`, so the
        reducer merges the answer) chooses it. Items of kinds this version
        cannot read are left out.
        """
        response = await self._request(
            "its chat history",
            pb.SessionRequest(get_chat_history=pb.SessionRequest.GetChatHistory()),
            "get_chat_history",
            timeout,
            request_id,
        )
        return _items(response.get_chat_history.items)

    async def get_agent_info(self, *, timeout: float | None = None) -> AgentInfo:
        """The agent in charge: id, instructions, tool names and its own chat context."""
        response = await self._request(
            "information about itself",
            pb.SessionRequest(get_agent_info=pb.SessionRequest.GetAgentInfo()),
            "get_agent_info",
            timeout,
        )
        info = response.get_agent_info
        return AgentInfo(
            id=info.id,
            instructions=info.instructions,
            tools=tuple(info.tools),
            chat_ctx=_items(info.chat_ctx),
        )

    async def get_session_state(self, *, timeout: float | None = None) -> AgentSessionInfo:
        """Agent and user state, current agent id and session options, right now."""
        response = await self._request(
            "its session state",
            pb.SessionRequest(get_session_state=pb.SessionRequest.GetSessionState()),
            "get_session_state",
            timeout,
        )
        s = response.get_session_state
        return AgentSessionInfo(
            agent_state=agent_state_name(s.agent_state),
            user_state=user_state_name(s.user_state),
            agent_id=s.agent_id,
            options=MappingProxyType({str(k): str(v) for k, v in s.options.items()}),
            started_at=timestamp_seconds(s, "created_at"),
        )

    async def get_session_usage(self, *, timeout: float | None = None) -> SessionUsage:
        """Model usage totals so far (tokens, characters, audio seconds)."""
        response = await self._request(
            "its model usage",
            pb.SessionRequest(get_session_usage=pb.SessionRequest.GetSessionUsage()),
            "get_session_usage",
            timeout,
        )
        u = response.get_session_usage
        return decode_session_usage(u.usage, reported_at=timestamp_seconds(u, "created_at"))

    async def get_framework_info(self, *, timeout: float | None = None) -> FrameworkInfo:
        """Which agent SDK, and which version, the agent runs."""
        response = await self._request(
            "its framework version",
            pb.SessionRequest(get_framework_info=pb.SessionRequest.GetFrameworkInfo()),
            "get_framework_info",
            timeout,
        )
        f = response.get_framework_info
        return FrameworkInfo(sdk=f.sdk, sdk_version=f.sdk_version)

    async def get_rtc_stats(self, *, timeout: float | None = None) -> RtcStats:
        """The agent's WebRTC statistics (empty when it has no room connection)."""
        response = await self._request(
            "its WebRTC statistics",
            pb.SessionRequest(get_rtc_stats=pb.SessionRequest.GetRTCStats()),
            "get_rtc_stats",
            timeout,
        )
        r = response.get_rtc_stats
        return RtcStats(
            publisher=_frozen_stats(r.publisher_stats),
            subscriber=_frozen_stats(r.subscriber_stats),
        )

    async def run_input(
        self, text: str, *, timeout: float | None = None
    ) -> tuple[ConversationItem, ...]:
        """Have the agent take ``text`` as the user's turn and answer it.

        The agent interrupts whatever it is saying, runs a whole turn, and
        returns the items that turn produced (the user's message, tool calls,
        its reply). An empty tuple is a turn the agent chose to stay silent on.
        Waits ``run_timeout`` seconds by default, since a turn is slow.
        """
        response = await self._request(
            "a reply to the text it was given",
            pb.SessionRequest(run_input=pb.SessionRequest.RunInput(text=text)),
            "run_input",
            self._run_timeout if timeout is None else timeout,
        )
        return _items(response.run_input.items)

    async def update_io(
        self,
        *,
        input_audio_enabled: bool | None = None,
        input_video_enabled: bool | None = None,
        output_audio_enabled: bool | None = None,
        output_video_enabled: bool | None = None,
        output_transcription_enabled: bool | None = None,
        timeout: float | None = None,
    ) -> None:
        """Switch the agent's input/output channels; ``None`` leaves one as it is."""
        update = pb.SessionRequest.UpdateIO()
        if input_audio_enabled is not None:
            update.input.audio_enabled = input_audio_enabled
        if input_video_enabled is not None:
            update.input.video_enabled = input_video_enabled
        if output_audio_enabled is not None:
            update.output.audio_enabled = output_audio_enabled
        if output_video_enabled is not None:
            update.output.video_enabled = output_video_enabled
        if output_transcription_enabled is not None:
            update.output.transcription_enabled = output_transcription_enabled
        await self._request(
            "a change of its input and output",
            pb.SessionRequest(update_io=update),
            "update_io",
            timeout,
        )
