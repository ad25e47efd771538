"""The session: owns the room connection and turns commands into effects.

A :class:`Session` is the one object an app holds. It connects to a room with
credentials from a token source, feeds everything the room does into the store
as events, and exposes the result as :attr:`Session.state` (the current
snapshot) and :attr:`Session.states` (every change, as an observable).

Commands (``start``, ``end``, ``send_text``…) are coroutines on the session's
asyncio loop: the host's loop for asyncio hosts (Textual, Gradio, scripts using
``asyncio.run``), or a :class:`~lkstate.LoopThread` for hosts without one. Their
outcomes come back as events too, so the state always shows what happened, and
a command that cannot succeed also raises a typed exception.

The agent connect timeout is the session's one timer. It runs whenever the
state says the session is waiting for an agent (none present, or present but
never ready) and its expiry is an event like any other, so a recorded session
replays the same failure at the same point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Literal, TypeVar

import attrs
from livekit import rtc
from reactivex import Observable
from reactivex.abc import DisposableBase

from .._core import events as ev
from .._wire import ffi_exit as _ffi_exit
from .._wire import room_connect as _room_connect
from .._core.errors import (
    AgentUnavailableError,
    ConnectionFailedError,
    LkstateError,
    RemoteSessionError,
    RequestTimeoutError,
    SessionClosedError,
    TokenSourceError,
)
from .._core.history import MessageHistory
from .._media.audio import AudioInput
from .._core.messages import Message
from .._core.levels import AudioLevels
from .._media.levels import LevelMeter
from .._wire.encryption import Encryption, EncryptionWatcher, as_encryption
from .._media.microphone import MicrophoneController, MicrophoneDevice
from .._media.video import VideoInput
from .._media.video_track import VideoTrackController
from .._core.options import SessionOptions
from .._wire.remote_client import RemoteSessionClient
from .._wire.room_source import TOPIC_AGENT_SESSION, TOPIC_CHAT, RoomSource
from .._wire.rpc import RpcBridge, RpcHandler
from .._media.speaker import AudioOutput, SpeakerController, SpeakerOutput
from .._core.state import AgentStatus, ConnectionStatus, SessionState, TrackSource
from .._core.store import Store
from .._wire.tokens import TokenRequest, TokenSource

__all__ = ["Session"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_CHAT_ANNOUNCE_GRACE = 3.5
"""Seconds after connecting during which chat waits for the agent to be able to see the user."""

_WAITING_STATUSES = frozenset(
    {AgentStatus.CONNECTING, AgentStatus.PRE_CONNECT_BUFFERING, AgentStatus.INITIALIZING, AgentStatus.IDLE}
)


def _is_waiting_for_agent(state: SessionState) -> bool:
    """The session is connecting or connected and no agent has been ready yet."""
    if state.connection.status is ConnectionStatus.DISCONNECTED:
        return False
    agent = state.agent
    if agent.status not in _WAITING_STATUSES:
        return False
    primary = agent.agents[0] if agent.agents and agent.agents[0].is_agent else None
    return primary is None or not primary.ready_once


class Session:
    """A conversation with a LiveKit agent, as one reactive, immutable state.

    ::

        session = Session(DevelopmentTokenSource(url, key, secret), agent_name="my-agent")
        async with session:
            session.states.subscribe(print)
            await session.send_text("Hello!")

    ``token_source`` supplies the server URL and participant token
    (:class:`~lkstate.LiteralTokenSource`, :class:`~lkstate.EndpointTokenSource`,
    :class:`~lkstate.DevelopmentTokenSource`, :class:`~lkstate.CustomTokenSource`,
    or your own). ``audio_input`` feeds the microphone track: ``"default"`` uses
    the system microphone when one exists (the state says so when none does),
    or pass a :class:`~lkstate.WavFileInput` / :class:`~lkstate.GeneratorInput`,
    or ``None`` for no microphone. ``audio_output`` plays the agent's voice:
    ``"default"`` is the system speaker when one exists (the state says so when
    none does), or pass a :class:`~lkstate.WavFileOutput`, or ``None`` for no
    playback; a device picker changes either while connected with
    :meth:`set_audio_input` and :meth:`set_audio_output`. ``video_input``
    feeds the camera track, which starts off (see :meth:`set_camera_enabled`): ``"default"`` is the system camera through
    OpenCV when there is one, or pass a :class:`~lkstate.CameraInput`,
    :class:`~lkstate.PatternVideoInput` or :class:`~lkstate.VideoGeneratorInput`;
    ``screen_share_input`` (a :class:`~lkstate.VideoInput`) feeds the screen
    share (:meth:`set_screen_share_enabled`). ``agent_name``/``agent_metadata`` ask the server to dispatch
    that agent when the join creates the room, and make it the preferred agent
    when several are present; ``agent_deployment`` picks which deployment of it. ``agent_connect_timeout`` (seconds, ``None`` for
    no limit) bounds the wait for an agent to join and become ready.
    ``encryption`` (a key, or :class:`~lkstate.tokens.Encryption`) turns on
    end-to-end encryption with a key shared by everyone in the room;
    ``state.connection.encryption`` says what is encrypted and whose key does
    not match. ``history`` (a :class:`~lkstate.MessageHistory` saved from an
    earlier session with :meth:`message_history`) is shown from the first
    :meth:`start` on, before everything else, each message marked ``origin``
    ``restored`` (see :meth:`restore_message_history`, which shows it at
    once; the first ``start()`` is late enough for a recorder attached to the
    new session to record the restore).
    """

    def __init__(
        self,
        token_source: TokenSource,
        *,
        agent_name: str | None = None,
        agent_metadata: str | None = None,
        agent_deployment: str | None = None,
        agent_connect_timeout: float | None = 20.0,
        room_name: str | None = None,
        participant_identity: str | None = None,
        participant_name: str | None = None,
        options: SessionOptions | None = None,
        audio_input: AudioInput | Literal["default"] | None = "default",
        audio_output: AudioOutput | Literal["default"] | None = "default",
        video_input: VideoInput | Literal["default"] | None = "default",
        screen_share_input: VideoInput | None = None,
        clock: Callable[[], float] = time.time,
        encryption: Encryption | bytes | str | None = None,
        history: MessageHistory | None = None,
    ) -> None:
        base = options if options is not None else SessionOptions()
        if agent_connect_timeout != base.agent_connect_timeout and options is None:
            base = attrs.evolve(base, agent_connect_timeout=agent_connect_timeout)
        self._options = base
        self._token_source = token_source
        self._agent_name = agent_name
        self._token_request = TokenRequest(
            room_name=room_name,
            participant_identity=participant_identity,
            participant_name=participant_name,
            agent_name=agent_name,
            agent_metadata=agent_metadata,
            agent_deployment=agent_deployment,
        )
        self._clock = clock
        self._store = Store(limits=base.limits)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room: rtc.Room | None = None
        self._source: RoomSource | None = None
        self._start_task: asyncio.Task[object] | None = None
        self._ending = False
        self._agent_timer: asyncio.TimerHandle | None = None
        self._teardown_task: asyncio.Task[None] | None = None
        self._connected_at: float | None = None
        self._audio_input: AudioInput | Literal["default"] | MicrophoneDevice | None = audio_input
        self._mic: MicrophoneController | None = None
        self._audio_output: AudioOutput | Literal["default"] | None = audio_output
        self._speaker: SpeakerController | None = None
        self._tearing_down = False
        """The room is being let go: a device chosen now is kept for the next start, not added to this one."""
        self._meter = LevelMeter(clock=clock)
        self._encryption = EncryptionWatcher(as_encryption(encryption), self._dispatch, clock)
        self._video_inputs: dict[TrackSource, VideoInput | Literal["default"]] = {}
        if video_input is not None:
            self._video_inputs[TrackSource.CAMERA] = video_input
        if screen_share_input is not None:
            self._video_inputs[TrackSource.SCREEN_SHARE] = screen_share_input
        self._video: dict[TrackSource, VideoTrackController] = {}
        self._video_wanted: dict[TrackSource, bool] = {}
        self._microphone_wanted = True
        self._remote = RemoteSessionClient(self._send_session_message)
        # The session's own question for the agent's history goes through a client of
        # its own, so the app's session.remote shows only the app's requests.
        self._history_client = RemoteSessionClient(self._send_session_message)
        self._history_task: asyncio.Task[None] | None = None
        self._history_asked: tuple[int, str] | None = None
        self._reacted_to: SessionState | None = None  # the last snapshot _on_state acted on past the microphone
        self._rpc = RpcBridge(self._dispatch, clock=clock)
        self._watch: DisposableBase = self._store.states.subscribe(self._on_state)
        # Restored by the first start(), not here: a recorder is attached to a fresh
        # session, and one that found the state already changed could not replay it.
        self._initial_history = history if history is not None and history.messages else None

    # -- reading the state ---------------------------------------------------------

    @property
    def state(self) -> SessionState:
        """The current snapshot."""
        return self._store.state

    @property
    def states(self) -> Observable[SessionState]:
        """The current snapshot on subscribe, then every change in order.

        Delivered on the session's loop thread, one call at a time. Front-end
        adapters move it to their own thread and frame rate.
        """
        return self._store.states

    @property
    def levels(self) -> Observable[AudioLevels]:
        """How loud the microphone and the agent are, for meters and voice visualizers.

        Apart from the state (it would churn every snapshot and fill
        recordings): the latest value on subscribe, then each change, at most
        every :data:`~lkstate.media.LEVELS_INTERVAL` seconds, on the session's
        loop thread like :attr:`states`; silent (and quiet) while the session
        is not started. The agent's voice is measured as received, so it needs
        an ``audio_output`` — a muted speaker still measures it, and
        :class:`~lkstate.media.SilentOutput` measures it without playing it.
        """
        return self._meter.levels

    def select(self, selector: Callable[[SessionState], _T]) -> Observable[_T]:
        """A slice of the state (``selector(state)``), delivered only when it changes."""
        return self._store.select(selector)

    @property
    def options(self) -> SessionOptions:
        return self._options

    @property
    def store(self) -> Store:
        """The underlying store (for recorders and tests)."""
        return self._store

    @property
    def room(self) -> rtc.Room | None:
        """The live ``livekit.rtc.Room`` while started, for what lkstate does not cover."""
        return self._room

    @property
    def remote(self) -> RemoteSessionClient:
        """Requests to the agent's session host (ping, chat history, usage, run input…).

        Requests go to the tracked agent only; each has a timeout and raises
        :class:`~lkstate.RequestTimeoutError` or :class:`~lkstate.RemoteSessionError`.
        """
        return self._remote

    async def wait_until(
        self, predicate: Callable[[SessionState], bool], *, timeout: float | None = None
    ) -> SessionState:
        """Wait for a snapshot that satisfies ``predicate``; return it.

        Raises :class:`TimeoutError` after ``timeout`` seconds (``None``: no limit).
        """
        if predicate(self.state):
            return self.state
        loop = asyncio.get_running_loop()
        found: asyncio.Future[SessionState] = loop.create_future()

        def check(state: SessionState) -> None:
            if not found.done() and predicate(state):
                found.set_result(state)

        subscription = self._store.states.subscribe(check)
        try:
            async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow a cancellation
                return await found
        finally:
            subscription.dispose()

    # -- commands -----------------------------------------------------------------

    async def start(self, *, wait_for_agent: bool = True) -> SessionState:
        """Connect to the room; by default also wait until the agent is ready.

        Returns the snapshot at which the session became usable. Raises
        :class:`~lkstate.TokenSourceError` or :class:`~lkstate.ConnectionFailedError`
        when the room cannot be joined, and :class:`~lkstate.AgentUnavailableError`
        when no agent is ready within ``agent_connect_timeout``; in that last case
        the session stays connected, and an agent that joins later is picked up.
        """
        teardown = self._teardown_task
        if teardown is not None and not teardown.done():
            # A lost connection is still being released (the state already says
            # disconnected, the room is not let go yet): let it finish first, so a
            # start at once — from the very subscriber that saw the disconnect — works.
            await asyncio.shield(teardown)
        if self._room is not None:
            raise LkstateError(
                "This session is already started.", remedy="Call end() before starting it again."
            )
        self._loop = asyncio.get_running_loop()
        self._store.release_thread()
        self._ending = False
        self._start_task = asyncio.current_task()
        self._dispatch(
            ev.StartRequested(
                at=self._clock(),
                requested_agent=self._agent_name,
                keep_history=self._options.keep_history_on_restart,
            )
        )
        initial_history, self._initial_history = self._initial_history, None
        if initial_history is not None:
            self.restore_message_history(initial_history)
        self._meter.start(self._loop)
        audio_input = self._audio_input
        if audio_input is not None:
            self._mic = MicrophoneController(
                audio_input=audio_input,
                emit=self._dispatch,
                clock=self._clock,
                preconnect=self._options.preconnect_audio,
                limits=self._options.preconnect_limits,
                on_level=self._meter.microphone,
            )
            if not self._microphone_wanted:
                await self._mic.set_enabled(False)  # before capture: it starts muted
            await self._mic.start_capture()  # before connecting: the user may speak already
        if self._audio_output is not None:
            self._speaker = SpeakerController(
                audio_output=self._audio_output,
                emit=self._dispatch,
                clock=self._clock,
                on_level=self._meter.agent,
                frame_ms=self._options.agent_audio_frame_ms,
            )
            await self._speaker.start()
        for kind, video_input in self._video_inputs.items():
            self._video[kind] = VideoTrackController(
                source=kind,
                video_input=video_input,
                emit=self._dispatch,
                clock=self._clock,
                enabled=self._video_wanted.get(kind, False),
            )
        room = rtc.Room(loop=self._loop)
        _ffi_exit.install()
        # The store's own dispatch, not self._dispatch: one call less for every transcript delta.
        source = RoomSource(
            room, self._store.dispatch, limits=self._options.limits, is_ending=lambda: self._ending, clock=self._clock
        )
        source.attach()
        self._encryption.attach(room)
        self._room, self._source = room, source
        # The client hears the agent's answers from the store, like any other reader of its events.
        self._remote = RemoteSessionClient(
            self._send_session_message, max_response_bytes=self._options.limits.max_session_response_bytes
        )
        self._remote.follow(self._store)
        self._history_client = RemoteSessionClient(
            self._send_session_message, max_response_bytes=self._options.limits.max_session_response_bytes
        )
        self._history_client.follow(self._store)
        try:
            await self._connect(room)
            if wait_for_agent:
                await self._wait_for_agent()
        except asyncio.CancelledError:
            await self._teardown()
            raise
        finally:
            self._start_task = None
        return self.state

    async def _connect(self, room: rtc.Room) -> None:
        try:
            credentials = await self._token_source.fetch(self._token_request)
        except TokenSourceError as error:
            await self._fail_start(str(error))
            raise
        except Exception as error:  # a custom source misbehaving
            await self._fail_start(f"The token source failed: {error}")
            raise TokenSourceError(f"The token source failed: {error}") from error
        try:
            # Never abandoned half way: cancelled (end() while connecting), it leaves the room first.
            await _room_connect.connect(
                room, credentials.server_url, credentials.participant_token, self._room_options()
            )
        except Exception as error:
            self._token_source.invalidate()
            words = f"Could not connect to {credentials.server_url}: {error}"
            await self._fail_start(words)
            raise ConnectionFailedError(
                words, remedy="Check the server URL and that the LiveKit server is running and reachable."
            ) from error
        self._connected_at = asyncio.get_running_loop().time()
        self._encryption.connected(room)
        self._dispatch(
            ev.RoomConnected(
                at=self._clock(),
                room_name=room.name,
                local_identity=room.local_participant.identity,
                server_url=credentials.server_url,
            )
        )
        source = self._source
        if source is not None:
            source.seed()
        self._rpc.attach(room, source.wait_known if source is not None else None)
        if self._mic is not None:
            await self._mic.attach(room)
        if self._speaker is not None:
            self._speaker.attach(room)
        for video in list(self._video.values()):
            await video.attach(room)

    def _room_options(self) -> rtc.RoomOptions:
        # The SDK refuses a stream larger than any lkstate would read before
        # reading it: a hostile 100 MB stream then costs nothing.
        limits = self._options.limits
        largest = max(limits.max_stream_bytes, limits.max_session_message_bytes, limits.max_session_response_bytes)
        return rtc.RoomOptions(
            data_stream=rtc.DataStreamOptions(max_payload_byte_length=largest),
            encryption=self._encryption.room_options(),
        )

    async def _fail_start(self, words: str) -> None:
        await self._teardown(dispatch_disconnect=False)
        self._dispatch(ev.ConnectFailed(at=self._clock(), error=words))

    async def _wait_for_agent(self) -> None:
        state = await self.wait_until(
            lambda s: s.agent.is_ready
            or s.agent.status is AgentStatus.FAILED
            or s.connection.status is ConnectionStatus.DISCONNECTED
        )
        if state.agent.is_ready:
            return
        if state.agent.status is AgentStatus.FAILED:
            raise AgentUnavailableError(
                " ".join(state.agent.failure_reasons) or "The agent is not available.",
                reasons=state.agent.failure_reasons,
                remedy="The session stays connected and picks up an agent that joins later; call end() to give up.",
            )
        raise ConnectionFailedError(
            state.connection.error or state.connection.disconnect_reason or "The connection was lost.",
            remedy="Call start() to try again.",
        )

    async def end(self) -> None:
        """Leave the room and release everything the session holds.

        Safe to call at any time, also while ``start()`` is still connecting
        (that ``start()`` is cancelled; a connect already sent to LiveKit is let
        finish so the room is left, not abandoned half joined) and more than
        once. Messages stay in the state until the next ``start()``.
        """
        self._ending = True
        start_task = self._start_task
        if start_task is not None and start_task is not asyncio.current_task() and not start_task.done():
            start_task.cancel()
            with contextlib.suppress(BaseException):
                await start_task
        await self._teardown()
        self._token_source.invalidate()

    async def aclose(self) -> None:
        """Alias of :meth:`end`, for ``contextlib.aclosing`` and friends."""
        await self.end()

    async def send_text(self, text: str) -> Message:
        """Send typed chat to the agent (topic ``lk.chat``).

        The message appears in the state at once with delivery ``sending``,
        then ``sent`` or ``failed``. Returns the message as it stands after
        delivery; raises :class:`~lkstate.SessionClosedError` when not connected
        and :class:`~lkstate.ConnectionFailedError` when sending failed.
        """
        if not text.strip():
            raise ValueError("Nothing to send: the text is empty.")
        room = self._room
        if room is None or self.state.connection.status is ConnectionStatus.DISCONNECTED:
            raise SessionClosedError(
                "The session is not connected, so the message was not sent.",
                remedy="Call start() first.",
            )
        message_id = f"chat/local/{uuid.uuid4().hex}"
        self._dispatch(
            ev.ChatSendRequested(
                at=self._clock(), message_id=message_id, text=text, sender=room.local_participant.identity
            )
        )
        try:
            await self._until_agent_can_see_us()
            await room.local_participant.send_text(text, topic=TOPIC_CHAT)
        except Exception as error:
            words = f"Could not send the message: {error}"
            self._dispatch(ev.ChatSendFailed(at=self._clock(), message_id=message_id, error=words))
            raise ConnectionFailedError(words, remedy="Check the connection and send it again.") from error
        self._dispatch(ev.ChatSendSucceeded(at=self._clock(), message_id=message_id))
        message = self.state.messages.get(message_id)
        assert message is not None
        return message

    # -- message history --------------------------------------------------------------------

    def message_history(self) -> MessageHistory:
        """The conversation so far as data (Swift's ``getMessageHistory``): every message, in order.

        Save ``message_history().to_json()`` wherever the app keeps things, and
        give it to a later session with ``Session(history=MessageHistory.from_json(text))``
        or :meth:`restore_message_history`.
        """
        return MessageHistory.of(self.state.messages)

    def restore_message_history(self, history: MessageHistory | str | bytes | Mapping[str, object]) -> None:
        """Show a saved conversation before everything else (Swift's ``restoreMessageHistory``).

        ``history`` is a :class:`~lkstate.MessageHistory`, or what its
        ``to_json()`` / ``to_dict()`` wrote. Each message appears with
        ``origin`` ``restored``, before the agent's history and the live
        messages, and replaces what an earlier restore put there; a new
        ``start()`` keeps them. A history that cannot be read raises
        :class:`~lkstate.errors.HistoryError` (what is wrong and where) and
        nothing is restored — never half of it.

        Only this app's view is restored: the agent is not told. The agent's
        remote-session protocol (livekit-agents 1.8) has requests to read the
        chat history but none to write it, and ``run_input`` would make the
        agent answer each message as a new turn. An agent that should know the
        earlier conversation needs it from your own channel: the dispatch
        metadata (``Session(agent_metadata=...)``) or an RPC method, read into
        its ``ChatContext`` by its own code. Call on the session's event loop
        (or before :meth:`start`).
        """
        if isinstance(history, str | bytes):
            history = MessageHistory.from_json(history)
        elif not isinstance(history, MessageHistory):
            history = MessageHistory.from_dict(dict(history))
        self._dispatch(ev.HistoryRestored(at=self._clock(), messages=history.messages))

    async def fetch_agent_history(self, *, timeout: float | None = None) -> int:
        """Ask the agent for its chat history and show what was said before the user joined.

        The session does this by itself once the agent is ready
        (``SessionOptions.fetch_agent_history``); call it again after a long
        outage, for instance. What no transcript brought — a greeting said to
        an empty room, an earlier visit — becomes messages with ``origin``
        ``agent_history``, before the live ones, each once however often this
        is called; the agent's conversation items also join
        ``state.remote.items``. Returns how many messages were added.

        Raises :class:`~lkstate.SessionClosedError` when there is no agent to
        ask, :class:`~lkstate.RequestTimeoutError` when it does not answer
        within ``timeout`` seconds (5 by default) and
        :class:`~lkstate.RemoteSessionError` when its answer is not a history
        (the state says so too, in ``problems``).
        """
        agent = self.state.agent.identity
        if self._room is None or agent is None:
            raise SessionClosedError(
                "There is no agent to ask for its history: the session is not connected to an agent.",
                remedy="Wait until state.agent.identity is set.",
            )
        before = self.state.agent_history
        request_id = uuid.uuid4().hex
        self._dispatch(ev.AgentHistoryRequested(at=self._clock(), agent=agent, request_id=request_id))
        await self._history_client.get_chat_history(timeout=timeout, request_id=request_id)
        after = self.state.agent_history
        unknown = after.unknown_items - before.unknown_items
        if unknown > 0:
            logger.info(
                "the agent's chat history held %d item(s) of a kind this lkstate cannot read; left out", unknown
            )
        return max(0, after.added - before.added)

    async def _fetch_agent_history_quietly(self) -> None:
        """The automatic fetch: whatever goes wrong is logged, never raised (an answer in error is in the state)."""
        try:
            added = await self.fetch_agent_history()
            logger.debug("merged the agent's chat history: %d earlier message(s)", added)
        except RequestTimeoutError as error:
            logger.info("the agent's history from before the join is not shown: %s", error)
        except (RemoteSessionError, SessionClosedError) as error:
            logger.debug("the agent's history could not be fetched: %s", error)
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - a bug of ours must not kill the session's loop quietly
            logger.exception("fetching the agent's chat history failed")

    # -- RPC ------------------------------------------------------------------------------

    def register_rpc_method(
        self,
        method: str,
        handler: RpcHandler,
        *,
        allowed_callers: Iterable[str] | None = None,
        keep_payloads: bool = False,
    ) -> None:
        """Answer RPC calls of ``method`` with ``handler`` — how an agent's tool asks the app something.

        The handler gets an :class:`~lkstate.agent_session.RpcInvocation` and
        returns (or awaits) the answer as a string; raising
        ``livekit.rtc.RpcError`` sends the caller that error, anything else an
        application error. Only the agent (participants of kind agent) may call
        by default; ``allowed_callers`` replaces that with exactly those
        identities. Refused calls, failures and timeouts appear in
        ``state.rpc.calls`` (and refusals in ``state.problems``) in words;
        payloads only with ``keep_payloads``. May be called before
        :meth:`start`; the method stays registered across reconnects and
        restarts until :meth:`unregister_rpc_method`. Registering a method again
        replaces its handler.
        """
        self._rpc.register(method, handler, allowed_callers=allowed_callers, keep_payloads=keep_payloads)

    def unregister_rpc_method(self, method: str) -> None:
        """Stop answering ``method`` (nothing happens if it is not registered)."""
        self._rpc.unregister(method)

    async def perform_rpc(
        self,
        method: str,
        payload: str = "",
        *,
        destination: str | None = None,
        timeout: float = 10.0,
        keep_payloads: bool = False,
    ) -> str:
        """Call ``method`` on the agent (or on ``destination``) and return its answer.

        ``timeout`` is how long to wait for the answer (seconds). The call is
        in ``state.rpc.calls`` while it runs and after, with its outcome;
        the payloads only with ``keep_payloads``. Raises
        :class:`~lkstate.errors.RpcCallError` (with the RPC ``code``) when the
        call fails or times out, :class:`~lkstate.SessionClosedError` when not
        connected and :class:`~lkstate.AgentUnavailableError` when no agent is
        there to call.
        """
        room = self._room
        if room is None or self.state.connection.status is ConnectionStatus.DISCONNECTED:
            raise SessionClosedError(
                f"The session is not connected, so {method!r} was not called.", remedy="Call start() first."
            )
        if destination is None:
            destination = self.state.agent.identity
            if destination is None:
                raise AgentUnavailableError(
                    f"There is no agent in the room to call {method!r} on.",
                    remedy="Wait until state.agent.is_connected, or name the destination.",
                )
        return await self._rpc.perform(
            room, destination=destination, method=method, payload=payload, timeout=timeout,
            keep_payloads=keep_payloads,
        )

    async def _until_agent_can_see_us(self) -> None:
        """Hold chat until the agent can have seen the user join (bounded).

        The server announces a participant that publishes no track in batches
        about 3 s apart, and the agent ignores chat from a participant it has
        not seen join. So right after connecting, a text-only user's message
        would be dropped by the agent. It is held (shown as ``sending``) until
        the agent publishes its audio (which it does once it has linked to the
        user), the user publishes a track (announced at once), or the grace
        period since connecting has passed.
        """
        connected_at = self._connected_at
        if connected_at is None:
            return
        remaining = _CHAT_ANNOUNCE_GRACE - (asyncio.get_running_loop().time() - connected_at)
        if remaining <= 0:
            return

        def seen(state: SessionState) -> bool:
            primary = state.agent.agents[0] if state.agent.agents else None
            agent_linked = primary is not None and primary.is_agent and any(t.kind == "audio" for t in primary.tracks)
            return agent_linked or state.local_media.microphone.published

        with contextlib.suppress(asyncio.TimeoutError):
            await self.wait_until(seen, timeout=remaining)

    async def prepare_connection(self) -> None:
        """Fetch the credentials now, so :meth:`start` does not wait for them (JS ``prepareConnection``).

        Call it when a connect is likely soon — the page or window opened, the
        pointer is over the Connect button: the token round trip (often the
        slowest part of a start against a real backend) is then over before
        the user asks. The caching token sources
        (:class:`~lkstate.EndpointTokenSource`, :class:`~lkstate.DevelopmentTokenSource`)
        keep what this fetches and hand it to :meth:`start` while it is valid;
        a source that does not cache gains nothing and loses nothing. The state
        does not change. A failing source raises
        :class:`~lkstate.TokenSourceError` here, with its words, and
        :meth:`start` will try again (and show the failure in the state). The
        livekit Python SDK has no equivalent of the browser's
        ``Room.prepareConnection`` (which also warms DNS and TLS), so only the
        token is prepared.
        """
        try:
            await self._token_source.fetch(self._token_request)
        except TokenSourceError:
            raise
        except Exception as error:  # a custom source misbehaving
            raise TokenSourceError(f"The token source failed: {error}") from error
        logger.debug("credentials prepared for room %r", self._token_request.room_name)

    async def set_encryption_enabled(self, enabled: bool) -> None:
        """Turn end-to-end encryption off or back on while connected (Swift's ``setEncryptionEnabled``).

        The key stays; only whether audio and video frames are encrypted
        changes, for what the session publishes and receives. Text and byte
        streams stay encrypted either way (livekit 1.1.21 does not let them
        out in the clear; measured over the wire), which
        ``state.connection.encryption.data`` says. Useful to let a peer
        without the key hear the session for a moment — a support call joined
        by a person outside the key exchange, say — and to close it again.
        ``state.connection.encryption.enabled`` follows (through an event, so
        a recording replays it). Called before :meth:`start` the choice is
        applied when the room connects. Raises :class:`~lkstate.LkstateError`
        when the session was built without ``encryption=``: there is no key
        to turn on.
        """
        self._encryption.set_enabled(enabled)

    async def set_microphone_enabled(self, enabled: bool) -> None:
        """Turn the microphone on or off (muting the published track).

        The state's ``local_media.microphone`` shows the result, including why
        it cannot work (no device, no permission). The choice is kept: called
        before :meth:`start` (``False`` to start muted, for push-to-talk) or
        between sessions, it applies from the next start. Raises
        :class:`~lkstate.LkstateError` when the session has no ``audio_input``.
        """
        if self._audio_input is None:
            raise LkstateError(
                "This session has no microphone input.",
                remedy='Pass audio_input="default" (or a WavFileInput / GeneratorInput) to Session.',
            )
        self._microphone_wanted = enabled
        mic = self._mic
        if mic is not None:
            await mic.set_enabled(enabled)
        else:
            self._show_choice(TrackSource.MICROPHONE, enabled)

    async def set_speaker_enabled(self, enabled: bool) -> None:
        """Play the agent's voice, or mute it (silence is played in its place).

        The state's ``local_media.speaker`` shows the result, including why
        nothing can be played (no speaker). Raises
        :class:`~lkstate.SessionClosedError` when the session is not started.
        """
        speaker = self._speaker
        if speaker is None:
            raise SessionClosedError(
                "The speaker is not available: the session is not started or has no audio output.",
                remedy="Start the session (with an audio_output) first.",
            )
        speaker.set_enabled(enabled)

    async def set_audio_input(self, audio_input: AudioInput | int | str | None) -> None:
        """Choose what feeds the microphone, also while connected (a device picker's choice).

        ``audio_input`` is an :class:`~lkstate.AudioInput`, a system
        microphone by index or by part of its name as
        :func:`lkstate.media.microphones` lists them (``"default"``: the
        system default), or ``None`` for no microphone. A device is opened
        in the format the microphone already has (48 kHz mono before the
        first start), and the session closes it; an input you pass is only
        no longer read when replaced.

        While connected, the new input feeds the *same* published track: its
        sid and the agent's subscription stay, and the agent hears the new
        input from the next frame — what LiveKit's Swift ``select(audioDevice:)``
        and JS ``switchActiveDevice`` do. A pre-connect recording still waiting
        goes on with it, and the mute choice is kept.
        ``state.local_media.microphone.device`` names it. Called before
        :meth:`start` or between sessions, it is what the next start uses.

        What a person can get wrong raises, and the current input keeps
        working: :class:`~lkstate.AudioInputError` when there is no PortAudio
        or no such device, or when an input's sample rate or channel count
        differs from the track's (a published track's format cannot change);
        each says what to do instead.
        """
        mic = self._mic
        chosen: AudioInput | MicrophoneDevice | None
        given: AudioInput | None
        opened: AudioInput | None = None
        if isinstance(audio_input, int | str):
            rate, channels = mic.format if mic is not None and mic.format is not None else (48000, 1)
            device = None if audio_input == "default" else audio_input
            chosen = MicrophoneDevice(device=device, sample_rate=rate, num_channels=channels)
            given = opened = chosen.open()  # raises AudioInputError, in the microphone's words; nothing changed yet
        else:
            chosen = given = audio_input
        try:
            if mic is not None:
                await mic.set_input(given, owned=opened is not None)
            elif given is not None and self._room is not None and not self._tearing_down:
                await self._add_microphone(given, owned=opened is not None)
            elif opened is not None:
                await opened.aclose()  # only checked: the next start opens the choice anew
        except BaseException:
            if opened is not None:
                await opened.aclose()
            raise
        self._audio_input = chosen

    async def _add_microphone(self, audio_input: AudioInput, *, owned: bool) -> None:
        """A session started without a microphone gets one: captured at once, published once connected."""
        loop = self._loop
        assert loop is not None
        mic = MicrophoneController(
            audio_input=audio_input,
            emit=self._dispatch,
            clock=self._clock,
            preconnect=False,  # the agent may be listening already: nothing to hand over
            limits=self._options.preconnect_limits,
            on_level=self._meter.microphone,
        )
        self._mic = mic
        if not self._microphone_wanted:
            await mic.set_enabled(False)
        if owned:
            await mic.set_input(audio_input, owned=True)  # before capture: only marks it the controller's to close
        await mic.start_capture()
        room = self._room
        if room is not None and self._connected_at is not None:
            await mic.attach(room)  # else the connect under way attaches it
            mic.on_state(self.state)

    async def set_audio_output(self, audio_output: AudioOutput | int | str | None) -> None:
        """Choose where the agent's voice plays, also while connected (a device picker's choice).

        ``audio_output`` is an :class:`~lkstate.AudioOutput`, a system
        speaker by index or by part of its name as :func:`lkstate.media.speakers`
        lists them (``"default"``: the system default), or ``None`` for no
        playback. While connected the agent's voice goes on from the next
        frame into the new output, without a new subscription, and the old
        output is closed (the session opened it, so it closes it, as at
        :meth:`end`); ``state.local_media.speaker.device`` names the new one
        and the mute choice is kept. Called before :meth:`start` or between
        sessions, it is what the next start uses.

        What a person can get wrong raises, and the current output keeps
        playing: :class:`~lkstate.AudioOutputError` when there is no PortAudio,
        no such device, or an output that cannot be opened in the playback
        format; each says what to do instead.
        """
        if isinstance(audio_output, int | str):
            device = None if audio_output == "default" else audio_output
            output: AudioOutput | None = SpeakerOutput(device=device)  # raises AudioOutputError; nothing changed yet
        else:
            output = audio_output
        speaker = self._speaker
        if speaker is not None:
            await speaker.set_output(output)
        elif output is not None and self._room is not None and not self._tearing_down:
            await self._add_speaker(output)
        self._audio_output = output

    async def _add_speaker(self, output: AudioOutput) -> None:
        """A session started without playback gets it: the output opened now, the agent followed at once."""
        speaker = SpeakerController(
            audio_output=output,
            emit=self._dispatch,
            clock=self._clock,
            on_level=self._meter.agent,
            frame_ms=self._options.agent_audio_frame_ms,
        )
        self._speaker = speaker  # before the await: a teardown meanwhile closes it
        try:
            await speaker.start(strict=True)  # a command raises what start() would only report
        except BaseException:
            if self._speaker is speaker:
                self._speaker = None
            await speaker.aclose()
            raise
        room = self._room
        if room is not None:
            speaker.on_state(self.state)
            speaker.attach(room)

    async def set_camera_enabled(self, enabled: bool) -> None:
        """Turn the camera on (publish the ``video_input``) or off (unpublish it, release the camera).

        Returns when it is done; the state's ``local_media.camera`` shows the
        result, including why it cannot work (no camera, OpenCV missing, the
        input ended). The choice is kept: called before :meth:`start`, or
        between sessions, it applies from the next start. Raises
        :class:`~lkstate.LkstateError` when the session has no ``video_input``.
        """
        await self._set_video(TrackSource.CAMERA, enabled)

    async def set_screen_share_enabled(self, enabled: bool) -> None:
        """Share the ``screen_share_input`` (a track with the screen-share source), or stop sharing.

        Like :meth:`set_camera_enabled`, for ``local_media.screen_share``.
        """
        await self._set_video(TrackSource.SCREEN_SHARE, enabled)

    async def _set_video(self, kind: TrackSource, enabled: bool) -> None:
        words = "camera" if kind is TrackSource.CAMERA else "screen share"
        if kind not in self._video_inputs:
            argument = "video_input" if kind is TrackSource.CAMERA else "screen_share_input"
            raise LkstateError(
                f"This session has no {words} input.",
                remedy=f"Pass {argument}=... (a VideoInput such as PatternVideoInput or CameraInput) to Session.",
            )
        self._video_wanted[kind] = enabled
        video = self._video.get(kind)
        if video is not None:
            await video.set_enabled(enabled)
            self._video_wanted[kind] = video.enabled  # False again when it could not be turned on
        else:
            self._show_choice(kind, enabled)

    def _show_choice(self, kind: TrackSource, enabled: bool) -> None:
        """Between sessions the state shows the user's choice at once; the next start acts on it."""
        media = self.state.local_media
        current = {
            TrackSource.MICROPHONE: media.microphone,
            TrackSource.CAMERA: media.camera,
            TrackSource.SCREEN_SHARE: media.screen_share,
        }[kind]
        wanted = attrs.evolve(current, enabled=enabled, muted=not enabled if kind is TrackSource.MICROPHONE else current.muted)
        self._dispatch(ev.LocalTrackChanged(at=self._clock(), source=kind, track=wanted))

    def dismiss_problems(self) -> None:
        """Clear the problems (and the last connection error) shown in the state."""
        self._dispatch(ev.ProblemsDismissed(at=self._clock()))

    def report_problem(self, source: str, message: str) -> None:
        """Show a problem in ``state.problems``: something your code refused or lost, in words.

        For the media an app feeds the session from outside — a browser's
        audio channel that sent frames of the wrong size, a client that
        stopped reading the agent's voice — whose trouble belongs next to the
        room's own problems rather than in a log nobody reads. The session
        carries on. Call it on the session's event loop.
        """
        if not source or not message:
            raise ValueError("A problem needs a source and a message, in words.")
        self._dispatch(ev.ProblemObserved(at=self._clock(), source=source, message=message))

    async def __aenter__(self) -> Session:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.end()

    # -- internals ----------------------------------------------------------------

    def _dispatch(self, event: ev.Event) -> None:
        self._store.dispatch(event)

    def _on_state(self, state: SessionState) -> None:
        """React to the state: arm or disarm the agent timer, tidy up after a lost connection."""
        loop = self._loop
        if loop is None:
            return
        if self._mic is not None:
            self._mic.on_state(state)  # it also reads the time: a snapshot is its moment to re-evaluate
        previous, self._reacted_to = self._reacted_to, state
        if previous is not None and state.agent is previous.agent and state.connection is previous.connection:
            # Everything below (the agent's voice, the history fetch, the agent timer,
            # the lost connection) reads only these two parts of the state, and the
            # reducer keeps a part that did not change the same object. Nearly every
            # snapshot is a transcript delta or a message, which touches neither: they
            # stop here, on the path from the wire to the app, where every call counts.
            return
        if self._speaker is not None:
            self._speaker.on_state(state)
        self._maybe_fetch_agent_history(state, loop)
        timeout = self._options.agent_connect_timeout
        waiting = _is_waiting_for_agent(state)
        if waiting and self._agent_timer is None and timeout is not None:
            self._agent_timer = loop.call_later(timeout, self._agent_timer_fired, timeout)
        elif not waiting and self._agent_timer is not None:
            self._agent_timer.cancel()
            self._agent_timer = None
        if (
            state.connection.status is ConnectionStatus.DISCONNECTED
            and self._room is not None
            and not self._ending
            and self._teardown_task is None
        ):
            # The connection was lost, not ended: release the room, and forget the
            # token (agents do not rejoin an old room; the next start needs a new one).
            self._token_source.invalidate()
            self._teardown_task = loop.create_task(self._teardown(), name="lkstate-teardown")

    def _maybe_fetch_agent_history(self, state: SessionState, loop: asyncio.AbstractEventLoop) -> None:
        """Once per agent and connection, when it is ready: ask for what it said before we came."""
        agent = state.agent.identity
        if not self._options.fetch_agent_history or agent is None or not state.agent.is_ready or self._room is None:
            return
        key = (state.connection.attempt, agent)
        if key == self._history_asked:
            return
        self._history_asked = key
        previous = self._history_task
        if previous is not None and not previous.done():
            previous.cancel()  # the agent it was asking is gone or replaced
        self._history_task = loop.create_task(self._fetch_agent_history_quietly(), name="lkstate-agent-history")

    def _agent_timer_fired(self, timeout: float) -> None:
        self._agent_timer = None
        self._dispatch(ev.AgentWaitTimedOut(at=self._clock(), timeout=timeout))

    async def _send_session_message(self, payload: bytes) -> None:
        room, agent = self._room, self.state.agent.identity
        if room is None or agent is None:
            raise SessionClosedError(
                "There is no agent to ask: the session is not connected to an agent.",
                remedy="Wait until state.agent.identity is set.",
            )
        await room.local_participant.send_bytes(
            payload, name=f"AS_{uuid.uuid4().hex[:12]}", topic=TOPIC_AGENT_SESSION, destination_identities=[agent]
        )

    async def _teardown(self, *, dispatch_disconnect: bool = True) -> None:
        self._tearing_down = True
        try:
            await self._release(dispatch_disconnect=dispatch_disconnect)
        finally:
            self._tearing_down = False

    async def _release(self, *, dispatch_disconnect: bool) -> None:
        if self._agent_timer is not None:
            self._agent_timer.cancel()
            self._agent_timer = None
        room, source = self._room, self._source
        mic, self._mic = self._mic, None
        speaker, self._speaker = self._speaker, None
        videos, self._video = list(self._video.values()), {}
        history_task, self._history_task = self._history_task, None
        if history_task is not None and history_task is not asyncio.current_task():
            history_task.cancel()
            await asyncio.wait({history_task})
        await self._history_client.aclose()
        await self._remote.aclose()  # waiting requests fail now rather than time out later
        self._rpc.detach()
        if mic is not None:
            await mic.detach(
                expected=self._ending, reason=None if dispatch_disconnect else "The session could not connect."
            )
        if speaker is not None:
            await speaker.aclose()  # its audio stream goes before the room does
        self._meter.stop()
        self._encryption.detach()
        for video in videos:
            await video.aclose()  # unpublished, and a camera lkstate opened is released
        self._room, self._source = None, None
        try:
            if room is not None:
                with contextlib.suppress(Exception):
                    await room.disconnect()
            if source is not None:
                await source.aclose()
            if mic is not None:
                await mic.aclose()
        finally:
            if (
                dispatch_disconnect
                and self.state.connection.status is not ConnectionStatus.DISCONNECTED
            ):
                self._dispatch(
                    ev.RoomDisconnected(
                        at=self._clock(),
                        reason="You ended the session." if self._ending else "The connection was lost.",
                        expected=self._ending,
                    )
                )
            if self._teardown_task is asyncio.current_task():
                self._teardown_task = None
