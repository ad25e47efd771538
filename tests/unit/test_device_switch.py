"""Choosing the microphone and the speaker by device, and swapping inputs and outputs on a running session.

A device named by index or by part of its name is resolved by the same code
that lists devices (``DeviceSide.pick``), so these tests stand a fake
``sounddevice`` module in for PortAudio (as ``test_sounddevice_probe.py``
does: a module already in ``sys.modules`` is used as it is) and check what a
person sees: which device was opened, in which format, and the words when
there is no such device. The swaps themselves run the real controllers on
real inputs, outputs and ``rtc.AudioSource`` without a server; what the agent
hears over the wire is in ``tests/integration/test_device_switch_wire.py``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit import rtc

from lkstate import DevelopmentTokenSource, GeneratorInput, Session, WavFileOutput
from lkstate._core import events as ev
from lkstate._core.options import PreConnectLimits
from lkstate._core.state import LocalTrackState, PreConnectStatus
from lkstate._media.microphone import MicrophoneController, MicrophoneDevice
from lkstate._media.speaker import SpeakerController
from lkstate.errors import AudioInputError, AudioOutputError

RATE = 24000
FRAME = RATE // 100


# ------------------------------------------------------------------------ a stand-in for PortAudio


class FakeStream:
    """An input or output stream of the stand-in; an input one delivers 10 ms blocks of ``level`` from a thread."""

    def __init__(self, stand_in: StandIn, kind: str, **settings: Any) -> None:
        self.kind, self.settings, self.stand_in = kind, settings, stand_in
        self.started = self.closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.started = True
        if self.kind == "input":
            self._thread = threading.Thread(target=self._deliver, daemon=True)
            self._thread.start()

    def _deliver(self) -> None:
        block = np.full((self.settings["blocksize"], self.settings["channels"]), 1000, dtype=np.int16)
        while not self._stop.wait(0.01):
            self.settings["callback"](block, len(block), None, None)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self.closed = True


class StandIn(types.ModuleType):
    """Three devices: a built-in microphone (default input), built-in speakers (default output), a USB headset."""

    def __init__(self) -> None:
        super().__init__("sounddevice")
        self.default = types.SimpleNamespace(device=(0, 1))
        self.checked: list[tuple[str, dict[str, Any]]] = []
        self.streams: list[FakeStream] = []

    def query_devices(self) -> list[dict[str, Any]]:
        return [
            {"name": "Built-in Mic", "max_input_channels": 1, "max_output_channels": 0},
            {"name": "Built-in Speakers", "max_input_channels": 0, "max_output_channels": 2},
            {"name": "USB Headset", "max_input_channels": 1, "max_output_channels": 2},
        ]

    def check_input_settings(self, **settings: Any) -> None:
        self.checked.append(("input", settings))

    def check_output_settings(self, **settings: Any) -> None:
        self.checked.append(("output", settings))

    def InputStream(self, **settings: Any) -> FakeStream:  # noqa: N802 - sounddevice's name
        stream = FakeStream(self, "input", **settings)
        self.streams.append(stream)
        return stream

    def OutputStream(self, **settings: Any) -> FakeStream:  # noqa: N802
        stream = FakeStream(self, "output", **settings)
        self.streams.append(stream)
        return stream


@pytest.fixture
def sd(monkeypatch: pytest.MonkeyPatch) -> StandIn:
    stand_in = StandIn()
    monkeypatch.setitem(sys.modules, "sounddevice", stand_in)
    return stand_in


def offline_session() -> Session:
    return Session(DevelopmentTokenSource("ws://127.0.0.1:9", "devkey", "secret"), audio_input=None, audio_output=None)


# ------------------------------------------------------------------------ a device by index or by name


async def test_a_microphone_picked_by_part_of_its_name_or_its_index_is_that_device_in_48_khz_mono(sd: StandIn) -> None:
    session = offline_session()

    await session.set_audio_input("usb")
    await session.set_audio_input(0)

    assert sd.checked == [
        ("input", {"device": 2, "channels": 1, "dtype": "int16", "samplerate": 48000}),
        ("input", {"device": 0, "channels": 1, "dtype": "int16", "samplerate": 48000}),
    ]
    assert sd.streams == [], "choosing before start() opens nothing"
    await session.aclose()


async def test_no_such_microphone_is_refused_in_words_that_list_the_devices(sd: StandIn) -> None:
    session = offline_session()

    with pytest.raises(AudioInputError) as by_name:
        await session.set_audio_input("Bluetooth")
    with pytest.raises(AudioInputError) as by_index:
        await session.set_audio_input(1)  # the speakers: no input channels

    assert by_name.value.message == (
        "no microphone matches 'Bluetooth'; the input devices are: [0] Built-in Mic, [2] USB Headset."
    )
    assert by_index.value.message == "no microphone matches 1; the input devices are: [0] Built-in Mic, [2] USB Headset."
    assert by_name.value.remedy == "Pass one of those indexes or a part of its name, or device=None for the default."
    await session.aclose()


async def test_a_speaker_picked_by_name_is_that_device_and_no_such_speaker_is_refused_in_words(sd: StandIn) -> None:
    session = offline_session()

    await session.set_audio_output("HEADSET")
    with pytest.raises(AudioOutputError) as caught:
        await session.set_audio_output("hdmi")

    assert caught.value.message == (
        "no speaker matches 'hdmi'; the output devices are: [1] Built-in Speakers, [2] USB Headset."
    )
    await session.aclose()


def test_without_the_sounddevice_package_choosing_a_device_says_what_to_install() -> None:
    # A fresh interpreter: the probe remembers a failure for the life of the process.
    script = textwrap.dedent(
        """
        import asyncio, json, sys
        sys.modules['sounddevice'] = None
        from lkstate import DevelopmentTokenSource, Session
        from lkstate.errors import AudioInputError, AudioOutputError

        async def main():
            session = Session(DevelopmentTokenSource('ws://127.0.0.1:9', 'k', 's'), audio_input=None, audio_output=None)
            said = []
            for choose in (session.set_audio_input, session.set_audio_output):
                try:
                    await choose('usb')
                except (AudioInputError, AudioOutputError) as e:
                    said.append([type(e).__name__, e.message, e.remedy])
            await session.aclose()
            print(json.dumps(said))

        asyncio.run(main())
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    said = json.loads(out.stdout.strip().splitlines()[-1])

    assert [s[:2] for s in said] == [
        ["AudioInputError", "no microphone found: the `sounddevice` package is not installed."],
        ["AudioOutputError", "no speaker found: the `sounddevice` package is not installed."],
    ]
    assert all("pip install sounddevice" in s[2] for s in said)


