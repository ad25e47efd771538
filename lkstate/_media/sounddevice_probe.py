"""The one place lkstate loads ``sounddevice`` and chooses a sound device, for the microphone and the speaker.

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

Choosing a device is the same for both too: list PortAudio's devices, keep
those with channels in the right direction, take the system default or the
one named by index or by part of its name, and check that it takes the
format. :class:`DeviceSide` does it once, with the words and the error type
of the side asking (see ``MICROPHONE`` in :mod:`.audio` and ``SPEAKER`` in
:mod:`.speaker`), so "no microphone matches 'USB'" and "no speaker matches
'USB'" come from one piece of code.

Nothing is imported until a device is built: importing lkstate never loads
``sounddevice``. A module already in ``sys.modules`` (installed later in the
process, or a stand-in a test put there) is always used as it is.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType
from typing import Any, Literal

import attrs

from .._core.errors import LkstateError

__all__ = ["AudioDevice", "DeviceSide", "SoundDeviceUnavailable", "load_sounddevice"]


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


@attrs.frozen
class AudioDevice:
    """A microphone or speaker this machine offers, as :func:`~lkstate.media.microphones` lists it.

    Pass ``index`` (or a part of ``name``) as ``device=`` to
    :class:`~lkstate.media.MicrophoneInput` or :class:`~lkstate.media.SpeakerOutput`
    to use it; ``is_default`` marks the one chosen when ``device`` is ``None``.
    """

    index: int
    name: str
    is_default: bool


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


@attrs.frozen
class DeviceSide:
    """One side of the sound card (the microphone's or the speaker's): its words, its error, its direction.

    Every failure raises ``error`` with a sentence that names the device
    (``noun``) and a remedy that offers what needs no device (``instead``,
    ``without_device``), so a person reads why there is no sound and what to
    do, whichever side failed.
    """

    noun: str
    """``"microphone"`` or ``"speaker"``: what the sentences call the device."""
    direction: Literal["input", "output"]
    """Which channels a device needs to count (``max_input_channels``…) and which default it takes."""
    verb: str
    """What the device does with audio (``"record"``, ``"play"``), for a format it cannot take."""
    error: type[LkstateError]
    instead: str
    """The device-free alternative, completing "…, or <instead>." after the install remedy."""
    without_device: str
    """The remedy when there is no device at all (or PortAudio cannot list them)."""
    format_remedy: str
    """The remedy when the device does not take the format asked for."""

    def load(self) -> ModuleType:
        """``sounddevice``, or this side's error saying why there is no sound."""
        try:
            return load_sounddevice()
        except SoundDeviceUnavailable as e:
            raise self.error(f"no {self.noun} found: {e.reason}.", remedy=f"{e.remedy}, or {self.instead}.") from (
                e.__cause__
            )

    def default_index(self, sd: Any) -> int | None:
        """sounddevice's default device on this side (its ``default.device`` is an (input, output) pair)."""
        pair: Any = sd.default.device
        try:
            value: Any = pair[0 if self.direction == "input" else 1]
        except (TypeError, IndexError, KeyError):
            value = pair
        return value if isinstance(value, int) and value >= 0 else None

    def devices(self, sd: Any) -> list[tuple[int, str]]:
        """``(index, name)`` of every device with channels on this side, in PortAudio's order."""
        try:
            listed: list[dict[str, Any]] = [dict(d) for d in sd.query_devices()]
        except Exception as e:
            raise self.error(
                f"no {self.noun} found: PortAudio could not list audio devices ({e}).", remedy=self.without_device
            ) from e
        channels = f"max_{self.direction}_channels"
        return [(i, str(d.get("name", f"device {i}"))) for i, d in enumerate(listed) if d.get(channels, 0) > 0]

    def listed(self) -> tuple[AudioDevice, ...]:
        """Every device on this side, in PortAudio's order; this side's error when PortAudio cannot say."""
        sd = self.load()
        default_index = self.default_index(sd)
        return tuple(AudioDevice(index, name, index == default_index) for index, name in self.devices(sd))

    def pick(self, sd: Any, device: int | str | None) -> tuple[int, str]:
        """Resolve ``device`` (an index, a part of a name, or ``None`` for the default) to ``(index, name)``."""
        devices = self.devices(sd)
        if not devices:
            raise self.error(
                f"no {self.noun} found: this machine has no audio {self.direction} device.", remedy=self.without_device
            )
        if device is None:
            default_index = self.default_index(sd)
            for index, name in devices:
                if index == default_index:
                    return index, name
            return devices[0]
        for index, name in devices:
            if device == index or (isinstance(device, str) and device.lower() in name.lower()):
                return index, name
        names = ", ".join(f"[{i}] {n}" for i, n in devices)
        raise self.error(
            f"no {self.noun} matches {device!r}; the {self.direction} devices are: {names}.",
            remedy="Pass one of those indexes or a part of its name, or device=None for the default.",
        )

    def check_format(self, sd: Any, index: int, name: str, *, sample_rate: int, num_channels: int) -> None:
        """That device ``index`` takes 16-bit audio at ``sample_rate`` with ``num_channels``, or this side's error."""
        check = sd.check_input_settings if self.direction == "input" else sd.check_output_settings
        try:
            check(device=index, channels=num_channels, dtype="int16", samplerate=sample_rate)
        except Exception as e:
            raise self.error(
                f"the {self.noun} {name!r} cannot {self.verb} {sample_rate} Hz with {num_channels} channel(s) ({e}).",
                remedy=self.format_remedy,
            ) from e
