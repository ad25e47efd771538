"""The test kit over the wire: a real server, a real worker dispatched by name, a real client.

These use the fixtures exactly as a user's tests do (``agent_session``,
``worker_factory``, ``make_session``), against lkstate's demo agent and
against agents written the way users write them — an entrypoint function in
a file, and an ``AgentServer`` object registered under another name — with
the kit's offline models.
"""

from __future__ import annotations

import math
import struct
import textwrap
import wave
from pathlib import Path
from typing import Any

import pytest

from lkstate import Role
from lkstate.testing import ExpectationFailed, expect

pytestmark = pytest.mark.agent

USER_AGENT = '''
from livekit.agents import Agent, AgentServer, JobContext
from lkstate.demo_agent import room_options
from lkstate.testing.models import ScriptedLLM, ToneTTS, ScriptedSTT, build_session

{server}
async def entrypoint(ctx: JobContext) -> None:
    session = build_session(stt=ScriptedSTT(), llm=ScriptedLLM(["{reply}"]), tts=ToneTTS())
    await session.start(agent=Agent(instructions="Be brief."), room=ctx.room, room_options=room_options())
'''


async def test_the_demo_agent_is_dispatched_calls_its_tool_and_answers(agent_session: Any) -> None:
    session = await agent_session()
    assert session.state.agent.state == "listening"
    await session.send_text("What's the weather in Paris?")

    call = await expect(session).agent_calls("get_weather", city="Paris")
    said = await expect(session).agent_says(r"sunny and 21 degrees")
    await expect(session).agent_reaches("thinking")  # passed through, perhaps before we asked

    assert call.name == "get_weather"
    assert said.role is Role.AGENT and said.text == "The weather in Paris is sunny and 21 degrees."


async def test_a_failed_expectation_against_a_real_agent_shows_what_it_did(agent_session: Any) -> None:
    session = await agent_session()
    await session.send_text("Hello!")
    await expect(session).agent_says(r"You said: Hello")
    with pytest.raises(ExpectationFailed) as failed:
        await expect(session).agent_says(r"Goodbye", timeout=1.0)
    text = str(failed.value)
    recording = failed.value.recording
    assert recording is not None and recording.exists()
    assert "The agent's side said:\n  'You said: Hello!'" in text
    assert "timeline (step, seconds since the first event, event):" in text and "TranscriptReceived" in text
    assert f"Recording: {recording}" in text


async def test_a_users_entrypoint_in_a_file_runs_as_a_worker_and_is_dispatched(
    worker_factory: Any, make_session: Any, tmp_path: Path
) -> None:
    agent_file = tmp_path / "my_agent.py"
    agent_file.write_text(textwrap.dedent(USER_AGENT.format(server="", reply="Bonjour from my agent.")))
    worker = await worker_factory(f"{agent_file}:entrypoint")

    session = make_session(agent_name=worker.agent_name)
    await session.start()
    await session.send_text("Hi")
    await expect(session).agent_says(r"^Bonjour from my agent\.$")


async def test_a_users_server_object_is_registered_under_the_tests_agent_name(
    worker_factory: Any, make_session: Any, tmp_path: Path
) -> None:
    server = 'server = AgentServer()\n@server.rtc_session(agent_name="production-name")'
    agent_file = tmp_path / "served_agent.py"
    agent_file.write_text(USER_AGENT.format(server=server, reply="Served."))
    worker = await worker_factory(str(agent_file))  # no name: the module's server

    assert worker.agent_name != "production-name"
    session = make_session(agent_name=worker.agent_name)
    await session.start()
    await session.send_text("Hi")
    await expect(session).agent_says(r"^Served\.$")


def tone_then_silence(path: Path, rate: int = 48000) -> Path:
    """One loud second of 440 Hz (well above ScriptedSTT's threshold), then 1.5 s of silence."""
    loud = [int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(rate)]
    samples = loud + [0] * int(rate * 1.5)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return path


async def test_audio_from_a_wav_file_is_heard_transcribed_and_answered(agent_session: Any, tmp_path: Path) -> None:
    session = await agent_session(audio=tone_then_silence(tmp_path / "speech.wav"))
    heard = await expect(session).user_says(r"Hello there", timeout=20)  # the demo STT's transcript
    await expect(session).agent_says(r"You said: Hello there")
    assert heard.role is Role.USER and heard.final


KILLED_RUN = '''
import os, sys, time, asyncio
from lkstate.testing import LiveKitServer
from lkstate.testing.workers import start_worker

server = LiveKitServer().start()
from pathlib import Path
worker = asyncio.run(start_worker(server, agent_name="orphan-check", log_dir=Path(sys.argv[1])))
print(server.pid, worker.pid, flush=True)
time.sleep(120)  # killed long before this
'''


def test_a_killed_test_run_leaves_no_server_or_worker_behind(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "killed_run.py"
    script.write_text(KILLED_RUN)
    run = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert run.stdout is not None
        server_pid, worker_pid = (int(pid) for pid in run.stdout.readline().split())
    finally:
        run.send_signal(signal.SIGKILL)  # as a CI timeout or a second Ctrl-C would
        run.wait(10)

    def alive(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().split(") ")[1][0] != "Z"  # a zombie has stopped; init reaps it
        except OSError:
            return False

    deadline = time.monotonic() + 20
    while (alive(server_pid) or alive(worker_pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in (server_pid, worker_pid) if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "the killed run left processes behind"
