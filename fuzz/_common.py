"""What both harnesses share: argument handling and corpus seeding."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


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
