"""The tune search space: knobs collected from the modules that own them (edgekit.space.Knob), drawn define-by-run
with Optuna's ``suggest_categorical`` so conditional knobs stay conditional, and enumerated for the grid.

Owners: the converters' precision (converters/base.py), the compression passes' quantization knobs
(converters/compress_*.py), the runners' threads / graph optimization / performance hint (runtimes/*.py). An owner
may define ``knob_choices(knob, target) -> tuple`` to say which of a knob's choices a target can honour (precision:
what ``check_compression`` accepts). A knob whose choices differ between targets is a separate Optuna parameter per
target (``precision:onnx``): Optuna needs one distribution per parameter name.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field
from typing import Any

from edgekit.errors import InputError
from edgekit.space import Knob

# the runtime each target is measured with (its knobs are that runner's)
RUNTIME_OF = {"tflite": "litert", "onnx": "onnxruntime", "openvino": "openvino", "coreml": "coreml",
              "executorch": "executorch", "ncnn": "ncnn"}
OWNERS = ("edgekit.converters.base", "edgekit.converters.compress_onnx", "edgekit.converters.compress_openvino",
          "edgekit.converters.compress_tflite", "edgekit.converters.compress_coreml",
          "edgekit.converters.compress_executorch",
          "edgekit.runtimes.onnxruntime", "edgekit.runtimes.openvino", "edgekit.runtimes.litert",
          "edgekit.runtimes.executorch", "edgekit.runtimes.ncnn")
# the one knob the tuner owns: inputs per call (only where the model takes a batch; latency is then per sample)
BATCH = Knob("batch", (1,), owner="edgekit.tuning", help="samples per call; widen with space={'batch': (1, 8)}")


@dataclass
class Space:
    targets: tuple[str, ...]
    knobs: list[Knob]  # dependencies first
    choices: dict[tuple[str, str], tuple] = field(default_factory=dict)  # (knob, target) -> what may be drawn
    param: dict[tuple[str, str], str] = field(default_factory=dict)  # (knob, target) -> Optuna parameter name
    warnings: list[str] = field(default_factory=list)

    def active(self, knob: Knob, target: str, params: dict) -> bool:
        return (knob.name, target) in self.choices and knob.active(target, params)

    def suggest(self, trial) -> dict:
        """Draw one configuration define-by-run: the target, then each knob active given what was drawn."""
        params: dict[str, Any] = {"target": trial.suggest_categorical("target", list(self.targets))}
        t = params["target"]
        for k in self.knobs:
            if self.active(k, t, params):
                params[k.name] = trial.suggest_categorical(self.param[(k.name, t)], list(self.choices[(k.name, t)]))
        return params

    def configs(self) -> list[dict]:
        """Every valid configuration, in the order the knobs' choices are declared (the grid)."""
        out: list[dict] = []
        for t in self.targets:
            partial = [{"target": t}]
            for k in self.knobs:
                nxt = []
                for p in partial:
                    if self.active(k, t, p):
                        nxt += [{**p, k.name: v} for v in self.choices[(k.name, t)]]
                    else:
                        nxt.append(p)
                partial = nxt
            out += partial
        return out

    def digest(self) -> str:
        """A short hash of the space (study names: a changed space is a new study, as Optuna needs)."""
        spec = [self.targets, sorted((f"{k}@{t}", [repr(c) for c in v]) for (k, t), v in self.choices.items())]
        return hashlib.sha256(json.dumps(spec, default=str).encode()).hexdigest()[:8]


def _order(knobs: list[Knob]) -> list[Knob]:
    """Knobs named in another's ``when`` come before it (declaration order otherwise)."""
    done: list[Knob] = []
    names = {k.name for k in knobs}
    pending = list(knobs)
    while pending:
        ready = [k for k in pending if all(w in {d.name for d in done} or w not in names or w == "target"
                                           for w in k.when)]
        if not ready:
            raise ValueError("knobs depend on each other in a cycle: " + ", ".join(k.name for k in pending))
        done += ready
        pending = [k for k in pending if k not in ready]
    return done


def _owners() -> dict[str, Any]:
    mods = {}
    for name in OWNERS:
        try:
            mods[name] = importlib.import_module(name)
        except ImportError:  # an owner that is not there (an optional module) declares nothing
            continue
    return mods


def knob_owners() -> dict[str, str]:
    """Knob name -> the module that declares it (what a trial's value is: a runtime option or a convert keyword)."""
    global _OWNERS_CACHE
    if _OWNERS_CACHE is None:
        _OWNERS_CACHE = {k.name: k.owner or name for name, m in _owners().items() for k in getattr(m, "KNOBS", ())}
        _OWNERS_CACHE[BATCH.name] = BATCH.owner
    return _OWNERS_CACHE


_OWNERS_CACHE: dict | None = None


def build_space(targets, override: dict | None = None, threads: int | None = None) -> Space:
    """The space over ``targets``: every declared knob, restricted by ``override`` (knob name -> choices; "target"
    narrows the targets) and ``threads`` (fixes every runtime's thread count)."""
    from edgekit.space import collect

    override = dict(override or {})
    mods = _owners()
    knobs = collect(mods.values()) + [BATCH]
    owner_of = {k.name: m for m in mods.values() for k in getattr(m, "KNOBS", ())}
    known = {k.name for k in knobs} | {"target"}
    unknown = sorted(set(override) - known)
    if unknown:
        raise InputError(f"unknown knob {', '.join(repr(u) for u in unknown)} in space=",
                         f"knobs declared here: {', '.join(sorted(known))}")
    if "target" in override:
        targets = tuple(t for t in targets if t in override["target"])
        if not targets:
            raise InputError("space['target'] names none of the targets asked for", "name targets from --targets")
    if threads is not None:
        override.update({k.name: (threads,) for k in knobs if k.name.endswith(".threads")})
    sp = Space(tuple(targets), _order(knobs))
    for k in sp.knobs:
        per_target = {}
        for t in sp.targets:
            if k.targets and t not in k.targets:
                continue
            hook = getattr(owner_of.get(k.name), "knob_choices", None)
            allowed = tuple(hook(k, t)) if hook else k.choices
            asked = tuple(override.get(k.name, k.choices))
            per_target[t] = tuple(c for c in asked if c in allowed or k.name in override and c not in k.choices)
        distinct = {v for v in per_target.values()}
        for t, ch in per_target.items():
            if not ch:
                sp.warnings.append(f"{t}: no choice of {k.name} applies ({', '.join(map(str, k.choices))}); "
                                   f"{t} is left out of the search")
                continue
            sp.choices[(k.name, t)] = ch
            sp.param[(k.name, t)] = k.name if len(distinct) == 1 else f"{k.name}:{t}"
    dropped = {w.split(":")[0] for w in sp.warnings}
    sp.targets = tuple(t for t in sp.targets if t not in dropped)
    if not sp.targets:
        raise InputError("no target can honour the asked space", "widen space= (precision choices per target)")
    return sp
