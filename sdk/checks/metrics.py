"""Accuracy parity of a converted model against its source: tensor errors, task metrics and paired tests.

Used by ``edgekit validate``. All functions are pure (no I/O, no global state) and return plain dicts of
Python floats/ints/lists so a report can serialise them directly. Task metrics come from scikit-learn and
the exact test from SciPy; both are imported inside the functions so ``import edgekit`` stays light.

Definitions (the tests check these on hand-computed values):

- ``tensor_errors``: ``d = cand - ref`` in float64.
  * Non-finite values: a position where both tensors hold the *same* non-finite class (NaN/NaN, +inf/+inf,
    -inf/-inf) is *ignored* everywhere. Any other position where either side is non-finite (NaN where the
    reference is finite, +inf vs -inf, finite candidate where the reference is NaN, ...) is a *mismatch*:
    ``nan_mismatch`` counts them and they count as failures in ``within_tol``. The error statistics
    (``max_abs``, ``mean_abs``, ``p99_abs``, ``max_rel``, ``cosine``, ``snr_db``) are computed over the
    positions where both are finite, so a single NaN does not turn every number into NaN; a caller must look
    at ``nan_mismatch`` (or ``within_tol``) as well.
  * ``p99_abs`` is ``np.percentile(|d|, 99)`` with numpy's default linear interpolation.
  * ``max_rel = max(|d| / max(|ref|, eps))`` with ``eps = 1e-6 * max(|ref|)`` over the finite reference values,
    so reference entries near zero do not blow the ratio up. When the reference is all zeros ``eps`` is 0:
    a non-zero difference then gives ``inf`` and a zero difference 0.
  * ``cosine`` of the flattened arrays; 1.0 when both are all zeros, 0.0 when exactly one is.
  * ``snr_db = 10 * log10(sum(ref**2) / sum(d**2))``; ``inf`` when the arrays are identical, ``-inf`` when the
    reference is all zeros and the candidate is not.
  * ``within_tol`` is the share of (non-ignored) elements with ``|d| <= atol + rtol * |ref|`` - the
    ``numpy.isclose(cand, ref)`` rule, the reference being the scale. 1.0 when every element is ignored.
- ``classification_metrics``: macro precision/recall/F1 average over the classes present in ``y_true`` or the
  predictions (scikit-learn's default), ``zero_division=0``. ROC-AUC is one-vs-rest macro: the mean over classes
  of the binary AUC of column ``j`` for ``y_true == j`` (equal to ``roc_auc_score(multi_class="ovr")`` on
  probabilities, and also defined on logits, which scikit-learn refuses).
- ``paired_bootstrap_ci``: percentile bootstrap, the same resampled indices for both models, quantiles by
  ``np.quantile`` (linear).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "accuracy",
    "binary_metrics",
    "classification_metrics",
    "embedding_metrics",
    "mcnemar_exact",
    "paired_bootstrap_ci",
    "regression_metrics",
    "tensor_errors",
    "top1_agreement",
]


# --------------------------------------------------------------------------------------------- tensors


def _nonfinite_class(x: np.ndarray) -> np.ndarray:
    """0 finite, 1 NaN, 2 +inf, 3 -inf."""
    cls = np.zeros(x.shape, dtype=np.int8)
    cls[np.isnan(x)] = 1
    cls[np.isposinf(x)] = 2
    cls[np.isneginf(x)] = 3
    return cls


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))


def tensor_errors(ref: np.ndarray, cand: np.ndarray, atol: float, rtol: float) -> dict:
    """Element-wise error statistics of ``cand`` against ``ref`` (see the module docstring for definitions)."""
    ref = np.asarray(ref)
    cand = np.asarray(cand)
    if ref.shape != cand.shape:
        raise ValueError(f"shape mismatch: reference {ref.shape} vs candidate {cand.shape}")
    r = ref.astype(np.float64).ravel()
    c = cand.astype(np.float64).ravel()
    rc, cc = _nonfinite_class(r), _nonfinite_class(c)
    both_finite = (rc == 0) & (cc == 0)
    ignored = (rc != 0) & (rc == cc)
    mismatch = ~both_finite & ~ignored
    n_considered = int(r.size - ignored.sum())

    rf, cf = r[both_finite], c[both_finite]
    d = np.abs(cf - rf)
    if d.size:
        max_abs, mean_abs = float(d.max()), float(d.mean())
        p99_abs = float(np.percentile(d, 99))
        ref_abs = np.abs(rf)
        eps = 1e-6 * float(ref_abs.max())
        denom = np.maximum(ref_abs, eps)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(d == 0, 0.0, d / denom)
        max_rel = float(rel.max())
        signal, noise = float(np.sum(rf * rf)), float(np.sum(d * d))
        if noise == 0.0:
            snr_db = float("inf")
        elif signal == 0.0:
            snr_db = float("-inf")
        else:
            snr_db = float(10.0 * np.log10(signal / noise))
        n_within = int(np.count_nonzero(d <= atol + rtol * ref_abs))
    else:
        max_abs = mean_abs = p99_abs = max_rel = 0.0
        snr_db = float("inf")
        n_within = 0
    return {
        "max_abs": max_abs,
        "mean_abs": mean_abs,
        "p99_abs": p99_abs,
        "max_rel": max_rel,
        "cosine": _cosine(rf, cf),
        "snr_db": snr_db,
        "within_tol": float(n_within / n_considered) if n_considered else 1.0,
        "nan_mismatch": int(mismatch.sum()),
    }


# --------------------------------------------------------------------------------------- classification


def _labels_1d(y, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name} must be labels of shape (N,), got shape {y.shape}")
    return y


def _pred_labels(pred, name: str) -> np.ndarray:
    """Labels (N,) as given, or argmax of scores (N, C) with C > 1."""
    p = np.asarray(pred)
    if p.ndim == 2 and p.shape[1] > 1:
        return p.argmax(axis=1)
    return _labels_1d(p, name)


def _check_len(y_true: np.ndarray, other: np.ndarray, name: str) -> None:
    if len(y_true) != len(other):
        raise ValueError(f"{name} has {len(other)} rows but y_true has {len(y_true)}")
    if len(y_true) == 0:
        raise ValueError("no samples: need at least one row")


def _ovr_macro_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(np.mean([roc_auc_score(y_true == j, scores[:, j]) for j in range(scores.shape[1])]))


def classification_metrics(y_true, scores_or_labels, top_k: Sequence[int] = (1, 5), n_classes: int | None = None) -> dict:
    """Multiclass metrics from scores (N, C) or predicted labels (N,).

    Returns accuracy, precision/recall/F1 (macro and weighted), ``roc_auc`` (None without scores or when a class
    is missing from ``y_true``), ``top_k`` ({k: accuracy} for each k < C, scores only; labels give only k=1),
    ``confusion_matrix`` (rows = true class, columns = predicted, labels 0..C-1) and ``n_classes``.
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
        top_k_accuracy_score,
    )

    y = _labels_1d(y_true, "y_true").astype(np.int64)
    s = np.asarray(scores_or_labels)
    has_scores = s.ndim == 2 and s.shape[1] > 1
    if has_scores:
        C = int(s.shape[1])
        if n_classes is not None and n_classes != C:
            raise ValueError(f"n_classes={n_classes} but scores have {C} columns")
        pred = s.argmax(axis=1)
    else:
        pred = _labels_1d(s, "scores_or_labels").astype(np.int64)
        C = int(n_classes) if n_classes is not None else int(max(y.max(initial=0), pred.max(initial=0))) + 1
    _check_len(y, pred, "scores_or_labels")
    for arr, name in ((y, "y_true"), (pred, "predictions")):
        if arr.min() < 0 or arr.max() >= C:
            raise ValueError(f"{name} holds labels outside 0..{C - 1}")

    out: dict = {"n_classes": C, "accuracy": float(accuracy_score(y, pred))}
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y, pred, average=avg, zero_division=0)
        out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = float(p), float(r), float(f)

    roc = None
    if has_scores and np.all(np.isin(np.arange(C), y)):
        if C == 2:
            from sklearn.metrics import roc_auc_score

            roc = float(roc_auc_score(y, s[:, 1]))
        else:
            roc = _ovr_macro_auc(y, s.astype(np.float64))
    out["roc_auc"] = roc

    tk: dict[int, float] = {}
    for k in top_k:
        if has_scores and k < C and C == 2:
            tk[1] = out["accuracy"]  # scikit-learn's binary top-k thresholds a 1-D score; argmax is what we mean
        elif has_scores and k < C:
            tk[int(k)] = float(top_k_accuracy_score(y, s, k=k, labels=np.arange(C)))
        elif not has_scores and k == 1:
            tk[1] = out["accuracy"]
    out["top_k"] = tk
    out["confusion_matrix"] = confusion_matrix(y, pred, labels=np.arange(C)).tolist()
    return out


