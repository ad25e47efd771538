"""Resolve references the way lkstate's code names things, and nothing looser.

lkstate defines every public name in a private module (``lkstate._core.state``)
and re-exports it from a public one (``lkstate``), pointing ``__module__`` at
the public home (``lkstate._core.exports.publish``). Two kinds of reference
therefore reach Sphinx under a name it has not documented:

- type hints that Python resolves to the private path, for names that are not
  published (the events, ``Credentials`` seen from ``lkstate._wire.tokens``);
- docstrings that name a class briefly (``:class:`Store``` from another module,
  ``:meth:`Session.start```) or by an older home (``lkstate.TokenSourceError``,
  now ``lkstate.errors.TokenSourceError``).

This handler resolves such a reference only when it can say *which* documented
object is meant: a private path is imported and matched by identity against
the documented public names; a short or stale name is matched by its dotted
suffix and must match exactly one documented object. Anything else — a name
documented nowhere, or one that could mean two things — stays a warning, and
the strict build fails on it.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import types
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_refnode

_KINDS = {
    "class": {"class", "exception", "data", "type"},
    "exc": {"exception", "class"},
    "func": {"function", "method", "classmethod", "staticmethod"},
    "meth": {"method", "classmethod", "staticmethod", "function", "property"},
    "attr": {"attribute", "property", "data"},
    "data": {"data", "attribute"},
    "mod": {"module"},
    "obj": None,
    "const": {"data", "attribute"},
}


def _import(path: str) -> Any:
    """The object at a dotted path, importing the longest module prefix that exists."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def _documented(env: BuildEnvironment) -> dict[str, Any]:
    domain: Any = env.get_domain("py")
    return {name: entry for name, entry in domain.objects.items() if not entry.aliased}


def _by_identity(env: BuildEnvironment, target: str) -> str | None:
    try:
        wanted = _import(target)
    except (ImportError, AttributeError):
        return None
    hits = []
    for name in _documented(env):
        try:
            if _import(name) is wanted:
                hits.append(name)
        except (ImportError, AttributeError):
            continue
    return hits[0] if len(hits) == 1 else None


def _by_suffix(env: BuildEnvironment, target: str, reftype: str, context_class: str | None) -> str | None:
    kinds = _KINDS.get(reftype)
    objects = _documented(env)
    suffixes = [target]
    if target.startswith("lkstate."):  # an older home: lkstate.X for lkstate.errors.X
        suffixes.append(target.rsplit(".", 1)[1])
    if context_class:  # :attr:`error` inside a class means that class's attribute
        suffixes.insert(0, f"{context_class}.{target}")
    for suffix in suffixes:
        hits = [
            name
            for name, entry in objects.items()
            if (name == suffix or name.endswith("." + suffix)) and (kinds is None or entry.objtype in kinds)
        ]
        if len(hits) == 1:
            return hits[0]
        if hits:
            return None  # ambiguous: say so by leaving the warning
    return None


def _resolve(app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.Element) -> nodes.Element | None:
    if node.get("refdomain") != "py":
        return None
    target: str = node["reftarget"]
    name: str | None = None
    if target.startswith("lkstate.") and "._" in target:
        name = _by_identity(env, target)
    if name is None:
        name = _by_suffix(env, target, node["reftype"], node.get("py:class"))
    if name is None:
        return None
    entry = _documented(env)[name]
    if os.environ.get("LKSTATE_DOCS_REFS"):
        print(f"resolved {node['reftype']} {target!r} -> {name}")
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, name)


class ApiModule(SphinxDirective):
    """``.. lkstate-api:: lkstate.media`` — one public module, every name in its ``__all__``.

    autodoc documents the classes and functions (their ``__module__`` is the
    public module, see ``publish``). It skips data it cannot find assigned in
    the module's own source — a constant or type alias defined privately and
    re-exported — so those are written out here, with the docstring the
    defining module gives them.
    """

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        module = _import(name)
        # A class built on a private base (Messages on the persistent Vector) is documented
        # on its own, with the members it inherits from lkstate, so its page is complete.
        private_based = [
            member
            for member in getattr(module, "__all__", ())
            if inspect.isclass(getattr(module, member)) and _private_bases(getattr(module, member))
        ]
        lines = [f".. automodule:: {name}", "   :members:", "   :undoc-members:", "   :imported-members:"]
        if private_based:
            lines.append(f"   :exclude-members: {', '.join(private_based)}")
        lines.append("")
        for member in private_based:
            outside = sorted({k.__name__ for k in getattr(module, member).__mro__ if not k.__module__.startswith("lkstate")})
            lines += [
                f".. autoclass:: {name}.{member}",
                "   :members:",
                "   :undoc-members:",
                f"   :inherited-members: {', '.join(outside)}",
                "",
            ]
        try:
            own = ModuleAnalyzer.for_module(module.__name__).find_attr_docs()
        except PycodeError:
            own = {}
        for member in getattr(module, "__all__", ()):
            value = getattr(module, member)
            if ("", member) in own:  # autodoc finds it in the module's own source
                continue
            if inspect.ismodule(value) or inspect.isroutine(value):
                continue
            if inspect.isclass(value) and not isinstance(value, types.GenericAlias):
                continue
            lines += [f".. py:data:: {member}", f"   :module: {name}", f"   :value: {_short_repr(value)}", ""]
            lines += [f"   {line}" for line in _attribute_doc(member, value)] + [""]
        content = StringList(lines, source=f"<lkstate-api {name}>")
        container = nodes.container()
        self.state.nested_parse(content, self.content_offset, container)
        return list(container.children)


