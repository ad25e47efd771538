"""Recordings: every event survives the file, secrets do not, replays reproduce every snapshot.

The wire-level proof (a real session recorded and replayed) is in
tests/integration/test_recording_wire.py; here the format, the redaction, the
errors and the replay controls are pinned down without a network.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import typing
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from livekit import api
from livekit.protocol.agent_pb import agent_session as pb

from lkstate import (
    DevelopmentTokenSource,
    LocalTrackState,
    PreConnectState,
    PreConnectStatus,
    SessionState,
    TrackSource,
)
from lkstate.errors import LkstateError
from lkstate.lowlevel import reduce, Store
from lkstate._core import events as ev
from lkstate._core.errors import RecordingError, ReplayReadOnlyError
from lkstate._core.options import Limits
from lkstate._session.recording import (
    EVENT_TYPES,
    FORMAT,
    VERSION,
    Recorder,
    Redactor,
    Replay,
    decode_event,
    encode_event,
    read_recording,
)
from lkstate._wire.tokens import TokenRequest

T0 = 1_700_000_000.0
ME = "user-1"
AGENT = "agent-1"


def session_payload() -> bytes:
    """A real lk.agent.session message: the agent's state changed to listening."""
    return pb.AgentSessionMessage(
        event=pb.AgentSessionEvent(
            agent_state_changed=pb.AgentSessionEvent.AgentStateChanged(
                old_state=pb.AS_INITIALIZING, new_state=pb.AS_LISTENING
            )
        )
    ).SerializeToString()


def conversation() -> list[ev.Event]:
    """A short, complete session as its events: connect, agent, chat, reply, media, leave."""
    return [
        ev.StartRequested(at=T0, requested_agent="lkstate-demo"),
        ev.PreConnectChanged(at=T0 + 0.01, preconnect=PreConnectState(status=PreConnectStatus.RECORDING)),
        ev.RoomConnected(at=T0 + 0.1, room_name="room", local_identity=ME, server_url="ws://127.0.0.1:7880"),
        ev.ParticipantJoined(at=T0 + 0.5, identity=AGENT, name="agent", kind="agent",
                             attributes=(("lk.agent.name", "lkstate-demo"), ("lk.agent.state", "initializing"))),
        ev.ParticipantAttributesChanged(at=T0 + 0.7, identity=AGENT,
                                        attributes=(("lk.agent.name", "lkstate-demo"), ("lk.agent.state", "listening"))),
        ev.AgentSessionPayload(at=T0 + 0.71, sender=AGENT, payload=session_payload()),
        ev.RemoteTrackUpdated(at=T0 + 0.8, identity=AGENT, sid="TR_a", kind="audio",
                              source=TrackSource.MICROPHONE, subscribed=True, muted=False),
        ev.LocalTrackChanged(at=T0 + 0.9, source=TrackSource.MICROPHONE,
                             track=LocalTrackState(enabled=True, published=True, track_sid="TR_m", device="default")),
        ev.ChatSendRequested(at=T0 + 1.0, message_id="chat/local/1", text="Hello! ça va? 👋", sender=ME),
        ev.ChatSendSucceeded(at=T0 + 1.1, message_id="chat/local/1"),
        ev.TranscriptReceived(at=T0 + 1.5, sender=AGENT, segment_id="SG_1", stream_seq=1, text="You said: "),
        ev.TranscriptReceived(at=T0 + 1.6, sender=AGENT, segment_id="SG_1", stream_seq=1,
                              text="Hello!", final=True, closed=True),
        ev.ProblemObserved(at=T0 + 2.0, source="lk.chat", message="Refused a stream."),
        ev.ProblemsDismissed(at=T0 + 2.1),
        ev.RoomDisconnected(at=T0 + 3.0, reason="You ended the session.", expected=True),
    ]


def fold(events: list[ev.Event]) -> list[SessionState]:
    """Every distinct snapshot a live store would deliver for ``events``."""
    states = [SessionState()]
    for event in events:
        new = reduce(states[-1], event)
        if new is not states[-1]:
            states.append(new)
    return states


def record_to_text(events: list[ev.Event], **kwargs: Any) -> str:
    buffer = io.StringIO()
    store = Store()
    Recorder(buffer, **kwargs).attach(store)
    for event in events:
        store.dispatch(event)
    return buffer.getvalue()


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


# -- the format ----------------------------------------------------------------------------


