"""Latency statistics checked against their definitions on timings computed by hand."""

from __future__ import annotations

import math

import pytest

from edgekit.benchmarks.stats import coefficient_of_variation, latency_stats, stability, throughput_ips

MS = 1_000_000  # ns per ms


def test_five_samples_match_hand_computed_values():
    s = latency_stats([1 * MS, 2 * MS, 3 * MS, 4 * MS, 5 * MS])
    assert list(s) == ["min", "mean", "std", "p50", "p90", "p95", "p99", "max"]
    assert all(isinstance(v, float) for v in s.values())
    assert s["min"] == pytest.approx(1.0)
    assert s["max"] == pytest.approx(5.0)
    assert s["mean"] == pytest.approx(3.0)
    # sample variance: (4 + 1 + 0 + 1 + 4) / (5 - 1) = 2.5
    assert s["std"] == pytest.approx(math.sqrt(2.5))
    assert s["p50"] == pytest.approx(3.0)
    # linear interpolation: position (n - 1) * q = 4 * q between sorted values
    assert s["p90"] == pytest.approx(4.6)   # position 3.6 -> 4 + 0.6 * 1
    assert s["p95"] == pytest.approx(4.8)   # position 3.8
    assert s["p99"] == pytest.approx(4.96)  # position 3.96


def test_order_does_not_matter_and_even_count_interpolates():
    s = latency_stats([4 * MS, 1 * MS, 3 * MS, 2 * MS])
    assert s["p50"] == pytest.approx(2.5)              # position 1.5 between 2 and 3
    assert s["p90"] == pytest.approx(3.7)              # position 2.7 -> 3 + 0.7 * 1
    assert s["mean"] == pytest.approx(2.5)
    assert s["std"] == pytest.approx(math.sqrt(5 / 3))  # (2.25 + .25 + .25 + 2.25) / 3
    assert (s["min"], s["max"]) == (pytest.approx(1.0), pytest.approx(4.0))


def test_nanosecond_resolution_is_kept():
    s = latency_stats([1_234_567, 1_234_567])
    assert s["p50"] == pytest.approx(1.234567)
    assert s["std"] == 0.0


def test_statistics_are_ordered_on_skewed_data():
    samples = [1 * MS] * 90 + [2 * MS] * 9 + [50 * MS]
    s = latency_stats(samples)
    assert s["min"] <= s["p50"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["max"]
    assert s["mean"] == pytest.approx((90 * 1 + 9 * 2 + 50) / 100)
    assert s["p50"] == pytest.approx(1.0)
    assert s["max"] == pytest.approx(50.0)


def test_single_sample():
    s = latency_stats([2_500_000])
    assert s == {k: pytest.approx(2.5) for k in ("min", "mean", "p50", "p90", "p95", "p99", "max")} | {"std": 0.0}
    assert coefficient_of_variation([2_500_000]) == 0.0
    assert stability([2_500_000], throttled=False) == (True, None)


@pytest.mark.parametrize("fn", [latency_stats, coefficient_of_variation, throughput_ips])
def test_empty_sequence_is_an_error(fn):
    with pytest.raises(ValueError):
        fn([])


def test_coefficient_of_variation():
    assert coefficient_of_variation([1 * MS, 2 * MS, 3 * MS, 4 * MS, 5 * MS]) == pytest.approx(math.sqrt(2.5) / 3)
    assert coefficient_of_variation([7 * MS] * 10) == 0.0


def test_stable_run():
    # 10 ms +- 0.1 ms: cv ~ 1%
    assert stability([10 * MS - 100_000, 10 * MS, 10 * MS + 100_000], throttled=False) == (True, None)


def test_noisy_run_reports_its_cv():
    samples = [1 * MS, 2 * MS, 3 * MS, 4 * MS, 5 * MS]  # cv = sqrt(2.5) / 3 = 52.7%
    stable, reason = stability(samples, throttled=False)
    assert not stable
    assert reason == "cv 52.7% > 10%"


def test_cv_limit_is_respected_and_formatted():
    samples = [9 * MS, 10 * MS, 11 * MS]  # std 1, mean 10 -> cv 10.0%
    assert stability(samples, throttled=False, cv_limit=0.11) == (True, None)
    assert stability(samples, throttled=False, cv_limit=0.05) == (False, "cv 10.0% > 5%")
    assert stability(samples, throttled=False, cv_limit=0.025) == (False, "cv 10.0% > 2.5%")


def test_throttling_makes_a_run_unstable():
    assert stability([10 * MS] * 5, throttled=True) == (False, "throttling seen during the run")


def test_both_reasons_are_joined():
    stable, reason = stability([1 * MS, 2 * MS, 3 * MS, 4 * MS, 5 * MS], throttled=True)
    assert not stable
    assert reason == "cv 52.7% > 10%; throttling seen during the run"


def test_throughput():
    assert throughput_ips([1 * MS] * 10) == pytest.approx(1000.0)
    # 4 calls in 1 + 2 + 3 + 4 = 10 ms -> 400 per second
    assert throughput_ips([1 * MS, 2 * MS, 3 * MS, 4 * MS]) == pytest.approx(400.0)
    samples = [3 * MS, 5 * MS, 4 * MS]
    assert throughput_ips(samples) == pytest.approx(1000.0 / latency_stats(samples)["mean"])
