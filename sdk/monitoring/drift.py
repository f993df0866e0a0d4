"""Drift statistics of a window against the reference profile (numpy; scipy where installed, for exact p-values).

Definitions (tests/sdk/monitoring/test_drift.py checks each against its definition or scipy):

- ``ks``: two-sample Kolmogorov-Smirnov, ``D = max |F_ref(t) - F_win(t)|`` over all sample values ``t``; the p-value
  is ``scipy.stats.ks_2samp``'s: its exact method up to ``n*m <= EXACT_KS`` and its asymptotic one above (the exact
  one costs milliseconds per test at window sizes, and agrees with the asymptotic one there). Without scipy: the asymptotic Kolmogorov series with Stephens'
  correction, ``Q((sqrt(ne) + 0.12 + 0.11/sqrt(ne)) * D)``, ``ne = n*m/(n+m)``.
- ``wasserstein``: the 1-Wasserstein distance of the two empirical distributions (``scipy.stats.wasserstein_distance``),
  and ``wasserstein_std``, that divided by the reference's standard deviation (a scale-free effect size).
- ``psi``: population stability index over the reference's deciles, ``sum((a - e) * ln(a / e))`` with ``e``, ``a``
  the reference's and the window's share per bin, each share floored at `EPS` (an empty bin is not infinite).
- classes: ``chi2``, Pearson's goodness of fit of the window's counts against the reference's shares
  (``scipy.stats.chisquare`` after pooling the classes expected fewer than 5 times into one bin, see `chi2_test`;
  without scipy the Wilson-Hilferty normal approximation of the chi-squared tail), ``js``, the Jensen-Shannon
  distance in bits (``scipy.spatial.distance.jensenshannon(p, q, base=2)``, 0 to 1), and ``psi`` over the classes.

A feature drifts when its test's p-value is below ``alpha / m`` (Bonferroni over the ``m`` tests of the window, so
the chance of any alert in an undrifted window is at most ``alpha``), or when an effect threshold that was set is
reached (``psi``, ``js``, ``wasserstein_std``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

EPS = 1e-4
EXACT_KS = 10_000
MIN_EXPECTED = 5.0


@dataclass
class Thresholds:
    """When a window's feature counts as drifted. ``alpha``: the false-alarm rate per window (Bonferroni over the
    window's tests). ``psi``, ``js``, ``wasserstein_std``: effect sizes that alert on their own when set
    (None: reported, not alerting). ``min_samples``: a window with fewer samples is not tested."""

    alpha: float = 0.01
    psi: float | None = None
    js: float | None = None
    wasserstein_std: float | None = None
    min_samples: int = 30

    def to_dict(self) -> dict:
        return asdict(self)


def _scipy_stats():
    try:
        import scipy.stats as st
        return st
    except ImportError:
        return None


def _cdf_gaps(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(KS D, 1-Wasserstein) of two sorted samples, from their empirical CDFs on the merged values."""
    t = np.sort(np.concatenate([a, b]))
    gap = np.abs(np.searchsorted(a, t, side="right") / len(a) - np.searchsorted(b, t, side="right") / len(b))
    return float(gap.max()), float(np.sum(gap[:-1] * np.diff(t)))


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    return _cdf_gaps(np.sort(a), np.sort(b))[0]


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution: 2 * sum_{k>=1} (-1)^(k-1) exp(-2 k^2 lam^2)."""
    if lam < 0.2:
        return 1.0
    s = sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return float(min(1.0, max(0.0, 2 * s)))


def ks_pvalue(d: float, n: int, m: int, a=None, b=None) -> float:
    """The two-sided p-value of KS statistic ``d`` for samples of sizes n and m (the samples themselves are needed
    for the exact method, n*m <= EXACT_KS). Equal to ``scipy.stats.ks_2samp``'s for that method."""
    st = _scipy_stats()
    if st is not None:
        if n * m <= EXACT_KS and a is not None:
            return float(st.ks_2samp(a, b, method="exact").pvalue)
        big, small = max(n, m), min(n, m)
        return float(np.clip(st.kstwo.sf(d, np.round(big * small / (big + small))), 0, 1))
    ne = n * m / (n + m)
    return kolmogorov_sf((math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)) * d)