def test_the_first_line_is_a_header_naming_the_format_version_time_and_limits() -> None:
    header = lines_of(record_to_text([], limits=Limits(max_problems=7), metadata={"source": "test"}))[0]
    assert header["format"] == FORMAT == "lkstate-recording"
    assert header["version"] == VERSION == 1
    assert header["created"].endswith("+00:00")
    assert header["limits"]["max_problems"] == 7
    assert header["metadata"] == {"source": "test"}


def test_each_event_is_one_line_with_its_class_name_and_plain_json_fields() -> None:
    lines = lines_of(record_to_text(conversation()))[1:]
    assert [line["type"] for line in lines] == [type(e).__name__ for e in conversation()]
    track = next(line for line in lines if line["type"] == "LocalTrackChanged")
    assert track == {
        "type": "LocalTrackChanged",
        "at": T0 + 0.9,
        "source": "microphone",  # enums by value
        "track": {"enabled": True, "published": True, "muted": False, "track_sid": "TR_m",
                  "device": "default", "error": None},  # nested attrs as an object
    }
    joined = next(line for line in lines if line["type"] == "ParticipantJoined")
    assert joined["attributes"] == [["lk.agent.name", "lkstate-demo"], ["lk.agent.state", "initializing"]]
    preconnect = next(line for line in lines if line["type"] == "PreConnectChanged")
    assert preconnect["preconnect"]["status"] == "recording"


def test_protobuf_payloads_are_kept_byte_for_byte_as_base64() -> None:
    line = next(line for line in lines_of(record_to_text(conversation())) if line.get("type") == "AgentSessionPayload")
    assert base64.b64decode(line["payload"]) == session_payload()


def test_non_ascii_text_is_written_readably_and_read_back_exactly() -> None:
    text = record_to_text(conversation())
    assert "ça va? 👋" in text
    _, events = read_recording(io.StringIO(text))
    assert events == tuple(conversation())


def test_every_event_class_is_known_to_the_format() -> None:
    assert set(EVENT_TYPES) == {cls.__name__ for cls in typing.get_args(ev.Event)}
    for cls in EVENT_TYPES.values():
        assert "type" not in attrs.fields_dict(cls), f"{cls.__name__} has a field that would clash with 'type'"


def _strategy_for(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: st.from_type(hints[f.name]) for f in attrs.fields(cls) if f.init}
    return st.builds(cls, **fields)


@settings(max_examples=300, deadline=None)
@given(st.one_of([_strategy_for(cls) for cls in EVENT_TYPES.values()]))
def test_any_event_survives_encoding_to_a_json_line_and_back(event: ev.Event) -> None:
    line = json.dumps(encode_event(event), ensure_ascii=False, allow_nan=False)
    back = decode_event(json.loads(line))
    assert type(back) is type(event)
    # Compared through repr and the encoding, because NaN is never equal to itself.
    assert repr(back) == repr(event) and encode_event(back) == encode_event(event)


# -- replay equality --------------------------------------------------------------------------


def test_replaying_a_recording_reproduces_every_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    store = Store()
    live: list[SessionState] = []
    store.states.subscribe(live.append)
    with Recorder(path) as recorder:
        recorder.attach(store)
        for event in conversation():
            store.dispatch(event)
    replay = Replay.from_file(path)
    replayed: list[SessionState] = []
    replay.states.subscribe(replayed.append)
    replay.step(len(replay))
    assert replayed == live == fold(conversation())
    assert replay.state.remote.agent_state == "listening", "the protobuf payload was decoded on replay"


def test_a_replay_uses_the_limits_written_in_the_recording() -> None:
    problems = [ev.ProblemObserved(at=T0 + i, source="x", message=f"p{i}") for i in range(5)]
    text = record_to_text(problems, limits=Limits(max_problems=2))
    replay = Replay.from_file(io.StringIO(text))
    replay.step(5)
    assert [p.message for p in replay.state.problems] == ["p3", "p4"]


def test_recording_a_replay_writes_the_same_events_again() -> None:
    first = record_to_text(conversation())
    replay = Replay.from_file(io.StringIO(first))
    again = io.StringIO()
    Recorder(again).attach(replay.store)
    replay.step(len(replay))
    assert lines_of(again.getvalue())[1:] == lines_of(first)[1:]


# -- secrets ------------------------------------------------------------------------------------


def real_token() -> str:
    source = DevelopmentTokenSource("ws://127.0.0.1:7880", "APIkey1234", "a-very-secret-secret-of-32-chars!!")
    return source.mint(TokenRequest(room_name="room", participant_identity=ME)).participant_token