def binary_metrics(y_true, scores, threshold: float = 0.5) -> dict:
    """Binary metrics from the probability of class 1: scores (N,), (N, 1), or (N, 2) (column 1 is used).

    The predicted class is 1 where ``score >= threshold``. ``roc_auc`` is None when ``y_true`` has one class.
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y = _labels_1d(y_true, "y_true").astype(np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2 and s.shape[1] == 2:
        s = s[:, 1]
    s = _labels_1d(s, "scores")
    _check_len(y, s, "scores")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError("binary_metrics needs y_true in {0, 1}")
    pred = (s >= threshold).astype(np.int64)
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="binary", pos_label=1, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
        "roc_auc": float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else None,
        "confusion_matrix": confusion_matrix(y, pred, labels=[0, 1]).tolist(),
    }


def regression_metrics(y_true, y_pred) -> dict:
    """MAE, RMSE and R^2 (scikit-learn; multi-output targets are averaged uniformly)."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    yt = np.asarray(y_true, dtype=np.float64)
    yp = np.asarray(y_pred, dtype=np.float64)
    if yt.shape != yp.shape:
        raise ValueError(f"shape mismatch: y_true {yt.shape} vs y_pred {yp.shape}")
    _check_len(yt, yp, "y_pred")
    return {
        "mae": float(mean_absolute_error(yt, yp)),
        "rmse": float(np.sqrt(mean_squared_error(yt, yp))),
        "r2": float(r2_score(yt, yp)),
    }


