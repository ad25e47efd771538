"""Known-bad PySide6 builds, said out loud instead of crashing later.

PySide6 6.12.0 on Python 3.10 and 3.11 releases one reference to ``None`` or
``True`` too many each time Qt calls a Python slot or timer callback. Python
3.12 made those objects immortal, which hides the bug there; on 3.11 the count
runs out after a few thousand signals and the interpreter aborts ("Fatal
Python error: bool_dealloc"). A desktop client emits that many in minutes.
6.11.3 does not have the bug. ``tests/ui/test_qt_bridge.py`` checks the
installed build directly.
"""

from __future__ import annotations

import sys
import warnings

import PySide6

__all__ = ["warn_if_known_bad_pyside"]

_BAD_ON_MORTAL_SINGLETONS = frozenset({"6.12.0"})


def warn_if_known_bad_pyside() -> None:
    """Warn (``RuntimeWarning``) when this PySide6 build is known to crash on this Python."""
    version = PySide6.__version__
    if version in _BAD_ON_MORTAL_SINGLETONS and sys.version_info < (3, 12):
        warnings.warn(
            f"PySide6 {version} corrupts reference counts on Python "
            f"{sys.version_info.major}.{sys.version_info.minor} and crashes after a few thousand signals. "
            'Install another version: pip install "PySide6-Essentials<6.12" (or use Python 3.12+).',
            RuntimeWarning,
            stacklevel=3,
        )
