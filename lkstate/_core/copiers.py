"""Fast copies of frozen attrs objects with some fields changed: ``attrs.evolve``, about three times faster.

Also fast construction (:func:`maker_for`), for the one object the reducer
builds per new message: the attrs ``__init__`` of a frozen class sets each
field through ``object.__setattr__``, which costs more than the rest of
appending a message together.

``attrs.evolve`` looks up the class's fields and builds keyword arguments on
every call; a transcript delta evolves two or three objects, and that was the
largest single cost of folding one. :func:`copier_for` writes, once per class,
a small function that sets the slots of a fresh instance directly, and
:func:`evolve` keeps one per class.

The function is generated source run with ``exec``. Its source is registered
with :mod:`linecache` under a name such as
``<lkstate copier lkstate._core.state.SessionState>``, so a traceback that
passes through a copier shows the line that failed, and ``inspect.getsource``
finds it, as for any other function.
"""

from __future__ import annotations

import itertools
import linecache
import threading
import types
from collections.abc import Callable
from typing import Any, TypeVar, cast

import attrs

__all__ = ["copier_for", "changer_for", "evolve", "maker_for"]

_S = TypeVar("_S")

_COPIERS: dict[type[Any], Callable[..., Any]] = {}
_KEEP: Any = object()
"""The default of every keyword: "this field is not changed"."""

_FACTORY: type[Any] = type(cast(object, attrs.Factory(str)))
"""The class of an ``attrs.Factory(...)`` default (typed as a function by attrs' stubs)."""

_names_lock = threading.Lock()
_name_numbers = itertools.count(2)


def evolve(instance: _S, **changes: Any) -> _S:
    """``attrs.evolve(instance, **changes)``, through the copier made once for the instance's class."""
    copier = _COPIERS.get(type(instance))
    if copier is None:
        copier = _COPIERS[type(instance)] = copier_for(type(instance))
    return copier(instance, **changes)


def _is_plain(cls: type[Any]) -> bool:
    """Whether skipping ``__init__`` changes nothing for ``cls`` (see :func:`copier_for`)."""
    fields = attrs.fields(cls)
    return (
        all(
            f.init and f.validator is None and f.converter is None and getattr(f, "alias", f.name) == f.name
            for f in fields
        )
        and not hasattr(cls, "__attrs_post_init__")
        and not hasattr(cls, "__attrs_pre_init__")
        and "__attrs_cached_hash__" not in getattr(cls, "__slots__", ())
        and all(isinstance(getattr(cls, f.name, None), types.MemberDescriptorType) for f in fields)
    )


def _register_source(cls: type[Any], source: str, kind: str = "copier") -> str:
    """A file name for ``source`` that no other source holds, entered in :mod:`linecache`.

    The entry has no modification time, so ``linecache.checkcache`` keeps it
    (it only drops entries it can compare with a file on disk).
    """
    base = f"<lkstate {kind} {cls.__module__}.{cls.__qualname__}>"
    lines = source.splitlines(keepends=True)
    with _names_lock:
        filename = base
        while (cached := linecache.cache.get(filename)) is not None and cached != (len(source), None, lines, filename):
            # Another class with the same dotted name (one defined in a function, say).
            filename = f"{base[:-1]} #{next(_name_numbers)}>"
        linecache.cache[filename] = (len(source), None, lines, filename)
    return filename


def _generate(cls: type[Any], name: str, lines: list[str], scope: dict[str, Any], kind: str) -> Callable[..., Any]:
    """Run the generated function ``name`` (its source ``lines``) in ``scope``; its source is in linecache.

    The one place the copier, changer and maker sources become functions, so
    all three show in tracebacks alike, named ``{name}_{class}``.
    """
    source = "\n".join(lines) + "\n"
    filename = _register_source(cls, source, kind)
    exec(compile(source, filename, "exec"), scope)  # noqa: S102 - source built from the class's own field names
    function: Callable[..., Any] = scope[name]
    function.__qualname__ = f"{name}_{cls.__qualname__}"
    return function


