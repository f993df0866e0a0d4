"""Latency statistics from per-call durations: percentiles, spread, stability and throughput.

Every function takes a sequence of per-call durations in **nanoseconds** (ints from ``time.perf_counter_ns``)
and reports milliseconds (floats) or inferences per second.

Definitions (the tests check these on hand-computed timings):

- ``std`` is the *sample* standard deviation (``ddof=1``, Bessel's correction); 0.0 for a single sample.
- Percentiles use numpy's default method, ``"linear"`` (Hyndman & Fan type 7): the q-th percentile of n sorted
  values sits at position ``(n - 1) * q / 100`` and is linearly interpolated between its two neighbours.
  E.g. for [1, 2, 3, 4, 5] ms, p90 is at position 3.6, so 4 + 0.6 * (5 - 4) = 4.6 ms.
- The coefficient of variation is ``std / mean`` with the same sample std.
- Sequential throughput is ``n / total time``: it is what one caller issuing calls back to back gets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_NS_PER_MS = 1e6
PERCENTILES = (50, 90, 95, 99)


def _as_ms(samples_ns: Sequence[int]) -> np.ndarray:
    arr = np.asarray(samples_ns, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("no timing samples: need at least one per-call duration")
    if not np.all(np.isfinite(arr)):
        raise ValueError("timing samples must be finite numbers of nanoseconds")
    if np.any(arr < 0):
        raise ValueError("timing samples must be non-negative durations in nanoseconds")
    return arr / _NS_PER_MS


def _std(ms: np.ndarray) -> float:
    return float(np.std(ms, ddof=1)) if ms.size > 1 else 0.0


def latency_stats(samples_ns: Sequence[int]) -> dict[str, float]:
    """min, mean, std (ddof=1), p50, p90, p95, p99 and max of the durations, in milliseconds.

    Percentiles are numpy's default linear interpolation between the closest ranks.
    Raises ValueError on an empty sequence.
    """
    ms = _as_ms(samples_ns)
    p50, p90, p95, p99 = (float(v) for v in np.percentile(ms, PERCENTILES))
    return {
        "min": float(ms.min()),
        "mean": float(ms.mean()),
        "std": _std(ms),
        "p50": p50,
        "p90": p90,
        "p95": p95,
        "p99": p99,
        "max": float(ms.max()),
    }


def coefficient_of_variation(samples_ns: Sequence[int]) -> float:
    """Sample standard deviation (ddof=1) over the mean; 0.0 for one sample or a zero mean."""
    ms = _as_ms(samples_ns)
    mean = float(ms.mean())
    return _std(ms) / mean if mean > 0 else 0.0


def stability(samples_ns: Sequence[int], throttled: bool, ci_limit: float = 0.03) -> tuple[bool, str | None]:
    """(stable, reason). Unstable when the median's 95% confidence interval (bootstrap, `median_ci`) is wider
    than +-``ci_limit`` of the median, or the CPU throttled. The median is the figure reported: a long tail
    (a high coefficient of variation) on a shared machine does not make it uncertain, a wide interval does.

    The reason reads e.g. ``"median known to +-4.2% (95% CI) > +-3%"`` and/or ``"throttling seen during the
    run"``, joined with ``"; "``.
    """
    reasons = []
    half = ci_half_width(samples_ns)
    if half > ci_limit:
        reasons.append(f"median known to +-{half * 100:.1f}% (95% CI) > +-{ci_limit * 100:g}%")
    if throttled:
        reasons.append("throttling seen during the run")
    return (not reasons, "; ".join(reasons) or None)


def throughput_ips(samples_ns: Sequence[int]) -> float:
    """Sequential inferences per second: 1e9 * n / sum(samples_ns)."""
    arr = np.asarray(samples_ns, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("no timing samples: need at least one per-call duration")
    total = float(arr.sum())
    if total <= 0:
        raise ValueError("total measured time is zero: the timer resolution is too coarse for these calls")
    return 1e9 * arr.size / total


# ------------------------------------------------------------------------------------- the median's uncertainty
#
# Definitions (checked by tests against a direct re-implementation):
#
# - ``median_ci``: the bootstrap percentile interval of the median. ``n_boot`` resamples of the n durations are
#   drawn with replacement, the median of each is taken (drawn from the resampled order statistics' exact
#   distribution, see ``_boot_medians``: the same distribution as resampling, without building the resamples), and the interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
#   percentiles (numpy's linear method) of those medians. Seeded: the same samples give the same interval.
# - ``ci_half_width``: (high - low) / 2 / median: the relative precision a `--precision-target` asks for.
# - ``ratio_ci``: the same bootstrap over two independent sets of durations; the interval of median(b) / median(a).
# - ``outliers``: durations above Q3 + 3 * IQR (Tukey's "far out" fence). They are counted, never removed: the
#   median and its interval need no trimming, and a reader sees how long the tail was.

N_BOOT = 2000


def _boot_medians(ms: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """The medians of ``n_boot`` bootstrap resamples of ``ms``, drawn without materialising the resamples.

    A resample is n indices drawn uniformly from 0..n-1; as floor(n * U) of n uniforms U in [0, 1), its k-th
    smallest index is floor(n * U_(k)) with U_(k) ~ Beta(k, n - k + 1), and the next one above it is
    U_(k) + (1 - U_(k)) * Beta(1, n - k). Over the sorted durations the resample's median is then the value at
    the middle index (odd n) or the mean of the two middle ones (even n): the same distribution as taking
    ``np.median`` of each resample, at O(n_boot) cost instead of O(n * n_boot) (200,000 samples of a 5 us model
    are common)."""
    xs = np.sort(ms)
    n = xs.size
    k = (n + 1) // 2
    u1 = rng.beta(k, n - k + 1, size=n_boot)
    lo = xs[np.minimum((u1 * n).astype(np.int64), n - 1)]
    if n % 2:
        return lo
    u2 = u1 + (1 - u1) * rng.beta(1, n - k, size=n_boot)
    return (lo + xs[np.minimum((u2 * n).astype(np.int64), n - 1)]) / 2


def median_ci(samples_ns: Sequence[int], confidence: float = 0.95, n_boot: int = N_BOOT,
              seed: int = 0) -> tuple[float, float]:
    """Bootstrap percentile confidence interval of the median, in milliseconds (see the definitions above)."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    ms = _as_ms(samples_ns)
    med = _boot_medians(ms, n_boot, np.random.default_rng(seed))
    lo, hi = np.percentile(med, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(lo), float(hi)


def ci_half_width(samples_ns: Sequence[int], confidence: float = 0.95) -> float:
    """Half the median's confidence interval over the median (0.02: the median is known to +-2 %)."""
    lo, hi = median_ci(samples_ns, confidence)
    p50 = float(np.median(_as_ms(samples_ns)))
    return (hi - lo) / 2 / p50 if p50 > 0 else float("inf")


def ratio_ci(a_ns: Sequence[int], b_ns: Sequence[int], confidence: float = 0.95, n_boot: int = N_BOOT,
             seed: int = 0) -> tuple[float, float]:
    """Bootstrap percentile interval of median(b) / median(a), a and b resampled independently."""
    a, b = _as_ms(a_ns), _as_ms(b_ns)
    rng = np.random.default_rng(seed)
    ma, mb = _boot_medians(a, n_boot, rng), _boot_medians(b, n_boot, rng)
    r = mb / np.where(ma > 0, ma, np.nan)
    lo, hi = np.nanpercentile(r, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(lo), float(hi)


def outliers(samples_ns: Sequence[int]) -> dict:
    """Durations above Q3 + 3 * IQR: the rule, the fence in ms, how many and what share (none removed)."""
    ms = _as_ms(samples_ns)
    q1, q3 = np.percentile(ms, [25, 75])
    fence = float(q3 + 3 * (q3 - q1))
    n = int(np.count_nonzero(ms > fence))
    return {"rule": "above Q3 + 3 x IQR, counted not removed", "fence_ms": fence, "count": n,
            "share": n / ms.size}


def median_summary(samples_ns: Sequence[int], confidence: float = 0.95) -> dict:
    """The median, its confidence interval and relative half-width, and the outlier count, for a result row."""
    lo, hi = median_ci(samples_ns, confidence)
    p50 = float(np.median(_as_ms(samples_ns)))
    return {"p50_ms": p50, "ci_ms": [lo, hi], "confidence": confidence,
            "half_width": (hi - lo) / 2 / p50 if p50 > 0 else None, "method": f"bootstrap percentile, {N_BOOT} resamples",
            "outliers": outliers(samples_ns)}
