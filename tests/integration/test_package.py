"""What `pip install lkstate` gives a user works, outside this checkout.

``python -m build`` makes an sdist and, from it, a wheel. The sdist is
installed (pip builds it again) with the ``agent`` extra into a clean
virtualenv, and ``lkstate demo --headless`` runs from there against a real
livekit-server and the example agent; then the wheel replaces it and must give
the same files. Nothing of the checkout is on ``sys.path``: the commands run
in the virtualenv's directory with ``PYTHONPATH`` removed.

The build and the install are the session-scoped ``distributions`` and
``installed_lkstate`` fixtures (tests/harness/package.py), made once per test
run and shared with the test kit's own installed test
(test_testing_kit_installed.py). The first run downloads the dependencies into
pip's cache; later runs take them from there.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.harness.package import REPO, Distributions, InstalledLkstate, outside_env
from tests.harness.server import require_livekit_server

pytestmark = [pytest.mark.wire, pytest.mark.agent, pytest.mark.timeout(1500)]


@pytest.fixture
def livekit_server_bin() -> str:
    return require_livekit_server()


def test_the_wheel_holds_the_library_the_adapters_and_the_typing_marker(distributions: Distributions) -> None:
    names = set(zipfile.ZipFile(distributions.wheel).namelist())
    for expected in ("lkstate/__init__.py", "lkstate/py.typed", "lkstate/_tooling/cli.py", "lkstate/demo_agent/agent.py",
                     "lkstate_textual/app.py", "lkstate_qt/app.py", "lkstate_gradio/app.py", "lkstate_trio/__init__.py"):
        assert expected in names, f"{expected} is missing from {distributions.wheel.name}"
    assert not any(name.startswith(("tests/", "adapters/", "examples/")) for name in names)


def test_the_installed_package_is_imported_from_the_virtualenv_not_the_checkout(installed_lkstate: InstalledLkstate) -> None:
    result = installed_lkstate.run(
        installed_lkstate.python, "-c",
        "import lkstate, lkstate.demo_agent, livekit.agents; print(lkstate.__file__)",
    )
    assert result.returncode == 0, result.stderr
    location = Path(result.stdout.strip())
    assert location.is_relative_to(installed_lkstate.venv) and not location.is_relative_to(REPO)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the demo's processes are Linux-tested")
def test_lkstate_demo_headless_runs_from_the_installed_package(
    installed_lkstate: InstalledLkstate, livekit_server_bin: str
) -> None:
    result = installed_lkstate.run(installed_lkstate.lkstate, "demo", "--headless", LIVEKIT_SERVER_BIN=livekit_server_bin)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.endswith("agent: listening") for line in lines), result.stdout
    assert any(line.endswith("agent said: You said: Hello!") for line in lines), result.stdout
    assert "stopping the demo agent and livekit-server" in result.stderr


def test_the_wheel_installs_the_same_files_as_the_sdist(
    installed_lkstate: InstalledLkstate, distributions: Distributions
) -> None:
    record = "import importlib.metadata as m; print('\\n'.join(sorted(str(f) for f in m.files('lkstate') if not str(f).startswith(('lkstate-', '../'))  and '__pycache__' not in str(f))))"
    from_sdist = installed_lkstate.run(installed_lkstate.python, "-c", record)
    reinstall = installed_lkstate.run(installed_lkstate.python, "-m", "pip", "install", "--quiet", "--no-deps",
                                      "--force-reinstall", distributions.wheel)
    assert reinstall.returncode == 0, reinstall.stderr
    from_wheel = installed_lkstate.run(installed_lkstate.python, "-c", record)
    assert from_sdist.returncode == 0 and from_wheel.returncode == 0, from_sdist.stderr + from_wheel.stderr
    assert from_wheel.stdout == from_sdist.stdout and "lkstate/_core/reducer.py" in from_wheel.stdout
    inspected = installed_lkstate.run(installed_lkstate.lkstate, "inspect", REPO / "examples" / "recordings" / "demo.jsonl",
                                    "--no-timeline")
    assert inspected.returncode == 0 and "state after step" in inspected.stdout, inspected.stderr


def test_the_pytest_plugin_runs_a_users_test_from_the_installed_package(
    installed_lkstate: InstalledLkstate, livekit_server_bin: str, tmp_path: Path
) -> None:
    # A user's project outside the checkout: the example test file as printed, and plain
    # pytest (the fixture installed it, as a user would), which finds lkstate's plugin
    # through its pytest11 entry point.
    project = tmp_path / "my-agent-tests"
    project.mkdir()
    (project / "test_my_agent.py").write_text((REPO / "examples" / "testing" / "test_demo_agent.py").read_text())
    (project / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")

    env = outside_env(LIVEKIT_SERVER_BIN=livekit_server_bin)  # as a user with the server on PATH
    for name in ("PYTEST_ADDOPTS", "LIVEKIT_URL"):
        env.pop(name, None)
    result = subprocess.run(
        [str(installed_lkstate.python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, timeout=300, cwd=project, env=env,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "1 passed" in result.stdout
