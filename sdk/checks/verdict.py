"""The one compare function: a candidate's outputs against the reference's, judged with the one tolerance table.

`edgekit convert` (parity gate, compression gate) and `edgekit validate` feed it the same kind of run results:
per-output error statistics (``checks.stream.ErrorAccumulator``) and the first output of both models (the task
output: top-1 agreement and, with labels, accuracy), so the same files get the same verdict. Polygraphy's
``Comparator.run`` + ``compare_func`` is the model.

Verdict words, everywhere: ``pass``, ``fail``, ``unverified`` (the check could not run here, e.g. Core ML off macOS).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PASS, FAIL, UNVERIFIED = "pass", "fail", "unverified"
VERDICTS = (PASS, FAIL, UNVERIFIED)
TASKS = ("classification", "binary", "regression", "embedding", "raw")


def guess_task(y: np.ndarray, labels=None) -> str:
    """classification for class scores with labels, or for probabilities that sum to 1; else raw."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1 and labels is not None:
        return "classification"
    if y.ndim == 2 and y.shape[1] > 1 and np.all(y >= 0) and np.allclose(y.sum(1), 1, atol=1e-3):
        return "classification"
    return "raw"


def pair_outputs(ref_out: dict, cand_out: dict) -> list[tuple[str, str]]:
    """(reference name, candidate name): by name when both use the same names, else by position."""
    from edgekit.errors import InputError

    if set(ref_out) == set(cand_out):
        return [(k, k) for k in ref_out]
    if len(ref_out) == len(cand_out):
        return list(zip(ref_out, cand_out))
    raise InputError(f"the candidate has {len(cand_out)} outputs where the reference has {len(ref_out)}")


def scale_of(e: dict) -> float:
    """What the elementwise limit is a fraction of: the reference's range, or its largest |value| when constant."""
    span = e.get("range") or 0.0
    return span if span > 0 else max(e.get("ref_absmax") or 0.0, 1e-12)


@dataclass
class Judgement:
    verdict: str
    reasons: list[str] = field(default_factory=list)
    agreement_top1: float | None = None
    accuracy_drop: float | None = None
    notes: list[str] = field(default_factory=list)


def judge(errors: dict[str, dict], prof: dict, *, task: str = "raw", task_output: str | None = None,
          y_ref=None, y_cand=None, accuracy_drop: float | None = None, overrides: dict | None = None,
          use_atol_rtol: bool = False) -> Judgement:
    """Judge per-output ``errors`` (ErrorAccumulator results) and the task output under ``prof``.

    Elementwise limits (max abs error relative to the reference's scale, cosine) apply per output where the
    profile has them; at task-level precisions (int8, int4) the class-score output is judged on top-1 agreement
    instead and the other outputs on cosine. ``overrides`` {output: {max_abs_rel|cosine|atol|rtol: value}} and
    ``use_atol_rtol`` (numpy.isclose-style limits given by the user) replace the profile's numbers.
    ``accuracy_drop``: reference accuracy minus candidate accuracy on labels, when labels were given.
    """
    from .metrics import top1_agreement

    overrides = overrides or {}
    classify = task in ("classification", "binary") and y_ref is not None and np.ndim(y_ref) == 2 \
        and np.shape(y_ref)[1] > 1
    reasons: list[str] = []
    for name, e in errors.items():
        ov = overrides.get(name, {})
        if e.get("nan_mismatch"):
            reasons.append(f"{name}: {e['nan_mismatch']} NaN/Inf values where the reference has none")
        if e.get("max_abs") is None:
            continue
        if prof["task_level"] and classify and name == task_output:
            continue  # class scores at int8: judged on agreement below
        rel = ov.get("max_abs_rel", prof["max_abs_rel"])
        cos = ov.get("cosine", prof["cosine"])
        if use_atol_rtol or "atol" in ov or "rtol" in ov:
            if e["within_tol"] < 1.0:
                reasons.append(f"{name}: {100 * (1 - e['within_tol']):.3g}% of elements outside atol/rtol")
        elif rel is not None and e["max_abs"] > rel * scale_of(e):
            reasons.append(f"{name}: max abs error {e['max_abs']:.3g} > {rel:g} x range {scale_of(e):.3g}")
        if cos is not None and e["cosine"] < cos:
            reasons.append(f"{name}: cosine {e['cosine']:.6f} < {cos}")
    j = Judgement(PASS)
    if classify and y_cand is not None:
        j.agreement_top1 = top1_agreement(y_ref, y_cand)
        if j.agreement_top1 < prof["agreement"]:
            reasons.append(f"top-1 agreement {j.agreement_top1:.4f} < {prof['agreement']}")
    if accuracy_drop is not None:
        j.accuracy_drop = accuracy_drop
        if accuracy_drop > prof["accuracy_drop"]:
            reasons.append(f"accuracy drop {100 * accuracy_drop:.2f} points > {100 * prof['accuracy_drop']:g}")
    j.reasons = reasons
    j.verdict = FAIL if reasons else PASS
    return j


def compare_outputs(ref_out: dict[str, np.ndarray], cand_out: dict[str, np.ndarray], precision: str,
                    device_class: str | None = None, labels=None, task: str | None = None,
                    min_agreement: float | None = None) -> tuple[Judgement, dict]:
    """Whole-array form (convert's gates): errors per output, then ``judge``. Returns (judgement, errors).
    ``min_agreement`` replaces the profile's top-1 agreement limit (the user's accuracy budget)."""
    from .stream import ErrorAccumulator
    from .tolerances import profile

    prof = profile(precision, device_class)
    if min_agreement is not None:
        prof = {**prof, "agreement": min_agreement}
    errors, first, reshaped = {}, None, []
    for rk, ck in pair_outputs(ref_out, cand_out):
        acc = ErrorAccumulator(atol=1e-5, rtol=1e-3)
        r, c = np.asarray(ref_out[rk]), np.asarray(cand_out[ck])
        if r.size != c.size:
            errors[rk] = {"max_abs": None, "nan_mismatch": 0}
            j = Judgement(FAIL, [f"{rk}: shape {list(c.shape)} differs from the reference's {list(r.shape)}"])
            return j, errors
        if tuple(d for d in r.shape if d != 1) != tuple(d for d in c.shape if d != 1):
            reshaped.append(f"{ck} {list(c.shape)} vs {list(r.shape)}")
        acc.add(r, c)
        errors[rk] = acc.result()
        first = first or (rk, ck)
    pairs = pair_outputs(ref_out, cand_out)
    renamed = [f"{a}->{b}" for a, b in pairs if a != b]
    y_ref = np.asarray(ref_out[first[0]]) if first else None
    y_cand = np.asarray(cand_out[first[1]]) if first else None
    task = task or (guess_task(y_ref, labels) if y_ref is not None else "raw")
    if y_cand is not None:
        y_cand = y_cand.reshape(y_ref.shape)
    drop = None
    if labels is not None and task == "classification" and y_ref.ndim == 2:
        lab = np.asarray(labels)
        drop = float(np.mean(np.argmax(y_ref, -1) == lab) - np.mean(np.argmax(y_cand, -1) == lab))
    j = judge(errors, prof, task=task, task_output=first[0] if first else None, y_ref=y_ref, y_cand=y_cand,
              accuracy_drop=drop)
    if renamed:
        j.notes.append(f"outputs paired by position (names differ: {', '.join(renamed)})")
    if reshaped:  # same elements, another layout: compared in the reference's shape, and said
        j.notes.append(f"output shapes differ from the source's, compared reshaped: {'; '.join(reshaped)}")
    return j, errors
