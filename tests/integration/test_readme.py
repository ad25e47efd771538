"""The README's usage example works as printed, against what `lkstate serve` starts.

The README tells a reader to run ``lkstate serve`` in one terminal, set the
environment it prints, and run the example in another. This test does exactly
that with real processes: the printed ``export`` lines are the example's only
configuration, and Ctrl-C stops ``serve`` with everything it started.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.harness.cli import assert_nothing_left, processes_marked, start_serve, stop
from tests.harness.server import find_livekit_server

README = Path(__file__).resolve().parents[2] / "README.md"

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


def run_the_example(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The example in a new Python, configured by ``environment`` alone."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_TOKEN",
                           "LKSTATE_TOKEN_ENDPOINT", "LKSTATE_AGENT_NAME")}
    return subprocess.run([sys.executable, "-c", usage_example()], env={**env, **environment},
                          capture_output=True, text=True, timeout=90)


def test_the_readme_example_runs_as_printed_against_lkstate_serve() -> None:
    marker = uuid.uuid4().hex
    serve, environment, progress = start_serve(marker)
    try:
        assert sorted(environment) == ["LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_URL", "LKSTATE_AGENT_NAME"], progress
        assert environment["LIVEKIT_URL"].startswith("ws://127.0.0.1:")
        assert environment["LKSTATE_AGENT_NAME"] == "lkstate-demo"
        assert len(processes_marked(marker)) >= 3, "serve, its livekit-server and its agent worker are running"

        example = run_the_example(environment)

        output = example.stdout
        assert example.returncode == 0, output + example.stderr[-1500:]
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
