"""The tune loop behind `edgekit.tune`: the Optuna study (storage, sampler with constraints, directions), the
objective that turns a trial into a TrialResult, and the TuneResult read back from the storage (so a resumed
study reports every trial, its own and the earlier runs')."""

from __future__ import annotations

import dataclasses

import warnings as _warnings
from pathlib import Path

import numpy as np

from edgekit.errors import InputError

from .cache import ArtifactCache
from .folds import CALIBRATING_ON_EVAL, shared_samples, splits
from .objective import CALIBRATED, Setup, constraints, open_source, read_all, run_trial, source_from
from .result import OBJECTIVES, TrialResult, TuneResult, pareto_front, pick_best
from .space import build_space
from .storage import open_storage

RESULT, PARAMS, SURPLUS = "edgekit_result", "edgekit_params", "edgekit_surplus"


class TrialFailed(Exception):
    """A trial that produced no model to measure (its reason is in the TrialResult)."""


def _metric(metric):
    from edgekit.checks.metrics import accuracy

    if metric in (None, "accuracy"):
        return accuracy
    if callable(metric):
        return metric
    raise InputError(f"unknown metric {metric!r}", "metric=None (accuracy) or a function (y_true, scores) -> float")


class Engine:
    def __init__(self, out: Path, targets, space, threads, objectives, seed, bench_s, progress):
        self.out, self.objectives, self.seed, self.progress = out, objectives, seed, progress
        self.space = build_space(targets, space, threads)
        self.warnings = list(self.space.warnings)
        self.bench_s = bench_s
        self.src = None
        self.build = None
        self.interrupted = False

    # ------------------------------------------------------------------------------------------- preparation
    def prepare(self, model, data, build, calibration, folds, metric, trust, example_inputs, budget, max_latency,
                max_size, sampler) -> None:
        self.data, self.build, self.folds, self.trust = data, build, folds, trust
        self.setup = Setup({}, None, None, [], _metric(metric), float(budget), max_latency, max_size,
                           ArtifactCache(self.out / "cache"), bench_s=self.bench_s, seed=self.seed)
        if build is None:
            path, trust = source_from(model, self.out / "source", trust, example_inputs)
            self.src, X, labels = open_source(path, trust, data)
            self._use_data(X, labels, calibration)
        else:
            self._calibration_spec = calibration
        calibrated = any(c in CALIBRATED for (k, _), ch in self.space.choices.items() if k == "precision"
                         for c in ch)
        if calibrated and folds is None and calibration is None:
            self.warnings.append(CALIBRATING_ON_EVAL)
        self.setup.calibration_note = ("fold rotation of the evaluation data" if folds else
                                       "the calibration data" if calibration is not None else "the evaluation data")

    def _use_data(self, X: dict, labels, calibration) -> None:
        s = self.setup
        s.X, s.labels = X, labels
        n = len(next(iter(X.values())))
        s.splits = splits(n, self.folds, self.seed)
        if labels is None and "no labels" not in " ".join(self.warnings):
            self.warnings.append("the data has no labels: accuracy is agreement with the source's top-1")
        if calibration is not None and s.calibration is None:
            from edgekit.datasets import open_dataset

            cal, _ = read_all(open_dataset(calibration, list(X), batch=512))
            s.calibration = cal
            shared = shared_samples(cal, X)
            if shared:
                self.warnings.append(f"{shared} of the {len(next(iter(cal.values())))} calibration samples are also "
                                     "evaluation samples: " + CALIBRATING_ON_EVAL.split(": ", 1)[1])

    def default_study_name(self, sampler: str) -> str:
        from . import study_suffix

        what = self.src.sha256[:12] if self.src is not None else getattr(self.build, "__qualname__", "build")
        return (f"tune-{what}-" + study_suffix(self.space.digest(), self.objectives, sampler, self.folds,
                                               self.setup.budget, self.setup.max_latency_ms, self.setup.max_size_mb))

    def close(self) -> None:
        if self.src is not None:
            self.src.close()

    # ------------------------------------------------------------------------------------------------ study
    def _sampler(self, name: str, n_grid: int, trials):
        """The sampler; tpe, gp and nsga2 read each trial's constraints (Trial.set_constraint, Optuna 5). Their
        random start (and NSGA-II's population) is 8 trials, or a third of a smaller budget (at least 2)."""
        import optuna

        s = optuna.samplers
        start = 8 if trials is None else max(2, min(8, trials // 3))
        if name == "grid":
            return s.GridSampler({"config": list(range(n_grid))}, seed=self.seed)
        if name == "random":
            return s.RandomSampler(seed=self.seed)
        if name == "tpe":
            return s.TPESampler(seed=self.seed, multivariate=True, group=True, n_startup_trials=start)
        if name == "gp":
            return s.GPSampler(seed=self.seed, n_startup_trials=start, warn_independent_sampling=False)
        return s.NSGAIISampler(seed=self.seed, population_size=start)

    def run(self, storage: str, name: str, sampler: str, trials, timeout) -> TuneResult:
        import optuna

        before = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed trials are reported as results
        configs = self.space.configs() if sampler == "grid" else None
        try:
            with _warnings.catch_warnings():
                _warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study = optuna.create_study(
                    storage=open_storage(storage), study_name=name, load_if_exists=True,
                    sampler=self._sampler(sampler, len(configs or []), trials),
                    directions=["maximize" if o == "accuracy" else "minimize" for o in self.objectives])
                self._optimize(study, configs, trials, timeout)
        finally:
            optuna.logging.set_verbosity(before)
        return self._result(study, storage, name)

    def _optimize(self, study, configs, trials, timeout) -> None:
        """Run until the study holds ``trials`` results (default: the grid's size, else 30 or until ``timeout``)."""
        done = sum(RESULT in t.user_attrs for t in study.get_trials(deepcopy=False))  # not interrupted ones
        total = trials if trials is not None else (len(configs) if configs else None if timeout else 30)
        left = None if total is None else max(0, total - done)
        if left == 0:
            return
        try:
            study.optimize(lambda t: self._objective(t, configs), n_trials=left, timeout=timeout,
                           catch=(TrialFailed,), callbacks=[self._callback], gc_after_trial=False,
                           n_jobs=self.setup.workers)
        except KeyboardInterrupt:
            self.interrupted = True
            self.warnings.append("interrupted: every finished trial is kept; rerun with the same storage and study "
                                 "to resume")

    def _objective(self, trial, configs):
        params = self._grid_point(trial, configs) if configs is not None else None
        src, hyper = self.src, None
        if self.build is not None:
            src, params, hyper = self._built(trial)
        params = params if params is not None else self.space.suggest(trial)
        trial.set_user_attr(PARAMS, params)
        seen = _measured(trial, params) if self.build is None else None
        if seen is not None:  # a sampler drew a configuration already measured: its result, not a luckier timing
            tr = dataclasses.replace(seen, number=trial.number, extra={**seen.extra, "repeat_of": seen.number})
        else:
            try:
                tr = run_trial(self.setup, src, trial.number, params)
            finally:
                if self.build is not None:
                    src.close()
        if hyper is not None:  # the model's own hyperparameters, as build drew them
            tr.params["build"] = hyper
        missing = [o for o in self.objectives if tr.state != "failed" and tr.value(o) is None]
        if missing:  # e.g. peak memory where /proc cannot say: no value to optimize
            tr.state, tr.feasible, tr.reason = "failed", False, f"{', '.join(missing)} not measured on this machine"
        if tr.state != "failed":
            for key, value in constraints(tr, self.setup).items():
                trial.set_constraint(key, value)
        trial.set_user_attr(RESULT, tr.to_dict())
        if tr.state == "failed":
            raise TrialFailed(tr.reason)
        return [tr.value(o) for o in self.objectives]

    def _grid_point(self, trial, configs) -> dict:
        """Trial k < N runs grid point k (GridSampler keys its points by the trial number, which the storage
        hands out once under a study lock: two workers never share one). A later trial (a worker started after
        the grid was handed out) runs a point whose trial was interrupted before a result, else it is surplus:
        pruned, marked, and the study stops."""
        import optuna

        i = trial.suggest_categorical("config", list(range(len(configs))))
        if trial.number < len(configs):
            return dict(configs[i])
        claimed, lost = set(), set()
        for ft in trial.study.get_trials(deepcopy=False):
            if ft.number == trial.number or "config" not in ft.params:
                continue
            if RESULT in ft.user_attrs or not ft.state.is_finished():
                claimed.add(ft.user_attrs.get("edgekit_grid_point", ft.params["config"]))
            elif not ft.user_attrs.get(SURPLUS):
                lost.add(ft.user_attrs.get("edgekit_grid_point", ft.params["config"]))
        todo = sorted(lost - claimed)
        if not todo:
            trial.set_user_attr(SURPLUS, True)
            trial.study.stop()
            raise optuna.TrialPruned("the grid is done")
        trial.set_user_attr("edgekit_grid_point", todo[0])
        return dict(configs[todo[0]])

    def _built(self, trial):
        """build=fn: the trial's model (its hyperparameters drawn by fn), saved and scored as the source."""
        model = self.build(trial)
        hyper = dict(trial.params)
        folder = self.out / "build" / f"trial-{trial.number}"
        path, trust = source_from(model, folder, True)
        data = self.data if not self.setup.X else (self.setup.X, self.setup.labels)
        src, X, labels = open_source(path, trust, data)
        if not self.setup.X:
            self._use_data(X, labels, self._calibration_spec)
        return src, self.space.suggest(trial), hyper

    def _callback(self, study, frozen) -> None:
        if self.progress is not None and RESULT in frozen.user_attrs:
            self.progress(TrialResult.from_dict(frozen.user_attrs[RESULT]))

    # ----------------------------------------------------------------------------------------------- result
    def _result(self, study, storage: str, name: str) -> TuneResult:
        everything = study.get_trials(deepcopy=False)
        trials = [TrialResult.from_dict(ft.user_attrs[RESULT]) for ft in everything if RESULT in ft.user_attrs]
        cut = sum(ft.state.is_finished() and RESULT not in ft.user_attrs and not ft.user_attrs.get(SURPLUS)
                  for ft in everything)
        if cut:  # Ctrl-C inside a trial: nothing measured; a rerun runs its configuration again
            self.warnings.append(f"{cut} trial(s) were interrupted before a result and are not counted")
        return TuneResult(best=pick_best(trials, self.objectives), pareto=pareto_front(trials, self.objectives),
                          trials=trials, baseline=self._baseline(trials), study_name=name, storage=storage,
                          output_dir=self.out, warnings=list(dict.fromkeys(self.warnings)),
                          objectives=self.objectives, interrupted=self.interrupted)

    def _baseline(self, trials: list[TrialResult]) -> dict:
        lat = [t.extra["baseline_latency_ms"] for t in trials if t.extra.get("baseline_latency_ms")]
        out = {"latency_ms": float(np.median(lat)) if lat else None, "objectives": list(self.objectives),
               "budget_points": self.setup.budget}
        if self.src is not None and self.setup.X:
            truth = self.setup.labels if self.setup.labels is not None else self.src.scores.argmax(-1)
            out.update(accuracy=float(self.setup.metric(truth, self.src.scores)), source=str(self.src.path),
                       sha256=self.src.sha256, samples=int(len(truth)))
        return out


__all__ = ["Engine", "OBJECTIVES", "TrialFailed"]


def _measured(trial, params: dict) -> TrialResult | None:
    """The result of an earlier trial of this study with the same ``params``, or None. Re-measuring a configuration
    would let the minimum of several noisy timings of one model beat the others (TPE drew one configuration five
    times in 18 trials in tools/tune_search.py); the repeat reuses the first result and says so (extra.repeat_of)."""
    import json

    key = json.dumps(params, sort_keys=True, default=str)  # stored attributes come back as JSON (tuples as lists)
    for ft in trial.study.get_trials(deepcopy=False):
        if ft.number != trial.number and RESULT in ft.user_attrs and \
                json.dumps(ft.user_attrs.get(PARAMS), sort_keys=True, default=str) == key:
            return TrialResult.from_dict(ft.user_attrs[RESULT])
    return None
