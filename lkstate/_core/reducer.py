"""The reducer: ``reduce(state, event) -> state``, pure and deterministic.

Everything that changes a :class:`SessionState` happens here, and nothing here
touches the outside world: no clock, no I/O, no randomness, no logging. Given
the same starting state and the same events, it produces equal snapshots every
time, which is what makes recording and replay exact and lets every transition
be tested without a network.

Two rules keep it cheap:

- An event that changes nothing returns the *same* object, so the store can
  skip delivery with an identity check.
- An update rebuilds only the path from the root to what changed; every other
  part of the snapshot (and every untouched message) is shared with the
  previous one.

The agent's status is derived, not stored independently: after any event that
can move it (presence, attributes, tracks, connection, pre-connect, timeouts),
:func:`_derive_agent` recomputes the agent view from the facts in the state.
Failures are the one latch: they are set by a timeout or an unexpected
departure and cleared when an agent shows up or becomes ready.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import events as ev
from .copiers import changer_for as _changer_for
from .copiers import copier_for as _copier_for
from .copiers import evolve as _evolve
from .copiers import maker_for as _maker_for
from .history import agent_history_message, pre_join_items
from .messages import (
    AgentExpression,
    DeliveryStatus,
    Message,
    MessageKind,
    MessageOrigin,
    Messages,
    Role,
    expression_of,
)
from .options import Limits
from .remote_state import (
    ChatHistoryAnswer,
    ConversationItem,
    MessageItem,
    RemoteSessionState,
    apply_remote_payload,
    chat_history_answer,
    merge_conversation_items,
)
from .rpc import RpcCall, RpcStatus, rpc_finished, rpc_methods, rpc_started
from .state import (
    AGENT_WIRE_STATES,
    AgentHistoryState,
    READY_WIRE_STATES,
    AgentFailure,
    AgentState,
    AgentStatus,
    ConnectionState,
    ConnectionStatus,
    LocalMedia,
    PreConnectStatus,
    Problem,
    RemoteParticipant,
    RemoteTrack,
    SessionState,
    TrackSource,
    attribute,
)

__all__ = ["reduce", "transcript_message_id", "chat_message_id"]

_DEFAULT_LIMITS = Limits()
_MAX_CUT_TRANSCRIPTS = 8
"""Broken agent transcripts remembered for completion (the newest are kept)."""


def transcript_message_id(sender: str, segment_id: str) -> str:
    """The id of the message rendering a transcription segment.

    Segments are keyed by sender *and* segment id: two participants may pick
    the same segment id, and a user's interim and final results arrive as
    separate streams of one segment. The sender's length is part of the id so
    no crafted identity can collide with another sender's segment.
    """
    return f"tr/{len(sender)}/{sender}/{segment_id}"


def chat_message_id(sender: str, stream_id: str) -> str:
    """The id of a chat message received from another participant."""
    return f"chat/{len(sender)}/{sender}/{stream_id}"


def reduce(state: SessionState, event: ev.Event, limits: Limits = _DEFAULT_LIMITS) -> SessionState:
    """Fold one event into the state; return the same object if nothing changed."""
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise TypeError(f"not an lkstate event: {event!r}")
    return handler(state, event, limits)


# -- helpers --------------------------------------------------------------------


# The transcript path runs for every delta: it calls these directly.
_copy_state: Callable[..., SessionState] = _copier_for(SessionState)
_copy_message: Callable[..., Message] = _copier_for(Message)
_make_message: Callable[..., Message] = _maker_for(Message)
# A delta that only adds words (nearly all of them) changes just these fields.
_extend_message: Callable[[Message, str, bool, float, str | None, DeliveryStatus | None], Message] = _changer_for(
    Message, "text", "final", "updated", "error", "delivery"
)
_with_messages: Callable[[SessionState, Messages, float], SessionState] = _changer_for(
    SessionState, "messages", "updated_at"
)
# Attribute and track events run _derive_agent: it builds the new AgentState and copies the state once.
_make_agent: Callable[..., AgentState] = _maker_for(AgentState)


def _with_problem(state: SessionState, at: float, source: str, message: str, limits: Limits) -> SessionState:
    problems = state.problems
    if problems and problems[-1].source == source and problems[-1].message == message:
        # The same complaint again (a flood): keep one entry, just newer.
        problems = (*problems[:-1], Problem(at=at, source=source, message=message))
    else:
        problems = (*problems, Problem(at=at, source=source, message=message))
        if len(problems) > limits.max_problems:
            problems = problems[-limits.max_problems :]
    return _evolve(state, problems=problems, updated_at=at)


def _find_participant(state: SessionState, identity: str) -> RemoteParticipant | None:
    for participant in state.participants:
        if participant.identity == identity:
            return participant
    return None


def _replace_participant(
    state: SessionState, identity: str, update: Callable[[RemoteParticipant], RemoteParticipant | None]
) -> tuple[RemoteParticipant, ...]:
    result: list[RemoteParticipant] = []
    for participant in state.participants:
        if participant.identity == identity:
            replacement = update(participant)
            if replacement is not None:
                result.append(replacement)
        else:
            result.append(participant)
    return tuple(result)


def _role_of(state: SessionState, sender: str) -> Role | None:
    if sender == state.connection.local_identity:
        return Role.USER
    participant = _find_participant(state, sender)
    if participant is None:
        return None
    return Role.AGENT if participant.is_agent_kind else Role.PARTICIPANT


# -- the agent view -------------------------------------------------------------


def _primary_agent(agents: list[RemoteParticipant], requested: str | None) -> RemoteParticipant | None:
    """The agent the user talks to: the requested one if present, else the first to arrive."""
    if not agents:
        return None
    if requested:
        for agent in agents:
            if attribute(agent.attributes, "lk.agent.name") == requested:
                return agent
    return agents[0]


_STATUS_OF_WIRE: dict[str, AgentStatus] = {status.value: status for status in AgentStatus}


def _derive_agent(state: SessionState) -> SessionState:
    """Recompute ``state.agent`` from the facts in the state.

    Runs after every presence, attribute and track event, so it makes one pass
    over the participants (reading each one's ``lk.publish_on_behalf`` once)
    and builds a new :class:`AgentState` only when something in it changed.
    """
    previous = state.agent
    participants = state.participants
    # Agent-kind participants in arrival order, each with whom it publishes for.
    agent_kind = [(p, attribute(p.attributes, "lk.publish_on_behalf")) for p in participants if p.kind == "agent"]
    proper = [p for p, behalf in agent_kind if not behalf]
    primary = _primary_agent(proper, state.requested_agent)
    avatar: RemoteParticipant | None = None
    if primary is not None:
        for participant, behalf in agent_kind:
            if behalf and behalf == primary.identity:
                avatar = participant
                break

    ordered: list[RemoteParticipant] = []
    if primary is not None:
        ordered.append(primary)
    if avatar is not None:
        ordered.append(avatar)
    ordered.extend(p for p, _ in agent_kind if p is not primary and p is not avatar)
    agents = tuple(ordered)

    connection = state.connection.status
    recording = state.preconnect.status is PreConnectStatus.RECORDING
    failure = previous.failure
    reasons = previous.failure_reasons
    unknown: str | None = None

    if connection is ConnectionStatus.DISCONNECTED:
        status = AgentStatus.DISCONNECTED
        failure, reasons = None, ()
    elif failure is not None:
        status = AgentStatus.FAILED
    elif primary is None:
        status = AgentStatus.PRE_CONNECT_BUFFERING if recording else AgentStatus.CONNECTING
    else:
        raw = attribute(primary.attributes, "lk.agent.state")
        if raw in READY_WIRE_STATES:
            status = _STATUS_OF_WIRE[raw]
        elif recording:
            status = AgentStatus.PRE_CONNECT_BUFFERING
        elif raw in AGENT_WIRE_STATES:
            status = _STATUS_OF_WIRE[raw]
        elif raw is None:
            status = AgentStatus.INITIALIZING
        else:
            unknown = raw
            keep = previous.status if previous.identity == primary.identity else AgentStatus.INITIALIZING
            status = keep if keep.value in AGENT_WIRE_STATES else AgentStatus.INITIALIZING

    if primary is not None:
        identity: str | None = primary.identity
        attributes = primary.attributes
        audio = primary.has_track("audio") or (avatar is not None and avatar.has_track("audio"))
        video = primary.has_track("video") or (avatar is not None and avatar.has_track("video"))
        name = attribute(attributes, "lk.agent.name") or primary.name or None
        avatar_identity = avatar.identity if avatar is not None else None
    else:
        identity = name = avatar_identity = None
        attributes = ()
        audio = video = False

    if (
        status is previous.status
        and failure is previous.failure
        and identity == previous.identity
        and attributes == previous.attributes
        and audio is previous.audio_available
        and video is previous.video_available
        and name == previous.name
        and avatar_identity == previous.avatar_identity
        and unknown == previous.unknown_state
        and reasons == previous.failure_reasons
        and agents == previous.agents
    ):
        return state
    agent = _make_agent(
        status=status,
        failure=failure,
        failure_reasons=reasons,
        identity=identity,
        name=name,
        attributes=attributes,
        audio_available=audio,
        video_available=video,
        avatar_identity=avatar_identity,
        unknown_state=unknown,
        agents=agents,
        expression=previous.expression if identity == previous.identity else None,
    )
    return _copy_state(state, agent=agent)


def _fail_agent(state: SessionState, failure: AgentFailure, reason: str) -> SessionState:
    agent = _evolve(state.agent, failure=failure, failure_reasons=(reason,))
    return _derive_agent(_evolve(state, agent=agent))


def _clear_failure(state: SessionState) -> SessionState:
    if state.agent.failure is None:
        return state
    return _evolve(state, agent=_evolve(state.agent, failure=None, failure_reasons=()))


def _interrupt_partial_messages(messages: Messages, sender: str, reason: str) -> Messages:
    """Mark the sender's unfinished transcripts as interrupted: kept, never dropped."""
    # Unfinished transcripts are the newest ones; stop at the first final message of the sender.
    for position in range(len(messages) - 1, -1, -1):
        message = messages[position]
        if message.sender != sender or message.kind is not MessageKind.TRANSCRIPT:
            continue
        if message.final:
            break
        if not message.interrupted:
            messages = messages.replaced(position, _evolve(message, interrupted=True, error=reason))
    return messages


# -- connection -----------------------------------------------------------------


def _on_start(state: SessionState, e: ev.StartRequested, limits: Limits) -> SessionState:
    del limits
    connection = ConnectionState(
        status=ConnectionStatus.CONNECTING,
        attempt=state.connection.attempt + 1,
        since=e.at,
        server_url=state.connection.server_url,
    )
    # Restored messages are the conversation the app chose to begin with: a new
    # conversation keeps them, and drops what this one heard.
    messages = state.messages if e.keep_history else _restored_only(state.messages)
    # The agent's reports (its state, the user's state) belong to the old room;
    # its conversation items stay only when the history does.
    remote = (
        _evolve(state.remote, agent_state=None, user_state=None) if e.keep_history else RemoteSessionState()
    )
    agent_history = (
        _evolve(state.agent_history, request_id=None, agent=None, since=e.at)
        if e.keep_history
        else AgentHistoryState(since=e.at)
    )
    new = _evolve(
        state,
        connection=connection,
        participants=(),
        requested_agent=e.requested_agent,
        messages=messages,
        remote=remote,
        agent=AgentState(),
        cut_transcripts=(),
        agent_history=agent_history,
        updated_at=e.at,
    )
    return _derive_agent(new)


def _restored_count(messages: Messages) -> int:
    """How many messages at the front were restored (they always stand first)."""
    count = 0
    for message in messages:
        if message.origin is not MessageOrigin.RESTORED:
            break
        count += 1
    return count


def _restored_only(messages: Messages) -> Messages:
    count = _restored_count(messages)
    if count == len(messages):
        return messages
    return Messages(messages[:count]) if count else Messages()


def _on_connect_failed(state: SessionState, e: ev.ConnectFailed, limits: Limits) -> SessionState:
    connection = _evolve(state.connection, status=ConnectionStatus.DISCONNECTED, error=e.error, since=e.at)
    new = _evolve(state, connection=connection, participants=(), updated_at=e.at)
    new = _with_problem(new, e.at, "connection", e.error, limits)
    return _derive_agent(new)


def _on_connected(state: SessionState, e: ev.RoomConnected, limits: Limits) -> SessionState:
    del limits
    connection = _evolve(
        state.connection,
        status=ConnectionStatus.CONNECTED,
        room_name=e.room_name,
        local_identity=e.local_identity,
        server_url=e.server_url,
        error=None,
        disconnect_reason=None,
        since=e.at,
    )
    return _derive_agent(_evolve(state, connection=connection, updated_at=e.at))


def _on_reconnecting(state: SessionState, e: ev.RoomReconnecting, limits: Limits) -> SessionState:
    del limits
    if state.connection.status is ConnectionStatus.RECONNECTING:
        return state
    connection = _evolve(state.connection, status=ConnectionStatus.RECONNECTING, since=e.at)
    return _derive_agent(_evolve(state, connection=connection, updated_at=e.at))


def _on_reconnected(state: SessionState, e: ev.RoomReconnected, limits: Limits) -> SessionState:
    del limits
    if state.connection.status is ConnectionStatus.CONNECTED:
        return state
    connection = _evolve(state.connection, status=ConnectionStatus.CONNECTED, since=e.at)
    return _derive_agent(_evolve(state, connection=connection, updated_at=e.at))


def _on_disconnected(state: SessionState, e: ev.RoomDisconnected, limits: Limits) -> SessionState:
    connection = _evolve(
        state.connection,
        status=ConnectionStatus.DISCONNECTED,
        disconnect_reason=e.reason,
        error=None if e.expected else e.reason,
        since=e.at,
    )
    messages = state.messages
    if not e.expected:
        for participant in state.participants:
            if participant.is_agent_kind:
                messages = _interrupt_partial_messages(messages, participant.identity, "The connection was lost.")
    new = _evolve(state, connection=connection, participants=(), messages=messages, updated_at=e.at)
    if not e.expected:
        new = _with_problem(new, e.at, "connection", e.reason, limits)
    return _derive_agent(new)


# -- participants ----------------------------------------------------------------


def _on_participant_joined(state: SessionState, e: ev.ParticipantJoined, limits: Limits) -> SessionState:
    del limits
    ready = attribute(e.attributes, "lk.agent.state") in READY_WIRE_STATES
    existing = _find_participant(state, e.identity)
    if existing is not None:
        updated = _evolve(
            existing, name=e.name, kind=e.kind, attributes=e.attributes, ready_once=existing.ready_once or ready
        )
        if updated == existing:
            return state
        participants = _replace_participant(state, e.identity, lambda _: updated)
        new = _evolve(state, participants=participants, updated_at=e.at)
    else:
        seq = state.participant_seq + 1
        joined = RemoteParticipant(
            identity=e.identity,
            name=e.name,
            kind=e.kind,
            attributes=e.attributes,
            joined_seq=seq,
            joined_at=e.at,
            ready_once=ready,
        )
        new = _evolve(state, participants=(*state.participants, joined), participant_seq=seq, updated_at=e.at)
        if joined.is_agent and state.agent.failure in (AgentFailure.DID_NOT_JOIN, AgentFailure.LEFT):
            new = _clear_failure(new)
    if ready:
        new = _clear_failure(new)
    return _derive_agent(new)


def _on_participant_left(state: SessionState, e: ev.ParticipantLeft, limits: Limits) -> SessionState:
    del limits
    leaving = _find_participant(state, e.identity)
    if leaving is None:
        return state
    was_primary = state.agent.identity == e.identity
    new = _evolve(
        state,
        participants=tuple(p for p in state.participants if p.identity != e.identity),
        updated_at=e.at,
    )
    if leaving.is_agent_kind:
        reason = "The agent left before finishing this message."
        new = _evolve(new, messages=_interrupt_partial_messages(new.messages, e.identity, reason))
    if new.cut_transcripts:
        # Gone for good: its broken transcripts stay as they are.
        prefix = transcript_message_id(e.identity, "")
        kept = tuple(i for i in new.cut_transcripts if not i.startswith(prefix))
        if kept != new.cut_transcripts:
            new = _evolve(new, cut_transcripts=kept)
    if was_primary and (new.remote.agent_state is not None or new.remote.user_state is not None):
        new = _evolve(new, remote=_evolve(new.remote, agent_state=None, user_state=None))
    unexpected = state.connection.status is ConnectionStatus.CONNECTED
    if was_primary and unexpected and not any(p.is_agent for p in new.participants):
        return _fail_agent(new, AgentFailure.LEFT, "The agent left the room unexpectedly.")
    return _derive_agent(new)


def _on_attributes_changed(
    state: SessionState, e: ev.ParticipantAttributesChanged, limits: Limits
) -> SessionState:
    del limits
    existing = _find_participant(state, e.identity)
    if existing is None or existing.attributes == e.attributes:
        return state
    ready = attribute(e.attributes, "lk.agent.state") in READY_WIRE_STATES
    updated = _evolve(existing, attributes=e.attributes, ready_once=existing.ready_once or ready)
    new = _copy_state(state, participants=_replace_participant(state, e.identity, lambda _: updated), updated_at=e.at)
    if ready and existing.is_agent:
        new = _clear_failure(new)
    return _derive_agent(new)


def _on_track_updated(state: SessionState, e: ev.RemoteTrackUpdated, limits: Limits) -> SessionState:
    del limits
    existing = _find_participant(state, e.identity)
    if existing is None:
        return state
    track = RemoteTrack(sid=e.sid, kind=e.kind, source=e.source, subscribed=e.subscribed, muted=e.muted)
    tracks = tuple(t for t in existing.tracks if t.sid != e.sid) + (track,)
    if tracks == existing.tracks:
        return state
    updated = _evolve(existing, tracks=tracks)
    new = _evolve(state, participants=_replace_participant(state, e.identity, lambda _: updated), updated_at=e.at)
    return _derive_agent(new)


def _on_track_removed(state: SessionState, e: ev.RemoteTrackRemoved, limits: Limits) -> SessionState:
    del limits
    existing = _find_participant(state, e.identity)
    if existing is None or not any(t.sid == e.sid for t in existing.tracks):
        return state
    updated = _evolve(existing, tracks=tuple(t for t in existing.tracks if t.sid != e.sid))
    new = _evolve(state, participants=_replace_participant(state, e.identity, lambda _: updated), updated_at=e.at)
    return _derive_agent(new)


def _on_agent_wait_timed_out(state: SessionState, e: ev.AgentWaitTimedOut, limits: Limits) -> SessionState:
    del limits
    agent = state.agent
    if state.connection.status is ConnectionStatus.DISCONNECTED or agent.failure is not None or agent.is_ready:
        return state
    primary = agent.agents[0] if agent.agents and agent.agents[0].is_agent else None
    if primary is not None and primary.ready_once:
        return state  # it was ready before; idle now is not a failure to connect
    seconds = f"{e.timeout:g}"
    new = _evolve(state, updated_at=e.at)
    if primary is None:
        return _fail_agent(
            new,
            AgentFailure.DID_NOT_JOIN,
            f"No agent joined within {seconds} s. Check that an agent worker is running and dispatched to this room.",
        )
    return _fail_agent(
        new,
        AgentFailure.NEVER_READY,
        f"The agent joined but did not become ready within {seconds} s.",
    )


# -- messages -------------------------------------------------------------------


def _cap(text: str, limits: Limits) -> tuple[str, str | None]:
    if len(text) <= limits.max_message_chars:
        return text, None
    return text[: limits.max_message_chars], f"Cut at {limits.max_message_chars} characters."


def _expression_for(role: Role, attributes: tuple[tuple[str, str], ...]) -> AgentExpression | None:
    """Only the agent's messages carry an expression: a participant cannot put a face on the agent."""
    return expression_of(attributes) if role is Role.AGENT and attributes else None


def _with_stream_attributes(message: Message, attributes: tuple[tuple[str, str], ...]) -> Message:
    if not attributes or attributes == message.attributes:
        return message
    return _copy_message(message, attributes=attributes, expression=_expression_for(message.role, attributes))


def _show_agent_expression(state: SessionState, message: Message, position: int) -> SessionState:
    """``state.agent.expression`` follows the primary agent's newest transcript."""
    agent = state.agent
    if message.sender != agent.identity or message.expression == agent.expression:
        return state
    messages = state.messages
    for later in range(position + 1, len(messages)):
        if messages[later].sender == message.sender and messages[later].kind is MessageKind.TRANSCRIPT:
            return state  # a late trailer of an older turn: the newer turn decides
    return _copy_state(state, agent=_evolve(agent, expression=message.expression))


def _spoken_by_us(state: SessionState, e: ev.TranscriptReceived) -> str | None:
    """The agent transcribed *our* microphone, but the stream names the agent as its sender.

    The agent publishes the user's transcript on the user's behalf, and the
    server shows the user as the sender — unless the room is end-to-end
    encrypted: the server cannot read an encrypted stream's header, so it
    arrives under the agent's identity. Its ``lk.transcribed_track_id`` still
    names our microphone track, and every later stream of the segment is keyed
    to the message that attribute started. Returns our identity when so.
    """
    local = state.connection.local_identity
    if not local or e.sender == local:
        return None
    if e.attributes:
        track = dict(e.attributes).get("lk.transcribed_track_id")
        ours = track is not None and track == state.local_media.microphone.track_sid
    else:
        ours = state.messages.position(transcript_message_id(local, e.segment_id)) is not None
    return local if ours else None


def _on_transcript(state: SessionState, e: ev.TranscriptReceived, limits: Limits) -> SessionState:
    message_id = transcript_message_id(e.sender, e.segment_id)
    messages = state.messages
    position = messages.position(message_id)

    if position is None and (us := _spoken_by_us(state, e)) is not None:
        return _on_transcript(state, _evolve(e, sender=us), limits)

    if position is None:
        if not e.text:
            return state  # nothing to show yet (an opened or empty stream)
        role = _role_of(state, e.sender)
        if role is None or role is Role.PARTICIPANT:
            words = f"Ignored a transcription from {e.sender!r}: only the agent may send transcriptions."
            last = state.problems[-1] if state.problems else None
            if last is not None and last.source == "lk.transcription" and last.message == words:
                return state  # the same stream's next chunk, or the same sender again: said already
            return _with_problem(state, e.at, "lk.transcription", words, limits)
        text, error = _cap(e.text, limits)
        message = _make_message(
            id=message_id,
            role=role,
            kind=MessageKind.TRANSCRIPT,
            text=text,
            final=e.final,
            sender=e.sender,
            first_seen=e.at,
            updated=e.at,
            error=error,
            segment_id=e.segment_id,
            stream_seq=e.stream_seq,
            attributes=e.attributes,
            expression=_expression_for(role, e.attributes),
        )
        new = _with_messages(state, messages.appended(message), e.at)
        return _show_agent_expression(new, message, len(messages)) if role is Role.AGENT else new

    current = messages[position]
    if e.stream_seq == current.stream_seq and e.text and not e.attributes:
        # The common delta: more words for the stream shown, nothing else. The general
        # path below gives the same snapshot; this one runs much less Python for it.
        text = current.text + e.text
        if len(text) <= limits.max_message_chars:
            updated = _extend_message(current, text, current.final or e.final, e.at, None, None)
            return _with_messages(state, messages.renewed(position, updated), e.at)
    if e.stream_seq < current.stream_seq:
        return state  # a chunk of a stream already superseded
    if e.stream_seq > current.stream_seq:
        if current.final and not e.final:
            return state  # final never reverts to interim
        if not e.text:
            if e.final and not current.final:
                updated = _evolve(current, final=True, updated=e.at, stream_seq=e.stream_seq)
            else:
                return state
        else:
            text, error = _cap(e.text, limits)
            updated = _evolve(
                current, text=text, final=e.final, updated=e.at, error=error, delivery=None, stream_seq=e.stream_seq
            )
    else:
        final = current.final or e.final
        if not e.text and final == current.final and (not e.attributes or e.attributes == current.attributes):
            return state
        if current.error is not None and len(current.text) >= limits.max_message_chars:
            text, error = current.text, current.error
        else:
            text, error = _cap(current.text + e.text, limits)
        updated = _copy_message(current, text=text, final=final, updated=e.at, error=error, delivery=None)
    if e.attributes:
        updated = _with_stream_attributes(updated, e.attributes)
        new = _copy_state(state, messages=messages.replaced(position, updated), updated_at=e.at)
        return _show_agent_expression(new, updated, position) if updated.role is Role.AGENT else new
    return _copy_state(state, messages=messages.replaced(position, updated), updated_at=e.at)


def _on_transcript_cut(state: SessionState, e: ev.TranscriptCut, limits: Limits) -> SessionState:
    """Remember an agent's transcript whose stream broke, to complete it from the agent's record."""
    del limits
    message_id = transcript_message_id(e.sender, e.segment_id)
    message = state.messages.get(message_id)
    if (
        message is None
        or message.final
        or message.role is not Role.AGENT
        or message.stream_seq != e.stream_seq
        or message_id in state.cut_transcripts
    ):
        return state
    cut = (*state.cut_transcripts, message_id)[-_MAX_CUT_TRANSCRIPTS:]
    return _evolve(state, cut_transcripts=cut)


def _complete_cut_transcripts(state: SessionState, sender: str, text: str, at: float, limits: Limits) -> SessionState:
    """Finish the newest cut transcript of ``sender`` that ``text`` (what the agent says it said) continues.

    The words we did get must begin ``text``; the rest is added as the end of
    that same stream, and the message becomes final, so it reads as the
    agent said it, once.
    """
    for message_id in reversed(state.cut_transcripts):
        message = state.messages.get(message_id)
        if message is None or message.sender != sender or message.final or not text.startswith(message.text):
            continue
        remaining = tuple(i for i in state.cut_transcripts if i != message_id)
        rest = ev.TranscriptReceived(
            at=at,
            sender=sender,
            segment_id=message.segment_id or "",
            stream_seq=message.stream_seq,
            text=text[len(message.text) :],
            final=True,
            closed=True,
        )
        return _on_transcript(_evolve(state, cut_transcripts=remaining), rest, limits)
    return state


def _on_chat_send_requested(state: SessionState, e: ev.ChatSendRequested, limits: Limits) -> SessionState:
    if state.messages.position(e.message_id) is not None:
        return state
    text, error = _cap(e.text, limits)
    message = Message(
        id=e.message_id,
        role=Role.USER,
        kind=MessageKind.CHAT,
        text=text,
        final=True,
        sender=e.sender,
        first_seen=e.at,
        updated=e.at,
        delivery=DeliveryStatus.SENDING,
        error=error,
    )
    return _evolve(state, messages=state.messages.appended(message), updated_at=e.at)


def _set_delivery(
    state: SessionState, message_id: str, at: float, status: DeliveryStatus, error: str | None
) -> SessionState:
    position = state.messages.position(message_id)
    if position is None:
        return state
    current = state.messages[position]
    if current.delivery is status and current.error == error:
        return state
    updated = _evolve(current, delivery=status, error=error, updated=at)
    return _evolve(state, messages=state.messages.replaced(position, updated), updated_at=at)


def _on_chat_sent(state: SessionState, e: ev.ChatSendSucceeded, limits: Limits) -> SessionState:
    del limits
    return _set_delivery(state, e.message_id, e.at, DeliveryStatus.SENT, None)


def _on_chat_failed(state: SessionState, e: ev.ChatSendFailed, limits: Limits) -> SessionState:
    del limits
    return _set_delivery(state, e.message_id, e.at, DeliveryStatus.FAILED, e.error)


def _on_chat_received(state: SessionState, e: ev.ChatReceived, limits: Limits) -> SessionState:
    message_id = chat_message_id(e.sender, e.stream_id)
    if state.messages.position(message_id) is not None or not e.text:
        return state
    role = _role_of(state, e.sender)
    if role is None:
        return _with_problem(
            state, e.at, "lk.chat", f"Ignored chat from {e.sender!r}, who is not in the room.", limits
        )
    text, error = _cap(e.text, limits)
    message = _make_message(
        id=message_id,
        role=role,
        kind=MessageKind.CHAT,
        text=text,
        final=True,
        sender=e.sender,
        first_seen=e.at,
        updated=e.at,
        error=error,
        attributes=e.attributes,
        expression=_expression_for(role, e.attributes),
    )
    return _with_messages(state, state.messages.appended(message), e.at)


# -- local media, pre-connect, problems -------------------------------------------------


_MEDIA_FIELD = {
    TrackSource.MICROPHONE: "microphone",
    TrackSource.CAMERA: "camera",
    TrackSource.SCREEN_SHARE: "screen_share",
}


def _on_local_track(state: SessionState, e: ev.LocalTrackChanged, limits: Limits) -> SessionState:
    del limits
    name = _MEDIA_FIELD.get(e.source)
    if name is None or getattr(state.local_media, name) == e.track:
        return state
    media: LocalMedia = _evolve(state.local_media, **{name: e.track})
    return _evolve(state, local_media=media, updated_at=e.at)


def _on_local_output(state: SessionState, e: ev.LocalOutputChanged, limits: Limits) -> SessionState:
    del limits
    if state.local_media.speaker == e.speaker:
        return state
    media: LocalMedia = _evolve(state.local_media, speaker=e.speaker)
    return _evolve(state, local_media=media, updated_at=e.at)


def _on_encryption(state: SessionState, e: ev.EncryptionChanged, limits: Limits) -> SessionState:
    previous = state.connection.encryption
    if previous == e.encryption:
        return state
    new = _evolve(state, connection=_evolve(state.connection, encryption=e.encryption), updated_at=e.at)
    if e.encryption.error is not None and e.encryption.error != previous.error:
        new = _with_problem(new, e.at, "encryption", e.encryption.error, limits)
    return new


def _on_preconnect(state: SessionState, e: ev.PreConnectChanged, limits: Limits) -> SessionState:
    del limits
    if state.preconnect == e.preconnect:
        return state
    return _derive_agent(_evolve(state, preconnect=e.preconnect, updated_at=e.at))


def _on_agent_session_payload(state: SessionState, e: ev.AgentSessionPayload, limits: Limits) -> SessionState:
    if e.sender != state.agent.identity:
        return _with_problem(
            state,
            e.at,
            "lk.agent.session",
            f"Ignored an agent-session message from {e.sender!r}, which is not the agent.",
            limits,
        )
    pending = state.agent_history
    if pending.request_id is not None and e.sender == pending.agent:
        answer = chat_history_answer(e.payload, pending.request_id)
        if answer is not None:
            return _merge_agent_history(state, answer, e.at, limits)
    remote = apply_remote_payload(state.remote, e.payload, at=e.at, max_bytes=limits.max_session_message_bytes)
    if remote is state.remote:
        return state
    new = _evolve(state, remote=remote, updated_at=e.at)
    if remote.problem_count > state.remote.problem_count and remote.problems:
        # What the agent sent could not be read: say so where problems are shown.
        new = _with_problem(new, e.at, "lk.agent.session", remote.problems[-1], limits)
    if new.cut_transcripts:
        for index in range(len(state.remote.items), len(remote.items)):
            item = remote.items[index]
            if isinstance(item, MessageItem) and item.role == "assistant" and item.text:
                new = _complete_cut_transcripts(new, e.sender, item.text, e.at, limits)
    return new


# -- message history ----------------------------------------------------------------

_STILL_SENDING = "It was still being sent when the history was saved; it may not have reached the agent."
_STILL_ARRIVING = "It was still arriving when the history was saved: this is the part that had arrived."


def _on_history_restored(state: SessionState, e: ev.HistoryRestored, limits: Limits) -> SessionState:
    """Put ``e.messages`` first, marked restored, in place of an earlier restore.

    A restored message can never grow or be delivered: chat that was still
    ``sending`` reads as failed and a transcript still arriving as
    interrupted, each with why, so no UI waits on them forever. An id already
    taken by a message of this session gets a ``restored/`` prefix (nothing
    is dropped for a clash); a history holding one id twice (only a
    hand-made event can) keeps the first and says so.
    """
    count = _restored_count(state.messages)
    rest = state.messages[count:]
    taken = {message.id for message in rest}
    chosen: set[str] = set()
    restored: list[Message] = []
    problems: list[str] = []
    for message in e.messages:
        message_id = message.id if message.id not in taken else f"restored/{message.id}"
        if message_id in chosen or message_id in taken:
            problems.append(f"Left out a restored message with the id {message.id!r}: the history holds that id twice.")
            continue
        chosen.add(message_id)
        text, cut = _cap(message.text, limits)
        error = message.error or cut
        delivery, interrupted = message.delivery, message.interrupted
        if delivery is DeliveryStatus.SENDING:
            delivery, error = DeliveryStatus.FAILED, error or _STILL_SENDING
        if not message.final and not interrupted:
            interrupted, error = True, error or _STILL_ARRIVING
        restored.append(
            _evolve(
                message,
                id=message_id,
                text=text,
                error=error,
                delivery=delivery,
                interrupted=interrupted,
                stream_seq=0,
                origin=MessageOrigin.RESTORED,
            )
        )
    if not problems and tuple(restored) == state.messages[:count]:
        return state
    new = _evolve(state, messages=Messages([*restored, *rest]), updated_at=e.at)
    for problem in problems:
        new = _with_problem(new, e.at, "history", problem, limits)
    return new


def _on_agent_history_requested(
    state: SessionState, e: ev.AgentHistoryRequested, limits: Limits
) -> SessionState:
    del limits
    history = state.agent_history
    if history.request_id == e.request_id and history.agent == e.agent:
        return state
    return _evolve(state, agent_history=_evolve(history, request_id=e.request_id, agent=e.agent), updated_at=e.at)


def _first_heard_since(messages: Messages, since: float | None) -> int:
    """Where what was said before the join goes: before the first message this connection heard.

    After the restored messages, the agent history already shown, and a
    conversation kept from an earlier room; the end when nothing was heard yet.
    """
    for position in range(_restored_count(messages), len(messages)):
        message = messages[position]
        if message.origin is MessageOrigin.LIVE and (since is None or message.first_seen >= since):
            return position
    return len(messages)


def _is_conversation(item: ConversationItem) -> bool:
    """Not the agent's instructions: system and developer messages are its prompt, not the talk."""
    return not (isinstance(item, MessageItem) and item.role in ("system", "developer"))


def _merge_agent_history(
    state: SessionState, answer: ChatHistoryAnswer, at: float, limits: Limits
) -> SessionState:
    """Fold the agent's answer: its items into ``remote``, what came before the join into ``messages``."""
    pending = state.agent_history
    if answer.error is not None:
        new = _evolve(state, agent_history=_evolve(pending, request_id=None), updated_at=at)
        return _with_problem(new, at, "agent history", answer.error, limits)
    items = [item for item in answer.items if _is_conversation(item)]
    remote = merge_conversation_items(state.remote, items, at=at)
    agent = pending.agent or state.agent.identity or ""
    user = state.connection.local_identity or ""
    messages = state.messages
    earlier = [
        agent_history_message(index, item, agent=agent, user=user, at=at, cap=lambda text: _cap(text, limits))
        for index, item in pre_join_items(messages, items, since=pending.since)
    ]
    earlier = [message for message in earlier if messages.position(message.id) is None]
    if earlier:
        where = _first_heard_since(messages, pending.since)
        messages = Messages([*messages[:where], *earlier, *messages[where:]])
    history = _evolve(
        pending,
        request_id=None,
        fetched=pending.fetched + 1,
        added=pending.added + len(earlier),
        unknown_items=pending.unknown_items + answer.unknown_items,
        merged_at=at,
    )
    return _evolve(state, messages=messages, remote=remote, agent_history=history, updated_at=at)


def _on_rpc_methods(state: SessionState, e: ev.RpcMethodsChanged, limits: Limits) -> SessionState:
    del limits
    rpc = rpc_methods(state.rpc, e.methods)
    return state if rpc is state.rpc else _evolve(state, rpc=rpc, updated_at=e.at)


def _on_rpc_started(state: SessionState, e: ev.RpcCallStarted, limits: Limits) -> SessionState:
    call = RpcCall(
        id=e.call_id,
        direction=e.direction,
        method=e.method,
        caller=e.caller,
        callee=e.callee,
        status=RpcStatus.PENDING,
        started_at=e.at,
        request=e.request,
    )
    rpc = rpc_started(state.rpc, call, limits.max_rpc_calls)
    return state if rpc is state.rpc else _evolve(state, rpc=rpc, updated_at=e.at)


def _on_rpc_finished(state: SessionState, e: ev.RpcCallFinished, limits: Limits) -> SessionState:
    rpc = rpc_finished(
        state.rpc, e.call_id, at=e.at, status=e.status, error=e.error, error_code=e.error_code, response=e.response
    )
    if rpc is state.rpc:
        return state
    new = _evolve(state, rpc=rpc, updated_at=e.at)
    if e.status is RpcStatus.REFUSED and e.error:
        new = _with_problem(new, e.at, "rpc", e.error, limits)  # someone tried what they may not
    return new


def _on_problem(state: SessionState, e: ev.ProblemObserved, limits: Limits) -> SessionState:
    return _with_problem(state, e.at, e.source, e.message, limits)


def _on_problems_dismissed(state: SessionState, e: ev.ProblemsDismissed, limits: Limits) -> SessionState:
    del limits
    if not state.problems and state.connection.error is None:
        return state
    return _evolve(state, problems=(), connection=_evolve(state.connection, error=None), updated_at=e.at)


_HANDLERS: dict[type[Any], Callable[[SessionState, Any, Limits], SessionState]] = {
    ev.StartRequested: _on_start,
    ev.ConnectFailed: _on_connect_failed,
    ev.RoomConnected: _on_connected,
    ev.RoomReconnecting: _on_reconnecting,
    ev.RoomReconnected: _on_reconnected,
    ev.RoomDisconnected: _on_disconnected,
    ev.ParticipantJoined: _on_participant_joined,
    ev.ParticipantLeft: _on_participant_left,
    ev.ParticipantAttributesChanged: _on_attributes_changed,
    ev.RemoteTrackUpdated: _on_track_updated,
    ev.RemoteTrackRemoved: _on_track_removed,
    ev.TranscriptReceived: _on_transcript,
    ev.TranscriptCut: _on_transcript_cut,
    ev.ChatSendRequested: _on_chat_send_requested,
    ev.ChatSendSucceeded: _on_chat_sent,
    ev.ChatSendFailed: _on_chat_failed,
    ev.ChatReceived: _on_chat_received,
    ev.AgentWaitTimedOut: _on_agent_wait_timed_out,
    ev.LocalTrackChanged: _on_local_track,
    ev.LocalOutputChanged: _on_local_output,
    ev.EncryptionChanged: _on_encryption,
    ev.PreConnectChanged: _on_preconnect,
    ev.AgentSessionPayload: _on_agent_session_payload,
    ev.ProblemObserved: _on_problem,
    ev.ProblemsDismissed: _on_problems_dismissed,
    ev.RpcMethodsChanged: _on_rpc_methods,
    ev.RpcCallStarted: _on_rpc_started,
    ev.RpcCallFinished: _on_rpc_finished,
    ev.HistoryRestored: _on_history_restored,
    ev.AgentHistoryRequested: _on_agent_history_requested,
}
