"""What the Gradio page says and shows for each kind of snapshot (pure functions, no browser)."""

from __future__ import annotations

import attrs
import pytest

from lkstate import (
    AgentState,
    AgentStatus,
    ConnectionState,
    ConnectionStatus,
    DeliveryStatus,
    LocalMedia,
    LocalTrackState,
    Message,
    MessageKind,
    Messages,
    PreConnectState,
    PreConnectStatus,
    Problem,
    Role,
    SessionState,
)
from lkstate._core.remote_state import LLMUsage, RemoteSessionState, SessionUsage, ToolCall, TTSUsage

from lkstate.ui import Tone
from lkstate.agent_session import RpcDirection, RpcStatus
from lkstate.lowlevel import reduce
from lkstate._core import events as ev
from lkstate_gradio import (
    Palette,
    activity_html,
    agent_status_words,
    camera_label,
    chat_message,
    chat_messages,
    microphone_label,
    problems_html,
    rpc_html,
    status_html,
    tools_html,
)

CONNECTED = ConnectionState(status=ConnectionStatus.CONNECTED, room_name="room-1", local_identity="user-1")


def with_agent(status: AgentStatus, **agent: object) -> SessionState:
    return SessionState(connection=CONNECTED, agent=AgentState(status=status, identity="agent-1", name="helper", **agent))  # type: ignore[arg-type]


def message(**fields: object) -> Message:
    base: dict[str, object] = dict(
        id="m1", role=Role.AGENT, kind=MessageKind.TRANSCRIPT, text="hello", final=True,
        sender="agent-1", first_seen=1.0, updated=1.0,
    )
    base.update(fields)
    return Message(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "title", "color"),
    [
        (AgentStatus.CONNECTING, "Waiting for the agent…", Tone.WAITING.colour),
        (AgentStatus.PRE_CONNECT_BUFFERING, "Listening (buffering)", Tone.BUFFERING.colour),
        (AgentStatus.INITIALIZING, "Agent starting…", Tone.WAITING.colour),
        (AgentStatus.IDLE, "Agent idle", Tone.WAITING.colour),
        (AgentStatus.LISTENING, "Listening", Tone.OK.colour),
        (AgentStatus.THINKING, "Thinking…", Tone.THINKING.colour),
        (AgentStatus.SPEAKING, "Speaking", Tone.SPEAKING.colour),
    ],
)
def test_each_agent_state_has_its_own_words_and_colour(status: AgentStatus, title: str, color: str) -> None:
    words = agent_status_words(with_agent(status))
    assert (words.title, words.color, words.state) == (title, color, status.value)
    html = status_html(with_agent(status))
    assert f'data-agent-state="{status.value}"' in html and title in html and color in html


def test_a_failed_agent_is_red_and_lists_every_reason() -> None:
    state = with_agent(
        AgentStatus.FAILED,
        failure_reasons=("The agent did not join within 20 s.", "Check the <worker>."),
    )
    words = agent_status_words(state)
    assert words.title == "Agent unavailable" and words.color == Tone.ERROR.colour
    html = status_html(state)
    assert "<li>The agent did not join within 20 s.</li>" in html
    assert "Check the &lt;worker&gt;." in html, "reasons are escaped"


def test_not_connected_says_why_the_last_connection_ended_or_failed() -> None:
    never = SessionState()
    assert agent_status_words(never).title == "Not connected"
    assert agent_status_words(never).detail == "Connect to start talking to the agent."
    ended = SessionState(connection=ConnectionState(disconnect_reason="You ended the session."))
    assert agent_status_words(ended).title == "Disconnected"
    assert agent_status_words(ended).detail == "You ended the session. Connect to talk again."
    failed = SessionState(connection=ConnectionState(error="Could not connect to ws://x: refused"))
    words = agent_status_words(failed)
    assert words.title == "Could not connect"
    assert words.detail == "Could not connect to ws://x: refused" and words.color == Tone.ERROR.colour


def test_reconnecting_takes_over_the_headline() -> None:
    state = attrs.evolve(with_agent(AgentStatus.LISTENING), connection=attrs.evolve(CONNECTED, status=ConnectionStatus.RECONNECTING))
    assert agent_status_words(state).title == "Reconnecting…"


def test_early_audio_and_the_microphone_are_described() -> None:
    state = attrs.evolve(
        with_agent(AgentStatus.PRE_CONNECT_BUFFERING),
        preconnect=PreConnectState(status=PreConnectStatus.RECORDING, seconds=1.5),
        local_media=LocalMedia(microphone=LocalTrackState(enabled=True, published=True, device="USB mic")),
    )
    html = status_html(state)
    assert "Early speech: 1.5 s kept until the agent is ready." in html
    assert '<span class="lk-mic" title="The agent can hear you (USB mic).">Mic on</span>' in html
    assert microphone_label(state.local_media.microphone) == "Turn microphone off"
    broken = LocalTrackState(
        enabled=False,
        error="No microphone found: the PortAudio library could not be loaded. Install PortAudio <here>.",
    )
    html = status_html(attrs.evolve(state, local_media=LocalMedia(microphone=broken)))
    assert ">No microphone</span>" in html, "a few words, not the whole explanation"
    assert 'title="No microphone found: the PortAudio library could not be loaded. Install PortAudio &lt;here&gt;."' in html
    assert microphone_label(broken) == "Microphone unavailable", "neither on nor off: pressing it could not help"


