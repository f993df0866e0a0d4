"""k-fold rotation for tune: calibrate on one fold, evaluate on the others, every fold in turn; and the plain
split when no folds are asked (calibration data given, or the evaluation data calibrating itself, with a
warning). Each split names its sample indices, so a recipe can say exactly which samples calibrated."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.errors import InputError


@dataclass
class Split:
    index: int
    calibration: np.ndarray | None  # indices into the evaluation data, or None: the separate calibration data
    evaluation: np.ndarray


def splits(n: int, folds: int | None, seed: int = 0) -> list[Split]:
    """``folds`` K: K splits, split i calibrating on fold i and evaluating on the other K-1. None: one split,
    evaluating on everything (its calibration decided by the caller)."""
    if folds is None:
        return [Split(0, None, np.arange(n))]
    if not isinstance(folds, int) or folds < 2:
        raise InputError(f"folds must be an integer >= 2, got {folds!r}", "e.g. --folds 5, or leave it out")
    if n < 2 * folds:
        raise InputError(f"{n} samples are too few for {folds} folds", "use fewer folds or more data")
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, folds)
    return [Split(i, np.sort(parts[i]), np.sort(np.concatenate([p for j, p in enumerate(parts) if j != i])))
            for i in range(folds)]


def take(arrays: dict, idx: np.ndarray) -> dict:
    return {k: np.asarray(v)[idx] for k, v in arrays.items()}


def summary(per_fold: list[dict]) -> dict:
    """Mean and spread (standard deviation, min, max) of the per-fold accuracy and drop."""
    out: dict = {"k": len(per_fold), "per_fold": per_fold}
    for key in ("accuracy", "accuracy_drop"):
        vals = np.array([f[key] for f in per_fold], dtype=float)
        out[f"{key}_mean"] = float(vals.mean())
        out[f"{key}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        out[f"{key}_min"], out[f"{key}_max"] = float(vals.min()), float(vals.max())
    return out


def shared_samples(calibration: dict, evaluation: dict) -> int:
    """How many calibration samples also appear (byte for byte, on the first input) in the evaluation data."""
    import hashlib

    k = next(iter(evaluation))
    if k not in calibration:
        return 0

    def rows(a):
        a = np.ascontiguousarray(a)
        return {hashlib.sha1(a[i].tobytes()).digest() for i in range(len(a))}

    seen = rows(evaluation[k])
    return sum(hashlib.sha1(np.ascontiguousarray(r).tobytes()).digest() in seen for r in calibration[k])


CALIBRATING_ON_EVAL = ("calibrating on the evaluation data: int8 ranges fitted to the samples that judge them "
                       "(the accuracy drop may look smaller than on unseen data); pass calibration= or folds=K")
