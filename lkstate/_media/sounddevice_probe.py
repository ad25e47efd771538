"""The one place lkstate loads ``sounddevice``, the PortAudio binding behind the microphone and the speaker.

Both devices need the same module, and both fail the same two ways on a
machine without sound: the package is not installed, or it is installed but
the PortAudio C library is not (``sounddevice`` then raises ``OSError`` while
it is imported). This module tries once and remembers the answer, so the
microphone and the speaker agree on why there is no sound and neither pays
for the attempt again.

Why remember a failure: trying again is not free. The module is run anew,
and looking for PortAudio runs the C compiler and the linker (a tenth of a
second, and memory that stays), on every start of every session of a machine
that has no PortAudio, a server's usual case.

Nothing is imported until a device is built: importing lkstate never loads
``sounddevice``. A module already in ``sys.modules`` (installed later in the
process, or a stand-in a test put there) is always used as it is.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType

__all__ = ["SoundDeviceUnavailable", "load_sounddevice"]


class SoundDeviceUnavailable(Exception):
    """``sounddevice`` cannot be used on this machine, said in words.

    ``reason`` completes a sentence such as "no microphone found: …";
    ``remedy`` says what to install. Each device wraps this in its own error
    and adds the alternative that needs no device (a WAV file).
    """

    def __init__(self, reason: str, remedy: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.remedy = remedy


_failure: SoundDeviceUnavailable | None = None
"""Why ``sounddevice`` could not be loaded, once it could not."""

_lock = threading.Lock()


def load_sounddevice() -> ModuleType:
    """The ``sounddevice`` module, or :class:`SoundDeviceUnavailable` saying why not.

    The first failure is remembered for the life of the process; the error
    raised again carries the original exception as its cause.
    """
    global _failure
    loaded = sys.modules.get("sounddevice")
    if loaded is not None:
        return loaded
    with _lock:
        if _failure is not None:
            raise _failure.with_traceback(None)
        try:
            return importlib.import_module("sounddevice")
        except ImportError as e:
            _failure = SoundDeviceUnavailable(
                "the `sounddevice` package is not installed",
                remedy="Install it with `pip install sounddevice` (it brings PortAudio on Windows and macOS)",
            )
            _failure.__cause__ = e
        except OSError as e:  # sounddevice raises OSError when libportaudio is missing
            _failure = SoundDeviceUnavailable(
                f"the PortAudio library could not be loaded ({e})",
                remedy=(
                    "Install PortAudio (e.g. `apt-get install libportaudio2` on Debian or Ubuntu, "
                    "`brew install portaudio` on macOS)"
                ),
            )
            _failure.__cause__ = e
        raise _failure
