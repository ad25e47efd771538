"""lkstate as a user gets it from PyPI: built with ``python -m build``, installed in a clean virtualenv.

Tests of the installed package (``tests/integration/test_package.py``, and the
test kit's ``tests/integration/test_testing_kit_installed.py``) use the
session-scoped fixtures :func:`distributions` and :func:`installed_lkstate`:
one ``python -m build`` and one clean install per test run, whichever of those
tests run and in whatever order (building and installing is most of what they
cost), started in the background as soon as such a test is collected
(:class:`Preparation`). The result is an :class:`InstalledLkstate` that runs commands from that
virtualenv, outside the checkout, with nothing of the checkout on ``sys.path``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import venv
from pathlib import Path
from typing import TypeVar

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
    "finish",
    "install_for_a_user",
    "installed_lkstate",
    "outside_env",
    "prepare_early",
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


# setuptools writes lkstate.egg-info/ and lkstate-<version>/ into the checkout while it
# builds the sdist, so two builds of one checkout at once (two pytest-xdist workers, each
# with its own Preparation) delete each other's files ("No such file or directory:
# 'lkstate-0.1.0/lkstate/...'"). A lock per checkout lets one build at a time.
_BUILD_LOCK = Path(tempfile.gettempdir()) / f"lkstate-build-{hashlib.sha256(bytes(REPO)).hexdigest()[:16]}.lock"


def build_distributions(out_dir: Path, *, timeout: float = 600) -> Distributions:
    """``python -m build``: an sdist, then a wheel built from that sdist (so the wheel proves the sdist complete)."""
    with open(_BUILD_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
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


def install_for_a_user(where: Path, distributions: Distributions) -> InstalledLkstate:
    """A clean virtualenv with the sdist installed with the ``agent`` extra, then a user's test tools.

    Installed as a user would, in two steps: ``pip install "lkstate[agent]"``,
    then ``pip install pytest pytest-asyncio`` for their own tests (which find
    lkstate's plugin through its ``pytest11`` entry point).
    """
    installed = clean_install(where, distributions.sdist, extras="agent")
    tools = installed.run(
        installed.python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *USER_TEST_TOOLS,
        timeout=600,
    )
    if tools.returncode != 0:
        raise AssertionError(f"pip install {' '.join(USER_TEST_TOOLS)} failed:\n{tools.stderr[-3000:]}")
    return installed


class Preparation:
    """The build and the clean install, made once, in a thread of their own.

    Both are subprocesses that mostly wait on pip's downloads, so
    :func:`prepare_early` starts them as soon as the tests that need them are
    collected, and the tests before those run meanwhile; the fixtures wait for
    whatever is not done yet. Without an early start the first fixture starts it.
    """

    def __init__(self, where: Path) -> None:
        self.where = where
        self._built: Distributions | BaseException | None = None
        self._installed: InstalledLkstate | BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lkstate-package-build", daemon=True)
        self._built_event = threading.Event()
        self._thread.start()

    def _run(self) -> None:
        try:
            dist = self.where / "dist"
            dist.mkdir(parents=True, exist_ok=True)
            built = build_distributions(dist)
            self._built = built
        except BaseException as error:  # handed to the fixture that waits for it
            self._built = self._installed = error
            return
        finally:
            self._built_event.set()
        try:
            self._installed = install_for_a_user(self.where / "clean" / "venv", built)
        except BaseException as error:
            self._installed = error

    def distributions(self) -> Distributions:
        self._built_event.wait()
        return _result(self._built)

    def installed(self) -> InstalledLkstate:
        self._thread.join()
        return _result(self._installed)

    def wait(self, timeout: float | None = None) -> None:
        """For the end of the run: whatever is still going on is finished, not abandoned."""
        self._thread.join(timeout)


_T = TypeVar("_T")


def _result(value: _T | BaseException | None) -> _T:
    if isinstance(value, BaseException):
        raise AssertionError(f"building or installing lkstate failed: {value}") from value
    assert value is not None, "the package preparation ended without a result"
    return value


_PREPARATION = pytest.StashKey[Preparation]()


def prepare_early(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the build and install now if a collected test will need them (call at collection's end)."""
    if any({"distributions", "installed_lkstate"} & set(getattr(item, "fixturenames", ())) for item in items):
        _preparation(config)


def finish(config: pytest.Config) -> None:
    """At the end of the run: let a build or install still under way finish (its subprocesses have
    timeouts), then remove it (a clean install of lkstate[agent] weighs hundreds of megabytes)."""
    preparation = config.stash.get(_PREPARATION, None)
    if preparation is not None:
        preparation.wait()
        shutil.rmtree(preparation.where, ignore_errors=True)


def _preparation(config: pytest.Config) -> Preparation:
    preparation = config.stash.get(_PREPARATION, None)
    if preparation is None:
        where = Path(tempfile.mkdtemp(prefix="lkstate-package-"))
        preparation = config.stash[_PREPARATION] = Preparation(where)
    return preparation


@pytest.fixture(scope="session")
def distributions(pytestconfig: pytest.Config) -> Distributions:
    """The sdist and the wheel of this checkout, built once per test run."""
    return _preparation(pytestconfig).distributions()


@pytest.fixture(scope="session")
def installed_lkstate(pytestconfig: pytest.Config) -> InstalledLkstate:
    """The clean virtualenv of :func:`install_for_a_user`, made once per test run.

    Shared by every test of the installed package; a test that changes it (the
    wheel reinstalled over the sdist) must leave the same files behind.
    """
    return _preparation(pytestconfig).installed()