def _private_bases(cls: type) -> list[type]:
    """The bases of ``cls`` defined in lkstate's private modules and published nowhere."""
    return [k for k in cls.__mro__[1:] if k.__module__.startswith("lkstate._")]


def _public_bases(app: Sphinx, name: str, obj: object, options: object, bases: list[Any]) -> None:
    """Show a class built on a private base as built on that base's own bases (``Sequence``)."""
    changed = True
    while changed:
        changed = False
        for index, base in enumerate(bases):
            origin = getattr(base, "__origin__", base)  # Vector[Message] -> Vector
            if isinstance(origin, type) and origin.__module__.startswith("lkstate._"):
                replacement = [b for b in origin.__bases__ if b not in bases and b is not object]
                bases[index : index + 1] = replacement
                changed = True
                break


def _short_repr(value: object) -> str:
    text = repr(value).replace("\n", " ")
    return text if len(text) <= 100 else text[:97] + "..."


def _attribute_doc(member: str, value: object) -> list[str]:
    """The doc comment or docstring of ``member`` in the private module that defines it."""
    for modname, mod in sorted(sys.modules.items()):
        if not modname.startswith("lkstate._") or vars(mod).get(member) is not value:
            continue
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except PycodeError:
            continue
        if ("", member) in docs:
            return list(docs[("", member)])
    return []


def _short_defaults(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, signature: str | None, return_annotation: str | None
) -> tuple[str, str | None] | None:
    """Show a frozen default such as ``connection=ConnectionState()`` as that, not as its whole repr.

    attrs classes nest: ``SessionState()``'s defaults spell out every field of
    every part, a line of hundreds of characters that Sphinx's signature parser
    then misreads. A default that equals its class called without arguments is
    written as that call; the types and defaults of each field are on the
    field's own entry.
    """
    if not signature or what not in {"class", "method"}:
        return None
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    changed = False
    parameters = []
    for parameter in sig.parameters.values():
        default = parameter.default
        if default is not inspect.Parameter.empty and len(repr(default)) > 60 and hasattr(type(default), "__attrs_attrs__"):
            try:
                plain = default == type(default)()
            except TypeError:
                plain = False
            parameter = parameter.replace(default=_Literal(f"{type(default).__name__}()" if plain else "..."))
            changed = True
        parameters.append(parameter)
    if not changed:
        return None
    text = str(sig.replace(parameters=parameters, return_annotation=inspect.Signature.empty))
    return text, return_annotation


class _Literal:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


_MERGED: set[str] = set()
_for_module = ModuleAnalyzer.for_module


def _public_for_module(modname: str) -> ModuleAnalyzer:
    """The public module's source analysis, with its published classes' own attribute docs.

    autodoc reads attribute docstrings (``max_problems: int = 50`` followed by
    a string, ``#:`` comments on ``self.x = ...``) from the source of the
    module a class's ``__module__`` names. ``publish`` points that at the
    public module, which only re-exports, so each published class's entries
    are copied in from the private module that defines it.
    """
    analyzer = _for_module(modname)
    if modname in _MERGED or not modname.startswith("lkstate") or "._" in modname:
        return analyzer
    _MERGED.add(modname)
    module = sys.modules.get(modname)
    if module is None:
        return analyzer
    analyzer.analyze()
    for member in getattr(module, "__all__", ()):
        value = getattr(module, member)
        if not inspect.isclass(value):
            continue
        source = _defining_module(value)
        if source is None:
            continue
        private = _for_module(source.__name__)
        private.analyze()
        prefix = value.__qualname__
        for key, doc in private.attr_docs.items():
            if key[0] == prefix or key[0].startswith(prefix + "."):
                analyzer.attr_docs.setdefault(key, doc)
        for key, order in private.tagorder.items():
            if key == prefix or key.startswith(prefix + "."):
                analyzer.tagorder.setdefault(key, order)
    return analyzer


def _defining_module(cls: type) -> types.ModuleType | None:
    for modname, mod in sorted(sys.modules.items()):
        if modname.startswith("lkstate._") and vars(mod).get(cls.__name__) is cls:
            try:
                source = inspect.getsource(mod)
            except (OSError, TypeError):
                continue
            if f"class {cls.__name__}" in source:
                return mod
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    ModuleAnalyzer.for_module = staticmethod(_public_for_module)  # type: ignore[method-assign]
    app.connect("autodoc-process-signature", _short_defaults)
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("missing-reference", _resolve)
    app.add_directive("lkstate-api", ApiModule)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