def test_a_real_token_in_an_error_message_is_never_written() -> None:
    token = real_token()
    signature = token.rsplit(".", 1)[1]
    text = record_to_text([
        ev.StartRequested(at=T0),
        ev.ConnectFailed(at=T0 + 1, error=f"Could not connect to ws://127.0.0.1:7880/rtc?access_token={token}&auto_subscribe=1: refused"),
        ev.ProblemObserved(at=T0 + 2, source="connection", message=f"the server said: token {token} expired"),
    ])
    assert token not in text and signature not in text
    failed = lines_of(text)[2]
    assert failed["error"] == "Could not connect to ws://127.0.0.1:7880/rtc?[redacted]: refused"
    assert lines_of(text)[3]["message"] == "the server said: token [redacted token] expired"


def test_url_credentials_api_keys_and_known_secrets_are_redacted_from_every_string() -> None:
    text = record_to_text(
        [
            ev.ProblemObserved(at=T0, source="https://bob:hunter2@example.com/token", message="see #frag"),
            ev.ParticipantJoined(at=T0, identity="p", name="p", kind="standard",
                                 attributes=(("config", "api_key=sk_live_abcdef Authorization: Bearer abcdefgh12345"),)),
            ev.ChatReceived(at=T0, sender="p", stream_id="s", text="my secret is MY-API-SECRET-VALUE ok"),
        ],
        secrets=["MY-API-SECRET-VALUE"],
    )
    for leaked in ("hunter2", "bob:", "sk_live_abcdef", "abcdefgh12345", "MY-API-SECRET-VALUE"):
        assert leaked not in text
    lines = lines_of(text)
    assert lines[1]["source"] == "https://[redacted]@example.com/token"
    assert lines[2]["attributes"] == [["config", "api_key=[redacted] Authorization: [redacted]"]]
    assert lines[3]["text"] == "my secret is [redacted] ok"


def test_ordinary_strings_pass_through_unchanged() -> None:
    redactor = Redactor()
    for text in ("ws://127.0.0.1:7880", "chat/local/" + "ab" * 16, "tr/7/agent-1/SG_8a7b6c5d4e3f",
                 "The token endpoint answered 500.", "user-1a2b3c4d", "You said: hello there"):
        assert redactor.text(text) == text
    assert redactor.count == 0


def test_a_token_inside_a_protobuf_payload_is_masked_without_breaking_the_message() -> None:
    token = real_token()
    message = pb.AgentSessionMessage(
        event=pb.AgentSessionEvent(error=pb.AgentSessionEvent.Error(message=f"bad credentials {token}"))
    )
    payload = message.SerializeToString()
    line = lines_of(record_to_text([ev.AgentSessionPayload(at=T0, sender=AGENT, payload=payload)]))[1]
    written = base64.b64decode(line["payload"])
    assert len(written) == len(payload) and token.encode() not in written
    decoded = pb.AgentSessionMessage.FromString(written)
    assert decoded.event.error.message == "bad credentials " + "*" * len(token)


# -- errors -----------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rec.jsonl"
    path.write_text(text, encoding="utf-8")
    return path


def header(**overrides: Any) -> str:
    return json.dumps({"format": FORMAT, "version": VERSION, "created": "2026-01-01T00:00:00+00:00",
                       "limits": {}, **overrides})


def test_a_file_that_is_not_a_recording_is_refused_with_a_remedy(tmp_path: Path) -> None:
    with pytest.raises(RecordingError) as caught:
        read_recording(write(tmp_path, '{"hello": "world"}\n'))
    assert "not an lkstate recording" in str(caught.value) and caught.value.remedy
    assert caught.value.line == 1
    with pytest.raises(RecordingError, match="not JSON"):
        read_recording(write(tmp_path, "name,age\nbob,3\n"))


def test_a_newer_format_version_asks_for_an_upgrade(tmp_path: Path) -> None:
    with pytest.raises(RecordingError) as caught:
        read_recording(write(tmp_path, header(version=2) + "\n"))
    assert "version 2" in caught.value.message and "Upgrade lkstate" in caught.value.remedy


