"""The test kit's expectations: they wait for what a UI would show, and a failure tells what happened.

A recorded conversation is played back by a :class:`Replay` (the same read
API as a live session, and the same reducer), so each expectation meets the
state exactly as a session would produce it: the user asks for the weather,
the agent thinks, calls ``get_weather(city="Paris")`` and says it is sunny.
The wire versions are in tests/integration/test_testing_kit_wire.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from livekit.protocol.agent_pb import agent_session as pb

from lkstate import Role
from lkstate._core import events as ev
from lkstate.recording import Recorder, Replay, read_recording
from lkstate.testing import ExpectationFailed, entrypoint_spec, expect, watch

llm = pytest.importorskip("livekit.agents.llm")
from livekit.agents._proto import encode_chat_item  # noqa: E402

USER = "user-1"
AGENT = "agent-1"


def agent_state(at: float, state: str) -> ev.ParticipantAttributesChanged:
    return ev.ParticipantAttributesChanged(at=at, identity=AGENT, attributes=(("lk.agent.state", state),))


def tool_call(at: float) -> ev.AgentSessionPayload:
    call = llm.FunctionCall(call_id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    added = pb.AgentSessionEvent.ConversationItemAdded(item=encode_chat_item(call))
    payload = pb.AgentSessionMessage(event=pb.AgentSessionEvent(conversation_item_added=added))
    return ev.AgentSessionPayload(at=at, sender=AGENT, payload=payload.SerializeToString())


CONVERSATION: tuple[ev.Event, ...] = (
    ev.StartRequested(at=1.0),
    ev.RoomConnected(at=1.1, room_name="room", local_identity=USER, server_url="ws://127.0.0.1:7880"),
    ev.ParticipantJoined(at=1.2, identity=AGENT, name="", kind="agent", attributes=(("lk.agent.state", "listening"),)),
    ev.ChatSendRequested(at=1.3, message_id="chat/1", text="What's the weather in Paris?", sender=USER),
    ev.ChatSendSucceeded(at=1.31, message_id="chat/1"),
    agent_state(1.32, "thinking"),
    tool_call(1.33),
    agent_state(1.34, "speaking"),
    ev.TranscriptReceived(at=1.35, sender=AGENT, segment_id="seg-1", stream_seq=0,
                          text="The weather in Paris is sunny.", final=True, closed=True),
    agent_state(1.36, "listening"),
)


def recorded(tmp_path: Path) -> tuple[Replay, Path]:
    """The conversation as a recording on disk, and a replay of it at the start, watched."""
    path = tmp_path / "conversation.jsonl"
    with Recorder(path) as recorder:
        for event in CONVERSATION:
            recorder.write(event)
    header, events = read_recording(path)
    replay = Replay(events, header=header, speed=50.0)
    watch(replay, recording=path)
    return replay, path


async def test_an_expectation_waits_for_the_agent_to_say_it_and_returns_the_message(tmp_path: Path) -> None:
    replay, _ = recorded(tmp_path)
    playing = asyncio.create_task(replay.run())
    message = await expect(replay).agent_says(r"sunny", timeout=5)
    await playing
    assert message.role is Role.AGENT and message.final
    assert message.text == "The weather in Paris is sunny."


async def test_a_tool_call_is_matched_by_name_and_the_arguments_named() -> None:
    replay = Replay(CONVERSATION)
    await replay.run(speed=float("inf"))
    call = await expect(replay).agent_calls("get_weather", city="Paris")
    assert (call.name, call.arguments) == ("get_weather", '{"city": "Paris"}')
    assert await expect(replay).agent_calls("get_weather") == call, "no arguments named: any call of the tool"
    with pytest.raises(ExpectationFailed, match=re.escape("get_weather({\"city\": \"Paris\"})")):
        await expect(replay).agent_calls("get_weather", city="Lyon", timeout=0.05)


async def test_the_user_side_is_matched_separately_from_the_agent() -> None:
    replay = Replay(CONVERSATION)
    await replay.run(speed=float("inf"))
    assert (await expect(replay).user_says(r"weather in Paris")).role is Role.USER
    with pytest.raises(ExpectationFailed):
        await expect(replay).user_says(r"sunny", timeout=0.05)


async def test_a_watched_session_remembers_a_state_the_agent_only_passed_through(tmp_path: Path) -> None:
    replay, _ = recorded(tmp_path)
    await replay.run(speed=float("inf"))
    assert replay.state.agent.state == "listening"
    await expect(replay).agent_reaches("thinking", timeout=0.05)

    unwatched = Replay(CONVERSATION)
    await unwatched.run(speed=float("inf"))
    with pytest.raises(ExpectationFailed, match="the agent to reach 'thinking'"):
        await expect(unwatched).agent_reaches("thinking", timeout=0.05)


async def test_a_failed_expectation_shows_the_timeline_as_inspect_prints_it_and_the_recording(
    tmp_path: Path,
) -> None:
    replay, path = recorded(tmp_path)
    await replay.run(speed=float("inf"))
    with pytest.raises(ExpectationFailed) as failed:
        await expect(replay).agent_says(r"rain(y|ing)", timeout=0.1)
    error = failed.value
    assert isinstance(error, AssertionError), "pytest shows it as a failed assertion"
    text = str(error)
    assert text.startswith("Expected the agent to say something matching 'rain(y|ing)' within 0.1 s")
    assert "The agent's side said:\n  'The weather in Paris is sunny.'" in text
    assert f"as `lkstate inspect {path}` prints it" in text
    assert "timeline (step, seconds since the first event, event):" in text
    assert re.search(r"\s+9\s+\+0\.350\s+TranscriptReceived", text), "every event, numbered and timed"
    assert "state after step 10 of 10:" in text and "agent: listening" in text
    assert "tool get_weather" in text
    assert error.recording == path and f"Recording: {path}" in text


async def test_a_session_without_a_recording_still_shows_its_state_and_says_why_no_timeline() -> None:
    replay = Replay(CONVERSATION)
    await replay.run(speed=float("inf"))
    with pytest.raises(ExpectationFailed) as failed:
        await expect(replay).state_satisfies(lambda s: len(s.messages) > 5, "more than five messages", timeout=0.05)
    text = str(failed.value)
    assert text.startswith("Expected more than five messages within 0.05 s")
    assert "not recorded" in text and "messages (2):" in text
    assert failed.value.recording is None


def test_the_pytest_plugin_imports_neither_livekit_nor_lkstate_when_pytest_starts() -> None:
    code = (
        "import sys, lkstate_pytest\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('livekit', 'lkstate', 'numpy', 'aiohttp'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def module_level_entrypoint() -> None:
    """Stands for an agent's entrypoint defined at module level."""


