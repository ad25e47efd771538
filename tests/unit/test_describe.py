"""The words every front end shows, specified on snapshots the reducer builds.

These are the sentences a person reads in the terminal, desktop and web
clients alike; each adapter only styles them. No network, no UI framework.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import pytest

from lkstate import (
    AgentStatus,
    LocalTrackState,
    Message,
    MessageKind,
    PreConnectState,
    PreConnectStatus,
    Role,
    SessionState,
)
from lkstate.agent_session import LLMUsage, RemoteSessionState, STTUsage, TTSUsage
from lkstate.lowlevel import reduce
from lkstate._core import events as ev
from lkstate.agent_session import ToolCall
from lkstate._core.wording import (
    PALETTE,
    Tone,
    delivery_words,
    describe_agent,
    describe_camera,
    describe_expression,
    describe_message,
    describe_microphone,
    describe_preconnect,
    describe_problems,
    describe_rpc,
    describe_rpc_call,
    describe_tool_call,
    describe_usage,
    speaker_label,
    tool_arguments,
    tool_call_tone,
)
from lkstate._core.messages import AgentExpression, DeliveryStatus
from lkstate._core.rpc import RpcDirection, RpcStatus
from lkstate._core.remote_state import EotUsage, InterruptionUsage

AGENT = "agent-AJ_1"


def fold(events: Iterable[ev.Event], state: SessionState | None = None) -> SessionState:
    state = state if state is not None else SessionState()
    for event in events:
        state = reduce(state, event)
    return state


def connected() -> list[ev.Event]:
    return [
        ev.StartRequested(at=1.0),
        ev.RoomConnected(at=1.1, room_name="kitchen", local_identity="ada", server_url="ws://x"),
    ]


def agent(state: str | None, name: str = "helper") -> ev.Event:
    attributes = {"lk.agent.name": name}
    if state is not None:
        attributes["lk.agent.state"] = state
    return ev.ParticipantJoined(at=2.0, identity=AGENT, name="", kind="agent", attributes=tuple(sorted(attributes.items())))


def recording(seconds: float = 1.5) -> ev.Event:
    return ev.PreConnectChanged(at=1.5, preconnect=PreConnectState(status=PreConnectStatus.RECORDING, seconds=seconds))


# -- the agent indicator ------------------------------------------------------------------


def test_before_any_connection_it_says_not_connected_and_what_to_do() -> None:
    words = describe_agent(SessionState())
    assert (words.headline, words.detail, words.tone) == (
        "Not connected", "Connect to start talking to the agent.", Tone.NEUTRAL
    )


def test_connecting_says_the_room_is_being_joined() -> None:
    words = describe_agent(fold([ev.StartRequested(at=1.0)]))
    assert (words.headline, words.detail, words.tone) == ("Connecting…", "Joining the room.", Tone.WAITING)


def test_connected_without_an_agent_says_the_agent_has_not_joined() -> None:
    words = describe_agent(fold(connected()))
    assert words.headline == "Waiting for the agent…"
    assert words.detail == "Connected to the room; the agent has not joined yet."
    assert words.tone is Tone.WAITING


def test_listening_early_wins_over_connecting_because_speaking_already_works() -> None:
    state = fold([ev.StartRequested(at=1.0), recording()])
    assert state.agent.status is AgentStatus.PRE_CONNECT_BUFFERING
    words = describe_agent(state)
    assert words.headline == "Listening (buffering)" and words.tone is Tone.BUFFERING
    assert "kept and handed to the agent" in words.detail


@pytest.mark.parametrize(
    ("wire", "headline", "detail", "tone"),
    [
        (None, "Agent starting…", "helper joined and is getting ready.", Tone.WAITING),
        ("idle", "Agent idle", "helper is present but not listening yet.", Tone.WAITING),
        ("listening", "Listening", "helper is listening. Speak, or type a message.", Tone.OK),
        ("thinking", "Thinking…", "helper is working on a reply.", Tone.THINKING),
        ("speaking", "Speaking", "helper is replying.", Tone.SPEAKING),
    ],
)
def test_each_agent_state_reads_as_a_headline_and_a_sentence_naming_the_agent(
    wire: str | None, headline: str, detail: str, tone: Tone
) -> None:
    words = describe_agent(fold([*connected(), agent(wire)]))
    assert (words.headline, words.detail, words.tone, words.name) == (headline, detail, tone, "helper")
    assert words.status is fold([*connected(), agent(wire)]).agent.status


def test_an_agent_without_a_name_is_the_agent_by_its_identity() -> None:
    state = fold([*connected(), ev.ParticipantJoined(at=2.0, identity=AGENT, name="", kind="agent",
                                                     attributes=(("lk.agent.state", "listening"),))])
    assert describe_agent(state).detail == f"{AGENT} is listening. Speak, or type a message."


def test_a_state_the_library_does_not_know_is_mentioned() -> None:
    state = fold([*connected(), agent("daydreaming")])
    assert "(it says it is 'daydreaming')" in describe_agent(state).detail


def test_a_failed_agent_is_an_error_with_every_reason_and_the_way_out() -> None:
    state = fold([*connected(), ev.AgentWaitTimedOut(at=21.0, timeout=20.0)])
    words = describe_agent(state)
    assert words.headline == "Agent unavailable" and words.tone is Tone.ERROR
    assert words.reasons == state.agent.failure_reasons and words.reasons
    assert words.detail == "Still connected: an agent that joins later is picked up."


def test_a_connection_that_failed_says_so_with_the_error() -> None:
    state = fold([ev.StartRequested(at=1.0), ev.ConnectFailed(at=2.0, error="Could not connect to ws://x: refused")])
    words = describe_agent(state)
    assert (words.headline, words.detail, words.tone) == (
        "Could not connect", "Could not connect to ws://x: refused", Tone.ERROR
    )


@pytest.mark.parametrize(
    ("reason", "detail"),
    [
        ("You ended the session.", "You ended the session. Connect to talk again."),
        ("The server closed the room", "The server closed the room. Connect to talk again."),
    ],
)
def test_a_session_that_ended_says_why_and_how_to_talk_again(reason: str, detail: str) -> None:
    words = describe_agent(fold([*connected(), ev.RoomDisconnected(at=5.0, reason=reason, expected=True)]))
    assert (words.headline, words.detail, words.tone) == ("Disconnected", detail, Tone.NEUTRAL)


def test_reconnecting_takes_over_from_whatever_the_agent_was_doing() -> None:
    state = fold([*connected(), agent("speaking"), ev.RoomReconnecting(at=3.0)])
    words = describe_agent(state)
    assert (words.headline, words.tone) == ("Reconnecting…", Tone.WAITING)


# -- the microphone ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("track", "label", "detail", "tone"),
    [
        (LocalTrackState(), "Mic off", "The microphone is off.", Tone.NEUTRAL),
        (LocalTrackState(enabled=True, published=True, device="USB"), "Mic on", "The agent can hear you (USB).", Tone.OK),
        (LocalTrackState(enabled=True), "Mic on", "The microphone is on; it is sent once connected.", Tone.WAITING),
        (LocalTrackState(enabled=True, published=True, muted=True), "Mic muted", "The microphone is muted.", Tone.NEUTRAL),
        (LocalTrackState(enabled=True, error="No microphone was found."), "No microphone", "No microphone was found.",
         Tone.ERROR),
    ],
)
def test_the_microphone_says_what_it_does_and_why_it_cannot(
    track: LocalTrackState, label: str, detail: str, tone: Tone
) -> None:
    words = describe_microphone(track)
    assert (words.headline, words.detail, words.tone) == (label, detail, tone)


@pytest.mark.parametrize(
    ("track", "label", "detail", "tone"),
    [
        (LocalTrackState(), "Camera off", "The camera is off.", Tone.NEUTRAL),
        (LocalTrackState(enabled=True, published=True, device="test pattern"), "Camera on",
         "The room sees your camera (test pattern).", Tone.OK),
        (LocalTrackState(enabled=True), "Camera on", "The camera is on; it is sent once connected.", Tone.WAITING),
        (LocalTrackState(error="No camera found: OpenCV could not open camera 0. Connect a camera."), "No camera",
         "No camera found: OpenCV could not open camera 0. Connect a camera.", Tone.ERROR),
        (LocalTrackState(error="The camera input ended."), "Camera failed", "The camera input ended.", Tone.ERROR),
    ],
)
def test_the_camera_says_what_it_does_and_why_it_cannot(
    track: LocalTrackState, label: str, detail: str, tone: Tone
) -> None:
    words = describe_camera(track)
    assert (words.headline, words.detail, words.tone) == (label, detail, tone)


# -- early speech ---------------------------------------------------------------------------------


def test_early_speech_is_followed_from_recording_to_handed_over() -> None:
    assert describe_preconnect(PreConnectState()) is None
    kept = describe_preconnect(PreConnectState(status=PreConnectStatus.RECORDING, seconds=2.44))
    sending = describe_preconnect(PreConnectState(status=PreConnectStatus.SENDING, seconds=2.4, destination=AGENT))
    sent = describe_preconnect(PreConnectState(status=PreConnectStatus.SENT, seconds=2.4))
    assert kept is not None and (kept.detail, kept.tone) == ("2.4 s kept until the agent is ready.", Tone.BUFFERING)
    assert sending is not None and (sending.detail, sending.tone) == (f"Handing 2.4 s over to {AGENT}…", Tone.WAITING)
    assert sent is not None and (sent.detail, sent.tone) == ("2.4 s handed over to the agent.", Tone.OK)


def test_an_empty_hand_over_says_nothing_was_recorded_never_zero_seconds_handed_over() -> None:
    # A microphone that failed before recording anything shows no early speech at all (the session reports
    # it idle, and idle is not shown); should an empty recording ever be reported as handed over, it says so.
    unavailable = PreConnectState(
        status=PreConnectStatus.IDLE,
        detail="Nothing was recorded before the agent was ready: the microphone was unavailable.",
    )
    assert describe_preconnect(unavailable) is None
    empty = describe_preconnect(PreConnectState(status=PreConnectStatus.SENT, seconds=0.0, destination=AGENT))
    assert empty is not None
    assert (empty.detail, empty.tone) == ("Nothing was recorded before the agent was ready.", Tone.NEUTRAL)
    assert "0.0 s" not in empty.detail


def test_early_speech_that_never_reached_the_agent_is_an_error_with_the_reason() -> None:
    expired = describe_preconnect(PreConnectState(status=PreConnectStatus.EXPIRED, detail="The agent never came."))
    failed = describe_preconnect(PreConnectState(status=PreConnectStatus.FAILED))
    assert expired is not None and (expired.headline, expired.detail) == ("Early speech dropped", "The agent never came.")
    assert failed is not None and (failed.headline, failed.tone) == ("Early speech lost", Tone.ERROR)
    assert failed.detail == "It could not be sent to the agent."


# -- messages ----------------------------------------------------------------------------------------


def message(**fields: object) -> Message:
    base: dict[str, object] = dict(id="m1", role=Role.USER, kind=MessageKind.CHAT, text="hi", final=True,
                                   sender="ada", first_seen=1.0, updated=1.0)
    base.update(fields)
    return Message(**base)  # type: ignore[arg-type]


def test_a_message_is_labelled_you_the_agent_by_name_or_the_sender() -> None:
    assert speaker_label(message()) == "You"
    assert speaker_label(message(role=Role.AGENT, sender=AGENT), agent_name="helper") == "helper"
    assert speaker_label(message(role=Role.AGENT, sender=AGENT)) == "Agent"
    assert speaker_label(message(role=Role.PARTICIPANT, sender="grace")) == "grace"


def test_typed_chat_says_whether_it_went_out_and_speech_says_nothing() -> None:
    assert delivery_words(message(delivery=DeliveryStatus.SENDING)) == ("sending…", Tone.WAITING)
    assert delivery_words(message(delivery=DeliveryStatus.SENT)) == ("sent", Tone.OK)
    assert delivery_words(message(delivery=DeliveryStatus.FAILED, error="gone")) == ("not sent", Tone.ERROR)
    assert delivery_words(message(kind=MessageKind.TRANSCRIPT)) is None


def test_the_words_around_a_message_say_who_how_whether_still_spoken_delivery_and_interruption() -> None:
    typed = describe_message(message(delivery=DeliveryStatus.SENT))
    assert (typed.speaker, typed.notes, typed.delivery_tone) == ("You", ("typed", "sent"), Tone.OK)
    interim = describe_message(message(role=Role.AGENT, kind=MessageKind.TRANSCRIPT, final=False, sender=AGENT),
                               agent_name="helper")
    assert (interim.speaker, interim.notes) == ("helper", ("spoken", "speaking…"))
    you_still = describe_message(message(kind=MessageKind.TRANSCRIPT, final=False))
    assert you_still.pending == "speaking…", "you and the agent are still speaking in the same words"
    cut = describe_message(message(role=Role.AGENT, kind=MessageKind.TRANSCRIPT, interrupted=True))
    assert cut.notes == ("spoken", "interrupted") and cut.delivery is None


# -- problems -----------------------------------------------------------------------------------------


def test_problems_leave_out_the_connection_error_the_indicator_already_says() -> None:
    state = fold([
        ev.StartRequested(at=1.0),
        ev.ConnectFailed(at=2.0, error="Could not connect to ws://x: refused"),
        ev.ProblemObserved(at=2.5, source="lk.chat", message="Refused a message of 2 MB."),
    ])
    assert [p.message for p in state.problems] == ["Could not connect to ws://x: refused", "Refused a message of 2 MB."]
    words = describe_problems(state)
    assert [(line.source, line.message) for line in words.lines] == [("lk.chat", "Refused a message of 2 MB.")]
    assert words.headline == "1 problem"
    assert len(describe_problems(state, skip_connection_error=False).lines) == 2


def test_agent_errors_follow_the_problems_until_dismissed() -> None:
    remote = attrs.evolve(RemoteSessionState(), errors=("the LLM timed out", "the TTS failed"), error_count=2)
    state = fold([*connected(), ev.ProblemObserved(at=2.0, source="lk.transcription", message="garbage")])
    state = attrs.evolve(state, remote=remote)
    words = describe_problems(state)
    assert [line.source for line in words.lines] == ["lk.transcription", "agent", "agent"]
    assert words.headline == "3 problems"
    later = attrs.evolve(state, problems=(), remote=attrs.evolve(remote, errors=(*remote.errors, "again"), error_count=3))
    assert [line.message for line in describe_problems(later, agent_errors_dismissed=2).lines] == ["again"]
    assert not describe_problems(later, agent_errors_dismissed=3)
    assert describe_problems(SessionState()).headline == ""


# -- tools and usage -------------------------------------------------------------------------------------


def test_tool_arguments_are_pairs_when_they_are_a_json_object_and_none_otherwise() -> None:
    assert tool_arguments('{"city": "Paris", "days": 2}') == (("city", "Paris"), ("days", 2))
    assert tool_arguments("  ") == ()
    assert tool_arguments("[1, 2]") is None
    assert tool_arguments("not json") is None


def test_a_tool_call_waits_while_it_runs_and_ends_ok_or_in_error() -> None:
    assert [tool_call_tone(s) for s in ("started", "running", "done", "error", "cancelled", "??")] == [
        Tone.WAITING, Tone.WAITING, Tone.OK, Tone.ERROR, Tone.NEUTRAL, Tone.NEUTRAL
    ]


def test_a_tool_call_reads_as_its_name_its_status_and_what_came_of_it() -> None:
    running = describe_tool_call(ToolCall(call_id="c1", name="get_weather", status="running", progress=("Asking",)))
    assert (running.headline, running.status, running.detail, running.tone) == (
        "get_weather", "running", "Asking", Tone.WAITING
    )
    started = describe_tool_call(ToolCall(call_id="c2", status="started"))
    assert (started.headline, started.detail) == ("c2", ""), "no name: the call id; nothing yet: no detail"
    done = describe_tool_call(ToolCall(call_id="c3", name="f", status="done", message="It is sunny.", output="sunny"))
    assert (done.detail, done.tone) == ("It is sunny.", Tone.OK), "what the agent said beats the raw output"
    failed = describe_tool_call(ToolCall(call_id="c4", name="f", status="error", output="boom", is_error=True))
    assert (failed.detail, failed.tone) == ("boom", Tone.ERROR)


def test_each_tone_has_one_colour_of_its_own() -> None:
    assert {tone: tone.colour for tone in Tone} == dict(PALETTE)
    assert set(PALETTE) == set(Tone)
    assert len(set(PALETTE.values())) == len(Tone), "no two tones look alike"
    assert (Tone.BUFFERING.colour, Tone.THINKING.colour, Tone.SPEAKING.colour) == ("#0891b2", "#7c3aed", "#2563eb")


def test_usage_reads_as_one_line_per_model_in_the_agents_order() -> None:
    lines = describe_usage((
        LLMUsage(provider="lkstate", model="scripted", input_tokens=1200, input_cached_tokens=200, output_tokens=10),
        TTSUsage(provider="lkstate", model="tone", characters_count=45, audio_duration=2.8),
        STTUsage(provider="", model="whisper", audio_duration=3.25),
        InterruptionUsage(provider="lk", model="", total_requests=3),
        EotUsage(provider="", model="", total_requests=1),
    ))
    assert [(line.title, line.figures) for line in lines] == [
        ("LLM lkstate/scripted", "1,200 in (200 cached) · 10 out tokens"),
        ("TTS lkstate/tone", "45 chars · 2.8 s audio"),
        ("STT whisper", "3.2 s audio heard"),
        ("Interruptions lk", "3 requests"),
        ("End of turn eot", "1 request"),
    ]


# -- how the agent sounds -------------------------------------------------------------------------------

WARM = '{"expression": "warm surprise", "mood": "surprised"}'


def said(text: str, expression: str | None, *, segment: str = "s1", at: float = 3.0) -> ev.Event:
    attributes = (("lk.expression", expression),) if expression is not None else ()
    return ev.TranscriptReceived(at=at, sender=AGENT, segment_id=segment, stream_seq=1, text=text, final=True,
                                 closed=True, attributes=(("lk.segment_id", segment), *attributes))


def test_the_agents_expression_reads_as_how_it_sounds_its_mood_then_its_own_words() -> None:
    state = fold([*connected(), agent("speaking"), said("Oh, hello!", WARM)])
    words = describe_expression(state.agent.expression)
    assert words is not None
    assert (words.headline, words.detail, words.tone, words.text) == (
        "surprised", "warm surprise", Tone.SPEAKING, "sounds surprised (warm surprise)"
    )
    plain = describe_expression(AgentExpression(label="cheerful"))
    assert plain is not None and plain.text == "sounds cheerful", "no mood: the provider's words are the headline"
    same = describe_expression(AgentExpression(label="Calm", mood="calm"))
    assert same is not None and same.text == "sounds calm", "words that repeat the mood are not said twice"
    assert describe_expression(None) is None
    assert describe_agent(state).expression == words, "the agent indicator says how the agent sounds"
    listening = fold([agent("listening")], state)
    assert listening.agent.expression == state.agent.expression
    assert describe_agent(listening).expression is None, "the turn is over: the indicator stops saying it"
    gone = fold([ev.ParticipantLeft(at=4.0, identity=AGENT)], state)
    assert describe_agent(gone).expression is None, "no agent to talk to, nothing about how it sounds"


def test_an_agent_message_says_how_it_sounds_after_how_it_came() -> None:
    state = fold([*connected(), agent("speaking"), said("Oh, hello!", WARM), said("Plain words.", None, segment="s2")])
    first, second = state.messages
    assert describe_message(first, agent_name="helper").notes == ("spoken", "sounds surprised (warm surprise)")
    assert describe_message(second, agent_name="helper").notes == ("spoken",), "no expression, no words about it"


# -- RPC calls ---------------------------------------------------------------------------------------------


def called(call_id: str, method: str, *, caller: str = AGENT, callee: str = "ada", at: float = 5.0,
           direction: RpcDirection = RpcDirection.INCOMING) -> ev.Event:
    return ev.RpcCallStarted(at=at, call_id=call_id, direction=direction, method=method, caller=caller, callee=callee)


def answered(call_id: str, at: float, status: RpcStatus = RpcStatus.SUCCEEDED, error: str | None = None) -> ev.Event:
    return ev.RpcCallFinished(at=at, call_id=call_id, status=status, error=error,
                              error_code=None if error is None else 1500)


def test_an_rpc_call_reads_as_who_called_whom_for_what_how_it_went_and_how_long_it_took() -> None:
    refused = "Refused a call of 'get_location' from 'mallory': only the agent may call it."
    state = fold([
        *connected(), agent("listening"),
        ev.RpcMethodsChanged(at=4.0, methods=("get_location",)),
        called("in/1", "get_location"), answered("in/1", 5.012),
        called("out/1", "agent.state", caller="ada", callee=AGENT, direction=RpcDirection.OUTGOING, at=6.0),
        answered("out/1", 8.5, RpcStatus.TIMED_OUT, "'agent-AJ_1' did not answer 'agent.state' within 2.5 s."),
        called("in/2", "get_location", caller="mallory", at=9.0),
        answered("in/2", 9.0, RpcStatus.REFUSED, refused),
        called("in/3", "get_location", at=10.0),
    ])
    words = describe_rpc(state)
    assert [w.summary for w in words.calls] == [
        "agent → app: get_location · calling…",
        "mallory → app: get_location · refused",
        "app → agent: agent.state · timed out · 2.5 s",
        "agent → app: get_location · ok · 12 ms",
    ], "newest first; a refused call took no time worth saying; a pending one has no duration yet"
    assert [w.tone for w in words.calls] == [Tone.WAITING, Tone.ERROR, Tone.ERROR, Tone.OK]
    assert [w.detail for w in words.calls] == [
        "", refused, "'agent-AJ_1' did not answer 'agent.state' within 2.5 s.", ""
    ], "a call that did not succeed says why, in full"
    assert (words.headline, words.answers, words.earlier) == (
        "RPC · 4 calls", "This app answers get_location.", ""
    )


def test_the_rpc_panel_lists_the_newest_calls_counts_the_rest_and_is_empty_until_a_call() -> None:
    registered = fold([*connected(), agent("listening"), ev.RpcMethodsChanged(at=4.0, methods=("b", "a"))])
    assert not describe_rpc(registered), "registering methods is not activity: nothing to show yet"
    assert describe_rpc(registered).headline == ""
    events: list[ev.Event] = []
    for n in range(6):
        events += [called(f"in/{n}", f"m{n}", at=5.0 + n), answered(f"in/{n}", 5.0 + n + 1.5)]
    state = fold(events, registered)
    words = describe_rpc(state, limit=2)
    assert [w.method for w in words.calls] == ["m5", "m4"]
    assert (words.headline, words.earlier, words.answers) == ("RPC · 6 calls", "… and 4 earlier", "This app answers a, b.")
    assert [w.took for w in words.calls] == ["1.5 s", "1.5 s"]


def test_a_caller_is_the_agent_only_while_it_is_known_as_one() -> None:
    call = fold([*connected(), called("in/1", "ping", caller="agent-gone"), answered("in/1", 5.0004)]).rpc.calls[0]
    assert describe_rpc_call(call).summary == "agent-gone → app: ping · ok · <1 ms", "not '0 ms'"
    assert describe_rpc_call(call, agents={"agent-gone"}).route == "agent → app"
