"""The benchmark's smallest run: one JSON object on stdout, with every figure issue 8 asks for.

Only the shape is checked here — keys present, numbers that are numbers, a
verdict for every target. How fast lkstate is belongs in the benchmark's
output, never in a test's assertion.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys
from typing import Any

import pytest

from lkstate._tooling.bench import main

HEADLINE_NUMBERS = (
    "reduce_p50_us",
    "reduce_p99_us",
    "naive_reduce_p99_us",
    "reduce_vs_naive_ratio",
    "delivery_overhead_p50_us",
    "delivery_overhead_p99_us",
    "events_per_s",
    "bytes_per_message",
    "ui_updates_per_s_at_1000_deltas_per_s",
)
PER_SIZE_NUMBERS = (
    "reduce_p50_us",
    "reduce_p99_us",
    "naive_reduce_p99_us",
    "reduce_vs_naive_ratio",
    "delivery_overhead_p50_us",
    "delivery_overhead_p99_us",
    "events_per_s",
    "bytes_per_message",
)
SERVER_FIGURES = (
    "e2e_attribute_ratio",
    "e2e_transcript_ratio",
    "preconnect_send_ms",
    "preconnect_send_pcm_ms",
    "preconnect_stt_ms",
    "preconnect_stt_pcm_ms",
    "max_sessions",
    "max_voice_sessions",
)
TARGETED = (
    "reduce_p99_us",
    "reduce_vs_naive_ratio",
    "delivery_overhead_p50_us",
    "events_per_s",
    "bytes_per_message",
    "e2e_attribute_ratio",
    "e2e_transcript_ratio",
    "preconnect_send_ms",
    "preconnect_stt_ms",
    "max_sessions",
    "max_voice_sessions",
)
SIZES = ("100", "1000", "10000", "100000")


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def printed() -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--quick", "--no-server", "--json"])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def result(printed: tuple[int, str]) -> dict[str, Any]:
    return json.loads(printed[1])


def test_the_smallest_run_succeeds_and_prints_exactly_one_json_object(printed: tuple[int, str]) -> None:
    code, text = printed
    assert code == 0
    decoder = json.JSONDecoder()
    value, end = decoder.raw_decode(text.strip())
    assert isinstance(value, dict)
    assert end == len(text.strip()), "something other than the JSON object was printed on stdout"


def test_every_in_process_figure_is_a_number(result: dict[str, Any]) -> None:
    for key in HEADLINE_NUMBERS:
        assert is_number(result.get(key)), key
    assert isinstance(result["snapshot_shares_structure"], bool)
    assert isinstance(result["ui_ends_on_latest"], bool)


def test_the_figures_are_reported_at_every_history_length(result: dict[str, Any]) -> None:
    scaling = result["scaling"]
    assert set(SIZES) <= set(scaling)
    for size in SIZES:
        for key in PER_SIZE_NUMBERS:
            assert is_number(scaling[size].get(key)), (size, key)
        assert isinstance(scaling[size]["snapshot_shares_structure"], bool)
        assert scaling[size]["messages"] == int(size)


def test_the_headline_figures_are_those_at_ten_thousand_messages(result: dict[str, Any]) -> None:
    at_10k = result["scaling"]["10000"]
    for key in PER_SIZE_NUMBERS:
        assert result[key] == at_10k[key], key


def test_without_a_server_the_server_figures_are_present_but_empty(result: dict[str, Any]) -> None:
    for key in SERVER_FIGURES:
        assert key in result and result[key] is None, key
        if key in TARGETED:
            assert result["targets"][key]["met"] is None, key


def test_every_target_has_a_verdict(result: dict[str, Any]) -> None:
    targets = result["targets"]
    for key in TARGETED:
        verdict = targets[key]
        assert verdict["met"] in (True, False, None), key
        assert isinstance(verdict["target"], str) and verdict["target"], key
        assert verdict["value"] == result[key], key
    measured = [key for key in TARGETED if key not in SERVER_FIGURES]
    assert all(isinstance(targets[key]["met"], bool) for key in measured)


def test_the_module_runs_as_a_script() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "lkstate._tooling.bench", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "--no-server" in completed.stdout and "--quick" in completed.stdout


def test_only_preconnect_needs_the_server_and_says_so() -> None:
    with pytest.raises(SystemExit) as stopped, contextlib.redirect_stderr(io.StringIO()) as err:
        main(["--only", "preconnect", "--no-server", "--json"])

    assert stopped.value.code == 2
    assert "--only preconnect needs the server" in err.getvalue()
