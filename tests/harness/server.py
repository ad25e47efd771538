"""The test server now lives in the published test kit, :mod:`lkstate.testing.server`.

Re-exported here so the project's tests keep importing it from the harness.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lkstate.testing.server import PINNED_VERSION, LiveKitServer, LiveKitServerError, find_livekit_server, free_port

__all__ = [
    "LiveKitServer", "LiveKitServerError", "find_livekit_server", "free_port", "PINNED_VERSION", "REPO_ROOT",
    "require_livekit_server",
]

REPO_ROOT = Path(__file__).resolve().parents[2]


def require_livekit_server() -> str:
    """The livekit-server binary, for tests that start their own; fails (or, with LKSTATE_ALLOW_SKIP=1, skips) without one."""
    found = find_livekit_server()
    if found is None:
        message = "livekit-server not found; run scripts/install-livekit-server"
        if os.environ.get("LKSTATE_ALLOW_SKIP") == "1":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    return str(found)
