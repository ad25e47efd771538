"""lkstate as a user gets it from PyPI: built with ``python -m build``, installed in a clean virtualenv.

Tests of the installed package (``tests/integration/test_package.py``) use
:func:`build_distributions` and :func:`clean_install`; the result is an
:class:`InstalledLkstate` that runs commands from that virtualenv, outside the
checkout, with nothing of the checkout on ``sys.path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import attrs

__all__ = ["REPO", "Distributions", "InstalledLkstate", "build_distributions", "clean_install", "outside_env"]

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
