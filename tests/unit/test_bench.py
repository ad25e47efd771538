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
import random
import subprocess
import sys
from typing import Any

import pytest

from lkstate._core.errors import BenchmarkError
from lkstate._tooling.bench import _e2e_summary, main  # pyright: ignore[reportPrivateUsage]

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
    "e2e_chat_ratio",
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
    "e2e_chat_ratio",
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


@pytest.mark.parametrize("part", ["preconnect", "e2e"])
def test_a_part_run_alone_needs_the_server_and_says_so(part: str) -> None:
    with pytest.raises(SystemExit) as stopped, contextlib.redirect_stderr(io.StringIO()) as err:
        main(["--only", part, "--no-server", "--json"])

    assert stopped.value.code == 2
    assert f"--only {part} needs the server" in err.getvalue()


def test_the_e2e_ratio_is_the_median_of_the_alternating_pairs_ratios_not_a_ratio_of_medians() -> None:
    # Three pairs, measured back to back: ours took twice the raw time in two of them.
    pairs = [(0.002, 0.001), (0.010, 0.005), (0.003, 0.030)]

    figures = _e2e_summary("attribute", pairs, trials=4)

    assert figures["e2e_attribute_ratio"] == 2.0  # the ratio of the medians would be 3 / 5 = 0.6
    assert figures["e2e_attribute_ms"] == 3.0 and figures["e2e_attribute_raw_ms"] == 5.0
    assert figures["e2e_attribute_p99_ms"] == 10.0 and figures["e2e_attribute_raw_p99_ms"] == 30.0
    assert figures["e2e_attribute_trials"] == 4 and figures["e2e_attribute_samples"] == 3
    low, high = figures["e2e_attribute_ratio_ci95"]
    assert low <= 2.0 <= high


def test_the_e2e_ratio_interval_narrows_as_pairs_are_added_and_always_holds_the_median() -> None:
    rng = random.Random(3)

    def pairs(count: int) -> list[tuple[float, float]]:
        return [(rng.lognormvariate(0, 0.4) * 0.004, rng.lognormvariate(0, 0.4) * 0.004) for _ in range(count)]

    widths = []
    for count in (20, 200, 2000):
        figures = _e2e_summary("transcript", pairs(count), trials=count)
        low, high = figures["e2e_transcript_ratio_ci95"]
        assert low <= figures["e2e_transcript_ratio"] <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    # Same distribution on both sides: the interval of the largest run holds 1.
    assert low <= 1.0 <= high


def test_no_e2e_pair_at_all_is_an_error_in_words() -> None:
    with pytest.raises(BenchmarkError, match="No transcript change reached both the session and the raw room"):
        _e2e_summary("transcript", [], trials=8)
