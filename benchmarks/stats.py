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


def stability(samples_ns: Sequence[int], throttled: bool, cv_limit: float = 0.10) -> tuple[bool, str | None]:
    """(stable, reason). Unstable when the coefficient of variation exceeds ``cv_limit`` or the CPU throttled.

    The reason reads e.g. ``"cv 14.2% > 10%"`` and/or ``"throttling seen during the run"``, joined with ``"; "``.
    """
    reasons = []
    cv = coefficient_of_variation(samples_ns)
    if cv > cv_limit:
        reasons.append(f"cv {cv * 100:.1f}% > {cv_limit * 100:g}%")
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
