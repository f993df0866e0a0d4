"""`edgekit.validate`: does each candidate (a converted model) match its reference on real data?

Per output tensor: error statistics accumulated batch by batch (memory stays bounded). Per task: metrics from
scikit-learn for both models and their difference, with a paired bootstrap CI and McNemar's exact test. A verdict
per candidate from the profile of its precision and device class (`benchmarks/validation_profiles.py`).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field

import numpy as np

from .errors import EdgekitError, InputError, PlatformError

TASKS = ("classification", "binary", "regression", "embedding", "raw")
RESERVOIR = 200_000  # |error| values kept for the 99th percentile


class ErrorAccumulator:
    """Streaming version of `benchmarks.metrics.tensor_errors` (same definitions), plus the reference's range."""

    def __init__(self, atol: float, rtol: float, seed: int = 0):
        self.atol, self.rtol = atol, rtol
        self.n = self.within = self.nan_mismatch = 0
        self.sum_abs = self.dot = self.rr = self.cc = self.err2 = 0.0
        self.max_abs = self.max_rel = 0.0
        self.lo, self.hi, self.ref_absmax = np.inf, -np.inf, 0.0
        self.pool = np.empty(0)  # a uniform reservoir sample of |error| values, at most RESERVOIR of them
        self.filled = self.seen = 0
        self.rng = np.random.default_rng(seed)

    def add(self, ref: np.ndarray, cand: np.ndarray) -> None:
        r = np.asarray(ref, np.float64).ravel()
        c = np.asarray(cand, np.float64).reshape(np.shape(ref)).ravel() if np.size(cand) == np.size(ref) else None
        if c is None:
            raise InputError(f"output shapes differ: candidate {np.shape(cand)} vs reference {np.shape(ref)}")
        rf, cf = np.isfinite(r), np.isfinite(c)
        same_special = (~rf & ~cf) & ((np.isnan(r) & np.isnan(c)) | (r == c))
        self.nan_mismatch += int(np.sum(rf & ~cf)) + int(np.sum(~rf & ~cf & ~same_special)) + int(np.sum(~rf & cf))
        ok = rf & cf
        r, c = r[ok], c[ok]
        if r.size == 0:
            return
        d = np.abs(r - c)
        self.n += r.size
        self.sum_abs += float(d.sum())
        self.max_abs = max(self.max_abs, float(d.max()))
        self.lo, self.hi = min(self.lo, float(r.min())), max(self.hi, float(r.max()))
        self.ref_absmax = max(self.ref_absmax, float(np.abs(r).max()))
        self.dot += float(r @ c)
        self.rr += float(r @ r)
        self.cc += float(c @ c)
        self.err2 += float(d @ d)
        self.within += int(np.sum(d <= self.atol + self.rtol * np.abs(r)))
        # relative error against max(|ref|, eps), eps = 1e-6 x the largest |ref| seen so far (streaming: a batch
        # is not kept, so eps grows with the data; it only keeps near-zero references from dominating)
        eps = max(1e-6 * self.ref_absmax, 1e-30)
        self.max_rel = max(self.max_rel, float(np.max(d / np.maximum(np.abs(r), eps))))
        self._reservoir(d)

    def _reservoir(self, d: np.ndarray) -> None:
        """Algorithm R, vectorized: memory stays at RESERVOIR values however much data streams through."""
        if self.pool.size == 0:
            self.pool = np.empty(RESERVOIR)
        head = d[:RESERVOIR - self.filled]
        self.pool[self.filled:self.filled + head.size] = head
        self.filled += head.size
        rest = d[head.size:]
        if rest.size:  # the i-th value seen replaces a random slot with probability RESERVOIR / i
            seen_at = np.arange(self.seen + head.size + 1, self.seen + d.size + 1)
            slot = (self.rng.random(rest.size) * seen_at).astype(np.int64)
            hit = slot < RESERVOIR
            self.pool[slot[hit]] = rest[hit]
        self.seen += d.size

    def result(self) -> dict:
        if self.n == 0:
            return {"max_abs": None, "mean_abs": None, "p99_abs": None, "max_rel": None, "cosine": None,
                    "snr_db": None, "within_tol": None, "nan_mismatch": self.nan_mismatch, "range": None}
        max_rel = self.max_rel
        allkept = self.pool[:self.filled] if self.filled else np.zeros(1)
        cos = 1.0 if self.rr == 0 and self.cc == 0 else (self.dot / np.sqrt(self.rr * self.cc) if self.rr and self.cc
                                                         else 0.0)
        snr = float("inf") if self.err2 == 0 else (10 * np.log10(self.rr / self.err2) if self.rr > 0 else float("-inf"))
        logs = np.log10(allkept + 1e-12)
        counts, edges = np.histogram(logs, bins=30)
        return {"max_abs": self.max_abs, "mean_abs": self.sum_abs / self.n, "p99_abs": float(np.percentile(allkept, 99)),
                "max_rel": max_rel, "cosine": float(cos), "snr_db": float(snr), "within_tol": self.within / self.n,
                "nan_mismatch": self.nan_mismatch, "range": self.hi - self.lo,
                "histogram_log10_abs": {"edges": edges.tolist(), "counts": counts.tolist()}}


