"""The accuracy repair inside `edgekit convert` (``max_accuracy_drop``, a ``keep_float`` count): each trial is a
real quantization by the target's own pass, run on the evaluation data and judged against the fp32 source by the
one compare function (edgekit.checks.verdict); the ranking and the search are converters/compress_repair.py's."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import ConversionError, EdgekitError


def repair(art, options, copts, passes, out: Path, ref):
    """Resolve ``copts.keep_float`` to layer names (the most sensitive first) so that the top-1 drop stays within
    ``copts.max_accuracy_drop`` where it can; record the outcome on ``art.repair`` and ``art.notes``. Returns the
    options to quantize with."""
    from edgekit.converters.compress_repair import Repair, Trial, named_layers, rank, search

    p, budget = passes[-1], copts.max_accuracy_drop
    count = copts.keep_float if isinstance(copts.keep_float, int) else 0
    if "keep_float" not in p.honours:  # the budget is still judged by the gate
        art.notes = [*art.notes, f"no accuracy repair for {p.name}: it cannot keep layers in float"]
        return copts
    if ref is None or ref.gate_outputs is None:
        if count:
            raise ConversionError(f"{copts.label('keep_float')} ranks layers on the check's data, which was skipped",
                                  "drop --no-verify, or name the layers to keep float")
        art.notes = [*art.notes, "accuracy budget not checked: the check was skipped (--no-verify)"]
        return copts
    if task_of(ref.gate_outputs) is None:  # the gate says why the budget cannot be judged
        art.notes = [*art.notes, "no accuracy repair: the first output holds no class scores to rank layers by"]
        return copts
    art.notes = [*art.notes, *_same_data_warning(options, ref)]
    scratch = Path(tempfile.mkdtemp(prefix="repair-", dir=out.parent))
    try:
        def trial(keep: tuple[str, ...]) -> Trial:
            return _trial(art, options, replace(copts, keep_float=keep or 0, max_accuracy_drop=None), passes,
                          scratch, ref)

        fixed = () if count else named_layers(copts)
        ranking: list = []
        if count or budget is not None:
            first = None if count else trial(fixed)
            if count or first.drop is None or first.drop > budget:
                src = art if p.in_converter else art.path  # TFLite's pass reads the calibrated model off art
                layers = [x for x in p.layers(src, copts, scratch) if x not in fixed]
                ranking = rank(layers, trial)
            if count:
                fixed = tuple(n for n, _ in ranking[:count])
                first = trial(fixed)
        ranked = [n for n, _ in ranking if n not in fixed]
        rep = search(ranked, trial, budget, first, fixed) if budget is not None else Repair(None, chosen=first)
        rep.ranking = ranking
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    art.repair = rep
    art.notes = [*art.notes, *rep.describe()]
    if rep.chosen is None:
        raise ConversionError(f"{p.name}: no quantization with the layers kept float produced a model",
                              "; ".join(t.error for t in rep.trials if t.error)[:300] or "report this model")
    return replace(copts, keep_float=rep.chosen.keep or 0)


def _trial(art, options, copts, passes, scratch: Path, ref):
    """Quantize with ``copts`` into a fresh folder and measure it; a pass that refuses (no effect) is a trial
    without a model."""
    from edgekit.converters.compress_repair import Trial
    from edgekit.converters.compress_run import run_passes

    from .compression import _with_float

    folder = Path(tempfile.mkdtemp(dir=scratch))
    try:
        p = passes[-1]
        path = (p.requantize(art, copts, folder) if p.in_converter  # TFLite: the debugger's calibrated model
                else run_passes(art.format, art.path, _with_float(options, copts), folder / "out")[0])
        agreement, cosine = measure(path, ref)
    except EdgekitError as e:
        return Trial(tuple(copts.keep_float or ()), error=e.message)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    drop = None if agreement is None else 100.0 * (1.0 - agreement)
    return Trial(tuple(copts.keep_float or ()), drop, agreement, cosine)


def measure(path: Path, ref) -> tuple[float | None, float | None]:
    """(top-1 agreement, cosine) of the model at ``path`` against the source on the gate's data, judged by the one
    compare function, the first output taken as class scores (a top-1 budget was asked)."""
    from .batching import align_inputs, predict_samples
    from .checks.verdict import compare_outputs
    from .conversion import _device_class
    from .model import load

    with load(path) as m:
        got = predict_samples(m, align_inputs(m, ref.gate_sample, ref.names))
    j, errors = compare_outputs(ref.gate_outputs, got, "int8", _device_class(), task=task_of(ref.gate_outputs))
    first = next(iter(errors.values()), {})
    return j.agreement_top1, first.get("cosine")


def task_of(outputs: dict) -> str | None:
    """classification where the first output holds class scores (2-D, several columns): a top-1 budget needs it."""
    y = np.asarray(next(iter(outputs.values())))
    return "classification" if y.ndim == 2 and y.shape[1] > 1 else None


def judge_budget(j, budget: float, repaired=None) -> None:
    """Complete the verdict ``compare_outputs`` gave under the budget (its agreement limit, 1 - budget/100): a
    budget needs class scores to be judged, and a miss says the best configuration the repair found."""
    from .checks.verdict import FAIL, PASS

    if j.agreement_top1 is None:
        j.reasons.append("--max-accuracy-drop needs class scores as the first output (2-D, several columns)")
    elif 100.0 * (1.0 - j.agreement_top1) > budget + 1e-9:
        best = f"; {repaired.best_found()}" if repaired is not None else ""
        drop = 100.0 * (1.0 - j.agreement_top1)
        j.reasons.insert(0, f"accuracy budget not met: top-1 drop {drop:.2f} pts > {budget:g}{best}")
    j.verdict = FAIL if j.reasons else PASS


def _same_data_warning(options, ref) -> list[str]:
    """A warning when the evaluation data is the calibration data (the budget is then judged on what was fitted)."""
    cal = options.calibration
    if not cal or ref.gate_sample is None:
        return []
    name = ref.names[0]
    first = np.asarray(ref.gate_sample[name])
    if first.shape[0] == len(cal) and np.array_equal(first[:1], np.asarray(cal[0][name])):
        return ["WARNING: the accuracy budget is judged on the calibration data: pass --sample with held-out data"]
    return []
