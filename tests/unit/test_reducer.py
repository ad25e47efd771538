"""The reducer, specified event by event. No network: these are pure functions."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from lkstate import (
    AgentFailure,
    AgentStatus,
    ConnectionStatus,
    DeliveryStatus,
    Messages,
    PreConnectState,
    PreConnectStatus,
    Role,
    SessionState,
    TrackSource,
)
from lkstate.lowlevel import reduce
from lkstate._core import events as ev
from lkstate._core.reducer import transcript_message_id

USER = "user-1"
AGENT = "agent-AJ_1"


def fold(events: Iterable[ev.Event], state: SessionState | None = None) -> SessionState:
    state = state if state is not None else SessionState()
    for event in events:
        state = reduce(state, event)
    return state


def connected(at: float = 1.0) -> list[ev.Event]:
    return [
        ev.StartRequested(at=at),
        ev.RoomConnected(at=at + 0.1, room_name="room", local_identity=USER, server_url="ws://x"),
    ]


def agent_joins(at: float = 2.0, identity: str = AGENT, state: str | None = "initializing", **extra: str) -> ev.Event:
    attributes = dict(extra)
    if state is not None:
        attributes["lk.agent.state"] = state
    return ev.ParticipantJoined(
        at=at, identity=identity, name="", kind="agent", attributes=tuple(sorted(attributes.items()))
    )


def agent_state(value: str, at: float = 3.0, identity: str = AGENT) -> ev.Event:
    return ev.ParticipantAttributesChanged(at=at, identity=identity, attributes=(("lk.agent.state", value),))


def ready_session() -> SessionState:
    return fold([*connected(), agent_joins(), agent_state("listening")])


# -- connection and agent lifecycle ---------------------------------------------------


def test_a_new_session_is_disconnected_with_no_agent_and_no_messages() -> None:
    state = SessionState()
    assert state.connection.status is ConnectionStatus.DISCONNECTED
    assert state.agent.state == "disconnected"
    assert state.agent.is_finished and not state.agent.can_listen
    assert len(state.messages) == 0


def test_start_shows_connecting_for_the_connection_and_the_agent() -> None:
    state = fold([ev.StartRequested(at=1.0)])
    assert state.connection.status is ConnectionStatus.CONNECTING
    assert state.connection.attempt == 1
    assert state.agent.status is AgentStatus.CONNECTING
    assert state.agent.is_pending


def test_connected_without_agent_is_still_connecting_for_the_agent() -> None:
    state = fold(connected())
    assert state.connection.status is ConnectionStatus.CONNECTED
    assert state.connection.local_identity == USER
    assert state.agent.status is AgentStatus.CONNECTING


def test_agent_state_follows_the_lk_agent_state_attribute() -> None:
    state = fold([*connected(), agent_joins()])
    assert state.agent.status is AgentStatus.INITIALIZING
    assert state.agent.identity == AGENT
    for value in ("listening", "thinking", "speaking", "idle", "listening"):
        state = reduce(state, agent_state(value))
        assert state.agent.state == value
    assert state.agent.is_ready and state.agent.can_listen


def test_an_agent_without_a_state_attribute_counts_as_initializing() -> None:
    state = fold([*connected(), agent_joins(state=None)])
    assert state.agent.status is AgentStatus.INITIALIZING


def test_unknown_agent_state_values_are_kept_for_display_and_do_not_change_the_status() -> None:
    state = fold([*connected(), agent_joins(), agent_state("listening"), agent_state("dancing")])
    assert state.agent.status is AgentStatus.LISTENING
    assert state.agent.unknown_state == "dancing"
    state = reduce(state, agent_state("speaking"))
    assert state.agent.unknown_state is None and state.agent.status is AgentStatus.SPEAKING


def test_a_standard_participant_setting_lk_agent_state_is_not_an_agent() -> None:
    impostor = ev.ParticipantJoined(
        at=2.0, identity="mallory", name="", kind="standard", attributes=(("lk.agent.state", "listening"),)
    )
    state = fold([*connected(), impostor])
    assert state.agent.identity is None
    assert state.agent.status is AgentStatus.CONNECTING


def test_an_avatar_worker_is_merged_into_its_agent() -> None:
    avatar = ev.ParticipantJoined(
        at=2.5, identity="avatar-1", name="", kind="agent", attributes=(("lk.publish_on_behalf", AGENT),)
    )
    video = ev.RemoteTrackUpdated(
        at=2.6, identity="avatar-1", sid="TR_v", kind="video", source=TrackSource.CAMERA, subscribed=True, muted=False
    )
    audio = ev.RemoteTrackUpdated(
        at=2.7, identity="avatar-1", sid="TR_a", kind="audio", source=TrackSource.MICROPHONE, subscribed=True, muted=False
    )
    state = fold([*connected(), avatar, agent_joins(at=2.8), video, audio, agent_state("listening")])
    assert state.agent.identity == AGENT, "the avatar never becomes the agent, even when it arrives first"
    assert state.agent.avatar_identity == "avatar-1"
    assert state.agent.video_available and state.agent.audio_available
    assert [p.identity for p in state.agent.agents] == [AGENT, "avatar-1"]


def test_the_primary_agent_is_the_requested_one_else_the_first_to_arrive() -> None:
    first = agent_joins(at=2.0, identity="agent-a", **{"lk.agent.name": "other"})
    second = agent_joins(at=2.1, identity="agent-b", **{"lk.agent.name": "wanted"})
    assert fold([*connected(), first, second]).agent.identity == "agent-a"
    requested = [ev.StartRequested(at=1.0, requested_agent="wanted"), *connected()[1:], first, second]
    assert fold(requested).agent.identity == "agent-b"


def test_timeout_with_no_agent_fails_with_did_not_join_and_an_agent_recovers_it() -> None:
    state = fold([*connected(), ev.AgentWaitTimedOut(at=21.0, timeout=20.0)])
    assert state.agent.status is AgentStatus.FAILED
    assert state.agent.failure is AgentFailure.DID_NOT_JOIN
    assert "20 s" in state.agent.failure_reasons[0]
    assert state.agent.is_finished
    state = reduce(state, agent_joins(at=30.0))
    assert state.agent.status is AgentStatus.INITIALIZING and state.agent.failure_reasons == ()
    state = reduce(state, agent_state("listening", at=31.0))
    assert state.agent.is_ready


def test_timeout_with_an_agent_that_never_got_ready_fails_with_never_ready() -> None:
    state = fold([*connected(), agent_joins(), ev.AgentWaitTimedOut(at=21.0, timeout=20.0)])
    assert state.agent.failure is AgentFailure.NEVER_READY
    assert "did not become ready" in state.agent.failure_reasons[0]
    state = reduce(state, agent_state("listening", at=25.0))
    assert state.agent.status is AgentStatus.LISTENING and state.agent.failure is None


def test_timeout_after_the_agent_was_ready_changes_nothing() -> None:
    state = ready_session()
    assert reduce(state, ev.AgentWaitTimedOut(at=21.0, timeout=20.0)) is state
    idle = reduce(state, agent_state("idle"))
    assert reduce(idle, ev.AgentWaitTimedOut(at=21.0, timeout=20.0)) is idle


def test_agent_leaving_while_connected_fails_with_left_and_a_new_agent_recovers() -> None:
    state = reduce(ready_session(), ev.ParticipantLeft(at=5.0, identity=AGENT))
    assert state.agent.status is AgentStatus.FAILED
    assert state.agent.failure is AgentFailure.LEFT
    assert state.agent.failure_reasons == ("The agent left the room unexpectedly.",)
    state = fold([agent_joins(at=6.0, identity="agent-2"), agent_state("listening", at=6.5, identity="agent-2")], state)
    assert state.agent.status is AgentStatus.LISTENING and state.agent.identity == "agent-2"


def test_agent_leaving_during_a_reconnect_is_not_a_failure() -> None:
    state = fold([ev.RoomReconnecting(at=5.0), ev.ParticipantLeft(at=5.1, identity=AGENT)], ready_session())
    assert state.connection.status is ConnectionStatus.RECONNECTING
    assert state.agent.status is AgentStatus.CONNECTING and state.agent.failure is None
    state = fold([ev.RoomReconnected(at=6.0), agent_joins(at=6.1), agent_state("listening", at=6.2)], state)
    assert state.agent.status is AgentStatus.LISTENING


def test_pre_connect_buffering_shows_until_the_agent_is_ready() -> None:
    recording = ev.PreConnectChanged(at=1.0, preconnect=PreConnectState(status=PreConnectStatus.RECORDING))
    state = fold([ev.StartRequested(at=0.9), recording])
    assert state.agent.status is AgentStatus.PRE_CONNECT_BUFFERING and state.agent.can_listen
    state = fold([*connected()[1:], agent_joins()], state)
    assert state.agent.status is AgentStatus.PRE_CONNECT_BUFFERING
    state = reduce(state, agent_state("listening"))
    assert state.agent.status is AgentStatus.LISTENING


def test_an_unexpected_disconnect_says_why_and_an_expected_one_does_not_complain() -> None:
    lost = reduce(ready_session(), ev.RoomDisconnected(at=9.0, reason="The LiveKit server shut down.", expected=False))
    assert lost.connection.status is ConnectionStatus.DISCONNECTED
    assert lost.connection.error == "The LiveKit server shut down."
    assert lost.problems[-1].message == "The LiveKit server shut down."
    assert lost.agent.status is AgentStatus.DISCONNECTED
    ended = reduce(ready_session(), ev.RoomDisconnected(at=9.0, reason="You ended the session.", expected=True))
    assert ended.connection.error is None and ended.problems == ()
    assert ended.connection.disconnect_reason == "You ended the session."


def test_a_failed_connect_keeps_the_error_in_words_until_the_next_start() -> None:
    state = fold([ev.StartRequested(at=1.0), ev.ConnectFailed(at=1.5, error="The token endpoint answered 500.")])
    assert state.connection.status is ConnectionStatus.DISCONNECTED
    assert state.connection.error == "The token endpoint answered 500."
    state = reduce(state, ev.StartRequested(at=2.0))
    assert state.connection.error is None and state.connection.attempt == 2


# -- transcripts ------------------------------------------------------------------------


def delta(text: str, *, seq: int = 1, segment: str = "SG_1", sender: str = AGENT, at: float = 4.0, final: bool = False,
          closed: bool = False) -> ev.TranscriptReceived:
    return ev.TranscriptReceived(
        at=at, sender=sender, segment_id=segment, stream_seq=seq, text=text, final=final, closed=closed
    )


def test_agent_deltas_accumulate_and_the_trailer_makes_the_message_final() -> None:
    state = fold([delta("Hel", at=4.0), delta("lo ", at=4.1), delta("there", at=4.2)], ready_session())
    (message,) = state.messages
    assert (message.text, message.final, message.role) == ("Hello there", False, Role.AGENT)
    assert (message.first_seen, message.updated) == (4.0, 4.2)
    state = reduce(state, delta("", closed=True, final=True, at=4.3))
    assert state.messages[0].final and state.messages[0].text == "Hello there"


def test_user_interim_streams_replace_the_text_and_never_duplicate_the_message() -> None:
    interim = [
        delta("what", seq=1, sender=USER, segment="SG_u"),
        delta("", seq=1, sender=USER, segment="SG_u", closed=True),
        delta("what is", seq=2, sender=USER, segment="SG_u"),
        delta("what is the weather", seq=3, sender=USER, segment="SG_u", final=True),
    ]
    state = fold(interim, ready_session())
    (message,) = state.messages
    assert message.role is Role.USER
    assert message.text == "what is the weather" and message.final


def test_a_chunk_from_a_superseded_stream_is_ignored() -> None:
    state = fold(
        [delta("what is", seq=2, sender=USER, segment="SG_u"), delta("wh", seq=1, sender=USER, segment="SG_u")],
        ready_session(),
    )
    assert state.messages[0].text == "what is"


def test_a_final_transcript_never_reverts_to_interim() -> None:
    state = fold(
        [
            delta("done", seq=1, sender=USER, segment="SG_u", final=True),
            delta("do", seq=2, sender=USER, segment="SG_u", final=False),
        ],
        ready_session(),
    )
    assert state.messages[0].final and state.messages[0].text == "done"


def test_segments_are_keyed_by_sender_and_segment_id() -> None:
    other_agent = agent_joins(at=2.2, identity="agent-2")
    state = fold([other_agent, delta("a"), delta("b", sender="agent-2")], ready_session())
    assert [m.text for m in state.messages] == ["a", "b"]
    assert state.messages[0].id == transcript_message_id(AGENT, "SG_1")


def test_messages_keep_the_order_of_first_arrival() -> None:
    state = fold(
        [delta("one", segment="A"), delta("two", sender=USER, segment="B"), delta(" more", segment="A")],
        ready_session(),
    )
    assert [m.text for m in state.messages] == ["one more", "two"]


def test_a_transcription_from_a_non_agent_participant_is_refused_and_reported() -> None:
    mallory = ev.ParticipantJoined(at=2.0, identity="mallory", name="", kind="standard")
    state = fold([mallory, delta("I am the agent", sender="mallory")], ready_session())
    assert len(state.messages) == 0
    assert "only the agent may send transcriptions" in state.problems[-1].message


def test_in_an_encrypted_room_the_users_transcript_sent_under_the_agents_name_is_still_the_users() -> None:
    # End-to-end encryption hides the stream header from the server, so the transcript
    # the agent publishes on our behalf arrives with the agent as its sender; the track
    # it transcribed is our microphone.
    from lkstate import LocalTrackState

    microphone = ev.LocalTrackChanged(
        at=3.5, source=TrackSource.MICROPHONE, track=LocalTrackState(enabled=True, published=True, track_sid="TR_mic")
    )
    ours = (("lk.transcribed_track_id", "TR_mic"), ("lk.transcription_final", "false"))
    theirs = (("lk.transcribed_track_id", "TR_agent"), ("lk.transcription_final", "false"))
    state = fold(
        [
            microphone,
            ev.TranscriptReceived(at=4.0, sender=AGENT, segment_id="SG_u", stream_seq=1, text="What is", attributes=ours),
            ev.TranscriptReceived(at=4.2, sender=AGENT, segment_id="SG_u", stream_seq=2, text="What is the time",
                                  final=True, attributes=ours),
            ev.TranscriptReceived(at=4.3, sender=AGENT, segment_id="SG_u", stream_seq=2, text="", closed=True, final=True),
            ev.TranscriptReceived(at=5.0, sender=AGENT, segment_id="SG_a", stream_seq=3, text="Noon.", attributes=theirs),
        ],
        ready_session(),
    )
    user, agent = state.messages
    assert (user.role, user.sender, user.text, user.final) == (Role.USER, USER, "What is the time", True)
    assert user.id == transcript_message_id(USER, "SG_u")
    assert (agent.role, agent.sender, agent.text) == (Role.AGENT, AGENT, "Noon.")


def test_an_agent_leaving_mid_reply_keeps_the_partial_message_marked_interrupted() -> None:
    state = fold([delta("I was say"), ev.ParticipantLeft(at=5.0, identity=AGENT)], ready_session())
    (message,) = state.messages
    assert message.text == "I was say" and message.interrupted and not message.final
    assert message.error is not None


def test_overlong_text_is_cut_and_marked() -> None:
    from lkstate import Limits

    limits = Limits(max_message_chars=10)
    state = reduce(ready_session(), delta("x" * 8), limits)
    state = reduce(state, delta("y" * 8), limits)
    assert state.messages[0].text == "x" * 8 + "yy"
    assert state.messages[0].error == "Cut at 10 characters."


# -- chat --------------------------------------------------------------------------------


def test_typed_chat_appears_at_once_and_follows_its_delivery() -> None:
    state = reduce(ready_session(), ev.ChatSendRequested(at=4.0, message_id="c1", text="hi", sender=USER))
    assert state.messages[0].delivery is DeliveryStatus.SENDING and state.messages[0].role is Role.USER
    assert reduce(state, ev.ChatSendSucceeded(at=4.1, message_id="c1")).messages[0].delivery is DeliveryStatus.SENT
    failed = reduce(state, ev.ChatSendFailed(at=4.1, message_id="c1", error="Could not send: offline"))
    assert failed.messages[0].delivery is DeliveryStatus.FAILED
    assert failed.messages[0].error == "Could not send: offline"


def test_chat_from_another_human_is_not_labelled_as_the_agent() -> None:
    bob = ev.ParticipantJoined(at=2.0, identity="bob", name="Bob", kind="standard")
    state = fold([bob, ev.ChatReceived(at=4.0, sender="bob", stream_id="S1", text="hey")], ready_session())
    assert state.messages[0].role is Role.PARTICIPANT


def test_restart_starts_a_new_conversation_unless_history_is_kept() -> None:
    state = reduce(ready_session(), delta("hello"))
    assert len(reduce(state, ev.StartRequested(at=10.0)).messages) == 0
    assert len(reduce(state, ev.StartRequested(at=10.0, keep_history=True)).messages) == 1


# -- identity, bounds --------------------------------------------------------------------


def test_an_event_that_changes_nothing_returns_the_very_same_state() -> None:
    state = ready_session()
    assert reduce(state, agent_state("listening")) is state
    assert reduce(state, ev.ParticipantLeft(at=5.0, identity="nobody")) is state
    assert reduce(state, delta("")) is state
    assert reduce(state, ev.ChatSendSucceeded(at=5.0, message_id="unknown")) is state


def test_problems_are_bounded_and_a_repeated_complaint_is_kept_once() -> None:
    state = SessionState()
    for index in range(200):
        state = reduce(state, ev.ProblemObserved(at=float(index), source="x", message=f"problem {index}"))
    assert len(state.problems) == 50
    assert state.problems[-1].message == "problem 199"
    for index in range(10):
        state = reduce(state, ev.ProblemObserved(at=300.0 + index, source="x", message="same"))
    assert [p.message for p in state.problems].count("same") == 1
    dismissed = reduce(state, ev.ProblemsDismissed(at=400.0))
    assert dismissed.problems == ()


def test_snapshots_are_hashable_and_equal_when_they_show_the_same_thing() -> None:
    a = fold([delta("Hello"), delta(" you")], ready_session())
    b = fold([delta("Hello"), delta(" you")], ready_session())
    assert a == b and hash(a) == hash(b)
    assert a.messages == tuple(b.messages)
    assert a != reduce(b, delta("!"))


def test_an_update_shares_the_untouched_history() -> None:
    state = ready_session()
    for index in range(100):
        state = reduce(state, delta(f"m{index}", segment=f"S{index}"))
    updated = reduce(state, delta("!", segment="S99"))
    assert updated.messages[0] is state.messages[0]
    assert updated.messages.shares_structure_with(state.messages)
    assert updated.local_media is state.local_media and updated.agent is state.agent


def test_messages_refuses_duplicate_ids() -> None:
    state = reduce(ready_session(), delta("x"))
    with pytest.raises(ValueError):
        Messages([state.messages[0], state.messages[0]])


def test_unknown_event_types_are_rejected_loudly() -> None:
    with pytest.raises(TypeError):
        reduce(SessionState(), object())  # type: ignore[arg-type]
