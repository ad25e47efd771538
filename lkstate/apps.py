"""What the example apps share: the connection flags, the camera flag and a session built from them.

The Textual, Qt and Gradio apps (and ``lkstate connect``) take the same
command-line flags and environment variables; a program of your own can take
them too::

    parser = argparse.ArgumentParser()
    add_connection_arguments(parser)
    session = session_from_args(parser.parse_args())
"""

from __future__ import annotations

from ._core.exports import publish as _publish
from ._tooling.app_args import (
    CONNECTION_HELP,
    add_camera_argument,
    add_connection_arguments,
    session_from_args,
    token_source_from_args,
    video_input_for,
)

__all__ = [
    "CONNECTION_HELP",
    "add_camera_argument",
    "add_connection_arguments",
    "session_from_args",
    "token_source_from_args",
    "video_input_for",
]

_publish(__name__, globals(), __all__)
