"""The lkstate command line."""

from __future__ import annotations


def main() -> None:
    raise SystemExit("lkstate: no commands yet")