def test_the_camera_is_described_and_why_it_cannot_work_is_spelled_out() -> None:
    state = with_agent(AgentStatus.LISTENING)
    html = status_html(state)
    assert '<span class="lk-camera" title="The camera is off.">Camera off</span>' in html
    assert "lk-camera-error" not in html
    assert camera_label(state.local_media.camera) == "Turn camera on"

    on = LocalTrackState(enabled=True, published=True, device="test pattern 640×360 at 15 fps")
    html = status_html(attrs.evolve(state, local_media=LocalMedia(camera=on)))
    assert 'title="The room sees your camera (test pattern 640×360 at 15 fps).">Camera on</span>' in html
    assert camera_label(on) == "Turn camera off"

    broken = LocalTrackState(error="No camera found: OpenCV could not open camera 0. Pass <video_input>.")
    html = status_html(attrs.evolve(state, local_media=LocalMedia(camera=broken)))
    assert ">No camera</span>" in html
    assert (
        '<div class="lk-camera-error">Camera: No camera found: OpenCV could not open camera 0. '
        "Pass &lt;video_input&gt;.</div>"
    ) in html, "the whole reason, in words on the page, escaped"
    assert camera_label(broken) == "Turn camera on"
    ended = LocalTrackState(error="The camera input ended.")
    assert ">Camera failed</span>" in status_html(attrs.evolve(state, local_media=LocalMedia(camera=ended)))


def test_interim_speech_is_styled_apart_from_final_text() -> None:
    interim = chat_message(message(text="it is sun", final=False))
    final = chat_message(message(text="it is sunny", final=True))
    assert interim["role"] == "assistant"
    assert 'class="lk-interim"' in interim["content"] and "speaking…" in interim["content"]
    assert final["content"] == 'it is sunny<br><span class="lk-meta">spoken</span>'
    assert "speaking…" not in final["content"] and "lk-interim" not in final["content"]


def test_typed_chat_shows_its_delivery_and_spoken_words_say_so() -> None:
    sending = chat_message(message(role=Role.USER, kind=MessageKind.CHAT, text="hi", delivery=DeliveryStatus.SENDING))
    sent = chat_message(message(role=Role.USER, kind=MessageKind.CHAT, text="hi", delivery=DeliveryStatus.SENT))
    failed = chat_message(
        message(role=Role.USER, kind=MessageKind.CHAT, text="hi", delivery=DeliveryStatus.FAILED, error="no route")
    )
    spoken = chat_message(message(role=Role.USER, text="what is the weather"))
    assert sending["role"] == "user" and "sending…" in sending["content"]
    assert "✓ sent" in sent["content"]
    assert "⚠ not sent: no route" in failed["content"] and "lk-failed" in failed["content"]
    assert "spoken" in spoken["content"]
    interrupted = chat_message(message(text="I was say", interrupted=True))
    assert "interrupted" in interrupted["content"]


def test_text_from_the_room_is_shown_not_run() -> None:
    rendered = chat_message(message(role=Role.PARTICIPANT, sender="<img src=x>", text="<script>alert(1)</script>"))
    assert "<script>" not in rendered["content"] and "&lt;script&gt;" in rendered["content"]
    assert "<img" not in rendered["content"]
    assert rendered["role"] == "assistant"


def test_the_transcript_keeps_order_and_skips_empty_final_messages() -> None:
    messages = Messages((
        message(id="a", text="first"),
        message(id="b", text="", final=True),
        message(id="c", text="", final=False),
        message(id="d", role=Role.USER, kind=MessageKind.CHAT, text="third", delivery=DeliveryStatus.SENT),
    ))
    rendered = chat_messages(messages)
    assert [m["role"] for m in rendered] == ["assistant", "assistant", "user"]
    assert rendered[0]["content"].startswith("first<br>")
    assert "third" in rendered[2]["content"] and "typed · ✓ sent" in rendered[2]["content"]