def copier_for(cls: type[Any]) -> Callable[..., Any]:
    """A function ``copy(instance, **changes)`` for ``cls``, equivalent to ``attrs.evolve``.

    It writes each slot with the slot's own descriptor, which is what the
    frozen ``__init__`` does too, minus the per-field ``object.__setattr__``
    lookups. Only for classes where skipping ``__init__`` changes nothing: slotted,
    every field settable by ``__init__`` under its own name, and no validator,
    converter, post-init hook or cached hash. Any other class gets
    ``attrs.evolve`` itself.
    """
    if not _is_plain(cls):

        def evolve_with_attrs(instance: Any, **changes: Any) -> Any:
            return attrs.evolve(instance, **changes)

        return evolve_with_attrs
    names = [f.name for f in attrs.fields(cls)]
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_KEEP": _KEEP}
    lines = [f"def copy(_old, *, {', '.join(f'{n}=_KEEP' for n in names)}):", "    _obj = _new(_cls)"]
    for n in names:
        scope[f"_set_{n}"] = getattr(cls, n).__set__
        lines.append(f"    _set_{n}(_obj, _old.{n} if {n} is _KEEP else {n})")
    lines.append("    return _obj")
    return _generate(cls, "copy", lines, scope, "copier")


def changer_for(cls: type[_S], *names: str) -> Callable[..., _S]:
    """A function ``change(instance, *values)``: a copy of ``instance`` with the named fields set to ``values``.

    For the few updates the reducer makes per transcript delta, which always
    change the same fields. A copier made by :func:`copier_for` takes every
    field as an optional keyword and tests each one for "unchanged"; this one
    takes just the named fields, in order, and copies the others as they are.
    On the wire-to-snapshot path, where the loop has just woken from the
    network and nothing is in the CPU's caches, fewer instructions is what
    counts. A class that is not plain gets ``attrs.evolve``, as with
    :func:`copier_for`.
    """
    fields = [f.name for f in attrs.fields(cast(Any, cls))]
    unknown = [n for n in names if n not in fields]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"{cls.__qualname__} has no fields {unknown!r}, or a field is named twice")
    if not _is_plain(cls):

        def change_with_attrs(instance: Any, *values: Any) -> Any:
            return attrs.evolve(instance, **dict(zip(names, values, strict=True)))

        return change_with_attrs
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = [f"def change(_old, {', '.join(names)}):", "    _obj = _new(_cls)"]
    for n in fields:
        scope[f"_set_{n}"] = getattr(cls, n).__set__
        lines.append(f"    _set_{n}(_obj, {n if n in names else f'_old.{n}'})")
    lines.append("    return _obj")
    changer: Callable[..., _S] = _generate(cls, "change", lines, scope, f"changer ({', '.join(names)})")
    return changer


def maker_for(cls: type[_S]) -> Callable[..., _S]:
    """A function ``make(**fields)`` for ``cls``, equivalent to calling ``cls(**fields)``.

    Keyword arguments only, with the class's own defaults (a ``Factory``
    default is called per object, as ``__init__`` does). Like
    :func:`copier_for`, it writes each slot with the slot's own descriptor,
    about twice as fast as the frozen ``__init__``; a class that is not plain
    (validators, converters, hooks, a ``Factory`` taking ``self``) gets the
    class itself, so the two never differ.
    """
    fields = attrs.fields(cls)
    if not _is_plain(cls) or any(isinstance(f.default, _FACTORY) and f.default.takes_self for f in fields):
        return cls
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_KEEP": _KEEP}
    params: list[str] = []
    body: list[str] = ["    _obj = _new(_cls)"]
    for f in fields:
        n = f.name
        scope[f"_set_{n}"] = getattr(cls, n).__set__
        if f.default is attrs.NOTHING:
            params.append(n)
            body.append(f"    _set_{n}(_obj, {n})")
        elif isinstance(f.default, _FACTORY):
            scope[f"_factory_{n}"] = f.default.factory
            params.append(f"{n}=_KEEP")
            body.append(f"    _set_{n}(_obj, _factory_{n}() if {n} is _KEEP else {n})")
        else:
            scope[f"_default_{n}"] = f.default
            params.append(f"{n}=_default_{n}")
            body.append(f"    _set_{n}(_obj, {n})")
    lines = [f"def make(*, {', '.join(params)}):", *body, "    return _obj"]
    maker: Callable[..., _S] = _generate(cls, "make", lines, scope, "maker")
    return maker
