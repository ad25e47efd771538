"""Microphones, speakers and cameras: the devices and files a session's media comes from and goes to.

The common inputs and outputs (:class:`~lkstate.AudioInput`,
:class:`~lkstate.WavFileInput`, :class:`~lkstate.GeneratorInput`,
:class:`~lkstate.AudioOutput`, :class:`~lkstate.WavFileOutput`) are at the top
level. This module holds the system devices and their lists for a device picker
(:func:`microphones`, :func:`speakers`), the camera and screen-share inputs, the
pieces for following the agent's voice, and :class:`AudioLevels`
(``session.levels``) for meters and voice visualizers. Every device is optional:
a session on a machine without one gets words in ``state.local_media``, never an
exception (only the lists raise, with a remedy, when PortAudio cannot list devices).

A picker hands the chosen :attr:`AudioDevice.index` (or a part of its name) to
:meth:`Session.set_audio_input <lkstate.Session.set_audio_input>` or
:meth:`~lkstate.Session.set_audio_output`, also while connected: the new
microphone feeds the same published track (the agent stays subscribed), and
the agent's voice goes on into the new speaker. Choosing is a command, so a
device that is not there raises, with a remedy, and the current one keeps working.
"""

from __future__ import annotations

from ._core.exports import publish as _publish
from ._core.options import PreConnectCodec
from ._media.audio import MicrophoneInput, default_audio_input, microphones
from ._media.push import PushAudioInput
from ._core.levels import AudioLevels
from ._media.levels import BAND_EDGES, LEVELS_INTERVAL
from ._media.sounddevice_probe import AudioDevice
from ._media.speaker import AgentVoice, SilentOutput, SpeakerOutput, agent_voice, default_audio_output, speakers
from ._media.video import PATTERN_COLOURS, CameraInput, PatternVideoInput, VideoGeneratorInput, VideoInput

__all__ = [
    "AgentVoice",
    "AudioDevice",
    "AudioLevels",
    "BAND_EDGES",
    "LEVELS_INTERVAL",
    "CameraInput",
    "MicrophoneInput",
    "PATTERN_COLOURS",
    "PatternVideoInput",
    "PreConnectCodec",
    "PushAudioInput",
    "SilentOutput",
    "SpeakerOutput",
    "VideoGeneratorInput",
    "VideoInput",
    "agent_voice",
    "default_audio_input",
    "default_audio_output",
    "microphones",
    "speakers",
]

_publish(__name__, globals(), __all__)
