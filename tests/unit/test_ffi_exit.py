"""At exit, the LiveKit native library is disposed and its threads get a moment to settle."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(script: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


LOGGING = """
import logging, sys
logging.basicConfig(stream=sys.stdout, level=logging.DEBUG, format="%(message)s")
logging.getLogger("livekit").setLevel(logging.WARNING)
"""


def test_installed_before_the_sdk_loads_it_waits_after_the_sdks_own_dispose() -> None:
    lines = run(
        LOGGING
        + """
from lkstate._wire import ffi_exit as _ffi_exit
from livekit.rtc._ffi_client import FfiClient
_ffi_exit.install()
_ffi_exit.install()  # once per process
FfiClient.instance  # the SDK registers its exit hook now, so it runs before lkstate's
"""
    )
    assert [line for line in lines if "LiveKit native" in line] == [
        "letting the LiveKit native threads settle for 0.20 s"
    ]


def test_installed_after_the_sdk_loads_it_disposes_first_then_waits() -> None:
    lines = run(
        LOGGING
        + """
from lkstate._wire import ffi_exit as _ffi_exit
from livekit.rtc._ffi_client import FfiClient
FfiClient.instance
_ffi_exit.install()
"""
    )
    assert [line for line in lines if "LiveKit native" in line] == [
        "disposing the LiveKit native library before exit",
        "letting the LiveKit native threads settle for 0.20 s",
    ]


def test_without_the_library_loaded_there_is_nothing_to_wait_for() -> None:
    lines = run(
        LOGGING
        + """
from lkstate._wire import ffi_exit as _ffi_exit
_ffi_exit.install()
print("quiesce:", _ffi_exit.quiesce(linger=0))
"""
    )
    assert "quiesce: False" in lines
    assert not [line for line in lines if "LiveKit native" in line]