def test_a_damaged_line_is_named_by_number(tmp_path: Path) -> None:
    good = json.dumps(encode_event(ev.RoomReconnecting(at=T0)))
    path = write(tmp_path, "\n".join([header(), good, good, '{"type": "RoomReconnected", "at": 1,,}', good]) + "\n")
    with pytest.raises(RecordingError) as caught:
        read_recording(path)
    assert caught.value.line == 4 and "line 4" in str(caught.value) and "rec.jsonl" in str(caught.value)
    assert isinstance(caught.value, LkstateError)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"type": "WarpDrive", "at": 1}', "unknown event type 'WarpDrive'"),
        ('{"type": "RoomReconnected", "at": 1, "speed": 9}', "unknown field 'speed'"),
        ('{"type": "ChatSendSucceeded", "at": 1}', "missing the field 'message_id'"),
        ('{"type": "RoomReconnected", "at": "soon"}', "RoomReconnected.at must be a number"),
        ('{"type": "RemoteTrackUpdated", "at": 1, "identity": "a", "sid": "s", "kind": "audio", '
         '"source": "telepathy", "subscribed": true, "muted": false}', "must be one of"),
        ('{"type": "AgentSessionPayload", "at": 1, "sender": "a", "payload": "not base64!"}', "not valid base64"),
        ('[1, 2]', "not an event object"),
    ],
)
def test_an_invalid_event_says_what_is_wrong_and_where(tmp_path: Path, line: str, words: str) -> None:
    with pytest.raises(RecordingError) as caught:
        read_recording(write(tmp_path, header() + "\n" + line + "\n"))
    assert caught.value.line == 2
    assert words in caught.value.message


def test_a_recording_cut_short_says_so(tmp_path: Path) -> None:
    good = json.dumps(encode_event(ev.RoomReconnecting(at=T0)))
    with pytest.raises(RecordingError) as caught:
        read_recording(write(tmp_path, header() + "\n" + good + "\n" + good[:10]))
    assert "cut short" in caught.value.message and "Delete the last line" in caught.value.remedy


def test_an_empty_or_missing_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="is empty"):
        read_recording(write(tmp_path, ""))
    with pytest.raises(RecordingError, match="There is no recording"):
        read_recording(tmp_path / "nope.jsonl")


def test_blank_lines_are_ignored(tmp_path: Path) -> None:
    good = json.dumps(encode_event(ev.RoomReconnecting(at=T0)))
    _, events = read_recording(write(tmp_path, header() + "\n\n" + good + "\n\n"))
    assert events == (ev.RoomReconnecting(at=T0),)


# -- the recorder -------------------------------------------------------------------------------


