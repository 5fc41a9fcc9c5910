"""The throughput benchmark's reading of ApacheBench: its figures and the percentiles of several
ab processes taken together (benchmarks/data_plane_throughput.py runs ab for real)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "data_plane_throughput.py"
_spec = importlib.util.spec_from_file_location("data_plane_throughput", BENCHMARK)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

# As ab 2.3 prints it (Debian 12's apache2-utils), shortened.
AB_OUTPUT = """Concurrency Level:      16
Time taken for tests:   5.001 seconds
Complete requests:      2417
Failed requests:        3
   (Connect: 0, Receive: 0, Length: 3, Exceptions: 0)
Non-2xx responses:      2
Requests per second:    483.31 [#/sec] (mean)
"""


def table(times_ms) -> dict:
    """ab's -e table for requests that took `times_ms` (one request per percent here)."""
    ordered = sorted(times_ms)
    return {percent: ordered[min(percent, len(ordered) - 1)] for percent in range(101)}


def test_ab_figures_are_read_and_a_missing_count_is_its_default():
    assert bench.ab_figure(AB_OUTPUT, "Requests per second") == 483.31
    assert bench.ab_figure(AB_OUTPUT, "Failed requests") == 3
    assert bench.ab_figure(AB_OUTPUT.replace("Non-2xx", "Other"), "Non-2xx responses", 0) == 0
    with pytest.raises(SystemExit, match="Complete"):
        bench.ab_figure("Benchmarking 10.0.0.100\n", "Complete requests")


def test_one_process_keeps_its_own_percentiles():
    own = table([float(ms) for ms in range(1, 102)])
    for fraction, percent in ((0.5, 50), (0.99, 99), (1.0, 100)):
        assert bench.merged_percentile([(1000, own)], fraction) == own[percent] / 1000


def test_processes_weigh_by_their_requests():
    fast, slow = table([1.0] * 101), table([50.0] * 101)
    # 98 fast requests for 2 slow ones: p50 and p98 fast, p99 slow
    tables = [(98, fast), (2, slow)]
    assert bench.merged_percentile(tables, 0.5) == 0.001
    assert bench.merged_percentile(tables, 0.98) == 0.001
    assert bench.merged_percentile(tables, 0.99) == 0.05
    # the same two, with as many slow as fast: the median is the slow one's
    assert bench.merged_percentile([(50, fast), (51, slow)], 0.5) == 0.05
