"""Running the installed ``lkstate`` command the way a person does, Ctrl-C included."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

__all__ = ["lkstate_command", "ctrl_c_works"]


def lkstate_command() -> list[str]:
    """The installed `lkstate` script next to this Python, else the same entry point through -c."""
    script = Path(sys.executable).with_name("lkstate")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from lkstate._tooling.cli import main; sys.exit(main())"]


def ctrl_c_works() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT.

    A test run started in the background of a non-interactive shell (``.ci/run &``)
    inherits SIGINT *ignored*, and so would every command it starts: Python then
    never raises KeyboardInterrupt and "Ctrl-C" does nothing. A terminal's child
    has the default disposition; this gives the command that one.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
