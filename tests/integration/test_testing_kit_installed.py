"""The test kit as a user meets it: installed from the built package, in a clean virtualenv, run with plain pytest.

What this proves: the package built from this checkout ships the kit
(``lkstate.testing``, the ``lkstate_pytest`` plugin and its ``pytest11``
entry point); pytest discovers the plugin from the installed distribution
alone — no conftest, no ``-p``, outside the repository, with the checkout
nowhere on ``sys.path`` — and its fixtures start the server and the demo
worker, dispatch it, and run a user's few-line test file: one expectation
that passes and one that fails with the timeline and a recording path in its
message.

The virtualenv is the session-scoped ``installed_lkstate`` of
tests/harness/package.py, shared with tests/integration/test_package.py: one
build and one clean install (dependencies resolved by pip, as from PyPI) per
test run, whichever of the two files runs first.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.harness.package import InstalledLkstate, outside_env
from tests.harness.server import REPO_ROOT, LiveKitServer

pytestmark = [pytest.mark.wire, pytest.mark.agent, pytest.mark.timeout(1500)]  # the shared build and install may be made here

EXAMPLE = REPO_ROOT / "examples" / "testing" / "test_demo_agent.py"

FAILING_TEST = '''

async def test_the_agent_promises_rain(agent_session):
    session = await agent_session()
    await session.send_text("What's the weather in Oslo?")
    await expect(session).agent_says(r"rain", timeout=8)
'''


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)  # type: ignore[call-overload]


def test_a_users_test_file_runs_with_plain_pytest_against_the_installed_kit(
    tmp_path: Path, livekit_server: LiveKitServer, installed_lkstate: InstalledLkstate
) -> None:
    python = installed_lkstate.python
    project = tmp_path / "my-agent-tests"
    project.mkdir()
    # the example as printed, and one expectation the demo agent cannot meet
    (project / "test_my_agent.py").write_text(EXAMPLE.read_text() + textwrap.dedent(FAILING_TEST))
    (project / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    env = outside_env(LIVEKIT_SERVER_BIN=str(livekit_server.binary))  # as a user with the server on PATH
    for name in ("PYTEST_ADDOPTS", "LIVEKIT_URL"):
        env.pop(name, None)

    where = run([str(python), "-c", "import lkstate, lkstate_pytest; print(lkstate.__file__, lkstate_pytest.__file__)"],
                cwd=project, env=env)
    assert where.stdout.startswith(str(installed_lkstate.venv)) and str(REPO_ROOT) not in where.stdout, where

    result = run([str(python), "-m", "pytest", "-q"], cwd=project, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 failed, 1 passed" in output, output
    assert "FAILED test_my_agent.py::test_the_agent_promises_rain" in output, output
    assert "Expected the agent to say something matching 'rain' within 8 s" in output, output
    assert "'The weather in Oslo is sunny and 21 degrees.'" in output, output
    assert "timeline (step, seconds since the first event, event):" in output, output
    recording = next(line.split("Recording: ", 1)[1].strip() for line in output.splitlines() if "Recording: " in line)
    assert Path(recording).is_file() and recording.endswith(".jsonl"), output