def test_each_line_is_on_disk_as_soon_as_its_event_is_dispatched(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    store = Store()
    recorder = Recorder(path).attach(store)
    store.dispatch(ev.StartRequested(at=T0))
    assert [line["type"] for line in lines_of(path.read_text())[1:]] == ["StartRequested"]
    recorder.close()
    recorder.close()
    store.dispatch(ev.RoomReconnecting(at=T0 + 1))
    assert len(path.read_text().splitlines()) == 2, "nothing is written after close"
    assert recorder.closed and recorder.events_written == 1


def test_a_recorder_refuses_a_session_that_already_started() -> None:
    store = Store()
    store.dispatch(ev.StartRequested(at=T0))
    with pytest.raises(RecordingError, match="already changed"):
        Recorder(io.StringIO()).attach(store)


def test_a_recorder_that_cannot_write_stops_and_the_session_carries_on(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    store = Store()
    recorder = Recorder(path).attach(store)
    recorder._file.close()  # pyright: ignore[reportPrivateUsage]  # the disk went away
    store.dispatch(ev.StartRequested(at=T0))
    store.dispatch(ev.RoomReconnecting(at=T0))
    assert recorder.error is not None and recorder.closed
    assert store.state.connection.attempt == 1


def test_a_recording_cannot_be_created_in_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="Could not create the recording") as caught:
        Recorder(tmp_path / "no" / "such" / "dir.jsonl")
    assert caught.value.remedy


# -- replay controls ------------------------------------------------------------------------------


def replay_of(events: list[ev.Event], **kwargs: Any) -> Replay:
    header, read = read_recording(io.StringIO(record_to_text(events)))
    return Replay(read, header=header, **kwargs)


def test_step_and_seek_move_through_the_snapshots_forwards_and_backwards() -> None:
    events = conversation()
    replay = replay_of(events)
    expected = [SessionState()]
    for event in events:
        expected.append(reduce(expected[-1], event))
    assert replay.position == 0 and replay.state == SessionState()
    assert replay.step() == expected[1] and replay.position == 1
    assert replay.step(3) == expected[4]
    seen: list[SessionState] = []
    replay.states.subscribe(seen.append)
    assert replay.seek(2) == expected[2] and replay.position == 2
    assert replay.seek(-1) == expected[-1] and replay.at_end
    assert replay.seek(0) == SessionState()
    assert seen == [expected[4], expected[2], expected[-1], SessionState()], "one change per seek"
    assert replay.step(100) == expected[-1] and replay.at_end, "stepping past the end stops at the end"
    with pytest.raises(LkstateError, match="no step 99"):
        replay.seek(99)


async def test_run_paces_events_by_their_recorded_gaps_divided_by_speed() -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    events: list[ev.Event] = [ev.StartRequested(at=T0), ev.RoomReconnecting(at=T0 + 2.0),
                              ev.RoomReconnected(at=T0 + 2.0), ev.ProblemsDismissed(at=T0 + 5.0)]
    replay = replay_of(events, sleep=sleep)
    final = await replay.run(speed=4.0)
    assert sleeps == [0.5, 0.75]
    assert replay.at_end and final == fold(events)[-1]


async def test_run_at_infinite_speed_never_pauses_and_max_gap_caps_long_silences() -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    events: list[ev.Event] = [ev.ProblemObserved(at=T0 + 100 * i, source="x", message=str(i)) for i in range(200)]
    await replay_of(events, sleep=sleep).run(speed=float("inf"))
    assert sleeps == []
    await replay_of(events, sleep=sleep, max_gap=1.0).run(speed=2.0)
    assert sleeps == [0.5] * 199


async def test_run_at_recorded_speed_really_waits() -> None:
    events: list[ev.Event] = [ev.StartRequested(at=T0), ev.RoomReconnecting(at=T0 + 0.2)]
    replay = replay_of(events)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await replay.run()
    assert loop.time() - began >= 0.19  # asyncio.sleep never returns early


async def test_start_plays_in_the_background_like_a_session_and_wait_until_sees_it() -> None:
    replay = replay_of(conversation(), speed=float("inf"))
    async with replay:
        state = await replay.wait_until(lambda s: s.agent.is_ready, timeout=5)
        assert state.agent.identity == AGENT
        final = await replay.wait_finished()
    assert final.connection.status == "disconnected" and replay.at_end


async def test_starting_a_finished_replay_plays_it_again_from_the_beginning() -> None:
    replay = replay_of(conversation(), speed=float("inf"))
    replay.seek(-1)
    seen: list[SessionState] = []
    replay.states.subscribe(seen.append)
    await replay.start()
    final = await replay.wait_finished()
    assert seen[1] == SessionState() and final == fold(conversation())[-1]
    assert seen[2:] == fold(conversation())[1:]


async def test_end_stops_a_playback_where_it_is() -> None:
    replay = replay_of(conversation(), speed=0.001)
    await replay.start()
    await replay.wait_until(lambda s: s.connection.attempt == 1, timeout=5)
    await replay.end()
    position = replay.position
    await asyncio.sleep(0.05)
    assert replay.position == position < len(replay)


async def test_commands_on_a_replay_say_it_is_read_only() -> None:
    replay = replay_of(conversation())
    with pytest.raises(ReplayReadOnlyError, match="read-only") as caught:
        await replay.send_text("hello")
    assert caught.value.remedy and isinstance(caught.value, LkstateError)
    with pytest.raises(ReplayReadOnlyError):
        replay.dismiss_problems()
    with pytest.raises(ReplayReadOnlyError):
        await replay.set_microphone_enabled(True)
    with pytest.raises(ReplayReadOnlyError):
        _ = replay.remote


def test_a_replay_speed_must_be_positive() -> None:
    with pytest.raises(LkstateError, match="above zero"):
        replay_of([], speed=0)


def test_recordings_can_be_written_to_and_read_from_real_files_with_api_tokens_from_livekit_api(tmp_path: Path) -> None:
    grant_token = api.AccessToken("k" * 8, "s" * 40).with_identity("x").to_jwt()
    path = tmp_path / "r.jsonl"
    store = Store()
    with Recorder(path).attach(store):
        store.dispatch(ev.ConnectFailed(at=T0, error=f"refused {grant_token}"))
    text = path.read_text()
    assert grant_token not in text
    _, events = read_recording(path)
    assert events == (ev.ConnectFailed(at=T0, error="refused [redacted token]"),)
