"""Give every public name its public home, so reprs and tracebacks show the path a user imports.

Classes and functions are defined in private modules (``lkstate._core.state``)
and re-exported by a public one (``lkstate``, ``lkstate.media``…). Python
reports an object by its ``__module__``, so without this a user who wrote
``from lkstate import SessionState`` would read ``lkstate._core.state.SessionState``
in every repr, error and generated page — a name that is not theirs to import.
Each public module calls :func:`publish` once on its ``__all__``; a name has
exactly one home, which ``tests/unit/test_public_api.py`` checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["publish"]


def publish(module_name: str, namespace: Mapping[str, object], names: Iterable[str]) -> None:
    """Point ``__module__`` of each class and function in ``names`` at ``module_name``.

    Only objects defined inside lkstate's private modules are touched: type
    aliases, constants and anything borrowed from another package keep theirs.
    """
    for name in names:
        obj = namespace[name]
        if isinstance(obj, type) or callable(obj):
            current = getattr(obj, "__module__", "")
            if isinstance(current, str) and current.startswith("lkstate._"):
                try:
                    obj.__module__ = module_name
                except (AttributeError, TypeError):  # pragma: no cover - builtins are never exported
                    continue
