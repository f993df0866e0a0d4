"""`edgekit.validate`: does each candidate (a converted model) match its reference on real data?

Per output tensor: error statistics accumulated batch by batch (memory stays bounded). Per task: metrics from
scikit-learn for both models and their difference, with a paired bootstrap CI and McNemar's exact test. A verdict
per candidate from the one tolerance table (`checks/tolerances.py`) and the one compare function
(`checks/verdict.py`) that `edgekit convert` uses too, so both give the same verdict for the same files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .errors import EdgekitError, InputError, PlatformError

from .checks.verdict import TASKS, guess_task as _guess_task, pair_outputs as _pair  # noqa: F401 (re-exported)
class ValidateReport(dict):
    """What `edgekit.validate` returns: the report `edgekit validate --json` writes, with typed access.

    A dict (its JSON schema is the contract; ``report["candidates"]`` keeps working) with attributes for what a
    program asks most: ``candidates``, ``warnings``, ``verdicts`` ({model path: pass/fail/unverified}),
    ``passed``, and ``to_dict()`` for JSON."""

    @property
    def candidates(self) -> list[dict]:
        return self["candidates"]

    @property
    def warnings(self) -> list[str]:
        return self.get("warnings", [])

    @property
    def samples(self) -> int:
        return self["data"]["samples"]

    @property
    def verdicts(self) -> dict[str, str]:
        return {c["model"]: c["verdict"] for c in self["candidates"]}

    @property
    def passed(self) -> bool:
        """True when no candidate failed or could not run (unverified does not fail)."""
        return all(c["verdict"] in ("pass", "unverified") for c in self["candidates"])

    def to_dict(self) -> dict:
        return dict(self)


@dataclass
class _Cand:
    path: str
    model: object = None
    acc: dict = field(default_factory=dict)
    task_out: list = field(default_factory=list)
    error: str | None = None
    unverified: str | None = None
    names: list[str] = field(default_factory=list)


def validate(reference, candidates, data, *, labels=None, task: str | None = None, device_class: str | None = None,
             atol: float | None = None, rtol: float | None = None, output_tolerances: dict | None = None,
             localize: bool = False, batch_size: int = 64, preprocess=None, trust_code: bool = False,
             progress=None, load_candidate=None, observe=None, status=None) -> "ValidateReport":
    """Validate ``candidates`` against ``reference`` on ``data``; returns a ValidateReport (the JSON `edgekit
    validate` writes, with typed access). ``progress(seen, total)`` after each batch; ``status(message)`` says
    what is loading before the first one. ``load_candidate(path, trust_code=, device_class=)``: how a candidate
    is loaded (default `edgekit.load`; `validate --device` gives the outputs the device computed).
    ``observe(batch, reference_outputs)``, when given, sees every batch (e.g.
    `edgekit.monitoring.ProfileBuilder.observe`, for `--save-profile`)."""
    from edgekit.batching import align_inputs, predict_samples
    from edgekit.checks import metrics as M
    from edgekit.checks.stream import ErrorAccumulator
    from edgekit.checks.tolerances import profile
    from edgekit.datasets import open_dataset
    from edgekit.model import load

    if task is not None and task not in TASKS:
        raise InputError(f"unknown task '{task}'", f"choose one of: {', '.join(TASKS)}")
    if isinstance(candidates, (str, os.PathLike)):
        candidates = [candidates]
    if device_class is None:
        from edgekit.device_classes import detect

        device_class = detect()
    status = status or (lambda message: None)
    status(f"loading the reference {os.path.basename(os.fspath(reference))}")
    ref = load(reference, trust_code=trust_code, device_class=device_class)
    ref_names = [s.name for s in ref.inputs]
    cands = []
    for c in candidates:
        cand = _Cand(str(c))
        status(f"loading candidate {os.path.basename(os.fspath(c))}")
        try:
            cand.model = (load_candidate or load)(c, trust_code=trust_code, device_class=device_class)
        except EdgekitError as e:
            cand.error = e.message
        cands.append(cand)
    status(f"reading {os.path.basename(os.fspath(data)) if isinstance(data, (str, os.PathLike)) else 'the data'}")
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
        if observe is not None:
            observe(batch, ro)
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
    from .checks.power import MIN_AGREEMENT_SAMPLES, MIN_PARITY_SAMPLES, constant_warning, power_warnings

    warnings = power_warnings({}, seen, MIN_PARITY_SAMPLES, "validation")
    if seen > 1:  # with one sample, the too-few warning already says the check is weak
        warnings += [constant_warning(k, f"the same on all {seen} samples", "validation")
                     for k, varies in ref_varies.items() if not varies]
    report = ValidateReport({"reference": str(reference), "reference_inputs": [s.to_dict() for s in ref.inputs],
                             "data": {"path": ds.path, "samples": seen}, "task": task,
                             "device_class": device_class, "warnings": warnings, "candidates": []})
    for cand in cands:
        report["candidates"].append(_judge(cand, y_ref, lab, task, device_class, atol, rtol, output_tolerances, M,
                                           profile))
        c = report["candidates"][-1]
        c["warnings"] = list(warnings)
        if c.get("precision") in ("int8", "int4") and MIN_PARITY_SAMPLES <= seen < MIN_AGREEMENT_SAMPLES:
            c["warnings"] += power_warnings({}, seen, MIN_AGREEMENT_SAMPLES, f"{c['precision']} agreement check")
        if localize and report["candidates"][-1]["verdict"] == "fail" and cand.model is not None:
            from edgekit.checks.localize import localize as find

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
    from edgekit.checks.verdict import judge

    out = {"model": cand.path, "verdict": "fail", "precision": None, "outputs": {}, "metrics": None,
           "agreement_top1": None, "localization": None, "reasons": [], "error": None}
    if cand.error:  # could not load or run: not a failed check (exit code 3, not 1)
        out["reasons"].append(cand.error)
        out["error"] = cand.error
        return out
    out["precision"] = cand.model.precision
    out["inputs"] = [s.to_dict() for s in getattr(cand.model, "inputs", None) or []]  # none for replayed outputs
    if cand.unverified:
        out.update(verdict="unverified", reasons=[cand.unverified])
        return out
    prof = profile(cand.model.precision, device_class)
    out["profile"] = prof
    out["outputs"] = {name: acc.result() for name, acc in cand.acc.items()}
    y_c = np.concatenate(cand.task_out)
    drop = None
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
            out["metrics"] = met
    j = judge(out["outputs"], prof, task=task, task_output=next(iter(cand.acc), None), y_ref=y_ref, y_cand=y_c,
              accuracy_drop=drop, overrides=overrides, use_atol_rtol=atol is not None or rtol is not None)
    out["agreement_top1"] = j.agreement_top1
    out["reasons"] = j.reasons
    out["verdict"] = j.verdict
    return out


def _labels_of(y: np.ndarray, task: str) -> np.ndarray:
    if task == "binary" and (y.ndim == 1 or y.shape[1] == 1):
        return (y.ravel() >= 0.5).astype(int)
    return y.argmax(-1)