# ------------------------------------------------------------------------------------------- embeddings


def _unit_rows(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def embedding_metrics(ref_emb, cand_emb, k: int = 1) -> dict:
    """Row-wise cosine similarity and nearest-neighbour agreement of two (N, D) embedding sets.

    ``nn_agreement``: for each row i, the k nearest neighbours (by cosine, row i itself excluded) of
    ``ref_emb[i]`` and of ``cand_emb[i]`` are both searched among the *reference* rows; the score is the mean
    share of the k neighbours in common (for k=1: the share of rows whose nearest neighbour is the same index).
    Row cosine is 1.0 for two zero rows and 0.0 when exactly one is zero.
    """
    a = np.asarray(ref_emb, dtype=np.float64)
    b = np.asarray(cand_emb, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"embeddings must both be (N, D) of the same shape, got {a.shape} and {b.shape}")
    n = a.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k={k} needs 1 <= k < N (N={n} rows)")
    ua, ub = _unit_rows(a), _unit_rows(b)
    cos = np.sum(ua * ub, axis=1)
    za, zb = ~ua.any(axis=1), ~ub.any(axis=1)
    cos[za & zb] = 1.0
    cos = np.clip(cos, -1.0, 1.0)

    idx = np.arange(n)
    sim_ref = ua @ ua.T
    sim_cand = ub @ ua.T
    sim_ref[idx, idx] = -np.inf
    sim_cand[idx, idx] = -np.inf
    nn_ref = np.argsort(-sim_ref, axis=1, kind="stable")[:, :k]
    nn_cand = np.argsort(-sim_cand, axis=1, kind="stable")[:, :k]
    overlap = [len(set(nn_ref[i]) & set(nn_cand[i])) / k for i in range(n)]
    return {
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "nn_agreement": float(np.mean(overlap)),
        "k": int(k),
    }


def top1_agreement(ref_scores, cand_scores) -> float:
    """Share of rows where the two models' argmax (last axis) is the same. Scores must be (..., C) with C > 1."""
    a, b = np.asarray(ref_scores), np.asarray(cand_scores)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: reference {a.shape} vs candidate {b.shape}")
    if a.ndim < 2 or a.shape[-1] < 2 or a.size == 0:
        raise ValueError(
            f"top1_agreement needs scores of shape (N, C) with C > 1, got {a.shape}; "
            "for a single-probability output compare thresholded labels instead"
        )
    return float(np.mean(a.argmax(axis=-1) == b.argmax(axis=-1)))


# ------------------------------------------------------------------------------------ paired statistics


def accuracy(y_true, pred) -> float:
    """Share of exact matches between labels (scores (N, C) are reduced by argmax)."""
    y = _labels_1d(y_true, "y_true")
    p = _pred_labels(pred, "pred")
    _check_len(y, p, "pred")
    return float(np.mean(y == p))


def paired_bootstrap_ci(
    y_true,
    ref_pred,
    cand_pred,
    metric: Callable[[np.ndarray, np.ndarray], float] = accuracy,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict:
    """Percentile bootstrap CI of ``metric(cand) - metric(ref)``, resampling the same indices for both models."""
    if n_boot < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got n_boot={n_boot}, alpha={alpha}")
    y = np.asarray(y_true)
    rp, cp = np.asarray(ref_pred), np.asarray(cand_pred)
    _check_len(y, rp, "ref_pred")
    _check_len(y, cp, "cand_pred")
    n = len(y)
    delta = float(metric(y, cp) - metric(y, rp))
    rng = np.random.default_rng(seed)
    deltas = np.empty(n_boot, dtype=np.float64)
    if metric is accuracy:
        # Fast path: the accuracy difference on a resample is the mean of the per-sample correctness difference.
        yl = _labels_1d(y, "y_true")
        diff = (_pred_labels(cp, "cand_pred") == yl).astype(np.float64) - (_pred_labels(rp, "ref_pred") == yl)
        chunk = max(1, min(n_boot, 2_000_000 // max(n, 1)))
        for start in range(0, n_boot, chunk):
            stop = min(n_boot, start + chunk)
            idx = rng.integers(0, n, size=(stop - start, n))
            deltas[start:stop] = diff[idx].mean(axis=1)
    else:
        for i in range(n_boot):
            idx = rng.integers(0, n, size=n)
            deltas[i] = metric(y[idx], cp[idx]) - metric(y[idx], rp[idx])
    low, high = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    return {"delta": delta, "low": float(low), "high": float(high), "n_boot": int(n_boot)}


def mcnemar_exact(y_true, ref_pred, cand_pred) -> dict:
    """Exact McNemar test: two-sided binomial test of b vs c with p = 0.5.

    ``b`` = samples the reference gets right and the candidate wrong, ``c`` = the reverse. ``p_value`` is 1.0
    when ``b + c == 0`` (the models never disagree on correctness).
    """
    from scipy.stats import binomtest

    y = _labels_1d(y_true, "y_true")
    r = _pred_labels(ref_pred, "ref_pred")
    c_ = _pred_labels(cand_pred, "cand_pred")
    _check_len(y, r, "ref_pred")
    _check_len(y, c_, "cand_pred")
    ref_ok, cand_ok = r == y, c_ == y
    b = int(np.count_nonzero(ref_ok & ~cand_ok))
    c = int(np.count_nonzero(~ref_ok & cand_ok))
    p = 1.0 if b + c == 0 else float(binomtest(b, n=b + c, p=0.5, alternative="two-sided").pvalue)
    return {"b": b, "c": c, "p_value": min(p, 1.0)}
