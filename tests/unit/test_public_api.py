"""The public API is small at the top and tiered behind it, and every name has one home.

An app needs a few dozen names; they are ``lkstate.*``. The rest live in public
submodules (``lkstate.media``, ``lkstate.tokens``, ``lkstate.agent_session``,
``lkstate.recording``, ``lkstate.errors``, ``lkstate.ui``, ``lkstate.apps``,
``lkstate.lowlevel``), as trio keeps ``trio.lowlevel`` apart. Each class and
function is listed by exactly one of them, and its ``__module__`` says which,
so a repr or a traceback shows the path a user can import.
"""

from __future__ import annotations

import importlib
import types
import typing
from collections import defaultdict

import pytest

from tests.harness.docs import PUBLIC_MODULES


def _exports() -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        out[name] = {n: getattr(module, n) for n in module.__all__}
    return out


def test_the_top_level_holds_at_most_forty_names() -> None:
    import lkstate

    assert len(lkstate.__all__) <= 40
    assert len(set(lkstate.__all__)) == len(lkstate.__all__)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_listed_name_exists_and_nothing_public_is_unlisted(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.__all__ names {name}, which is missing"
    stray = [
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and n not in module.__all__
        and (isinstance(v, type) or isinstance(v, types.FunctionType))
        and getattr(v, "__module__", "").startswith("lkstate")
    ]
    assert stray == [], f"{module_name} exposes {stray} without listing them"


def test_each_class_and_function_is_exported_once_and_names_its_home() -> None:
    homes: dict[int, list[str]] = defaultdict(list)
    objects: dict[int, object] = {}
    for module_name, names in _exports().items():
        for name, value in names.items():
            if isinstance(value, type) or isinstance(value, types.FunctionType):
                homes[id(value)].append(f"{module_name}.{name}")
                objects[id(value)] = value
    twice = {k: v for k, v in homes.items() if len(v) > 1}
    assert twice == {}, f"exported more than once: {list(twice.values())}"
    for key, (where,) in homes.items():
        module_name = where.rsplit(".", 1)[0]
        assert getattr(objects[key], "__module__") == module_name, where


def test_reprs_show_the_public_path() -> None:
    from lkstate import SessionState
    from lkstate.recording import Replay

    assert repr(SessionState).startswith("<class 'lkstate.SessionState'")
    assert "lkstate.recording.Replay" in repr(Replay)


def _union_members(alias: object) -> tuple[object, ...]:
    value = getattr(alias, "__value__", alias)
    return typing.get_args(value)


def test_every_member_of_a_public_union_is_reachable() -> None:
    reachable = {id(v) for names in _exports().values() for v in names.values()}
    unions: list[tuple[str, object]] = []
    for module_name, names in _exports().items():
        for name, value in names.items():
            args = _union_members(value)
            if args and typing.get_origin(value) in (types.UnionType, typing.Union):
                unions.append((f"{module_name}.{name}", value))
    assert {u for u, _ in unions} >= {"lkstate.agent_session.ConversationItem", "lkstate.agent_session.ModelUsage"}
    for where, union in unions:
        for member in _union_members(union):
            assert id(member) in reachable, f"{where} has a member {member!r} that no public module exports"
