"""The benchmark's statistics on a fake clock: exact percentiles, outliers, throughput, loop length."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgecv.cli.common import parse_batches
from edgecv.errors import InputMismatchError, InvalidOptionError
from edgecv.runtime import load
from edgecv.runtime.benchmark import BenchSettings, benchmark, time_calls
from edgecv.runtime.stats import LatencyStats

MS = 1_000_000


def fake_clock(latencies_ms, gap_ms: int = 5):
    """A clock whose consecutive (start, end) readings are ``latencies_ms`` apart, with ``gap_ms``
    between one call's end and the next call's start."""
    readings, now = [], 0
    for latency in latencies_ms:
        readings += [now, now + latency * MS]
        now += (latency + gap_ms) * MS
    it = iter(readings)
    return lambda: next(it)


def test_percentiles_are_nearest_rank():
    stats = LatencyStats.from_ns([ms * MS for ms in range(100, 0, -1)])  # order must not matter
    assert (stats.count, stats.min_ms, stats.max_ms) == (100, 1.0, 100.0)
    assert (stats.p90_ms, stats.p95_ms, stats.p99_ms) == (90.0, 95.0, 99.0)
    assert stats.median_ms == 50.5 and stats.mean_ms == 50.5
    assert stats.std_ms == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert stats.outliers == 0


def test_tail_percentiles_are_observed_samples():
    # 11 samples: p90 is the ⌈9.9⌉ = 10th smallest, p95 the ⌈10.45⌉ = 11th; no interpolation.
    stats = LatencyStats.from_ns([ms * MS for ms in [*range(1, 11), 1000]])
    assert (stats.p90_ms, stats.p95_ms, stats.p99_ms, stats.median_ms) == (10.0, 1000.0, 1000.0, 6.0)


def test_outliers_counted_not_dropped():
    samples = [10] * 20 + [11] * 20 + [50, 60] + [1]
    stats = LatencyStats.from_ns([ms * MS for ms in samples])
    assert (stats.outliers_low, stats.outliers_high) == (1, 2)
    assert stats.max_ms == 60.0 and stats.min_ms == 1.0
    assert stats.mean_ms == pytest.approx(sum(samples) / len(samples))
    assert stats.outlier_fences_ms == (8.5, 12.5)


def test_single_sample():
    stats = LatencyStats.from_ns([3 * MS])
    assert (stats.median_ms, stats.p99_ms, stats.std_ms) == (3.0, 3.0, 0.0)


def test_time_calls_reads_the_clock_twice_per_call_and_never_in_warmup():
    calls = []
    samples, first_ms = time_calls(
        lambda: calls.append(1), BenchSettings(warmup=3, iterations=4), clock=fake_clock([2, 4, 6, 8])
    )
    assert samples == [2 * MS, 4 * MS, 6 * MS, 8 * MS]
    assert len(calls) == 7 and first_ms is not None


def test_duration_stops_once_the_budget_is_spent():
    # Each call takes 3 ms plus a 2 ms gap: ends at 3, 8, 13, 18, 23 ms; a 20 ms budget stops after the 5th.
    samples, first_ms = time_calls(
        lambda: None, BenchSettings(warmup=0, duration=0.020), clock=fake_clock(itertools.repeat(3, 10), gap_ms=2)
    )
    assert samples == [3 * MS] * 5 and first_ms is None


def test_progress_reaches_one():
    seen = []
    time_calls(
        lambda: None,
        BenchSettings(warmup=0, iterations=30),
        clock=fake_clock([50] * 30),
        progress=lambda done, fraction: seen.append((done, fraction)),
    )
    assert seen[-1] == (30, 1.0)
    assert all(0 < f <= 1 for _, f in seen) and len(seen) < 30


def test_benchmark_of_a_real_runtime_on_a_fake_clock(dynamic_run):
    latencies = list(range(1, 21))  # 1..20 ms
    with load(dynamic_run / "model.onnx") as rt:
        result = benchmark(rt, warmup=2, iterations=20, batch=4, clock=fake_clock(latencies))
    assert result.batch == 4 and result.backend == "onnxruntime" and result.precision == "fp32"
    assert result.samples_ms == [float(x) for x in latencies]
    assert (result.latency.median_ms, result.latency.p90_ms, result.latency.p99_ms) == (10.5, 18.0, 20.0)
    assert result.throughput_ips == pytest.approx(4 * 20 / (sum(latencies) / 1000))
    assert result.headline == ("p90", 18.0, "ms")


def test_offline_scenario_sends_the_largest_batch(dynamic_run, static_run):
    with load(dynamic_run / "model.onnx") as rt:
        result = benchmark(rt, warmup=0, iterations=2, scenario="offline")
    assert result.batch == 32 and result.headline[0] == "throughput"
    with load(static_run / "model.onnx") as rt:
        assert benchmark(rt, warmup=0, iterations=2, scenario="offline").batch == 1


def test_static_artifact_refuses_another_batch(static_run):
    with pytest.raises(InputMismatchError, match=r"only batch 1, asked for batch 8.*--dynamic-batch"):
        benchmark(static_run / "model.onnx", iterations=1, batch=8)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"iterations": 5, "duration": 1.0}, "not both"),
        ({"iterations": 0}, "iterations"),
        ({"duration": -1.0}, "duration"),
        ({"warmup": -1}, "warmup"),
        ({"scenario": "server"}, "scenario must be one of single-stream, offline"),
    ],
)
def test_bad_loop_settings(kwargs, message):
    with pytest.raises(InvalidOptionError, match=message):
        BenchSettings(**kwargs)


def test_load_options_need_a_path(static_run):
    with load(static_run / "model.onnx") as rt:
        with pytest.raises(InvalidOptionError, match="threads apply when loading"):
            benchmark(rt, threads=2)


def test_parse_batches():
    assert parse_batches("1, 4,8,4") == (1, 4, 8)
    assert parse_batches(None) is None
    for bad in ("1,x", "0", "-2"):
        with pytest.raises(InvalidOptionError):
            parse_batches(bad)


def test_a_long_tail_is_flagged_unstable():
    # 220 ms typical, but one call in five takes 826 ms: p90 is 3.75× the median.
    stats = LatencyStats.from_ns([ms * MS for ms in [220] * 80 + [826] * 20])
    assert stats.tail_ratio == pytest.approx(826 / 220)
    assert stats.unstable
    d = stats.to_dict()
    assert d["unstable"] is True and d["p90_over_median"] == pytest.approx(3.755, abs=1e-3)
    assert LatencyStats.from_dict(d) == stats  # the derived keys do not break reading it back


def test_a_steady_loop_is_not_flagged():
    stats = LatencyStats.from_ns([ms * MS for ms in [100, 101, 102, 103, 104, 110] * 10])
    assert not stats.unstable and stats.to_dict()["unstable"] is False
