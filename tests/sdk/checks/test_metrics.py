"""Parity and task metrics checked against values computed by hand from their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgekit.checks.metrics import (
    accuracy,
    binary_metrics,
    classification_metrics,
    embedding_metrics,
    mcnemar_exact,
    paired_bootstrap_ci,
    regression_metrics,
    tensor_errors,
    top1_agreement,
)

TENSOR_KEYS = ["max_abs", "mean_abs", "p99_abs", "max_rel", "cosine", "snr_db", "within_tol", "nan_mismatch"]


# ------------------------------------------------------------------------------------------ tensor_errors


def test_tensor_errors_small_arrays_match_hand_values():
    ref = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    cand = np.array([1.1, 2.0, 2.5, 4.0], dtype=np.float32)
    e = tensor_errors(ref, cand, atol=0.05, rtol=0.1)
    assert list(e) == TENSOR_KEYS
    # |d| = [0.1, 0, 0.5, 0]
    assert e["max_abs"] == pytest.approx(0.5, rel=1e-6)
    assert e["mean_abs"] == pytest.approx(0.6 / 4, rel=1e-6)
    # sorted |d| = [0, 0, 0.1, 0.5]; p99 sits at (4 - 1) * 0.99 = 2.97 -> 0.1 + 0.97 * (0.5 - 0.1)
    assert e["p99_abs"] == pytest.approx(0.1 + 0.97 * 0.4, rel=1e-5)
    # relative errors 0.1/1, 0, 0.5/3, 0 (eps = 4e-6 is irrelevant here)
    assert e["max_rel"] == pytest.approx(0.5 / 3, rel=1e-5)
    dot = 1 * 1.1 + 2 * 2 + 3 * 2.5 + 4 * 4  # 28.6
    assert e["cosine"] == pytest.approx(dot / (math.sqrt(30.0) * math.sqrt(1.21 + 4 + 6.25 + 16)), rel=1e-6)
    assert e["snr_db"] == pytest.approx(10 * math.log10(30.0 / (0.01 + 0.25)), rel=1e-5)
    # tolerances atol + rtol*|ref| = 0.15, 0.25, 0.35, 0.45: only element 2 (|d| = 0.5) fails
    assert e["within_tol"] == pytest.approx(0.75)
    assert e["within_tol"] == np.isclose(cand, ref, atol=0.05, rtol=0.1).mean()
    assert e["nan_mismatch"] == 0


def test_identical_tensors():
    x = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    e = tensor_errors(x, x.copy(), atol=0.0, rtol=0.0)
    assert e["max_abs"] == e["mean_abs"] == e["p99_abs"] == e["max_rel"] == 0.0
    assert e["cosine"] == pytest.approx(1.0)
    assert e["snr_db"] == math.inf
    assert e["within_tol"] == 1.0


def test_max_rel_uses_eps_floor_for_near_zero_reference():
    # eps = 1e-6 * max|ref| = 1e-3, so the 0.001 error on a zero reference is 0.001 / 1e-3 = 1.0, not inf
    e = tensor_errors(np.array([1000.0, 0.0]), np.array([1000.0, 0.001]), atol=0, rtol=0)
    assert e["max_rel"] == pytest.approx(1.0)


def test_all_zero_tensors_and_zero_reference():
    z = np.zeros(5)
    e = tensor_errors(z, z, atol=0, rtol=0)
    assert e["cosine"] == 1.0 and e["snr_db"] == math.inf and e["max_rel"] == 0.0
    e = tensor_errors(z, np.array([0, 0, 1.0, 0, 0]), atol=0, rtol=0)
    assert e["cosine"] == 0.0 and e["snr_db"] == -math.inf and e["max_rel"] == math.inf
    assert e["within_tol"] == pytest.approx(0.8)


def test_nan_in_candidate_where_reference_finite_is_counted():
    e = tensor_errors(np.array([1.0, 2.0, 3.0]), np.array([1.0, np.nan, 3.0]), atol=1e-3, rtol=0)
    assert e["nan_mismatch"] == 1
    assert e["within_tol"] == pytest.approx(2 / 3)
    assert e["max_abs"] == 0.0  # statistics over the two finite pairs, not NaN


def test_nan_at_same_place_is_ignored():
    e = tensor_errors(np.array([1.0, np.nan, 3.0]), np.array([1.0, np.nan, 3.5]), atol=0.1, rtol=0)
    assert e["nan_mismatch"] == 0
    assert e["max_abs"] == pytest.approx(0.5)
    assert e["mean_abs"] == pytest.approx(0.25)  # over the 2 compared elements
    assert e["within_tol"] == pytest.approx(0.5)  # 1 of the 2 non-ignored elements


def test_same_sign_inf_ignored_opposite_sign_counted():
    e = tensor_errors(np.array([np.inf, -np.inf, 1.0]), np.array([np.inf, -np.inf, 1.0]), atol=0, rtol=0)
    assert e["nan_mismatch"] == 0 and e["within_tol"] == 1.0 and e["snr_db"] == math.inf
    e = tensor_errors(np.array([np.inf, 1.0]), np.array([-np.inf, 1.0]), atol=0, rtol=0)
    assert e["nan_mismatch"] == 1 and e["within_tol"] == pytest.approx(0.5)
    # NaN against inf is a different class, and a finite candidate where the reference is NaN is a mismatch too
    e = tensor_errors(np.array([np.nan, np.nan, 2.0]), np.array([np.inf, 5.0, 2.0]), atol=0, rtol=0)
    assert e["nan_mismatch"] == 2 and e["within_tol"] == pytest.approx(1 / 3)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        tensor_errors(np.zeros((2, 3)), np.zeros((3, 2)), atol=0, rtol=0)


# ---------------------------------------------------------------------------------------- classification

Y3 = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
SCORES3 = np.array(
    [
        [0.70, 0.20, 0.10],  # y0 -> 0
        [0.60, 0.10, 0.30],  # y0 -> 0
        [0.30, 0.50, 0.20],  # y0 -> 1 (true class 2nd: in top-2)
        [0.10, 0.80, 0.10],  # y1 -> 1
        [0.25, 0.60, 0.15],  # y1 -> 1
        [0.35, 0.40, 0.25],  # y1 -> 1
        [0.10, 0.20, 0.70],  # y2 -> 2
        [0.20, 0.10, 0.70],  # y2 -> 2
        [0.50, 0.40, 0.10],  # y2 -> 0 (true class last: not in top-2)
        [0.30, 0.20, 0.50],  # y2 -> 2
    ]
)
PRED3 = np.array([0, 0, 1, 1, 1, 1, 2, 2, 0, 2])


def _check_three_class(m):
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 3, 0], [1, 0, 3]]
    assert m["accuracy"] == pytest.approx(8 / 10)
    # per class from the matrix: precision = diag / column sum, recall = diag / row sum
    prec = [2 / 3, 3 / 4, 3 / 3]
    rec = [2 / 3, 3 / 3, 3 / 4]
    f1 = [2 * p * r / (p + r) for p, r in zip(prec, rec)]  # 2/3, 6/7, 6/7
    support = [3, 3, 4]
    assert m["precision_macro"] == pytest.approx((2 / 3 + 3 / 4 + 1) / 3)  # 29/36
    assert m["recall_macro"] == pytest.approx((2 / 3 + 1 + 3 / 4) / 3)
    assert m["f1_macro"] == pytest.approx((2 / 3 + 6 / 7 + 6 / 7) / 3)  # 50/63
    assert m["precision_weighted"] == pytest.approx((3 * 2 / 3 + 3 * 3 / 4 + 4 * 1) / 10)  # 0.825
    assert m["recall_weighted"] == pytest.approx(0.8)
    assert m["f1_weighted"] == pytest.approx(sum(s * f for s, f in zip(support, f1)) / 10)  # 0.8
    assert m["n_classes"] == 3


def test_three_class_from_scores():
    m = classification_metrics(Y3, SCORES3, top_k=(1, 2, 5))
    _check_three_class(m)
    # top-2: the 8 right answers plus row 2; row 8 misses -> 9/10. k=5 >= C is not reported.
    assert m["top_k"] == {1: pytest.approx(0.8), 2: pytest.approx(0.9)}
    # OvR macro AUC equals scikit-learn's multiclass path on probabilities
    from sklearn.metrics import roc_auc_score

    assert m["roc_auc"] == pytest.approx(roc_auc_score(Y3, SCORES3, multi_class="ovr", average="macro"))
    # and is defined on logits too (per-column AUC is invariant to a monotone map of each column)
    assert classification_metrics(Y3, np.log(SCORES3))["roc_auc"] == pytest.approx(m["roc_auc"])


def test_three_class_ovr_auc_class0_by_pairs():
    # class 0 vs rest: positives rows 0-2 score 0.70, 0.60, 0.30 on column 0; negatives: 0.10 0.25 0.35 0.10 0.20 0.50 0.30
    neg = [0.10, 0.25, 0.35, 0.10, 0.20, 0.50, 0.30]
    pairs = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in (0.70, 0.60, 0.30) for n in neg)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(Y3 == 0, SCORES3[:, 0]) == pytest.approx(pairs / 21)  # (7 + 7 + 4.5) / 21


def test_three_class_from_labels():
    m = classification_metrics(Y3, PRED3, n_classes=3)
    _check_three_class(m)
    assert m["roc_auc"] is None
    assert m["top_k"] == {1: pytest.approx(0.8)}


def test_roc_none_when_class_missing_and_labels_validated():
    y = np.array([0, 0, 1, 1])
    s = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    m = classification_metrics(y, s)
    assert m["roc_auc"] is None and m["accuracy"] == 1.0
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 0]]
    with pytest.raises(ValueError):
        classification_metrics(np.array([0, 3]), np.array([0, 1]), n_classes=3)


def test_two_column_scores_use_positive_class_auc():
    y = np.array([0, 0, 1, 1, 0, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8, 0.8, 0.9])
    m = classification_metrics(y, np.stack([1 - p1, p1], axis=1))
    assert m["roc_auc"] == pytest.approx(6.5 / 9)
    # argmax predictions [0, 0, 0, 1, 1, 1]: 4 of 6 right; top-1 is the same number
    assert m["accuracy"] == pytest.approx(4 / 6) and m["top_k"] == {1: pytest.approx(4 / 6)}
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]


# ---------------------------------------------------------------------------------------------- binary


@pytest.mark.parametrize("shape", ["n", "n1", "n2"])
def test_binary_metrics_by_hand(shape):
    y = np.array([0, 0, 1, 1, 0, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8, 0.8, 0.9])
    scores = {"n": p1, "n1": p1[:, None], "n2": np.stack([1 - p1, p1], axis=1)}[shape]
    m = binary_metrics(y, scores, threshold=0.3)
    # ROC-AUC by pair counting: positives 0.35, 0.8, 0.9 vs negatives 0.1, 0.4, 0.8
    # 0.35 beats 0.1 (1); 0.8 beats 0.1, 0.4 and ties 0.8 (2.5); 0.9 beats all (3) -> 6.5 / 9
    assert m["roc_auc"] == pytest.approx(6.5 / 9)
    # threshold 0.3 -> predictions [0, 1, 1, 1, 1, 1]: TN=1 FP=2 FN=0 TP=3
    assert m["confusion_matrix"] == [[1, 2], [0, 3]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(1.0)
    assert m["f1"] == pytest.approx(2 * 0.6 * 1.0 / 1.6)  # 0.75


def test_binary_single_class_and_no_positive_predictions():
    m = binary_metrics(np.array([1, 1, 1]), np.array([0.1, 0.2, 0.3]))
    assert m["roc_auc"] is None
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0  # zero_division=0


# ------------------------------------------------------------------------------------------ regression


def test_regression_metrics_by_hand():
    y = [3.0, -0.5, 2.0, 7.0]
    p = [2.5, 0.0, 2.0, 8.0]
    m = regression_metrics(y, p)
    assert m["mae"] == pytest.approx((0.5 + 0.5 + 0 + 1) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((0.25 + 0.25 + 0 + 1) / 4))
    mean = (3 - 0.5 + 2 + 7) / 4  # 2.875
    ss_tot = sum((v - mean) ** 2 for v in y)  # 29.1875
    assert ss_tot == pytest.approx(29.1875)
    assert m["r2"] == pytest.approx(1 - 1.5 / 29.1875)
    with pytest.raises(ValueError):
        regression_metrics([1.0, 2.0], [1.0])


# ------------------------------------------------------------------------------------------ embeddings


def test_embedding_metrics_by_hand():
    ref = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    cand = ref.copy()
    cand[0] = [0.1, 1.0]  # row 0 now points like row 3
    m = embedding_metrics(ref, cand)
    c0 = 0.1 / math.sqrt(1.01)  # cos([1, 0], [0.1, 1])
    assert m["cosine_min"] == pytest.approx(c0)
    assert m["cosine_mean"] == pytest.approx((c0 + 3) / 4)
    # reference NN: 0->1, 1->0, 2->3, 3->2; candidate row 0's NN among reference rows 1..3 is row 3
    assert m["nn_agreement"] == pytest.approx(3 / 4)
    scaled = embedding_metrics(ref, 3 * ref)
    assert scaled["cosine_min"] == pytest.approx(1.0) and scaled["nn_agreement"] == 1.0
    with pytest.raises(ValueError):
        embedding_metrics(ref, ref, k=4)


def test_top1_agreement():
    a = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    b = np.array([[0.8, 0.2], [0.6, 0.4], [0.7, 0.3], [0.1, 0.9]])
    assert top1_agreement(a, b) == pytest.approx(3 / 4)
    with pytest.raises(ValueError):
        top1_agreement(a[:, :1], b[:, :1])


# ------------------------------------------------------------------------------------------- McNemar


def _mcnemar_case(b, c, both_right=7, both_wrong=3):
    y = np.zeros(b + c + both_right + both_wrong, dtype=int)
    ref = np.array([0] * b + [1] * c + [0] * both_right + [1] * both_wrong)
    cand = np.array([1] * b + [0] * c + [0] * both_right + [2] * both_wrong)
    return y, ref, cand


@pytest.mark.parametrize(
    "b,c,p",
    [
        (0, 0, 1.0),
        (5, 0, 2 * 0.5**5),  # 0.0625
        (0, 5, 2 * 0.5**5),
        (10, 2, 2 * sum(math.comb(12, k) for k in range(3)) / 2**12),  # 0.03857421875
        (3, 3, 1.0),
    ],
)
def test_mcnemar_exact_known_answers(b, c, p):
    r = mcnemar_exact(*_mcnemar_case(b, c))
    assert r == {"b": b, "c": c, "p_value": pytest.approx(p, rel=1e-12)}


# ------------------------------------------------------------------------------------------ bootstrap


def test_bootstrap_identical_predictions_gives_zero_interval():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 50)
    pred = np.where(rng.random(50) < 0.3, (y + 1) % 3, y)  # some errors, same for both models
    r = paired_bootstrap_ci(y, pred, pred.copy(), n_boot=500)
    assert r == {"delta": 0.0, "low": 0.0, "high": 0.0, "n_boot": 500}


def test_bootstrap_ten_extra_errors():
    y = np.arange(100) % 4
    ref = y.copy()
    cand = y.copy()
    cand[:10] = (y[:10] + 1) % 4  # wrong on exactly 10 samples the reference gets right
    r = paired_bootstrap_ci(y, ref, cand, n_boot=2000, seed=0)
    assert r["delta"] == pytest.approx(-0.10)
    assert r["low"] < -0.10 < r["high"] < 0.0
    assert r["n_boot"] == 2000
    # deterministic for a seed
    assert paired_bootstrap_ci(y, ref, cand, n_boot=2000, seed=0) == r
    assert paired_bootstrap_ci(y, ref, cand, n_boot=2000, seed=1) != r
    # scores (N, C) are reduced by argmax
    onehot = np.eye(4)
    assert paired_bootstrap_ci(y, onehot[ref], onehot[cand], n_boot=2000, seed=0) == r


def test_bootstrap_custom_metric():
    y = np.arange(100) % 4
    ref = y.copy()
    cand = y.copy()
    cand[:10] = (y[:10] + 1) % 4

    def acc(yt, p):
        return float(np.mean(yt == p))

    r = paired_bootstrap_ci(y, ref, cand, metric=acc, n_boot=1000, seed=3)
    assert r["delta"] == pytest.approx(-0.10)
    assert r["low"] < -0.10 < r["high"] < 0.0
    # the percentile CI of a proportion difference of 10/100: roughly -0.10 -/+ 1.96 * 0.03
    assert r["low"] == pytest.approx(-0.16, abs=0.025) and r["high"] == pytest.approx(-0.04, abs=0.025)


def test_accuracy_helper():
    assert accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == pytest.approx(0.75)
