"""Transcripts our reconnect broke, completed by the reducer from the agent's own record.

When our connection is rebuilt while the agent speaks, the SDK breaks the
stream carrying its words and the rest never reaches us on it. The room source
reports that as a :class:`TranscriptCut`; the agent also reports the finished
utterance on ``lk.agent.session``, and the reducer finishes the cut message
from it. Both are events, so a recording replays the completion exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from livekit.protocol.agent_pb import agent_session as pb

from lkstate import Role, SessionState
from lkstate.lowlevel import reduce
from lkstate._core import events as ev
from lkstate._core.reducer import transcript_message_id
from lkstate._session.recording import decode_event, encode_event

USER = "user-1"
AGENT = "agent-AJ_1"
SAID = "Hello there, how can I help you today?"


def fold(events: Iterable[ev.Event], state: SessionState | None = None) -> SessionState:
    state = state if state is not None else SessionState()
    for event in events:
        state = reduce(state, event)
    return state


def joined(identity: str = AGENT, kind: str = "agent", at: float = 2.0) -> ev.ParticipantJoined:
    return ev.ParticipantJoined(at=at, identity=identity, name="", kind=kind, attributes=(("lk.agent.state", "speaking"),))


def talking_events() -> list[ev.Event]:
    return [
        ev.StartRequested(at=1.0),
        ev.RoomConnected(at=1.1, room_name="room", local_identity=USER, server_url="ws://x"),
        joined(),
    ]


def talking() -> SessionState:
    return fold(talking_events())


def words(text: str, *, sender: str = AGENT, segment: str = "SG_1", seq: int = 1, at: float = 3.0) -> ev.TranscriptReceived:
    return ev.TranscriptReceived(at=at, sender=sender, segment_id=segment, stream_seq=seq, text=text)


def cut(*, sender: str = AGENT, segment: str = "SG_1", seq: int = 1, at: float = 4.0) -> ev.TranscriptCut:
    return ev.TranscriptCut(at=at, sender=sender, segment_id=segment, stream_seq=seq)


def record_of(text: str, item_id: str = "item_1", at: float = 6.0, sender: str = AGENT) -> ev.AgentSessionPayload:
    """The agent's ``conversation_item_added`` for an utterance it finished."""
    message = pb.ChatMessage(id=item_id, role=pb.ASSISTANT, content=[pb.ChatMessage.ChatContent(text=text)])
    added = pb.AgentSessionEvent.ConversationItemAdded(item=pb.ChatContext.ChatItem(message=message))
    data = pb.AgentSessionMessage(event=pb.AgentSessionEvent(conversation_item_added=added)).SerializeToString()
    return ev.AgentSessionPayload(at=at, sender=sender, payload=data)


def test_a_cut_transcript_is_completed_once_from_the_agents_record_of_the_utterance() -> None:
    state = fold([words("Hello there, "), words("how can"), cut()], talking())
    assert state.cut_transcripts == (transcript_message_id(AGENT, "SG_1"),)
    assert not state.messages[0].final, "cut, not finished"

    state = reduce(state, record_of(SAID))
    (message,) = state.messages
    assert (message.text, message.final, message.interrupted, message.updated) == (SAID, True, False, 6.0)
    assert state.cut_transcripts == ()
    again = reduce(state, record_of(SAID, item_id="item_2", at=7.0))
    assert again.messages == state.messages, "completed once: a second report adds nothing"


def test_without_a_cut_the_agents_record_leaves_the_transcript_alone() -> None:
    # Recordings made before TranscriptCut existed carry the completion as a
    # transcript event of their own: the reducer must not complete it twice.
    state = fold([words("Hello there, "), words("how can")], talking())
    after = reduce(state, record_of(SAID))
    assert after.messages is state.messages


def test_a_record_that_does_not_continue_the_words_received_completes_nothing() -> None:
    state = fold([words("Good morning"), cut()], talking())
    after = reduce(state, record_of(SAID))
    assert after.messages is state.messages
    assert after.cut_transcripts == state.cut_transcripts, "still waiting for its own record"


def test_the_newest_cut_that_the_record_continues_is_the_one_completed() -> None:
    state = fold(
        [words("Hello", segment="SG_1"), cut(segment="SG_1"), words("Hello there", segment="SG_2", seq=2), cut(segment="SG_2", seq=2)],
        talking(),
    )
    state = reduce(state, record_of(SAID))
    assert [(m.segment_id, m.text, m.final) for m in state.messages] == [("SG_1", "Hello", False), ("SG_2", SAID, True)]
    assert state.cut_transcripts == (transcript_message_id(AGENT, "SG_1"),)


def test_only_an_unfinished_agent_transcript_of_the_broken_stream_is_remembered() -> None:
    base = fold([words("Hello"), words("me", sender=USER, segment="SG_U")], talking())
    assert reduce(base, cut(sender=USER, segment="SG_U")) is base, "the user's words are not the agent's to complete"
    assert reduce(base, cut(segment="SG_missing")) is base, "no such message"
    assert reduce(base, cut(seq=7)) is base, "a newer stream of the segment is shown"
    final = reduce(base, ev.TranscriptReceived(at=3.5, sender=AGENT, segment_id="SG_1", stream_seq=1, text="", final=True, closed=True))
    assert reduce(final, cut()) is final, "already final"
    once = reduce(base, cut())
    assert reduce(once, cut(at=4.5)) is once, "remembered once"


def test_the_agent_leaving_or_a_new_start_forgets_its_cut_transcripts() -> None:
    state = fold([words("Hello"), cut()], talking())
    left = reduce(state, ev.ParticipantLeft(at=5.0, identity=AGENT))
    assert left.cut_transcripts == ()
    assert left.messages[0].interrupted, "kept, marked as the agent's departure left it"
    restarted = reduce(state, ev.StartRequested(at=5.0, keep_history=True))
    assert restarted.cut_transcripts == ()


def test_only_the_newest_few_cut_transcripts_are_remembered() -> None:
    events: list[ev.Event] = []
    for n in range(12):
        events += [words(f"part {n}", segment=f"SG_{n}", seq=n + 1), cut(segment=f"SG_{n}", seq=n + 1)]
    state = fold(events, talking())
    assert state.cut_transcripts == tuple(transcript_message_id(AGENT, f"SG_{n}") for n in range(4, 12))


def test_a_cut_is_recorded_and_replays_to_the_same_snapshots() -> None:
    events: list[ev.Event] = [*talking_events(), words("Hello there, "), cut(), record_of(SAID)]
    lines = [json.dumps(encode_event(e)) for e in events]
    decoded = [decode_event(json.loads(line)) for line in lines]
    assert decoded == events
    live = replayed = SessionState()
    for original, copy in zip(events, decoded, strict=True):
        live, replayed = reduce(live, original), reduce(replayed, copy)
        assert live == replayed
    assert live.messages[0].text == SAID and live.messages[0].final


def test_a_transcription_from_a_participant_who_is_not_an_agent_is_refused_once_per_stream() -> None:
    state = fold([joined("mallory", kind="standard")], talking())
    refused = reduce(state, words("I am the agent", sender="mallory"))
    assert [m.role for m in refused.messages] == []
    assert refused.problems[-1].message == (
        "Ignored a transcription from 'mallory': only the agent may send transcriptions."
    )
    assert reduce(refused, words(" really", sender="mallory", at=3.1)) is refused, "said once, not per chunk"
    assert all(m.role is not Role.PARTICIPANT for m in refused.messages)
