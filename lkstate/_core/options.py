"""Limits and options: every size, rate and timeout lkstate applies, in one place.

Defaults are chosen for a person talking to one agent for hours; each is
documented with what happens when it is reached. Nothing is silently unbounded:
a hostile participant in the room can send anything, and the session must keep
its memory and its composure.
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["Limits", "PreConnectCodec", "PreConnectLimits", "SessionOptions"]

PreConnectCodec = Literal["opus", "pcm"]
"""How the pre-connect recording travels to the agent: Opus in Ogg, or raw s16le PCM."""


@attrs.frozen
class PreConnectLimits:
    """How much to record before the agent arrives, and how long to wait for it.

    The defaults hold 20 s of 48 kHz mono speech (1.92 MB, under the 2 MiB
    byte cap); a stereo or higher-rate input reaches the byte cap first.
    ``agent_wait_timeout`` is how long the session keeps recording while no
    agent is ready — the JS client uses 10 s too; past it the buffer is
    discarded, since an agent that arrives later will not ask for old audio.
    The byte cap is on the recorded PCM, whatever ``codec`` sends.

    ``codec`` is how the recording is sent. ``"opus"`` (the default) encodes
    it while it is recorded, so the hand-over sends about a sixteenth of the
    bytes of 48 kHz PCM (10 s: 60 KB instead of 960 KB) and the agent has it
    in tens of milliseconds rather than a second — the data channel, not the
    encoder, is what the agent waits for. It needs PyAV (``pip install
    lkstate[opus]``; the ``agent`` extra has it too); without it, or for an
    input of more than two channels, the recording is sent as ``"pcm"``
    automatically and the log says why. ``opus_bitrate`` is in bits per
    second: at 48 kb/s (6 KB a second) even band-limited noise, which codes
    worse than speech, comes back with every 20 ms correlating 0.96 or
    better with what was recorded.
    """

    max_bytes: int = attrs.field(default=2 * 1024 * 1024, validator=attrs.validators.gt(0))
    max_seconds: float = attrs.field(default=20.0, validator=attrs.validators.gt(0.0))
    agent_wait_timeout: float = attrs.field(default=10.0, validator=attrs.validators.gt(0.0))
    codec: PreConnectCodec = attrs.field(default="opus", validator=attrs.validators.in_(("opus", "pcm")))
    opus_bitrate: int = attrs.field(
        default=48_000, validator=[attrs.validators.ge(6_000), attrs.validators.le(510_000)]
    )


@attrs.frozen
class Limits:
    """Caps on what a session accepts from the room. Reaching one is reported, never fatal."""

    max_message_chars: int = 100_000
    """A single message's text is cut at this many characters (marked with an error)."""
    max_problems: int = 50
    """How many recent problems the state keeps (oldest dropped first)."""
    max_stream_bytes: int = 1 << 20
    """A text stream (transcript or chat) larger than this is cut off and reported."""
    max_session_message_bytes: int = 1 << 20
    """An ``lk.agent.session`` message larger than this is refused."""
    max_open_streams_per_sender: int = 64
    """Streams read at once from one participant; more are refused (stream floods)."""
    max_streams_per_second: float = 10.0
    """Streams a participant that is not an agent may open per second, on average; more are refused.

    Up to ``stream_burst`` may come at once. Agents are not limited: their
    streams are the conversation (one per utterance, per interim result of the
    user's speech, per session event). A person's chat is far below the limit;
    a flood of thousands of streams a second is cut to this rate and reported.
    """
    max_rpc_calls: int = 50
    """How many recent RPC calls ``state.rpc.calls`` keeps (oldest dropped first)."""
    stream_burst: int = 50
    """How many streams a participant that is not an agent may open at once before the rate applies."""
    max_session_response_bytes: int = 64 << 20
    """The most read of one ``lk.agent.session`` stream from the agent (a long chat history).

    It is also the largest stream of any topic the room connection takes at
    all: larger ones are refused by the SDK before any of their content is
    read, so a hostile 100 MB stream costs no memory.
    """


@attrs.frozen
class SessionOptions:
    """How a :class:`~lkstate.Session` behaves. All durations are seconds."""

    agent_connect_timeout: float | None = 20.0
    """How long to wait for an agent to join and become ready before the agent is ``failed``.

    ``None`` waits forever. A failed agent recovers if one shows up later.
    """
    preconnect_audio: bool = True
    """Capture the microphone from ``start()`` so the user can speak while connecting."""
    preconnect_limits: PreConnectLimits = PreConnectLimits()
    """Caps on the pre-connect buffer (bytes, seconds) and how long it waits for an agent."""
    keep_history_on_restart: bool = False
    """Keep the previous conversation's messages when ``start()`` is called again.

    Restored messages (``Session(history=...)``) are kept either way."""
    fetch_agent_history: bool = True
    """Ask the agent for its chat history once it is ready, and show what was said before
    the user joined (a greeting to an empty room, an earlier visit) as messages with
    ``origin`` ``agent_history``. Needs an agent running the LiveKit Agents session host
    (on by default in livekit-agents 1.5 and later); one that does not answer costs one
    request and a log line."""
    limits: Limits = Limits()
    agent_audio_frame_ms: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional([attrs.validators.ge(10), attrs.validators.le(1000)]),
    )
    """How much of the agent's voice (ms) each write to the ``audio_output`` carries.

    ``None`` takes the SDK's own 10 ms frames, the least delay for a
    speaker. A server holding many voice sessions in one process gives 20 to
    100: livekit-rtc hands every received frame to the event loop of *every*
    audio stream in the process (each then drops the ones not its own), so
    the cost of a frame grows with the number of sessions, and fewer,
    longer frames are what lets one process hold more of them. The voice
    then reaches the output up to that much later.
    """
