"""Running the installed ``lkstate`` command the way a person does, Ctrl-C included."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = [
    "lkstate_command", "ctrl_c_works", "marked_env", "processes_marked", "assert_nothing_left", "start_serve", "stop",
]

SERVE_VARIABLES = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LKSTATE_AGENT_NAME")
"""What `lkstate serve` prints, as ``export NAME=value`` lines, once the agent is registered."""


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


def marked_env(marker: str) -> dict[str, str]:
    """The environment with a marker every process the command starts inherits (to find leftovers)."""
    return {**os.environ, "LKSTATE_TEST_MARKER": marker, "PYTHONUNBUFFERED": "1"}


def processes_marked(marker: str) -> list[str]:
    """Command lines of live processes whose environment carries ``marker``."""
    found: list[str] = []
    needle = f"LKSTATE_TEST_MARKER={marker}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read():
                    continue
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # a zombie already dead, waiting for its (gone) parent's wait
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                found.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


def assert_nothing_left(marker: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (left := processes_marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes outlived the command: {left}"


def start_serve(marker: str, *arguments: str) -> tuple[subprocess.Popen[str], dict[str, str], list[str]]:
    """`lkstate serve` as a person starts it; returns it, the environment it printed, and its progress so far."""
    process = subprocess.Popen(
        [*lkstate_command(), "serve", *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=marked_env(marker), preexec_fn=ctrl_c_works,
    )
    assert process.stdout is not None and process.stderr is not None
    printed: dict[str, str] = {}
    for line in process.stdout:  # the export lines, printed once the agent is registered
        words = shlex.split(line)
        assert words[0] == "export" and len(words) == 2, f"not an export line: {line!r}"
        name, value = words[1].split("=", 1)
        printed[name] = value
        if len(printed) == len(SERVE_VARIABLES):
            break
    progress: list[str] = []
    for line in process.stderr:
        progress.append(line)
        if "ready:" in line:
            break
    return process, printed, progress


def stop(process: subprocess.Popen[str], how: signal.Signals) -> str:
    """Send ``how`` and wait for the process to end; what it wrote on stderr meanwhile."""
    try:
        process.send_signal(how)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return rest