def test_tool_calls_show_name_arguments_status_and_result_newest_first() -> None:
    remote = RemoteSessionState()
    remote = attrs.evolve(
        remote,
        tool_calls=remote.tool_calls.appended(
            ToolCall(call_id="1", name="get_weather", arguments='{"city": "Paris"}', status="done",
                     output="sunny and 21 degrees")
        ).appended(ToolCall(call_id="2", name="book", arguments="not json <x>", status="error", message="no seats")),
        usage=SessionUsage(models=(
            LLMUsage(provider="lkstate", model="scripted", input_tokens=42, output_tokens=10),
            TTSUsage(provider="lkstate", model="tone", characters_count=45, audio_duration=2.8),
        )),
    )
    html = tools_html(remote)
    assert html.index("book(") < html.index("get_weather("), "newest first"
    assert 'get_weather(city=&quot;Paris&quot;)' in html and "sunny and 21 degrees" in html
    assert 'data-status="error"' in html and "no seats" in html and "not json &lt;x&gt;" in html
    assert "LLM lkstate/scripted: 42 in · 10 out tokens" in html
    assert "TTS lkstate/tone: 45 chars · 2.8 s audio" in html
    empty = tools_html(RemoteSessionState())
    assert "No tool calls yet." in empty and "No usage reported yet." in empty


def test_problems_are_listed_newest_first_with_agent_errors() -> None:
    state = SessionState(
        problems=(Problem(at=1, source="lk.chat", message="old"), Problem(at=2, source="connection", message="new <b>")),
        remote=attrs.evolve(RemoteSessionState(), errors=("the LLM timed out",), error_count=1),
    )
    html = problems_html(state)
    assert html.index("new &lt;b&gt;") < html.index("old")
    assert "<b>agent</b>: the LLM timed out" in html
    assert 'data-count="3"' in html
    assert "No problems." in problems_html(SessionState())


def fold(state: SessionState, *events: ev.Event) -> SessionState:
    for event in events:
        state = reduce(state, event)
    return state


def test_rpc_calls_show_between_tool_calls_and_usage_once_there_is_one() -> None:
    listening = with_agent(AgentStatus.LISTENING)
    registered = fold(listening, ev.RpcMethodsChanged(at=1.0, methods=("get_location",)))
    assert rpc_html(registered) == "", "methods alone are not activity: no RPC section"
    assert "RPC" not in activity_html(registered)
    state = fold(
        registered,
        ev.RpcCallStarted(at=2.0, call_id="rpc/in/1", direction=RpcDirection.INCOMING, method="get_location",
                          caller="agent-1", callee="user-1"),
        ev.RpcCallFinished(at=2.25, call_id="rpc/in/1", status=RpcStatus.SUCCEEDED),
        ev.RpcCallStarted(at=3.0, call_id="rpc/in/2", direction=RpcDirection.INCOMING, method="get_location",
                          caller="<img src=x>", callee="user-1"),
        ev.RpcCallFinished(at=3.0, call_id="rpc/in/2", status=RpcStatus.REFUSED,
                           error="Refused a call of 'get_location' from '<img src=x>': only the agent may call it."),
    )
    html = rpc_html(state)
    assert 'data-total="2"' in html and "RPC · 2 calls" in html
    assert html.index('data-status="refused"') < html.index('data-status="ok"'), "newest first"
    assert "<code>agent → app: get_location</code>" in html and '<span class="lk-took">250 ms</span>' in html
    assert "<img" not in html and "&lt;img src=x&gt; → app: get_location" in html, "a caller's identity is shown, not run"
    assert f'<span class="lk-badge" style="--lk-color: {Tone.ERROR.colour}">refused</span>' in html
    assert "from &#x27;&lt;img src=x&gt;&#x27;: only the agent may call it." in html
    assert "This app answers get_location." in html
    page = activity_html(state)
    assert page.index("Tool calls") < page.index("RPC · 2 calls") < page.index("Usage")


def test_how_the_agent_sounds_is_beside_its_status_while_it_speaks_and_on_its_message() -> None:
    speaking = fold(
        SessionState(),
        ev.StartRequested(at=1.0),
        ev.RoomConnected(at=1.1, room_name="room-1", local_identity="user-1", server_url="ws://x"),
        ev.ParticipantJoined(at=1.2, identity="agent-1", name="", kind="agent",
                             attributes=(("lk.agent.name", "helper"), ("lk.agent.state", "speaking"))),
        ev.TranscriptReceived(at=1.3, sender="agent-1", segment_id="s1", stream_seq=1, text="Oh!", final=True,
                              closed=True, attributes=(("lk.expression", '{"expression": "<warm>", "mood": "happy"}'),)),
    )
    status = status_html(speaking)
    assert f'<span class="lk-expression" style="color: {Tone.SPEAKING.colour}">sounds happy (&lt;warm&gt;)</span>' in status
    (reply,) = chat_messages(speaking.messages)
    assert "spoken · sounds happy (&lt;warm&gt;)" in reply["content"]
    listening = fold(speaking, ev.ParticipantAttributesChanged(
        at=2.0, identity="agent-1", attributes=(("lk.agent.name", "helper"), ("lk.agent.state", "listening"))))
    assert "lk-expression" not in status_html(listening), "the turn is over; the message keeps how it sounded"
