"""Replay a sample log against the reference model: `edgekit validate REFERENCE --replay LOG`.

The reference runs on the logged live inputs and its outputs are compared with the outputs the deployed model gave
on the device (logged beside them), with the same tolerance table and verdict as any candidate of `edgekit validate`
(the recorded outputs are the candidate, at the deployed model's precision from the log's monitor.json).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from edgekit.errors import InputError


def replay(reference, log, *, task: str | None = None, device_class: str | None = None, atol: float | None = None,
           rtol: float | None = None, output_tolerances: dict | None = None, trust_code: bool = False,
           progress=None):
    """A ValidateReport whose one candidate is ``LOG (recorded outputs)``."""
    from edgekit.batching import align_inputs, predict_samples
    from edgekit.checks import metrics as M
    from edgekit.checks.stream import ErrorAccumulator
    from edgekit.checks.tolerances import profile
    from edgekit.checks.verdict import guess_task, pair_outputs
    from edgekit.model import load
    from edgekit.validation import TASKS, ValidateReport, _Cand, _judge

    from .samplelog import describe, read_segments

    if task is not None and task not in TASKS:
        raise InputError(f"unknown task '{task}'", f"choose one of: {', '.join(TASKS)}")
    if device_class is None:
        from edgekit.device_classes import detect

        device_class = detect()
    meta = describe(log)
    precision = (meta.get("model") or {}).get("precision") or "fp32"
    ref = load(reference, trust_code=trust_code, device_class=device_class)
    cand = _Cand(f"{Path(log)} (recorded outputs)", model=SimpleNamespace(precision=precision))
    ref_task, seen = [], 0
    tol_a = 1e-5 if atol is None else atol
    tol_r = 1e-3 if rtol is None else rtol
    try:
        for inputs, outputs, _ids in read_segments(log):
            ro = predict_samples(ref, align_inputs(ref, inputs, list(inputs)))
            pairs = pair_outputs(ro, outputs)
            for rk, ck in pairs:
                ov = (output_tolerances or {}).get(rk, {})
                acc = cand.acc.setdefault(rk, ErrorAccumulator(ov.get("atol", tol_a), ov.get("rtol", tol_r)))
                acc.add(ro[rk], outputs[ck])
            ref_task.append(ro[pairs[0][0]])
            cand.task_out.append(outputs[pairs[0][1]])
            seen += len(ref_task[-1])
            if progress:
                progress(seen, None)
    finally:
        ref.close()
    y_ref = np.concatenate(ref_task)
    task = task or guess_task(y_ref)
    report = ValidateReport({"reference": str(reference), "data": {"path": str(log), "samples": seen,
                                                                   "replay": True},
                             "task": task, "device_class": device_class, "warnings": [], "candidates": []})
    c = _judge(cand, y_ref, None, task, device_class, atol, rtol, output_tolerances, M, profile)
    c["warnings"] = []
    c["recorded_model"] = meta.get("model")
    report["candidates"].append(c)
    return report