def ks_test(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    d = ks_statistic(a, b)
    return d, ks_pvalue(d, len(a), len(b), a, b)


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """1-Wasserstein distance: the area between the two empirical CDFs."""
    return _cdf_gaps(np.sort(a), np.sort(b))[1]


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI of two count (or share) vectors over the same bins."""
    e = np.maximum(np.asarray(expected, np.float64) / max(np.sum(expected), 1e-300), EPS)
    a = np.maximum(np.asarray(actual, np.float64) / max(np.sum(actual), 1e-300), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def decile_edges(ref: np.ndarray) -> np.ndarray:
    """Inner bin edges at the reference's deciles (repeated edges merged)."""
    return np.unique(np.quantile(ref, np.linspace(0.1, 0.9, 9)))


def bin_counts(values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Counts in (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    return np.bincount(np.searchsorted(inner_edges, values, side="left"), minlength=len(inner_edges) + 1)


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    p = np.asarray(p, np.float64) / np.sum(p)
    q = np.asarray(q, np.float64) / np.sum(q)
    m = (p + q) / 2

    def kl(x):
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def chi2_sf(x: float, k: int) -> float:
    st = _scipy_stats()
    if st is not None:
        return float(st.chi2.sf(x, k))
    z = ((x / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))  # Wilson-Hilferty
    return 0.5 * math.erfc(z / math.sqrt(2))


def chi2_test(ref_counts: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """Pearson's goodness of fit of ``counts`` against the reference's shares. Classes whose expected count is under
    `MIN_EXPECTED` are pooled into one bin (the usual rule for the chi-squared approximation; with 1000 classes and a
    small profile most are rare); a pool the reference never saw gets an expected count of 0.5, so a class new to
    the window is a finite, large contribution."""
    ref = np.asarray(ref_counts, np.float64)
    counts = np.asarray(counts, np.float64)
    expected = ref / max(ref.sum(), 1e-300) * counts.sum()
    rare = expected < MIN_EXPECTED
    e, o = list(expected[~rare]), list(counts[~rare])
    if rare.any():
        e.append(max(float(expected[rare].sum()), 0.5))
        o.append(float(counts[rare].sum()))
    e, o = np.array(e), np.array(o)
    if len(e) < 2:
        return 0.0, 1.0
    stat = float(np.sum((o - e) ** 2 / e))
    return stat, chi2_sf(stat, len(e) - 1)


def prepared(features: dict) -> dict:
    """The profile's features with their lists as numpy arrays (converted once, not per window)."""
    out = {}
    for name, f in features.items():
        g = dict(f)
        for k in ("sample", "edges", "counts"):
            if k in g:
                g[k] = np.asarray(g[k], np.float64 if k != "counts" else np.int64)
        if "sample" in g:
            g["sample"] = np.sort(g["sample"])
        out[name] = g
    return out


def numeric_drift(ref: dict, values: np.ndarray) -> dict:
    """One numeric feature: ``ref`` is its profile entry (``sample``, ``edges``, ``counts``, ``std``)."""
    sample = np.asarray(ref["sample"], np.float64)
    if not isinstance(ref["sample"], np.ndarray):  # `prepared` sorts it once
        sample = np.sort(sample)
    d, w = _cdf_gaps(sample, np.sort(values))
    p = ks_pvalue(d, len(sample), len(values), sample, values)
    edges = np.asarray(ref["edges"], np.float64)
    return {"test": "ks", "statistic": d, "p_value": p, "wasserstein": w,
            "wasserstein_std": w / ref["std"] if ref["std"] > 0 else (0.0 if w == 0 else math.inf),
            "psi": psi(ref["counts"], bin_counts(values, edges)), "window_mean": float(values.mean()),
            "reference_mean": ref["mean"]}


def class_drift(ref: dict, classes: np.ndarray) -> dict:
    k = len(ref["counts"])
    counts = np.bincount(np.clip(classes, 0, k - 1), minlength=k)
    stat, p = chi2_test(ref["counts"], counts)
    return {"test": "chi2", "statistic": stat, "p_value": p, "js": js_distance(ref["counts"], counts),
            "psi": psi(ref["counts"], counts), "window_counts": counts.tolist(),
            "reference_counts": np.asarray(ref["counts"]).tolist()}


def evaluate(profile_features: dict, names: list[str], values: np.ndarray, class_names: list[str],
             classes: np.ndarray, thr: Thresholds) -> tuple[dict, list[str]]:
    """Every feature of one window against the profile: ({feature: statistics + 'drift'}, [drifted features])."""
    out: dict[str, dict] = {}
    if len(values) < thr.min_samples:
        return out, []
    for j, name in enumerate(names):
        ref = profile_features.get(name)
        if ref is not None:
            out[name] = numeric_drift(ref, values[:, j])
    for j, name in enumerate(class_names):
        ref = profile_features.get(name)
        if ref is not None:
            out[name] = class_drift(ref, classes[:, j])
    m = max(len(out), 1)
    drifted = []
    for name, r in out.items():
        why = []
        if r["p_value"] < thr.alpha / m:
            why.append(f"{r['test']} p={r['p_value']:.2g} < {thr.alpha / m:.2g}")
        for key in ("psi", "js", "wasserstein_std"):
            limit = getattr(thr, key)
            if limit is not None and key in r and r[key] >= limit:
                why.append(f"{key}={r[key]:.3g} >= {limit:g}")
        r["drift"] = bool(why)
        r["why"] = "; ".join(why)
        if why:
            drifted.append(name)
    return out, drifted
