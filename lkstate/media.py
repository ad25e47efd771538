"""Microphones, speakers and cameras: the devices and files a session's media comes from and goes to.

The common inputs and outputs (:class:`~lkstate.AudioInput`,
:class:`~lkstate.WavFileInput`, :class:`~lkstate.GeneratorInput`,
:class:`~lkstate.AudioOutput`, :class:`~lkstate.WavFileOutput`) are at the top
level. This module holds the system devices, the camera and screen-share
inputs, the pieces for following the agent's voice, and
:class:`AudioLevels` (``session.levels``) for meters and voice visualizers. Every device is
optional: a machine without one gets words in ``state.local_media``, never an
exception.
"""

from __future__ import annotations

from ._core.exports import publish as _publish
from ._core.options import PreConnectCodec
from ._media.audio import MicrophoneInput, default_audio_input
from ._media.push import PushAudioInput
from ._core.levels import AudioLevels
from ._media.levels import BAND_EDGES, LEVELS_INTERVAL
from ._media.speaker import AgentVoice, SilentOutput, SpeakerOutput, agent_voice, default_audio_output
from ._media.video import PATTERN_COLOURS, CameraInput, PatternVideoInput, VideoGeneratorInput, VideoInput

__all__ = [
    "AgentVoice",
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
]

_publish(__name__, globals(), __all__)
