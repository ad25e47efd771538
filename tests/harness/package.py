"""lkstate as a user gets it from PyPI: built with ``python -m build``, installed in a clean virtualenv.

Tests of the installed package (``tests/integration/test_package.py``, and the
test kit's ``tests/integration/test_testing_kit_installed.py``) use the
session-scoped fixtures :func:`distributions` and :func:`installed_lkstate`:
one ``python -m build`` and one clean install per test run, whichever of those
tests run and in whatever order (building and installing is most of what they
cost). The result is an :class:`InstalledLkstate` that runs commands from that
virtualenv, outside the checkout, with nothing of the checkout on ``sys.path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import attrs
import pytest

__all__ = [
    "REPO",
    "USER_TEST_TOOLS",
    "Distributions",
    "InstalledLkstate",
    "build_distributions",
    "clean_install",
    "distributions",
    "installed_lkstate",
    "outside_env",
]

REPO = Path(__file__).resolve().parents[2]


@attrs.frozen
class Distributions:
    sdist: Path
    wheel: Path


@attrs.frozen
class InstalledLkstate:
    """A clean virtualenv with lkstate installed from a distribution file."""

    venv: Path
    cwd: Path
    """A directory outside the checkout to run commands in."""

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def lkstate(self) -> Path:
        return self.venv / "bin" / "lkstate"

    def run(self, *command: str | os.PathLike[str], timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([os.fspath(c) for c in command], capture_output=True, text=True, timeout=timeout,
                              cwd=self.cwd, env=outside_env(**env))


def outside_env(**extra: str) -> dict[str, str]:
    """This environment without anything that would put the checkout on ``sys.path``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "PYTHONNOUSERSITE": "1", **extra}


def build_distributions(out_dir: Path, *, timeout: float = 600) -> Distributions:
    """``python -m build``: an sdist, then a wheel built from that sdist (so the wheel proves the sdist complete)."""
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out_dir), str(REPO)],
        capture_output=True, text=True, timeout=timeout, cwd=out_dir, env=outside_env(),
    )
    if result.returncode != 0:
        raise AssertionError(f"python -m build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    sdists, wheels = sorted(out_dir.glob("lkstate-*.tar.gz")), sorted(out_dir.glob("lkstate-*-py3-none-any.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, f"expected one sdist and one wheel, got {os.listdir(out_dir)}"
    return Distributions(sdist=sdists[0], wheel=wheels[0])


def clean_install(where: Path, distribution: Path, *, extras: str = "", timeout: float = 900) -> InstalledLkstate:
    """A new virtualenv (no system site-packages) at ``where`` with ``distribution[extras]`` installed by pip."""
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    installed = InstalledLkstate(venv=where, cwd=where)
    target = f"{distribution}[{extras}]" if extras else str(distribution)
    result = subprocess.run(
        [str(installed.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", target],
        capture_output=True, text=True, timeout=timeout, cwd=where, env=outside_env(),
    )
    if result.returncode != 0:
        raise AssertionError(f"pip install {target} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return installed


USER_TEST_TOOLS = ("pytest>=8", "pytest-asyncio>=0.24")
"""What a user adds to run their own tests with lkstate's pytest plugin."""


@pytest.fixture(scope="session")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> Distributions:
    """The sdist and the wheel of this checkout, built once per test run."""
    return build_distributions(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def installed_lkstate(tmp_path_factory: pytest.TempPathFactory, distributions: Distributions) -> InstalledLkstate:
    """A clean virtualenv with the sdist installed with the ``agent`` extra, then a user's test tools.

    Installed as a user would, in two steps: ``pip install "lkstate[agent]"``,
    then ``pip install pytest pytest-asyncio`` for their own tests (which find
    lkstate's plugin through its ``pytest11`` entry point). Shared by every
    test of the installed package; a test that changes it (the wheel
    reinstalled over the sdist) must leave the same files behind.
    """
    installed = clean_install(tmp_path_factory.mktemp("clean") / "venv", distributions.sdist, extras="agent")
    tools = installed.run(
        installed.python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *USER_TEST_TOOLS,
        timeout=600,
    )
    if tools.returncode != 0:
        raise AssertionError(f"pip install {' '.join(USER_TEST_TOOLS)} failed:\n{tools.stderr[-3000:]}")
    return installed