# ------------------------------------------------------------------------ the microphone, swapped while it runs


class Collected:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def __call__(self, event: ev.Event) -> None:
        self.events.append(event)

    def tracks(self) -> list[LocalTrackState]:
        return [e.track for e in self.events if isinstance(e, ev.LocalTrackChanged)]


class Counted:
    """A realtime tone through a GeneratorInput that counts the chunks it was asked for."""

    def __init__(self, seconds: float = 10.0, *, rate: int = RATE, channels: int = 1, fail_after: int | None = None):
        self.read = 0
        self._seconds, self._rate, self._channels, self._fail_after = seconds, rate, channels, fail_after
        self.input = GeneratorInput(self._chunks(), sample_rate=rate, num_channels=channels, realtime=True)

    def _chunks(self) -> Iterator[bytes]:
        frame = np.full(self._rate // 100 * self._channels, 500, dtype=np.int16).tobytes()
        for _ in range(int(self._seconds * 100)):
            if self._fail_after is not None and self.read >= self._fail_after:
                raise RuntimeError("the cable came out")
            self.read += 1
            yield frame


def microphone(emit: Collected, audio_input: Any, levels: list[rtc.AudioFrame]) -> MicrophoneController:
    return MicrophoneController(
        audio_input=audio_input,
        emit=emit,
        clock=lambda: 1.0,
        preconnect=False,
        limits=PreConnectLimits(),
        on_level=levels.append,
    )


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def test_a_swapped_input_feeds_the_same_source_and_the_old_one_is_no_longer_read() -> None:
    emit, levels = Collected(), []
    first, second = Counted(), Counted()
    mic = microphone(emit, first.input, levels)
    await mic.start_capture()
    await until(lambda: first.read >= 10)
    source = mic._source  # pyright: ignore[reportPrivateUsage]

    await mic.set_input(second.input)
    read_at_switch = first.read
    await until(lambda: second.read >= 10)

    assert mic._source is source, "the same rtc.AudioSource: the published track would stay"  # pyright: ignore[reportPrivateUsage]
    assert first.read <= read_at_switch + 1
    assert emit.tracks()[-1] == LocalTrackState(enabled=True, device="GeneratorInput")
    await mic.aclose()


async def test_a_recording_waiting_for_the_agent_goes_on_with_the_new_input_s_frames() -> None:
    emit = Collected()
    first, second = Counted(), Counted()
    mic = MicrophoneController(
        audio_input=first.input, emit=emit, clock=lambda: 1.0, preconnect=True, limits=PreConnectLimits()
    )
    await mic.start_capture()
    await until(lambda: first.read >= 30)

    await mic.set_input(second.input)
    before = mic.preconnect_state.seconds
    await until(lambda: second.read >= 40)
    await until(lambda: mic.preconnect_state.seconds >= before + 0.3)  # progress is reported every 0.25 s

    assert mic.preconnect_state.status is PreConnectStatus.RECORDING
    assert mic.preconnect_state.seconds <= (first.read + second.read) / 100 + 0.01
    await mic.aclose()


async def test_an_input_of_another_format_is_refused_in_words_and_the_old_one_keeps_running() -> None:
    emit, levels = Collected(), []
    current, stereo, faster = Counted(), Counted(channels=2), Counted(rate=48000)
    mic = microphone(emit, current.input, levels)
    await mic.start_capture()
    await until(lambda: current.read >= 5)

    with pytest.raises(AudioInputError) as caught:
        await mic.set_input(stereo.input)
    with pytest.raises(AudioInputError):
        await mic.set_input(faster.input)
    read = current.read
    await until(lambda: current.read >= read + 10)

    assert caught.value.message == (
        "GeneratorInput gives 24000 Hz / 2 ch, but the microphone track carries 24000 Hz / 1 ch and cannot "
        "change format while it is published; the current input keeps running."
    )
    assert caught.value.remedy.startswith("Build the input with sample_rate=24000 and num_channels=1")
    assert stereo.read == faster.read == 0
    assert [t.device for t in emit.tracks()] == ["GeneratorInput"]
    await mic.aclose()


async def test_a_device_picked_while_running_is_opened_in_the_tracks_format_and_closed_when_replaced(
    sd: StandIn,
) -> None:
    emit, levels = Collected(), []
    first, last = Counted(), Counted()
    mic = microphone(emit, first.input, levels)
    await mic.start_capture()
    assert mic.format == (RATE, 1)

    headset = MicrophoneDevice("usb", *mic.format).open()
    await mic.set_input(headset, owned=True)
    await until(lambda: len(sd.streams) == 1)  # the pump opens it as it starts reading
    (stream,) = sd.streams
    heard = len(levels)
    await until(lambda: len(levels) >= heard + 10)  # the stand-in's blocks reach the track source
    assert (stream.settings["device"], stream.settings["samplerate"], stream.started) == (2, RATE, True)
    assert emit.tracks()[-1].device == "USB Headset"

    await mic.set_input(last.input)
    assert stream.closed, "the device the controller opened is released when replaced"
    await until(lambda: last.read >= 5)
    await mic.aclose()


async def test_a_device_chosen_before_start_is_opened_by_each_start_and_closed_by_its_end(sd: StandIn) -> None:
    # A session keeps the choice, not a MicrophoneInput: one can be read once and is closed at end().
    for _ in range(2):
        emit, levels = Collected(), []
        mic = microphone(emit, MicrophoneDevice("usb", RATE, 1), levels)
        await mic.start_capture()
        await until(lambda: len(levels) >= 5)
        assert emit.tracks()[-1] == LocalTrackState(enabled=True, device="USB Headset")
        await mic.aclose()

    assert [(s.settings["device"], s.settings["samplerate"], s.closed) for s in sd.streams] == [
        (2, RATE, True),
        (2, RATE, True),
    ]


async def test_a_failed_input_s_error_is_cleared_when_a_new_input_starts() -> None:
    emit, levels = Collected(), []
    broken, fresh = Counted(fail_after=3), Counted()
    mic = microphone(emit, broken.input, levels)
    await mic.start_capture()
    await until(lambda: mic.track_state.error is not None)
    assert mic.track_state.error == "The audio input stopped working: the cable came out"

    await mic.set_input(fresh.input)
    await until(lambda: fresh.read >= 5)

    assert mic.track_state.error is None and mic.track_state.device == "GeneratorInput"
    await mic.aclose()


async def test_a_microphone_started_without_input_gets_a_source_for_the_first_input_and_keeps_it_muted() -> None:
    emit, levels = Collected(), []
    later = Counted()
    mic = microphone(emit, None, levels)
    await mic.set_enabled(False)
    await mic.start_capture()
    assert mic.format is None

    await mic.set_input(later.input)
    await until(lambda: later.read >= 5)

    assert mic.format == (RATE, 1)
    assert mic.track_state == LocalTrackState(enabled=False, muted=True, device="GeneratorInput")
    assert levels == [], "muted: no frame is measured, recorded or sent"
    await mic.set_input(None)
    assert mic.format is None and mic.track_state == LocalTrackState(enabled=False)
    await mic.aclose()


# ------------------------------------------------------------------------ the speaker, swapped while it plays


def frame_of(value: int) -> rtc.AudioFrame:
    return rtc.AudioFrame(np.full(480, value, dtype=np.int16).tobytes(), 48000, 1, 480)


async def test_a_swapped_output_is_opened_in_the_playback_format_and_the_old_one_closed(tmp_path: Path) -> None:
    emitted: list[ev.Event] = []
    before, after = WavFileOutput(tmp_path / "before.wav"), WavFileOutput(tmp_path / "after.wav")
    speaker = SpeakerController(audio_output=before, emit=emitted.append, clock=lambda: 1.0)
    await speaker.start()

    await speaker.set_output(after)

    assert speaker.output is after and (after.sample_rate, after.num_channels) == (48000, 1)
    with pytest.raises(AudioOutputError, match="is not open"):
        before.write(frame_of(1))
    after.write(frame_of(1))
    assert speaker.track_state.device == repr(after)
    await speaker.aclose()


async def test_an_output_that_cannot_open_is_refused_in_words_and_the_current_one_plays_on(tmp_path: Path) -> None:
    emitted: list[ev.Event] = []
    current = WavFileOutput(tmp_path / "current.wav")
    speaker = SpeakerController(audio_output=current, emit=emitted.append, clock=lambda: 1.0)
    await speaker.start()
    state = speaker.track_state

    with pytest.raises(AudioOutputError) as caught:
        await speaker.set_output(WavFileOutput(tmp_path / "missing" / "agent.wav"))

    assert "folder exists" in caught.value.remedy
    assert speaker.output is current and speaker.track_state == state
    current.write(frame_of(1))  # still open
    await speaker.aclose()
