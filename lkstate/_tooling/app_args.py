"""The command-line flags every lkstate front end takes to reach an agent.

The terminal, desktop and web clients and the ``lkstate`` command all connect
the same way, so a person learns the flags once: where the server is and how
to get a token (``--url``, ``--token``, ``--token-endpoint``, ``--api-key``,
``--api-secret``, each falling back to the environment through
:func:`~lkstate.token_source_from_env`), which agent to dispatch
(``--agent-name``, ``LKSTATE_AGENT_NAME``), the room and the participant, how
long to wait for the agent, and how often to redraw. This module declares
them on an ``argparse`` parser and turns the parsed values into a
:class:`~lkstate.Session`; each front end adds its own flags beside them.

``--camera`` (:func:`add_camera_argument`) picks what the camera button
sends: the machine's camera, a generated test pattern (so a demo shows a
working camera on a machine without one), or nothing.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Literal

from .._wire.tokens_env import token_source_from_env
from .._core.delivery import DEFAULT_MAX_RATE
from .._session.session import Session
from .._wire.tokens import TokenSource
from .._media.video import PatternVideoInput, VideoInput

__all__ = [
    "CAMERA_CHOICES",
    "CONNECTION_HELP",
    "DEFAULT_AGENT_TIMEOUT",
    "add_camera_argument",
    "add_connection_arguments",
    "session_from_args",
    "token_source_from_args",
    "video_input_for",
]

DEFAULT_AGENT_TIMEOUT = 20.0
"""Seconds a front end waits for the agent to join and become ready, unless told otherwise."""

CONNECTION_HELP = (
    "Where to connect, first match wins: --token-endpoint (env LKSTATE_TOKEN_ENDPOINT); --url with --token "
    "(LIVEKIT_URL, LIVEKIT_TOKEN); --url with --api-key and --api-secret (LIVEKIT_API_KEY, LIVEKIT_API_SECRET) "
    "to mint development tokens. Flags win over the environment."
)
"""Says how the connection flags combine; for a parser's ``description`` or ``epilog``."""


def add_connection_arguments(
    parser: argparse.ArgumentParser,
    *,
    agent_name: str | None = None,
    participant: bool = True,
    max_rate: float | None = DEFAULT_MAX_RATE,
    max_rate_help: str = "screen updates per second",
) -> None:
    """Declare the connection flags on ``parser``.

    ``agent_name`` is the agent dispatched when neither ``--agent-name`` nor
    ``LKSTATE_AGENT_NAME`` names one (``--agent-name ''`` asks for none).
    ``participant=False`` leaves out ``--identity`` and ``--name``, for a
    front end whose every user needs an identity of their own (the web demo).
    ``max_rate`` is the default of ``--max-rate``; ``None`` leaves the flag
    out, for programs that draw nothing.
    """
    parser.add_argument("--url", help="LiveKit server URL, ws:// or wss:// (env LIVEKIT_URL)")
    parser.add_argument("--token", help="a participant token for --url (env LIVEKIT_TOKEN)")
    parser.add_argument(
        "--token-endpoint", help="a token endpoint to ask for URL and token (env LKSTATE_TOKEN_ENDPOINT)"
    )
    parser.add_argument("--api-key", help="API key to mint development tokens (env LIVEKIT_API_KEY)")
    parser.add_argument("--api-secret", help="API secret to mint development tokens (env LIVEKIT_API_SECRET)")
    default_agent = os.environ.get("LKSTATE_AGENT_NAME", agent_name)
    parser.add_argument(
        "--agent-name",
        default=default_agent,
        help="the agent to dispatch into the room (env LKSTATE_AGENT_NAME"
        + (f"; default {default_agent}; '' for none)" if default_agent else ")"),
    )
    parser.add_argument("--room", help="room name (default: a new room)")
    if participant:
        parser.add_argument("--identity", help="your participant identity (default: random)")
        parser.add_argument("--name", help="your display name")
    parser.add_argument(
        "--agent-timeout",
        type=float,
        default=DEFAULT_AGENT_TIMEOUT,
        help=f"seconds to wait for the agent (default {DEFAULT_AGENT_TIMEOUT:g})",
    )
    if max_rate is not None:
        parser.add_argument(
            "--max-rate", type=float, default=max_rate, help=f"{max_rate_help} (default {max_rate:g})"
        )


CAMERA_CHOICES = ("default", "pattern", "none")
"""What ``--camera`` accepts: the system camera, a generated test pattern, or no camera."""


def add_camera_argument(parser: argparse.ArgumentParser) -> None:
    """Declare ``--camera {default,pattern,none}`` (default ``default``) on ``parser``."""
    parser.add_argument(
        "--camera",
        choices=CAMERA_CHOICES,
        default="default",
        help="what the camera button sends: default = this machine's camera (the app says so in words when "
        "there is none), pattern = generated colour bars (a working camera on any machine), none = no "
        "camera (default %(default)s)",
    )


def video_input_for(choice: str) -> VideoInput | Literal["default"] | None:
    """The :class:`~lkstate.Session` ``video_input`` a ``--camera`` choice stands for.

    ``pattern`` makes a new :class:`~lkstate.PatternVideoInput` on each call,
    so sessions made for different users (browser tabs) do not share one.
    """
    if choice == "default":
        return "default"
    if choice == "pattern":
        return PatternVideoInput()
    if choice == "none":
        return None
    raise ValueError(f"--camera takes one of {', '.join(CAMERA_CHOICES)}, not {choice!r}")


def token_source_from_args(args: argparse.Namespace) -> TokenSource:
    """The token source the parsed flags (then the environment) describe.

    Raises :class:`~lkstate.LkstateError` with a remedy when nothing usable is given.
    """
    return token_source_from_env(
        url=args.url,
        token=args.token,
        token_endpoint=args.token_endpoint,
        api_key=args.api_key,
        api_secret=args.api_secret,
    )


def session_from_args(args: argparse.Namespace, **session_kwargs: Any) -> Session:
    """A new, unstarted session as the parsed flags describe it.

    ``session_kwargs`` go to :class:`~lkstate.Session` as they are (``audio_input``,
    ``options``…) and win over the flags. A parser with :func:`add_camera_argument`
    gives the session its ``video_input``. Each call makes a new token source, so
    sessions made for different users do not share a room or an identity unless
    the flags say so. Raises :class:`~lkstate.LkstateError` when the flags and the
    environment give no way to reach a server.
    """
    flags: dict[str, Any] = {
        "agent_name": args.agent_name or None,
        "agent_connect_timeout": args.agent_timeout,
        "room_name": args.room,
        "participant_identity": getattr(args, "identity", None),
        "participant_name": getattr(args, "name", None),
    }
    camera = getattr(args, "camera", None)
    if camera is not None:
        flags["video_input"] = video_input_for(camera)
    return Session(token_source_from_args(args), **{**flags, **session_kwargs})
