"""The folder tree is the architecture, and a tool holds it to that.

``lkstate/_core`` is pure (no ``livekit.rtc``, no I/O); ``_wire`` speaks to the
room; ``_media`` captures and plays; ``_session`` puts them together;
``_tooling`` is the command line around the library. Each layer imports only
the ones below it, and front ends use only the public modules. The contracts
live in ``pyproject.toml`` under ``[tool.importlinter]`` and are checked here
with import-linter, so a wrong import fails the test run. import-linter cannot
name ``livekit.rtc`` apart from ``livekit.protocol`` (both live in the
``livekit`` namespace), so the core's freedom from ``livekit.rtc`` is proven by
importing it in a fresh interpreter instead.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=f"{tree}{os.pathsep}{tree / 'adapters'}")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_import_contract_is_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    # A copy of the tree where the pure core reaches up into the wire layer.
    for name in ("lkstate", "adapters"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    state = tmp_path / "lkstate" / "_core" / "state.py"
    state.write_text(state.read_text() + "\nfrom .._wire import room_source as _upward  # noqa: E402\n")

    result = _lint_imports(tmp_path)

    assert result.returncode != 0
    assert "lkstate._core.state -> lkstate._wire.room_source" in result.stdout


_CORE_CLOSURE = """
import importlib, pkgutil, sys, types
from pathlib import Path
# Stand in for lkstate/__init__.py (which loads the whole library) so only the
# core's own imports run.
package = types.ModuleType("lkstate")
package.__path__ = [str(Path({root!r}) / "lkstate")]
sys.modules["lkstate"] = package
import lkstate._core as core
for info in pkgutil.iter_modules(core.__path__):
    importlib.import_module("lkstate._core." + info.name)
loaded = sorted(m for m in sys.modules if m == "livekit.rtc" or m.startswith("livekit.rtc.")
                or m.startswith(("lkstate._wire", "lkstate._media", "lkstate._session", "lkstate._tooling")))
print("\\n".join(loaded))
"""


def test_the_core_loads_without_livekit_rtc_or_any_upper_layer() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _CORE_CLOSURE.format(root=str(ROOT))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"the core loaded: {result.stdout}"


@pytest.mark.parametrize("path", sorted((ROOT / "examples").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_import_only_public_lkstate_modules(path: Path) -> None:
    private: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = (
            [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else []
        )
        private += [n for n in names if n.startswith("lkstate") and any(p.startswith("_") for p in n.split(".")[1:])]
        if isinstance(node, ast.ImportFrom) and node.module == "lkstate":
            private += [a.name for a in node.names if a.name.startswith("_")]
    assert private == []