@dataclass
class _Cand:
    path: str
    model: object = None
    acc: dict = field(default_factory=dict)
    task_out: list = field(default_factory=list)
    error: str | None = None
    unverified: str | None = None
    names: list[str] = field(default_factory=list)


def _pair(ref_out: dict, cand_out: dict) -> list[tuple[str, str]]:
    if set(ref_out) == set(cand_out):
        return [(k, k) for k in ref_out]
    if len(ref_out) == len(cand_out):
        return list(zip(ref_out, cand_out))
    raise InputError(f"the candidate has {len(cand_out)} outputs where the reference has {len(ref_out)}")


def _guess_task(y: np.ndarray, labels) -> str:
    if y.ndim == 2 and y.shape[1] > 1 and labels is not None:
        return "classification"
    if y.ndim == 2 and y.shape[1] > 1 and np.all(y >= 0) and np.allclose(y.sum(1), 1, atol=1e-3):
        return "classification"
    return "raw"


def validate(reference, candidates, data, *, labels=None, task: str | None = None, device_class: str | None = None,
             atol: float | None = None, rtol: float | None = None, output_tolerances: dict | None = None,
             localize: bool = False, batch_size: int = 64, preprocess=None, trust_code: bool = False,
             progress=None) -> dict:
    """Validate ``candidates`` against ``reference`` on ``data``; returns the report dict (see `edgekit validate`)."""
    from edgekit.batching import align_inputs, predict_samples
    from edgekit.benchmarks import metrics as M
    from edgekit.benchmarks.validation_profiles import profile
    from edgekit.datasets import open_dataset
    from edgekit.model import load

    if task is not None and task not in TASKS:
        raise InputError(f"unknown task '{task}'", f"choose one of: {', '.join(TASKS)}")
    if isinstance(candidates, (str, os.PathLike)):
        candidates = [candidates]
    if device_class is None:
        from edgekit.benchmarks.device_classes import guess
        from edgekit.benchmarks.environment import board, cpu_info

        device_class = guess(cpu_info(), board(), platform.system())
    ref = load(reference, trust_code=trust_code)
    ref_names = [s.name for s in ref.inputs]
    cands = []
    for c in candidates:
        cand = _Cand(str(c))
        try:
            cand.model = load(c, trust_code=trust_code)
        except EdgekitError as e:
            cand.error = e.message
        cands.append(cand)
    ds = open_dataset(data, ref_names, labels=labels, batch=batch_size, preprocess=preprocess)
    ref_task: list[np.ndarray] = []
    first_batch, seen = None, 0
    tol_a = 1e-5 if atol is None else atol
    tol_r = 1e-3 if rtol is None else rtol
    ref_first: dict[str, np.ndarray] = {}  # the reference's first output row, to see whether it ever changes
    ref_varies: dict[str, bool] = {}
    for batch in ds.batches:
        first_batch = first_batch or {k: v[:1] for k, v in batch.items()}
        ro = predict_samples(ref, batch)
        for k, y in ro.items():
            y = np.asarray(y)
            if y.ndim == 0 or y.dtype.kind not in "biuf":
                ref_varies[k] = True
                continue
            row = ref_first.setdefault(k, y[:1])
            ref_varies[k] = ref_varies.get(k, False) or not bool(np.all(y == row))
        ref_task.append(next(iter(ro.values())))
        for cand in cands:
            if cand.model is None or cand.error or cand.unverified:
                continue
            try:
                co = predict_samples(cand.model, align_inputs(cand.model, batch, ref_names))
            except PlatformError as e:
                cand.unverified = e.message
                continue
            except EdgekitError as e:
                cand.error = e.message
                continue
            for rk, ck in _pair(ro, co):
                ov = (output_tolerances or {}).get(rk, {})
                acc = cand.acc.setdefault(rk, ErrorAccumulator(ov.get("atol", tol_a), ov.get("rtol", tol_r)))
                acc.add(ro[rk], co[ck])
            cand.task_out.append(co[_pair(ro, co)[0][1]])
        seen += len(next(iter(batch.values())))
        if progress:
            progress(seen, ds.samples)
    if seen == 0:
        raise InputError("the data holds no samples", "pass a non-empty .npz, .npy, image folder or iterable")
    y_ref = np.concatenate(ref_task)
    lab = None if ds.labels is None else np.asarray(ds.labels)[:seen]
    task = task or _guess_task(y_ref, lab)
    from .checks import MIN_AGREEMENT_SAMPLES, MIN_PARITY_SAMPLES, constant_warning, power_warnings

    warnings = power_warnings({}, seen, MIN_PARITY_SAMPLES, "validation")
    if seen > 1:  # with one sample, the too-few warning already says the check is weak
        warnings += [constant_warning(k, f"the same on all {seen} samples", "validation")
                     for k, varies in ref_varies.items() if not varies]
    report = {"reference": str(reference), "data": {"path": ds.path, "samples": seen}, "task": task,
              "device_class": device_class, "warnings": warnings, "candidates": []}
    for cand in cands:
        report["candidates"].append(_judge(cand, y_ref, lab, task, device_class, atol, rtol, output_tolerances, M,
                                           profile))
        c = report["candidates"][-1]
        c["warnings"] = list(warnings)
        if c.get("precision") in ("int8", "int4") and MIN_PARITY_SAMPLES <= seen < MIN_AGREEMENT_SAMPLES:
            c["warnings"] += power_warnings({}, seen, MIN_AGREEMENT_SAMPLES, f"{c['precision']} agreement check")
        if localize and report["candidates"][-1]["verdict"] == "fail" and cand.model is not None:
            from edgekit.benchmarks.localize import localize as find

            try:
                loc = find(reference, cand.path, first_batch)
                report["candidates"][-1]["localization"] = loc.to_dict()
            except EdgekitError as e:
                report["candidates"][-1]["localization"] = {"supported": False, "note": e.message}
    ref.close()
    for cand in cands:
        if cand.model is not None:
            cand.model.close()
    return report


