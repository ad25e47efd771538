"""The microphone and the speaker load ``sounddevice`` through one probe and agree on why there is no sound.

Each scenario runs in a fresh interpreter: the probe remembers its answer for
the life of the process, which is the behaviour under test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# Builds a microphone, then a speaker, then a microphone again, and reports
# what each said and whether their errors share the one remembered cause.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    {setup}
    from lkstate._media.audio import MicrophoneInput
    from lkstate._media.speaker import SpeakerOutput
    from lkstate._core.errors import AudioInputError, AudioOutputError

    caught = []
    for build in (MicrophoneInput, SpeakerOutput, MicrophoneInput):
        try:
            build()
        except (AudioInputError, AudioOutputError) as e:
            caught.append(e)
    print(json.dumps({{
        "messages": [e.message for e in caught],
        "remedies": [e.remedy for e in caught],
        "one_cause": len(caught) == 3 and caught[0].__cause__ is caught[1].__cause__ is caught[2].__cause__,
        "cause": type(caught[0].__cause__).__name__ if caught else None,
    }}))
    """
)


def run(setup: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(setup=setup)], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout)


def portaudio_loads() -> bool:
    try:
        import sounddevice  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except (ImportError, OSError):
        return False
    return True


@pytest.mark.skipif(portaudio_loads(), reason="this machine has PortAudio; this is about one without")
def test_without_portaudio_both_devices_say_so_and_name_the_package_to_install() -> None:
    seen = run("")

    assert seen["messages"] == [
        "no microphone found: the PortAudio library could not be loaded (PortAudio library not found).",
        "no speaker found: the PortAudio library could not be loaded (PortAudio library not found).",
        "no microphone found: the PortAudio library could not be loaded (PortAudio library not found).",
    ]
    remedies = seen["remedies"]
    assert isinstance(remedies, list)
    assert all("libportaudio2" in remedy for remedy in remedies)
    assert "WavFileInput" in remedies[0] and "WavFileOutput('agent.wav')" in remedies[1]
    # Tried once: the speaker and the second microphone got the first attempt's failure.
    assert seen["one_cause"] is True
    assert seen["cause"] == "OSError"


def test_without_the_package_both_devices_say_to_install_it_and_try_only_once() -> None:
    # None in sys.modules makes `import sounddevice` fail as if it were not installed.
    seen = run("sys.modules['sounddevice'] = None")

    assert seen["messages"] == [
        "no microphone found: the `sounddevice` package is not installed.",
        "no speaker found: the `sounddevice` package is not installed.",
        "no microphone found: the `sounddevice` package is not installed.",
    ]
    remedies = seen["remedies"]
    assert isinstance(remedies, list)
    assert all("pip install sounddevice" in remedy for remedy in remedies)
    assert "GeneratorInput" in remedies[0] and "WavFileOutput('agent.wav')" in remedies[1]
    assert seen["one_cause"] is True
    assert seen["cause"] == "ModuleNotFoundError"


def test_a_module_already_loaded_is_used_even_after_a_failure() -> None:
    # PortAudio installed while the process runs (here: a stand-in registered
    # after the first failure) is picked up; the remembered failure does not stick.
    seen = run(
        textwrap.dedent(
            """
            sys.modules['sounddevice'] = None
            from lkstate._media.sounddevice_probe import SoundDeviceUnavailable, load_sounddevice
            try:
                load_sounddevice()
            except SoundDeviceUnavailable:
                pass
            import types
            class Default:
                device = (0, 1)
            stand_in = types.ModuleType('sounddevice')
            stand_in.default = Default()
            stand_in.query_devices = lambda: [
                {'name': 'Mic', 'max_input_channels': 1, 'max_output_channels': 0},
                {'name': 'Speakers', 'max_input_channels': 0, 'max_output_channels': 2},
            ]
            def check_input_settings(**settings):
                raise ValueError('Invalid sample rate')
            stand_in.check_input_settings = check_input_settings
            sys.modules['sounddevice'] = stand_in
            """
        )
    )

    # The microphone got past loading and device choice to the format check;
    # the speaker was built (it checks the format only when opened).
    messages = seen["messages"]
    assert isinstance(messages, list)
    assert len(messages) == 2
    assert all(str(m).startswith("the microphone 'Mic' cannot record 48000 Hz") for m in messages)


LISTS = textwrap.dedent(
    """
    import json, sys, types
    {setup}
    from lkstate.media import microphones, speakers
    from lkstate.errors import LkstateError

    seen = {{}}
    for name, listing in (("microphones", microphones), ("speakers", speakers)):
        try:
            seen[name] = [[d.index, d.name, d.is_default] for d in listing()]
        except LkstateError as e:
            seen[name] = {{"error": type(e).__name__, "message": e.message, "remedy": e.remedy}}
    print(json.dumps(seen))
    """
)

STAND_IN = """
class Default:
    device = (2, 1)
stand_in = types.ModuleType('sounddevice')
stand_in.default = Default()
stand_in.query_devices = lambda: [
    {'name': 'USB Mic', 'max_input_channels': 1, 'max_output_channels': 0},
    {'name': 'Speakers', 'max_input_channels': 0, 'max_output_channels': 2},
    {'name': 'Headset', 'max_input_channels': 1, 'max_output_channels': 2},
]
sys.modules['sounddevice'] = stand_in
"""


def list_devices(setup: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", LISTS.format(setup=setup)], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout)


def test_the_device_lists_name_each_side_s_devices_in_order_and_mark_the_defaults() -> None:
    seen = list_devices(STAND_IN)

    # A headset is both; each side marks the default PortAudio names for it.
    assert seen["microphones"] == [[0, "USB Mic", False], [2, "Headset", True]]
    assert seen["speakers"] == [[1, "Speakers", True], [2, "Headset", False]]


def test_the_device_lists_without_the_package_raise_each_side_s_error_with_its_remedy() -> None:
    seen = list_devices("sys.modules['sounddevice'] = None")
    microphone, speaker = seen["microphones"], seen["speakers"]
    assert isinstance(microphone, dict) and isinstance(speaker, dict)

    assert microphone["error"] == "AudioInputError"
    assert microphone["message"] == "no microphone found: the `sounddevice` package is not installed."
    assert "pip install sounddevice" in microphone["remedy"]
    assert speaker["error"] == "AudioOutputError"
    assert speaker["message"] == "no speaker found: the `sounddevice` package is not installed."
    assert "WavFileOutput('agent.wav')" in speaker["remedy"]
