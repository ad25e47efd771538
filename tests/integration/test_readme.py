"""The README's usage example works as printed, against what `lkstate serve` starts.

The README tells a reader to run ``lkstate serve`` in one terminal, set the
environment it prints, and run the example in another. This test does exactly
that with real processes: the printed ``export`` lines are the example's only
configuration, and Ctrl-C (then SIGTERM, for a service manager) stops
``serve`` with everything it started.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.harness.cli import assert_nothing_left, ctrl_c_works, lkstate_command, marked_env, processes_marked
from tests.harness.server import find_livekit_server

README = Path(__file__).resolve().parents[2] / "README.md"
SERVE_VARIABLES = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LKSTATE_AGENT_NAME")

pytestmark = [
    pytest.mark.wire,
    pytest.mark.agent,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc"),
]


@pytest.fixture(autouse=True)
def _needs_a_server_binary() -> None:
    if find_livekit_server() is None:
        message = "livekit-server not found; run scripts/install-livekit-server"
        if os.environ.get("LKSTATE_ALLOW_SKIP") == "1":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)


def usage_example() -> str:
    section = README.read_text().split("## Use", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README has a python example under ## Use"
    return match.group(1)


def start_serve(marker: str, *arguments: str) -> tuple[subprocess.Popen[str], dict[str, str], list[str]]:
    """`lkstate serve` as a person starts it; returns it, the environment it printed, and its progress so far."""
    process = subprocess.Popen(
        [*lkstate_command(), "serve", *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=marked_env(marker), preexec_fn=ctrl_c_works,
    )
    assert process.stdout is not None and process.stderr is not None
    printed: dict[str, str] = {}
    for line in process.stdout:  # the export lines, printed once the agent is registered
        words = shlex.split(line)
        assert words[0] == "export" and len(words) == 2, f"not an export line: {line!r}"
        name, value = words[1].split("=", 1)
        printed[name] = value
        if len(printed) == len(SERVE_VARIABLES):
            break
    progress: list[str] = []
    for line in process.stderr:
        progress.append(line)
        if "ready:" in line:
            break
    return process, printed, progress


def stop(process: subprocess.Popen[str], how: signal.Signals) -> str:
    try:
        process.send_signal(how)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return rest


async def run_the_example(environment: dict[str, str]) -> tuple[int, str, str]:
    env = {name: value for name, value in os.environ.items()
           if name not in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_TOKEN",
                           "LKSTATE_TOKEN_ENDPOINT", "LKSTATE_AGENT_NAME")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", usage_example(), env={**env, **environment},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_the_readme_example_runs_as_printed_against_lkstate_serve() -> None:
    marker = uuid.uuid4().hex
    serve, environment, progress = start_serve(marker)
    try:
        assert sorted(environment) == sorted(SERVE_VARIABLES), progress
        assert environment["LIVEKIT_URL"].startswith("ws://127.0.0.1:")
        assert environment["LKSTATE_AGENT_NAME"] == "lkstate-demo"
        assert len(processes_marked(marker)) >= 3, "serve, its livekit-server and its agent worker are running"

        returncode, output, errors = await run_the_example(environment)

        assert returncode == 0, output + errors[-1500:]
        lines = output.splitlines()
        assert lines[0] == "disconnected" and "listening" in lines, output
        assert any("Paris" in line for line in lines), output
        assert serve.poll() is None, "serve keeps running after a program has come and gone"
    finally:
        rest = stop(serve, signal.SIGINT)
    assert serve.returncode == 0, "Ctrl-C is how serve is meant to stop: " + rest
    assert "Traceback" not in rest
    assert "stopping the demo agent and livekit-server" in rest
    assert_nothing_left(marker)


def test_serve_writes_an_env_file_while_it_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    env_file = tmp_path / "livekit.env"
    serve, environment, progress = start_serve(marker, "--env-file", str(env_file), "--agent-name", "serve-test")
    try:
        assert environment["LKSTATE_AGENT_NAME"] == "serve-test"
        assert str(env_file) in "".join(progress)
        sourced = subprocess.run(
            ["bash", "-c", f'source {shlex.quote(str(env_file))} && env'], capture_output=True, text=True, check=True,
        ).stdout.splitlines()
        assert all(f"{name}={value}" in sourced for name, value in environment.items())
    finally:
        rest = stop(serve, signal.SIGTERM)
    assert serve.returncode == 0, rest
    assert not env_file.exists(), "the env file names a server that is gone, so serve removes it"
    assert_nothing_left(marker)
