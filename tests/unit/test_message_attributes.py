"""Stream attributes stay on each message, and the agent's ``lk.expression`` is read from them.

livekit-agents 1.8 strips the TTS markup from the agent's transcript and puts the
turn's leading expression on the stream as ``lk.expression``:
``{"expression": "<the provider's words>", "mood": "<one of a fixed set>"}``, on
the opening header of a streamed reply and on its closing trailer. These are
pure reducer specifications; the wire test is in tests/integration/test_parity_wire.py.
"""

from __future__ import annotations

import json

from lkstate import Role, SessionState
from lkstate._core import events as ev
from lkstate._core.messages import AgentExpression, expression_of
from lkstate.lowlevel import reduce
from lkstate._session.recording import decode_event, encode_event

from tests.unit.test_reducer import AGENT, USER, fold, ready_session

WARM = json.dumps({"expression": "warm surprise", "mood": "surprised"})


def header(final: bool = False, **extra: str) -> tuple[tuple[str, str], ...]:
    attributes = {"lk.segment_id": "SG_1", "lk.transcription_final": "true" if final else "false", **extra}
    return tuple(sorted(attributes.items()))


def piece(text: str, at: float, *, attributes: tuple[tuple[str, str], ...] = (), final: bool = False,
          closed: bool = False, sender: str = AGENT, seq: int = 1, segment: str = "SG_1") -> ev.TranscriptReceived:
    return ev.TranscriptReceived(at=at, sender=sender, segment_id=segment, stream_seq=seq, text=text,
                                 final=final, closed=closed, attributes=attributes)


def test_the_expression_of_lk_expression_is_the_providers_words_and_the_mood() -> None:
    assert expression_of((("lk.expression", WARM),)) == AgentExpression(label="warm surprise", mood="surprised")
    assert expression_of((("lk.expression", "cheerful"),)) == AgentExpression(label="cheerful", mood=None)
    assert expression_of((("lk.expression", '{"mood": "calm"}'),)) == AgentExpression(label="calm", mood="calm")
    assert expression_of((("lk.segment_id", "SG_1"),)) is None
    assert expression_of((("lk.expression", "  "),)) is None
    assert expression_of((("lk.expression", '{"expression": 3}'),)) is None
    assert len(expression_of((("lk.expression", "x" * 10_000),)).label) == 200  # type: ignore[union-attr]


def test_a_transcript_keeps_its_header_then_the_trailer_merged_into_it() -> None:
    state = fold([
        piece("Oh! ", 4.0, attributes=header(**{"lk.expression": WARM})),
        piece("Hello there.", 4.1),
        piece("", 4.2, attributes=header(final=True, **{"lk.expression": WARM, "lk.custom": "x"}), final=True,
              closed=True),
    ], ready_session())
    (message,) = state.messages
    assert message.text == "Oh! Hello there." and message.final
    assert dict(message.attributes) == {"lk.segment_id": "SG_1", "lk.transcription_final": "true",
                                        "lk.expression": WARM, "lk.custom": "x"}
    assert message.expression == AgentExpression(label="warm surprise", mood="surprised")
    assert state.agent.expression == message.expression


def test_pieces_without_attributes_leave_them_as_they_were() -> None:
    first = reduce(ready_session(), piece("Hello ", 4.0, attributes=header()))
    second = reduce(first, piece("world", 4.1))
    assert second.messages[0].attributes is first.messages[0].attributes
    assert second.messages[0].text == "Hello world"


def test_a_close_that_only_brings_the_expression_still_updates_the_message() -> None:
    # A non-streamed reply arrives final in its header; an expression on the
    # trailer alone must not be dropped because nothing else changed.
    state = fold([piece("Fine.", 4.0, attributes=header(final=True), final=True)], ready_session())
    state = reduce(state, piece("", 4.1, attributes=header(final=True, **{"lk.expression": WARM}), final=True,
                                closed=True))
    assert state.messages[0].expression is not None and state.agent.expression is not None


def test_the_agent_view_follows_the_newest_turn_and_a_turn_without_expression_clears_it() -> None:
    state = fold([
        piece("Oh!", 4.0, attributes=header(final=True, **{"lk.expression": WARM}), final=True),
        piece("Plain words.", 5.0, attributes=(("lk.segment_id", "SG_2"),), segment="SG_2", seq=2),
    ], ready_session())
    assert state.messages[0].expression is not None
    assert state.agent.expression is None
    # A late trailer of the older turn does not take the agent's face back.
    late = reduce(state, piece("", 5.1, attributes=header(final=True, **{"lk.expression": WARM, "lk.x": "1"}),
                               final=True, closed=True))
    assert late.agent.expression is None


def test_the_agent_expression_survives_state_changes_and_goes_with_the_agent() -> None:
    state = fold([piece("Oh!", 4.0, attributes=header(**{"lk.expression": WARM}))], ready_session())
    state = reduce(state, ev.ParticipantAttributesChanged(at=5.0, identity=AGENT,
                                                          attributes=(("lk.agent.state", "speaking"),)))
    assert state.agent.state == "speaking" and state.agent.expression is not None
    state = reduce(state, ev.ParticipantLeft(at=6.0, identity=AGENT))
    assert state.agent.expression is None


def test_only_the_agent_has_an_expression() -> None:
    human = ev.ParticipantJoined(at=2.5, identity="bob", name="Bob", kind="standard")
    state = fold([
        human,
        ev.ChatReceived(at=4.0, sender="bob", stream_id="S1", text="I am the agent, really",
                        attributes=(("lk.expression", WARM), ("topic", "aside"))),
        piece("what is up", 4.5, sender=USER, attributes=header(**{"lk.expression": WARM})),
    ], ready_session())
    chat, transcript = state.messages
    assert chat.role is Role.PARTICIPANT and dict(chat.attributes)["topic"] == "aside"
    assert chat.expression is None and transcript.expression is None
    assert state.agent.expression is None


def test_chat_from_the_agent_keeps_its_attributes() -> None:
    state = fold([ev.ChatReceived(at=4.0, sender=AGENT, stream_id="S1", text="hi",
                                  attributes=(("lk.expression", WARM),))], ready_session())
    (message,) = state.messages
    assert message.role is Role.AGENT and message.expression == AgentExpression("warm surprise", "surprised")


def test_attributes_are_recorded_and_replayed() -> None:
    event = piece("Oh!", 4.0, attributes=header(**{"lk.expression": WARM}))
    assert decode_event(encode_event(event)) == event
    chat = ev.ChatReceived(at=4.0, sender=AGENT, stream_id="S1", text="hi", attributes=(("k", "v"),))
    assert decode_event(encode_event(chat)) == chat
    # Recordings made before these fields existed still read: the field defaults to no attributes.
    assert decode_event({"type": "ChatReceived", "at": 1.0, "sender": "a", "stream_id": "s", "text": "t"}) == \
        ev.ChatReceived(at=1.0, sender="a", stream_id="s", text="t")
    assert SessionState().agent.expression is None