def test_an_agent_is_named_for_its_worker_by_module_and_name() -> None:
    assert entrypoint_spec("my_agent:entrypoint") == "my_agent:entrypoint"
    assert entrypoint_spec(module_level_entrypoint) == f"{__name__}:module_level_entrypoint"
    assert entrypoint_spec(CONVERSATION) == f"{__name__}:CONVERSATION", "an object: the global holding it"
    with pytest.raises(ValueError, match="not a global of an importable module"):
        entrypoint_spec(lambda ctx: None)


def test_without_a_server_and_without_go_the_fixture_says_what_to_install(tmp_path: Path) -> None:
    """The ``livekit_server`` fixture, in a pytest run of its own, on a machine with neither."""
    (tmp_path / "test_needs_server.py").write_text(
        "import lkstate._tooling.devserver as devserver\n"
        "devserver.find_livekit_server = lambda *args, **kwargs: None  # no server anywhere\n"
        "def test_it(livekit_server):\n"
        "    pass\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LKSTATE_ALLOW_SKIP", "LIVEKIT_SERVER_BIN")}
    env["PATH"] = str(tmp_path)  # no go either
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # the plugin by name alone, installed entry point or not
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "lkstate_pytest", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Go is not available to build it" in run.stdout and "Install Go" in run.stdout, run.stdout
    assert "LKSTATE_ALLOW_SKIP=1" in run.stdout

    env["LKSTATE_ALLOW_SKIP"] = "1"
    skipped = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "lkstate_pytest", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout
