"""The test server now lives in the published test kit, :mod:`lkstate.testing.server`.

Re-exported here so the project's tests keep importing it from the harness.
"""

from __future__ import annotations

from pathlib import Path

from lkstate.testing.server import PINNED_VERSION, LiveKitServer, LiveKitServerError, find_livekit_server, free_port

__all__ = ["LiveKitServer", "LiveKitServerError", "find_livekit_server", "free_port", "PINNED_VERSION", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parents[2]
