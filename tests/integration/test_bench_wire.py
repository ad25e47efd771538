"""The benchmark's smallest run against a real livekit-server: the live figures come out as numbers.

Shape only, as in tests/unit/test_bench.py; no assertion about how fast anything is.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import pytest

from lkstate._tooling.bench import main

pytestmark = pytest.mark.wire

LIVE_NUMBERS = (
    "e2e_attribute_ratio",
    "e2e_attribute_ms",
    "e2e_attribute_raw_ms",
    "e2e_transcript_ratio",
    "e2e_transcript_ms",
    "e2e_transcript_raw_ms",
    "preconnect_send_ms",
    "preconnect_send_pcm_ms",
    "preconnect_send_floor_ms",
    "preconnect_stt_ms",
    "preconnect_stt_pcm_ms",
    "preconnect_handover_delay_share",
    "max_sessions",
    "max_voice_sessions",
)

TARGETED = (
    "e2e_attribute_ratio",
    "e2e_transcript_ratio",
    "preconnect_send_ms",
    "preconnect_stt_ms",
    "max_sessions",
    "max_voice_sessions",
)


def test_the_smallest_run_with_a_server_reports_every_live_figure() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--quick", "--json"])
    assert code == 0
    result = json.loads(out.getvalue())
    for key in LIVE_NUMBERS:
        value = result[key]
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), key
    for key in TARGETED:
        assert isinstance(result["targets"][key]["met"], bool), key
    assert result["e2e_attribute_samples"] > 0 and result["e2e_transcript_samples"] > 0
    assert isinstance(result["max_sessions_stopped"], str)
    assert isinstance(result["max_voice_sessions_stopped"], str)
    # With voice, the per-session cost is what an app sizing its server needs.
    assert set(result["max_voice_sessions_per_session"]) >= {"sessions", "cpu_ms_per_s", "rss_mb"}
    # Opus is what is sent by default; PCM is the baseline measured alongside it.
    assert 0 < result["preconnect_bytes"] < result["preconnect_pcm_bytes"] / 10


def test_only_the_preconnect_part_runs_alone() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--quick", "--json", "--only", "preconnect"])
    assert code == 0
    result = json.loads(out.getvalue())
    assert result["only"] == "preconnect" and "e2e_attribute_ratio" not in result
    assert set(result["targets"]) == {"preconnect_send_ms", "preconnect_stt_ms"}
    for key in ("preconnect_send_ms", "preconnect_send_pcm_ms", "preconnect_stt_ms", "preconnect_stt_pcm_ms"):
        assert result[key] > 0, key


def test_the_voice_figures_time_every_click_both_ways_on_both_paths() -> None:
    """``lkstate bench --voice``: the browser channel and the local path, each way, as numbers (never judged here)."""
    from lkstate._tooling.bench_voice import measure

    result = measure(clicks=4)
    for name in ("mic_to_agent", "agent_to_playback"):
        for path in ("local", "browser"):
            assert result[f"voice_{name}_{path}_lost"] == 0, f"a click was never heard on the {path} path"
            p50, p99 = result[f"voice_{name}_{path}_p50_ms"], result[f"voice_{name}_{path}_p99_ms"]
            assert 0 < p50 <= p99
        assert result[f"voice_{name}_ratio"] > 0
