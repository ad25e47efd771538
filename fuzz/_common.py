"""What both harnesses share: argument handling and corpus seeding."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from types import FunctionType, ModuleType


def seed_first_corpus(argv: list[str], seeds: Iterable[bytes]) -> int:
    """Write ``seeds`` into the first corpus directory on the command line if it is empty.

    libFuzzer writes new inputs into the first directory it is given; seeding
    that one (never a checked-in directory) keeps the repository clean.
    Returns how many seeds were written.
    """
    directories = [Path(a) for a in argv[1:] if not a.startswith("-")]
    if not directories:
        return 0
    first = directories[0]
    first.mkdir(parents=True, exist_ok=True)
    if any(first.iterdir()):
        return 0
    count = 0
    for seed in seeds:
        (first / f"seed-{hashlib.sha1(seed).hexdigest()[:12]}").write_bytes(seed)
        count += 1
    return count


def instrument_modules(*modules: ModuleType) -> int:
    """Add atheris coverage instrumentation to every function defined in ``modules``.

    ``atheris.instrument_imports`` would instrument the whole ``lkstate``
    package (its ``__init__`` imports every module), which costs seconds at
    start and slows every input for code the harness never reaches. Returns
    how many functions were instrumented.
    """
    import atheris

    count = 0
    for module in modules:
        for value in list(vars(module).values()):
            members = list(vars(value).values()) if isinstance(value, type) else [value]
            for member in members:
                function = member.__func__ if isinstance(member, staticmethod | classmethod) else member
                if isinstance(function, FunctionType) and function.__module__ == module.__name__:
                    atheris.instrument_func(function)
                    count += 1
    return count
