"""Accuracy-aware static int8: rank the layers by their sensitivity to int8, then keep the most sensitive ones in
float until an accuracy budget holds. Shared by every target whose static int8 pass honours ``keep_float``.

The ranking quantizes one layer at a time (every other layer kept float, the pass's own exclusion mechanism:
ONNX Runtime ``nodes_to_exclude``, NNCF ``ignored_scope``, the TFLite quantization debugger's ``denylisted_nodes``)
and measures each on the evaluation data; a layer the quantizer leaves alone by itself (no quantized node: the
pass's ``ensures`` refuses it) scores 0. The search then keeps the top 1, 2, 3, 4, 6, 8, 12, ... layers float
until the top-1 drop is within the budget, and returns the best trial either way: the caller says "not met" with
it, never a silent pass.

Stdlib only at import (the tools are imported by the passes and the measuring callback).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from edgekit.errors import ConversionError
from edgekit.space import Knob

_STATIC = {"precision": ("int8",)}
# knobs shared by the static int8 passes that honour them (listed in the KNOBS of compress_onnx, _openvino, _tflite)
PER_CHANNEL_KNOB = Knob("per_channel", (True, False), targets=("onnx", "openvino"), when=_STATIC, owner=__name__,
                        help="per-channel (True) or per-tensor weight scales")
KEEP_FLOAT_KNOB = Knob("keep_float", (0, 1, 2, 4, 8), targets=("onnx", "openvino", "tflite"), when=_STATIC,
                       owner=__name__, help="the N layers most sensitive to int8 (ranked one at a time on the "
                                            "evaluation data) stay float")


@dataclass
class Trial:
    """One quantization with ``keep`` left float, measured against the fp32 source."""

    keep: tuple[str, ...]
    drop: float | None = None  # top-1 points lost against the fp32 source (100 x (1 - agreement))
    agreement: float | None = None
    cosine: float | None = None  # of the task output against the source's
    error: str | None = None  # why the trial produced no model (e.g. nothing left to quantize)

    def to_dict(self) -> dict:
        return {"keep_float": list(self.keep), "drop_pts": self.drop, "agreement_top1": self.agreement,
                "cosine": self.cosine, **({"error": self.error} if self.error else {})}


@dataclass
class Repair:
    """What the repair did: the ranking, the trials, and the one chosen (the first within budget, else the best)."""

    budget: float | None
    ranking: list[tuple[str, Trial]] = field(default_factory=list)  # most sensitive first
    trials: list[Trial] = field(default_factory=list)
    chosen: Trial | None = None
    met: bool = False

    def sensitivity(self, name: str) -> Trial | None:
        return next((t for n, t in self.ranking if n == name), None)

    def describe(self) -> list[str]:
        """Notes: which layers stayed float and why (each one's drop when quantized alone), and the outcome."""
        c = self.chosen
        if c is None:
            return ["accuracy repair: no trial produced a model"]
        out = []
        if c.keep:
            why = []
            for name in c.keep:
                s = self.sensitivity(name)
                why.append(f"{name} (alone in int8: drop {s.drop:.2f} pts, cosine {s.cosine:.4f})"
                           if s is not None and s.drop is not None else f"{name} (named by the user)")
            out.append(f"kept float ({len(c.keep)} of {len(self.ranking) or len(c.keep)} layers, most sensitive "
                       f"first): {', '.join(why)}")
        if self.budget is not None:
            verdict = "met" if self.met else "NOT met"
            out.append(f"accuracy budget {verdict}: keep_float={len(c.keep)}, drop {c.drop:.2f} pts (budget "
                       f"{self.budget:g}) after {len(self.trials)} trial(s) and {len(self.ranking)} ranking run(s)")
        return out

    def best_found(self) -> str:
        c = self.chosen
        return (f"best found: keep_float={len(c.keep)}, drop {c.drop:.2f} pts (budget {self.budget:g})"
                if c is not None and c.drop is not None else "no trial produced a model")

    def to_dict(self) -> dict:
        return {"budget_pts": self.budget, "met": self.met, "kept_float": list(self.chosen.keep) if self.chosen
                else [], "chosen": self.chosen.to_dict() if self.chosen else None,
                "sensitivity": [{"layer": n, "drop_pts": t.drop, "agreement_top1": t.agreement, "cosine": t.cosine}
                                for n, t in self.ranking],
                "trials": [t.to_dict() for t in self.trials]}


def named_layers(options) -> tuple[str, ...]:
    """``keep_float`` as layer names; a count is refused here (it is resolved by ``rank`` on evaluation data)."""
    k = options.keep_float
    if isinstance(k, int) and k:
        raise ConversionError(f"{options.label('keep_float')} counts the layers most sensitive to int8, which are "
                              "ranked on evaluation data by edgekit convert",
                              "use edgekit.convert (CLI: edgekit convert), or name the layers: keep_float=(...)")
    return tuple(k or ())


def _key(t: Trial) -> tuple:
    """Sort key, most sensitive first: the larger top-1 drop, then the lower cosine."""
    return (-(t.drop or 0.0), t.cosine if t.cosine is not None else 1.0)


def rank(layers: list[str], trial: Callable[[tuple[str, ...]], Trial]) -> list[tuple[str, Trial]]:
    """Each layer quantized alone (all the others kept float), most sensitive first."""
    scored = []
    for name in layers:
        t = trial(tuple(x for x in layers if x != name))
        if t.drop is None:  # the quantizer left it alone: nothing to lose by quantizing it
            t = Trial(t.keep, 0.0, None, 1.0, t.error)
        scored.append((name, t))
    return sorted(scored, key=lambda s: _key(s[1]))


def counts(n: int, start: int = 0) -> list[int]:
    """How many of the ranked layers to keep float, in the order tried: 1, 2, 3, 4, 6, 8, 12, 16, 24, ... < n."""
    out, k = [], 1
    while k < n:
        if k > start:
            out.append(k)
        k = k + 1 if k < 4 else k + k // 2
    return out


def search(ranked: list[str], trial: Callable[[tuple[str, ...]], Trial], budget: float,
           first: Trial, fixed: tuple[str, ...] = ()) -> Repair:
    """Keep the top k of ``ranked`` float (after the user's ``fixed`` names) for growing k until the drop is
    within ``budget``. ``first`` is the trial with only ``fixed`` kept. The chosen trial is the first within the
    budget, else the one with the least drop."""
    rep = Repair(budget, trials=[first])
    for k in [0, *counts(len(ranked))]:
        t = first if k == 0 else trial(fixed + tuple(ranked[:k]))
        if k:
            rep.trials.append(t)
        if t.drop is not None and t.drop <= budget:
            rep.chosen, rep.met = t, True
            return rep
    done = [t for t in rep.trials if t.drop is not None]
    rep.chosen = min(done, key=lambda t: (t.drop, len(t.keep))) if done else None
    return rep
