"""The reference site builds in strict mode, documents every public name, and its examples are all run.

The site is Sphinx (docs/conf.py says why): ``-W`` turns every warning into an
error and ``-n`` makes every cross-reference a warning when it points nowhere,
so a renamed class or a stale ``:class:`` role in a docstring fails here.
The examples that need a server run in tests/integration/test_docs_examples.py.
"""

from __future__ import annotations

import ast
import contextlib
import html
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.docs import DOCS, GUI_KINDS, KINDS, PUBLIC_MODULES, ROOT, Example, examples, of_kind



def sphinx_build(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    # The CLI page shows flag defaults, some read from the environment: build without them.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "LKSTATE_"))}
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-n", "--keep-going", "-E", "-q", "-b", "html", str(source), str(out)],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = sphinx_build(DOCS, out)
    assert result.returncode == 0, f"the strict build failed:\n{result.stderr[-4000:]}"
    return out


def documented_names(site: Path) -> set[str]:
    from sphinx.util.inventory import InventoryFile

    with (site / "objects.inv").open("rb") as stream:
        inventory = InventoryFile.load(stream, "", os.path.join)
    return {name for kind, entries in inventory.items() if kind.startswith("py:") for name in entries}


def test_the_site_builds_with_no_warning_and_has_every_page(site: Path) -> None:
    pages = {str(p.relative_to(site)) for p in site.rglob("*.html")}
    for page in ("index.html", "ARCHITECTURE.html", "RECORDING.html", "cli.html",
                 "quickstart/scripts.html", "quickstart/textual.html", "quickstart/qt.html", "quickstart/gradio.html"):
        assert page in pages
    for module in PUBLIC_MODULES:
        assert f"api/{module}.html" in pages


def test_every_public_name_has_an_entry_under_its_public_path(site: Path) -> None:
    import importlib

    names = documented_names(site)
    missing = [
        f"{module}.{name}"
        for module in PUBLIC_MODULES
        for name in importlib.import_module(module).__all__
        if f"{module}.{name}" not in names
    ]
    assert not missing, f"public names without an entry on the site: {missing}"
    assert "lkstate.lowlevel.events.RoomConnected" in names


def test_the_cli_page_lists_every_subcommand_from_the_parser(site: Path) -> None:
    from lkstate._tooling.cli import _parser

    page = html.unescape(re.sub(r"<[^>]+>", "", (site / "cli.html").read_text()))  # the text a reader sees
    subparsers = next(a for a in _parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    commands: dict[str, object] = getattr(subparsers, "choices")
    assert set(commands) >= {"demo", "connect", "record", "replay", "inspect", "token", "bench"}
    for command in commands:
        assert f"lkstate {command}" in page, command
    for flag in ("--token-endpoint", "--speed", "--max-gap", "--no-server", "--quick"):
        assert flag in page, flag


def test_a_reference_to_nothing_fails_the_build(tmp_path: Path) -> None:
    source = tmp_path / "docs"
    source.mkdir()
    for name in ("conf.py", "_lkstate_refs.py"):
        shutil.copy(DOCS / name, source / name)
    (source / "index.md").write_text(
        "# broken\n\nSee {py:class}`lkstate.SessionState` and {py:class}`lkstate.NoSuchState`.\n\n"
        "```{eval-rst}\n.. autoclass:: lkstate.SessionState\n```\n"
    )
    result = sphinx_build(source, tmp_path / "out")
    assert result.returncode != 0
    assert "lkstate.NoSuchState" in result.stderr
    assert "target not found: lkstate.SessionState [" not in result.stderr, "a reference that exists resolves"


def test_every_python_block_on_the_site_says_how_it_is_run() -> None:
    found = examples()
    unmarked = [example.id for example in found if example.kind not in KINDS]
    assert not unmarked, f"python blocks without a <!-- docs-example: KIND --> line before them: {unmarked}"
    kinds = {example.kind for example in found}
    assert kinds == set(KINDS), f"every way of running examples is used (found {kinds})"
    for example in found:
        if example.kind in GUI_KINDS:
            defined = {
                target.id if isinstance(target, ast.Name) else getattr(target, "name", "")
                for node in ast.parse(example.code).body
                for target in (node.targets if isinstance(node, ast.Assign) else [node])
            }
            assert example.name in defined, f"{example.id} defines {example.name} at the top level"
            assert example.main_block(), f"{example.id}: a GUI example ends in its __main__ block"


@pytest.mark.parametrize("example", of_kind("pytest"), ids=lambda e: e.id)
def test_a_pytest_example_is_a_test_file_the_installed_kit_runs(example: Example) -> None:
    # tests/integration/test_testing_kit_installed.py runs examples/testing/ with plain
    # pytest in a fresh virtualenv; the page shows one of those files as it is.
    files = {p: p.read_text() for p in (ROOT / "examples" / "testing").glob("test_*.py")}
    assert any(example.code.strip() in text for text in files.values()), (
        f"{example.id} is not the body of a file in examples/testing/"
    )


@pytest.mark.parametrize("example", of_kind("plain"), ids=lambda e: e.id)
def test_a_plain_example_runs_as_printed(example: Example, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(example.code, example.id, "exec"), {"__name__": "__main__"})
    assert output.getvalue().strip(), "the example prints what it shows"
