"""Sphinx configuration for the lkstate reference site.

Build it (warnings are errors, every cross-reference must resolve)::

    .venv/bin/sphinx-build -W -n --keep-going -b html docs site

or serve it while editing: ``.venv/bin/sphinx-autobuild docs site`` if you have
it, else rebuild and open ``site/index.html``. ``tests/unit/test_docs_site.py``
runs the strict build inside the test suite.

Why Sphinx (and not mkdocs + mkdocstrings): lkstate's docstrings are
reStructuredText — ``:class:`` / ``:meth:`` roles, ``::`` literal blocks,
double-backquoted code. Sphinx's autodoc renders them as written and, in
nitpicky mode, fails the build on any role that points nowhere; mkdocstrings
reads docstrings as Markdown, where those roles would print as raw text and no
build could catch a stale reference. The narrative pages stay Markdown (MyST).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "adapters"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

project = "lkstate"
author = "lkstate contributors"
copyright = "lkstate contributors"  # noqa: A001 - Sphinx's name

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinxarg.ext",
    "_lkstate_refs",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = "lkstate"

# autodoc: document what each public module lists in __all__, in that order,
# with signatures from the code and type hints in the description.
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "undoc-members": False,
    "show-inheritance": True,
}
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autoclass_content = "class"
autodoc_class_signature = "separated"

# Strict mode (-n): every reference to an lkstate name must resolve. Names
# from other packages have no inventory offline (no intersphinx), so those —
# and only those — are not checked.
nitpicky = True
nitpick_ignore_regex = [
    # private names (TypeVars such as ``_T``, internal protocols) cannot be documented by design
    (r"py:.*", r"lkstate\..*\._[A-Za-z]\w*"),
    # the private persistent vector under Messages, ConversationItems and ToolCalls; its
    # public methods are documented on each of them (``_lkstate_refs.ApiModule``)
    (r"py:class", r"lkstate\._core\.vector\.Vector"),
    (r"py:.*", r"(livekit|rtc|reactivex|rx|attrs|numpy|np|aiohttp|trio|textual|PySide6|gradio|gr|google|typing_extensions|collections|concurrent|asyncio|argparse|enum|types|pathlib|datetime|logging|io|os|typing)(\..*)?"),
]
smartquotes = False  # keep "--flag" as two hyphens
