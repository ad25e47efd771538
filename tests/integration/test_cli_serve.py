"""`lkstate serve`: the demo's server and agent for another program, and how it stops.

The README example runs against it in ``test_readme.py``; these tests pin down
the rest of what it promises: the environment also goes into a file that a
shell can ``source`` and that disappears when serve stops (SIGTERM, as a
service manager stops it, is as clean as Ctrl-C), and when what it started
dies under it, serve says so in words and stops instead of serving nothing.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.harness.cli import assert_nothing_left, processes_marked, start_serve, stop
from tests.harness.server import require_livekit_server

pytestmark = [
    pytest.mark.wire,
    pytest.mark.agent,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc"),
]


@pytest.fixture(autouse=True)
def _needs_a_server_binary() -> None:
    require_livekit_server()


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


def test_when_its_server_dies_serve_says_so_and_stops_what_is_left() -> None:
    marker = uuid.uuid4().hex
    serve, _, _ = start_serve(marker)
    try:
        servers = [line for line in processes_marked(marker) if "livekit-server" in line.split()[0]]
        assert len(servers) == 1, processes_marked(marker)
        pid = next(int(p) for p in os.listdir("/proc") if p.isdigit() and _cmdline(p) == servers[0])
        os.kill(pid, signal.SIGKILL)
        _, rest = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
    assert serve.returncode == 2, rest
    assert "lkstate: livekit-server stopped on its own, so `lkstate serve` stops too." in rest
    assert "Traceback" not in rest
    assert_nothing_left(marker)


def _cmdline(pid: str) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
