"""What `edgekit.tune` returns: one TrialResult per trial (read back from the Optuna storage, so a resumed study
reports every trial) and the TuneResult with the best feasible trial and the Pareto front."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

# objective name -> TrialResult field (all minimized); "accuracy" is maximized
OBJECTIVES = {"latency": "latency_ms", "size": "size_mb", "memory": "peak_memory_mb", "accuracy": "accuracy"}
STATES = ("complete", "failed", "infeasible")


@dataclass
class TrialResult:
    number: int
    params: dict
    state: str  # complete | failed | infeasible
    target: str | None = None
    accuracy: float | None = None  # the task metric of the converted model, in [0, 1]
    accuracy_drop: float | None = None  # percentage points below the source on the same samples
    drop_ci: tuple[float, float] | None = None  # bootstrap 95% CI of the drop; feasible needs drop_ci[1] <= budget
    latency_ms: float | None = None  # median per sample, timed interleaved with the baseline
    size_mb: float | None = None
    peak_memory_mb: float | None = None
    feasible: bool = False
    reason: str | None = None  # why failed / infeasible
    artifact: str | None = None
    recipe: dict | None = None
    folds: dict | None = None  # per-fold accuracy and drop, their mean and spread, when folds=K
    extra: dict = field(default_factory=dict)  # baseline latency, ratio, cache hit, seconds per step

    def to_dict(self) -> dict:
        d = asdict(self)
        d["drop_ci"] = list(self.drop_ci) if self.drop_ci is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrialResult":
        d = dict(d)
        if d.get("drop_ci") is not None:
            d["drop_ci"] = tuple(d["drop_ci"])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def value(self, objective: str) -> float | None:
        return getattr(self, OBJECTIVES[objective])


@dataclass
class TuneResult:
    best: TrialResult | None
    pareto: list[TrialResult]
    trials: list[TrialResult]
    baseline: dict  # the source model's accuracy and latency on this machine
    study_name: str
    storage: str
    output_dir: Path
    warnings: list[str] = field(default_factory=list)
    objectives: tuple[str, ...] = ("latency",)
    interrupted: bool = False

    def to_dict(self) -> dict:
        return {"best": self.best.to_dict() if self.best else None, "pareto": [t.to_dict() for t in self.pareto],
                "trials": [t.to_dict() for t in self.trials], "baseline": self.baseline,
                "study_name": self.study_name, "storage": self.storage, "output_dir": str(self.output_dir),
                "warnings": self.warnings, "objectives": list(self.objectives), "interrupted": self.interrupted}

    def write_recipe(self, path) -> Path:
        """The best feasible trial's recipe (JSON; calibration samples beside it when it was calibrated)."""
        from edgekit.errors import InputError

        from .recipe import write_recipe

        if self.best is None or self.best.recipe is None:
            raise InputError("no feasible trial: there is no recipe to write",
                             "widen the accuracy budget or the space, or run more trials")
        return write_recipe(self.best.recipe, path, self.output_dir)


def _key(t: TrialResult, objective: str) -> float:
    v = t.value(objective)
    return -v if objective == "accuracy" else v


def pick_best(trials: list[TrialResult], objectives) -> TrialResult | None:
    """The feasible trial best on the first objective (ties: the next objectives, then the smaller drop);
    an infeasible or failed trial is never best."""
    ok = [t for t in trials if t.feasible and t.state == "complete"
          and all(t.value(o) is not None for o in objectives)]
    if not ok:
        return None
    return min(ok, key=lambda t: (*(_key(t, o) for o in objectives), t.accuracy_drop or 0.0, t.number))


def pareto_front(trials: list[TrialResult], objectives) -> list[TrialResult]:
    """Feasible trials no other feasible trial dominates on accuracy drop and the objectives (with size and
    latency always among them: the front is accuracy vs latency vs size)."""
    axes = list(dict.fromkeys(["accuracy_drop", *(OBJECTIVES[o] for o in objectives if o != "accuracy"),
                               "latency_ms", "size_mb"]))
    if "accuracy" in objectives:  # build=fn: the model's own accuracy is an axis too (higher is better)
        axes.append("accuracy")
    ok = [t for t in trials if t.feasible and t.state == "complete"
          and all(getattr(t, a) is not None for a in axes)]
    vec = {t.number: [-getattr(t, a) if a == "accuracy" else getattr(t, a) for a in axes] for t in ok}

    def dominated(a):
        return any(all(x <= y for x, y in zip(vec[b.number], vec[a.number])) and vec[b.number] != vec[a.number]
                   for b in ok)

    return sorted((t for t in ok if not dominated(t)), key=lambda t: vec[t.number])


def dumps(trial: TrialResult) -> str:
    return json.dumps(trial.to_dict(), default=str)