def _task_metrics(task, y, lab, M):
    if task == "classification":
        return M.classification_metrics(lab, y, n_classes=y.shape[1] if y.ndim == 2 else None)
    if task == "binary":
        return M.binary_metrics(lab, y)
    if task == "regression":
        return M.regression_metrics(lab, y)
    return {}


def _judge(cand: _Cand, y_ref, lab, task, device_class, atol, rtol, overrides, M, profile) -> dict:
    out = {"model": cand.path, "verdict": "fail", "precision": None, "outputs": {}, "metrics": None,
           "agreement_top1": None, "localization": None, "reasons": [], "error": None}
    if cand.error:  # could not load or run: not a failed check (exit code 3, not 1)
        out["reasons"].append(cand.error)
        out["error"] = cand.error
        return out
    out["precision"] = cand.model.precision
    if cand.unverified:
        out.update(verdict="unverified", reasons=[cand.unverified])
        return out
    prof = profile(cand.model.precision, device_class)
    out["profile"] = prof
    reasons = []
    for name, acc in cand.acc.items():
        e = acc.result()
        out["outputs"][name] = e
        ov = (overrides or {}).get(name, {})
        if e["nan_mismatch"]:
            reasons.append(f"{name}: {e['nan_mismatch']} NaN/Inf values where the reference has none")
        if e["max_abs"] is None:
            continue
        rel = ov.get("max_abs_rel", prof["max_abs_rel"])
        cos = ov.get("cosine", prof["cosine"])
        if atol is not None or rtol is not None or "atol" in ov or "rtol" in ov:
            if e["within_tol"] < 1.0:
                reasons.append(f"{name}: {100 * (1 - e['within_tol']):.3g}% of elements outside atol/rtol")
        elif rel is not None and e["max_abs"] > rel * max(e["range"], 1e-12):
            reasons.append(f"{name}: max abs error {e['max_abs']:.3g} > {rel:g} x range {e['range']:.3g}")
        if cos is not None and e["cosine"] < cos:
            reasons.append(f"{name}: cosine {e['cosine']:.6f} < {cos}")
    y_c = np.concatenate(cand.task_out)
    if task in ("classification", "binary") and y_ref.ndim == 2 and y_ref.shape[1] > 1:
        out["agreement_top1"] = M.top1_agreement(y_ref, y_c)
        if out["agreement_top1"] < prof["agreement"]:
            reasons.append(f"top-1 agreement {out['agreement_top1']:.4f} < {prof['agreement']}")
    if task == "embedding":
        out["metrics"] = M.embedding_metrics(y_ref, y_c)
    elif task != "raw":
        truth = lab if lab is not None else (y_ref.argmax(-1) if task == "classification" else None)
        if truth is not None:
            mr, mc = _task_metrics(task, y_ref, truth, M), _task_metrics(task, y_c, truth, M)
            delta = {k: mc[k] - mr[k] for k in mr if isinstance(mr.get(k), float) and isinstance(mc.get(k), float)}
            met = {"labels": "given" if lab is not None else "reference predictions", "reference": mr,
                   "candidate": mc, "delta": delta}
            if task in ("classification", "binary") and lab is not None:
                pr, pc = _labels_of(y_ref, task), _labels_of(y_c, task)
                met["ci95"] = M.paired_bootstrap_ci(lab, pr, pc)
                met["mcnemar_p"] = M.mcnemar_exact(lab, pr, pc)["p_value"]
                drop = mr["accuracy"] - mc["accuracy"]
                if drop > prof["accuracy_drop"]:
                    reasons.append(f"accuracy drop {100 * drop:.2f} points > {100 * prof['accuracy_drop']:g}")
            out["metrics"] = met
    out["reasons"] = reasons
    out["verdict"] = "pass" if not reasons else "fail"
    return out


def _labels_of(y: np.ndarray, task: str) -> np.ndarray:
    if task == "binary" and (y.ndim == 1 or y.shape[1] == 1):
        return (y.ravel() >= 0.5).astype(int)
    return y.argmax(-1)
