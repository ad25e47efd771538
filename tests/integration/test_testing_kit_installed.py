"""The test kit as a user meets it: installed from a wheel, in a fresh virtualenv, run with plain pytest.

What this proves: the wheel built from this checkout ships the kit
(``lkstate.testing``, the ``lkstate_pytest`` plugin and its ``pytest11``
entry point); pytest discovers the plugin from the installed distribution
alone — no conftest, no ``-p``, outside the repository, with the checkout
nowhere on ``sys.path`` — and its fixtures start the server and the demo
worker, dispatch it, and run a user's few-line test file: one expectation
that passes and one that fails with the timeline and a recording path in its
message.

What it does not prove: that the dependencies resolve from PyPI (that is
tests/integration/test_package.py's clean install). To keep this test offline
and quick, the fresh venv sees the shared venv's site-packages through a
``.pth`` file (livekit, livekit-agents, pytest, pytest-asyncio…);
only lkstate itself comes from the wheel (``--no-deps``), and it is the copy
that is imported (checked).
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from tests.harness.package import build_distributions, outside_env
from tests.harness.server import REPO_ROOT, LiveKitServer

pytestmark = [pytest.mark.wire, pytest.mark.agent, pytest.mark.timeout(600)]

EXAMPLE = REPO_ROOT / "examples" / "testing" / "test_demo_agent.py"

FAILING_TEST = '''

async def test_the_agent_promises_rain(agent_session):
    session = await agent_session()
    await session.send_text("What's the weather in Oslo?")
    await expect(session).agent_says(r"rain", timeout=8)
'''


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)  # type: ignore[call-overload]


def fresh_venv(where: Path, wheel: Path) -> Path:
    """A new venv with the wheel installed, borrowing the shared venv's packages through a .pth file."""
    created = run([sys.executable, "-m", "venv", "--without-pip", str(where)])
    assert created.returncode == 0, created.stderr
    python = where / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "shared-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # outside_env: with the checkout on PYTHONPATH, pip would find its lkstate.egg-info and install nothing
    installed = run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                    env=outside_env())
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


def test_a_users_test_file_runs_with_plain_pytest_against_the_installed_kit(
    tmp_path: Path, livekit_server: LiveKitServer
) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    wheel = build_distributions(dist).wheel  # python -m build, as tests/integration/test_package.py does
    python = fresh_venv(tmp_path / "venv", wheel)
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
    assert where.stdout.startswith(str(tmp_path / "venv")) and str(REPO_ROOT) not in where.stdout, where

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
