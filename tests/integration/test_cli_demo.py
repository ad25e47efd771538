"""`lkstate demo --headless` and `lkstate record`, run as a user runs them: real processes, real server, real agent.

The demo starts its own livekit-server and demo agent worker; these tests
check that it talks to the agent, that what it records replays to the very
same narration, and that nothing it started outlives it — whether it finishes,
is interrupted with Ctrl-C, or is terminated.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from lkstate._session.recording import read_recording
from tests.harness.server import LiveKitServer, require_livekit_server
from tests.harness.cli import assert_nothing_left, ctrl_c_works, lkstate_command, marked_env, processes_marked

REPO = Path(__file__).resolve().parents[2]
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

pytestmark = [
    pytest.mark.wire,
    pytest.mark.agent,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc"),
]


@pytest.fixture(autouse=True)
def _needs_a_server_binary() -> None:
    require_livekit_server()


def test_demo_headless_talks_to_the_agent_records_and_leaves_nothing_behind(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    recording = tmp_path / "demo.jsonl"
    result = subprocess.run(
        [*lkstate_command(), "demo", "--headless", "--record", str(recording)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path, env=marked_env(marker),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.endswith("agent: listening") for line in lines)
    assert any(line.endswith("you typed: Hello!") for line in lines)
    assert any(line.endswith("agent said: You said: Hello!") for line in lines)
    assert any(line.endswith("agent: disconnected") for line in lines)
    for step in ("livekit-server is up on ws://127.0.0.1:", "the demo agent is registered",
                 "stopping the demo agent and livekit-server"):
        assert step in result.stderr, f"progress line missing: {step}"
    assert_nothing_left(marker)

    # What was recorded replays to the very same narration (times included: they come from the events).
    replay = subprocess.run([*lkstate_command(), "replay", str(recording), "--headless"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout == result.stdout


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_the_demo_while_it_starts_stops_what_it_started(tmp_path: Path, how: signal.Signals) -> None:
    marker = uuid.uuid4().hex
    process = subprocess.Popen(
        [*lkstate_command(), "demo", "--headless"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=tmp_path, env=marked_env(marker), preexec_fn=ctrl_c_works,
    )
    try:
        assert process.stderr is not None
        seen: list[str] = []
        for line in process.stderr:  # wait until both the server and the agent worker are being started
            seen.append(line)
            if "starting the demo agent" in line:
                break
        else:
            pytest.fail("the demo never started its agent:\n" + "".join(seen))
        time.sleep(0.5)
        assert len(processes_marked(marker)) >= 3, "the demo, its server and its worker are running"
        process.send_signal(how)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert "Traceback" not in rest
    assert "stopping the demo agent and livekit-server" in rest
    assert_nothing_left(marker)


async def test_record_headless_against_any_server_writes_a_recording_without_secrets(
    livekit_server: LiveKitServer, worker_factory: Any, tmp_path: Path
) -> None:
    worker = await worker_factory(greeting="")
    out = tmp_path / "session.jsonl"
    result = subprocess.run(
        [*lkstate_command(), "record", "--out", str(out), "--headless",
         "--url", livekit_server.url, "--api-key", livekit_server.api_key, "--api-secret", livekit_server.api_secret,
         "--agent-name", worker.agent_name, "--say", "What's the weather in Paris?"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "agent said: The weather in Paris is sunny and 21 degrees." in result.stdout
    assert "recorded" in result.stderr and str(out) in result.stderr
    text = out.read_text()
    assert livekit_server.api_secret not in text and not JWT.search(text)
    header, events = read_recording(out)
    assert dict(header.metadata)["command"] == "lkstate record"
    assert any(type(e).__name__ == "AgentSessionPayload" for e in events)
