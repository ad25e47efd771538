"""The Python examples on the reference site (docs/), found the way a reader sees them.

Every ```` ```python ```` block in ``docs/**/*.md`` is an example, and each must
say, on the line before it, how the test suite runs it::

    <!-- docs-example: plain -->          run in-process, no server (the working directory is the repo)
    <!-- docs-example: agent -->          run as a script against a local server and the example agent
    <!-- docs-example: textual VoiceApp --> a GUI example: run as a module, then the named object is
    <!-- docs-example: qt build_window -->   driven by the test as its ``__main__`` block would, headless
    <!-- docs-example: gradio demo -->

The marker is an HTML comment, so the site does not show it. A block without one
fails ``tests/unit/test_docs_site.py``: no example is skipped silently.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
KINDS = ("plain", "agent", "textual", "qt", "gradio", "pytest")
GUI_KINDS = ("textual", "qt", "gradio")

_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
_MARKER = re.compile(r"<!--\s*docs-example:\s*(\w+)(?:\s+(\w+))?\s*-->\s*$")


@attrs.frozen
class Example:
    page: str
    line: int
    kind: str | None
    """``None`` when the block has no marker (an error)."""
    name: str | None
    code: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    def main_block(self) -> list[ast.stmt]:
        """The body of the example's ``if __name__ == "__main__":`` block (empty if none)."""
        for node in ast.parse(self.code).body:
            if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
                return node.body
        return []


def examples() -> list[Example]:
    found: list[Example] = []
    for path in sorted(DOCS.rglob("*.md")):
        text = path.read_text()
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = _MARKER.search(before)
            found.append(
                Example(
                    page=str(path.relative_to(ROOT)),
                    line=line,
                    kind=marker.group(1) if marker else None,
                    name=marker.group(2) if marker else None,
                    code=match.group(1),
                )
            )
    return found


def of_kind(*kinds: str) -> list[Example]:
    return [example for example in examples() if example.kind in kinds]


# -- examples in the docstrings the API pages show --------------------------------------

PUBLIC_MODULES = (
    "lkstate",
    "lkstate.ui",
    "lkstate.media",
    "lkstate.tokens",
    "lkstate.agent_session",
    "lkstate.recording",
    "lkstate.errors",
    "lkstate.apps",
    "lkstate.lowlevel",
)

_LITERAL = re.compile(r"::\n\n((?:[ \t]+.*\n|[ \t]*\n)+)")


@attrs.frozen
class DocstringExample:
    """A ``::`` block in the docstring of a documented name: runs in its module's namespace, like a doctest."""

    owner: str
    module: str
    code: str

    @property
    def id(self) -> str:
        return self.owner


def docstring_examples() -> list[DocstringExample]:
    import importlib
    import inspect
    import textwrap

    found: list[DocstringExample] = []
    seen: set[int] = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        owners: list[tuple[str, object]] = [(module_name, module)]
        for name in module.__all__:
            value = getattr(module, name)
            owners.append((f"{module_name}.{name}", value))
            if inspect.isclass(value):
                owners += [(f"{module_name}.{name}.{k}", v) for k, v in vars(value).items() if not k.startswith("_")]
        for owner, value in owners:
            doc = getattr(value, "__doc__", None)
            if not isinstance(doc, str) or not (inspect.ismodule(value) or inspect.isclass(value) or inspect.isroutine(value)):
                continue
            if id(value) in seen:
                continue
            seen.add(id(value))
            text = doc if inspect.ismodule(value) else inspect.cleandoc(doc)
            for block in _LITERAL.findall(text + "\n"):
                found.append(DocstringExample(owner=owner, module=module_name, code=textwrap.dedent(block).strip() + "\n"))
    return found
