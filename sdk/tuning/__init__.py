"""`edgekit.tune`: search for the fastest deployment that keeps the accuracy budget (Optuna).

Each trial draws a target and the knobs its owners declare (edgekit.space: precision from the converters,
quantization knobs from the compression passes, threads / graph optimization / performance hint from the
runners), converts through a content-addressed cache, checks the task metric with a paired bootstrap CI of the drop
(per fold when folds=K) and times the result interleaved with the source. A trial is feasible only when the upper end
of that CI is within ``max_accuracy_drop`` (and the latency / size limits hold): Optuna's constraints for the
samplers that take them, and the rule `best` and `pareto` follow for all. Every trial lives in the Optuna storage
(SQLite under output_dir by default, any RDB URL for many workers), so an interrupted study resumes where it stopped.
Optuna is imported inside the functions: ``import edgekit`` stays light.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from edgekit.errors import InputError

from .result import OBJECTIVES, TrialResult, TuneResult

SAMPLERS = ("grid", "random", "tpe", "gp", "nsga2")
__all__ = ["SAMPLERS", "TrialResult", "TuneResult", "load_study", "tune"]


def tune(model=None, data=None, *, build=None, targets=("tflite", "onnx", "openvino"), calibration=None,
         max_accuracy_drop: float = 1.0, max_latency_ms=None, max_size_mb=None, objectives=("latency",),
         sampler="tpe", trials=None, timeout=None, folds=None, storage=None, study=None, output_dir="tune_out",
         metric=None, seed=0, threads=None, trust_code=False, space=None, progress=None, bench_s: float = 0.3,
         example_inputs=None, measure=None) -> TuneResult:
    """Search conversion, compression and runtime settings for ``model`` (a path or an in-memory Keras / torch
    model; a torch module with ``example_inputs``) or for the models ``build(trial)`` trains, on ``data`` (what
    `edgekit.validate` accepts: an .npz with a 'labels' array, a dict, ...). See the module docstring; the
    arguments mirror `edgekit tune`. ``space``: knob name -> choices, restricting the declared space;
    ``progress(TrialResult)`` after each trial; ``bench_s``: seconds of interleaved timing per trial. ``measure``:
    where trials are timed (default here; `edgekit.devices.tuning.DeviceMeasure` times them on devices, one worker
    per device)."""
    from edgekit.conversion import parse_targets

    from .engine import Engine

    _check_args(model, data, build, sampler, objectives, max_accuracy_drop)
    out = Path(output_dir).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the output folder {out}: {e.strerror or e}", "pass a writable output_dir")
    eng = Engine(out, parse_targets(targets), space, threads, tuple(objectives), seed, bench_s, progress)
    eng.prepare(model, data, build, calibration, folds, metric, trust_code, example_inputs,
                max_accuracy_drop, max_latency_ms, max_size_mb, sampler)
    if measure is not None:
        eng.setup.measure, eng.setup.workers = measure, max(1, int(getattr(measure, "workers", 1)))
    try:
        storage = storage or f"sqlite:///{out / 'tune.db'}"
        name = study or eng.default_study_name(sampler)
        return eng.run(storage, name, sampler, trials, timeout)
    finally:
        eng.close()


def _check_args(model, data, build, sampler, objectives, budget) -> None:
    if (model is None) == (build is None):
        raise InputError("give a model or build=, not both" if model is not None else "no model to tune",
                         "tune(model_path, data) or tune(build=fn, data=data)")
    if data is None:
        raise InputError("tune needs evaluation data", "pass data= (an .npz with a 'labels' array, or a dict)")
    if sampler not in SAMPLERS:
        raise InputError(f"unknown sampler '{sampler}'", f"choose one of: {', '.join(SAMPLERS)}")
    bad = [o for o in objectives if o not in OBJECTIVES]
    if bad or not objectives:
        raise InputError(f"unknown objective {', '.join(map(repr, bad))}" if bad else "no objective given",
                         f"choose from: {', '.join(OBJECTIVES)}")
    if build is not None and sampler == "grid":
        raise InputError("the grid needs the whole space declared; build= draws its own hyperparameters",
                         "use sampler random, tpe, gp or nsga2 with build=")
    if not isinstance(budget, (int, float)) or budget < 0:
        raise InputError(f"max_accuracy_drop must be >= 0 points, got {budget!r}", "e.g. 1.0 (one point)")


def load_study(storage: str, study_name: str):
    """The Optuna study a tune wrote (for reports: optimization history, parameter importances)."""
    import optuna

    from .storage import open_storage

    return optuna.load_study(study_name=study_name, storage=open_storage(storage))


def study_suffix(*parts) -> str:
    return hashlib.sha256(os.fsencode("|".join(map(str, parts)))).hexdigest()[:8]
