"""Latency statistics checked against their definitions on timings computed by hand."""

from __future__ import annotations

import math

import pytest

import numpy as np

from edgekit.benchmarks.stats import (ci_half_width, coefficient_of_variation, latency_stats, median_ci, outliers,
                                   ratio_ci, stability, throughput_ips)

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
    # 10 ms +- 0.1 ms, 60 samples: the median is known far better than +-3 %
    assert stability([10 * MS - 100_000, 10 * MS, 10 * MS + 100_000] * 20, throttled=False) == (True, None)


def test_a_long_tail_does_not_make_the_median_unstable():
    """CV 100 %+ from a few slow calls on a shared machine; the median is still known to well within 3 %."""
    samples = [10 * MS] * 190 + [200 * MS] * 10
    assert coefficient_of_variation(samples) > 1.0
    assert stability(samples, throttled=False) == (True, None)


def test_noisy_run_reports_the_median_interval():
    # n = 5: a resample's median is its 3rd smallest value; P(it is the 1 ms value) = P(>= 3 of 5 draws are it)
    # = 0.0579 > 2.5 %, and likewise for 5 ms: the 95 % interval is [1, 5] ms, +-(5 - 1) / 2 / 3 = 66.7 %
    samples = [1 * MS, 2 * MS, 3 * MS, 4 * MS, 5 * MS]
    assert median_ci(samples) == (pytest.approx(1.0), pytest.approx(5.0))
    stable, reason = stability(samples, throttled=False)
    assert not stable
    assert reason == "median known to +-66.7% (95% CI) > +-3%"
    assert stability(samples, throttled=False, ci_limit=0.7) == (True, None)
    assert stability(samples, throttled=False, ci_limit=0.025)[1] == "median known to +-66.7% (95% CI) > +-2.5%"


def test_throttling_makes_a_run_unstable():
    assert stability([10 * MS] * 5, throttled=True) == (False, "throttling seen during the run")


def test_both_reasons_are_joined():
    stable, reason = stability([1 * MS, 2 * MS, 3 * MS, 4 * MS, 5 * MS], throttled=True)
    assert not stable
    assert reason == "median known to +-66.7% (95% CI) > +-3%; throttling seen during the run"


def _direct_bootstrap(x_ms: np.ndarray, n_boot: int, seed: int, confidence: float = 0.95) -> np.ndarray:
    """The definition: resample with replacement, take each resample's median, take the percentiles."""
    rng = np.random.default_rng(seed)
    meds = np.array([np.median(x_ms[rng.integers(0, len(x_ms), len(x_ms))]) for _ in range(n_boot)])
    return meds


@pytest.mark.parametrize("n", [7, 8, 200, 201])
def test_median_ci_is_the_bootstrap_percentile_interval(n):
    """Our resampled medians (drawn from the order statistics' distribution) against resampling itself."""
    from edgekit.benchmarks.stats import _boot_medians

    x = np.random.default_rng(n).lognormal(0.0, 0.3, n)
    direct = _direct_bootstrap(x, 6000, seed=1)
    ours = _boot_medians(x, 6000, np.random.default_rng(2))
    sx = np.sort(x)
    for q in (2.5, 25, 50, 75, 97.5):  # the same quantiles, up to Monte-Carlo error of a rank or two
        a, b = np.percentile(direct, q), np.percentile(ours, q)
        ra, rb = np.searchsorted(sx, a), np.searchsorted(sx, b)
        assert abs(ra - rb) <= max(1, n // 60), (q, a, b)
    # every resampled median is a data value (odd n) or the mean of two (even n)
    if n % 2:
        assert np.isin(ours, x).all()
    lo, hi = median_ci((x * MS).astype(np.int64))
    assert lo <= np.median(x) <= hi and lo > x.min() * 0.999 and hi < x.max() * 1.001


def test_median_ci_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    true = 1.0  # median of lognormal(0, s) is exp(0)
    hits = sum(lo <= true <= hi for lo, hi in (median_ci((rng.lognormal(0, 0.4, 101) * MS).astype(np.int64))
                                                for _ in range(300)))
    assert 0.90 <= hits / 300 <= 0.99


def test_median_ci_is_seeded_and_degenerate_for_equal_samples():
    x = (np.random.default_rng(0).lognormal(0, 0.2, 500) * MS).astype(np.int64)
    assert median_ci(x) == median_ci(x) and median_ci(x, seed=1) != median_ci(x, seed=2)
    assert median_ci([3 * MS] * 9) == (pytest.approx(3.0), pytest.approx(3.0))
    assert median_ci([3 * MS]) == (pytest.approx(3.0), pytest.approx(3.0))
    assert ci_half_width([3 * MS] * 9) == 0.0
    with pytest.raises(ValueError):
        median_ci([])


def test_ratio_ci_brackets_the_ratio_of_medians():
    rng = np.random.default_rng(3)
    a = rng.lognormal(0, 0.1, 400) * MS
    b = a * 1.25  # the same spread, 25 % slower
    lo, hi = ratio_ci(a.astype(np.int64), b.astype(np.int64))
    assert lo < 1.25 < hi and hi - lo < 0.05
    # against the definition: independent resamples of a and b, ratio of their medians
    r = _direct_bootstrap(b / MS, 3000, 4) / _direct_bootstrap(a / MS, 3000, 5)
    assert (lo, hi) == (pytest.approx(np.percentile(r, 2.5), rel=0.01), pytest.approx(np.percentile(r, 97.5), rel=0.01))


def test_outliers_are_counted_with_tukeys_far_fence():
    # 1..8 ms and 100 ms: numpy linear quartiles Q1 = 3, Q3 = 7 -> fence 7 + 3 * 4 = 19 ms; one sample above
    o = outliers([1 * MS, 2 * MS, 3 * MS, 4 * MS, 5 * MS, 6 * MS, 7 * MS, 8 * MS, 100 * MS])
    assert o["fence_ms"] == pytest.approx(19.0) and o["count"] == 1 and o["share"] == pytest.approx(1 / 9)
    assert outliers([5 * MS] * 4)["count"] == 0


def test_throughput():
    assert throughput_ips([1 * MS] * 10) == pytest.approx(1000.0)
    # 4 calls in 1 + 2 + 3 + 4 = 10 ms -> 400 per second
    assert throughput_ips([1 * MS, 2 * MS, 3 * MS, 4 * MS]) == pytest.approx(400.0)
    samples = [3 * MS, 5 * MS, 4 * MS]
    assert throughput_ips(samples) == pytest.approx(1000.0 / latency_stats(samples)["mean"])
