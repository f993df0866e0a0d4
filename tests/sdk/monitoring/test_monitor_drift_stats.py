"""The drift statistics against their definitions: scipy's tests, and hand computations on small inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
from scipy.spatial.distance import jensenshannon

from edgekit.monitoring import drift as D


@pytest.fixture
def no_scipy(monkeypatch):
    monkeypatch.setattr(D, "_scipy_stats", lambda: None)


def _samples(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, 700), rng.normal(0.15, 1.1, 300)


def test_ks_equals_scipy_and_the_numpy_fallback_its_asymptotic_form(no_scipy):
    a, b = _samples()
    ref = st.ks_2samp(a, b)
    assert D.ks_statistic(a, b) == pytest.approx(ref.statistic, abs=1e-12)
    d, p = D.ks_test(a, b)  # numpy: Stephens-corrected Kolmogorov tail
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    asym = st.ks_2samp(a, b, method="asymp").pvalue
    assert p == pytest.approx(asym, rel=0.15)
    # the Kolmogorov tail at a hand-checked point: Q(1.0) = 2 (e^-2 - e^-8 + e^-18 - ...) = 0.26999967
    assert D.kolmogorov_sf(1.0) == pytest.approx(0.26999967, abs=1e-7)
    assert D.kolmogorov_sf(1.0) == pytest.approx(st.kstwobign.sf(1.0), abs=1e-10)


def test_ks_with_scipy_is_scipys():
    a, b = _samples(1)
    ref = st.ks_2samp(a, b, method="asymp")  # n*m = 210000 > EXACT_KS
    assert D.ks_test(a, b) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
    assert ref.pvalue == pytest.approx(st.ks_2samp(a, b, method="exact").pvalue, rel=0.05)  # why asymp is enough
    small = a[:50], b[:40]
    assert D.ks_test(*small)[1] == pytest.approx(st.ks_2samp(*small, method="exact").pvalue)
    # ties (integer-valued data): the statistic is still the largest CDF gap over all values
    x, y = np.array([0, 0, 1, 2, 2, 2]), np.array([1, 1, 2, 3])
    assert D.ks_statistic(x, y) == pytest.approx(st.ks_2samp(x, y).statistic)
    # by hand: t=0: F_x = 2/6, F_y = 0; t=1: 3/6 vs 2/4; t=2: 1 vs 3/4; t=3: 1 vs 1 -> max 1/3
    assert D.ks_statistic(x, y) == pytest.approx(1 / 3)


def test_wasserstein_equals_scipy_and_a_hand_value():
    a, b = _samples(2)
    assert D.wasserstein(a, b) == pytest.approx(st.wasserstein_distance(a, b), rel=1e-12)
    # shifting a sample by c moves it by exactly c
    assert D.wasserstein(np.array([0.0, 1, 2]), np.array([0.5, 1.5, 2.5])) == pytest.approx(0.5)


def test_psi_by_hand():
    e, a = np.array([50, 30, 20]), np.array([30, 30, 40])
    hand = (0.3 - 0.5) * math.log(0.3 / 0.5) + 0 + (0.4 - 0.2) * math.log(0.4 / 0.2)
    assert D.psi(e, a) == pytest.approx(hand)
    assert D.psi(e, e) == 0.0
    # an empty bin is floored at EPS, not infinite
    assert D.psi(np.array([1, 0]), np.array([1, 1])) == pytest.approx(
        (0.5 - 1) * math.log(0.5 / 1) + (0.5 - D.EPS) * math.log(0.5 / D.EPS))


def test_decile_bins_count_what_they_say():
    x = np.arange(100, dtype=float)
    edges = D.decile_edges(x)
    assert np.allclose(edges, np.quantile(x, np.linspace(0.1, 0.9, 9)))
    counts = D.bin_counts(x, edges)
    assert counts.sum() == 100
    assert counts[0] == np.sum(x <= edges[0]) and counts[-1] == np.sum(x > edges[-1])


def test_js_distance_by_hand_and_scipy():
    assert D.js_distance([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint: 1 bit
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    m = (p + q) / 2
    kl = lambda x: float(np.sum(x * np.log2(x / m)))  # noqa: E731
    assert D.js_distance(p, q) == pytest.approx(math.sqrt((kl(p) + kl(q)) / 2))
    r = np.array([3, 5, 0, 2.0])
    s = np.array([1, 1, 4, 4.0])
    assert D.js_distance(r, s) == pytest.approx(jensenshannon(r, s, base=2))


def test_chi2_is_scipys_goodness_of_fit_and_the_fallback_close(no_scipy):
    ref = np.array([40, 30, 20, 10])
    for counts in (np.array([36, 34, 18, 12]), np.array([30, 30, 25, 15]), np.array([10, 20, 30, 40])):
        want = st.chisquare(counts, ref / ref.sum() * counts.sum())  # every expected count >= 5: no pooling
        stat, p = D.chi2_test(ref, counts)  # numpy fallback: Wilson-Hilferty tail
        assert stat == pytest.approx(want.statistic)
        if want.pvalue > 1e-4:  # the approximation is close where alerts are decided
            assert p == pytest.approx(want.pvalue, rel=0.1, abs=1e-3)
        else:  # and far out in the tail, on the same side of any sane threshold
            assert p < 1e-15 and want.pvalue < 1e-15
    assert D.chi2_sf(7.0, 4) == pytest.approx(st.chi2.sf(7.0, 4), rel=0.03)


def test_chi2_pools_rare_classes_by_hand():
    # 100 window samples; reference shares .5 .3 .12 .04 .04 .0 -> expected 50 30 12 4 4 0: the last three pooled (8)
    ref, counts = np.array([50, 30, 12, 4, 4, 0]), np.array([45, 33, 10, 3, 6, 3])
    stat, p = D.chi2_test(ref, counts)
    hand = (45 - 50) ** 2 / 50 + (33 - 30) ** 2 / 30 + (10 - 12) ** 2 / 12 + (12 - 8) ** 2 / 8
    assert stat == pytest.approx(hand)
    assert p == pytest.approx(st.chi2.sf(hand, 3))
    # a class the reference never saw, alone in its pool: expected 0.5, so 3 such samples count (3 - .5)^2 / .5
    ref, counts = np.array([60, 40, 0]), np.array([57, 40, 3])
    assert D.chi2_test(ref, counts)[0] == pytest.approx((57 - 60) ** 2 / 60 + 0 + (3 - 0.5) ** 2 / 0.5)


def test_evaluate_bonferroni_and_effect_thresholds():
    rng = np.random.default_rng(3)
    sample = rng.normal(0, 1, 2000)
    edges = D.decile_edges(sample)
    feat = {"kind": "numeric", "sample": sample.tolist(), "edges": edges.tolist(),
            "counts": D.bin_counts(sample, edges).tolist(), "std": 1.0, "mean": 0.0}
    prof = {"x": feat, "y": feat, "c:class": {"kind": "class", "counts": [100, 100, 100]}}
    vals = np.stack([rng.normal(0, 1, 300), rng.normal(1.0, 1, 300)], axis=1)
    cls = rng.integers(0, 3, (300, 1))
    out, drifted = D.evaluate(prof, ["x", "y"], vals, ["c:class"], cls, D.Thresholds(alpha=0.01))
    assert drifted == ["y"]
    for j, name in enumerate(["x", "y"]):
        assert out[name]["p_value"] == pytest.approx(st.ks_2samp(sample, vals[:, j], method="asymp").pvalue)
        assert out[name]["drift"] == (out[name]["p_value"] < 0.01 / 3)  # 3 tests in the window
    # an effect threshold alerts on its own
    out, drifted = D.evaluate(prof, ["x", "y"], vals, ["c:class"], cls, D.Thresholds(alpha=1e-300, psi=0.2))
    assert drifted == [n for n in ("x", "y", "c:class") if out[n]["psi"] >= 0.2]
    assert "y" in drifted and "psi=" in out["y"]["why"]
    # too few samples: not tested
    assert D.evaluate(prof, ["x", "y"], vals[:10], ["c:class"], cls[:10], D.Thresholds()) == ({}, [])
