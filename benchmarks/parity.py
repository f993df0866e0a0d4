"""Parity of a converted model against its source on the same inputs: max/mean abs error and cosine per output."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .tolerances import tolerance


@dataclass
class OutputParity:
    name: str
    max_abs: float
    mean_abs: float
    cosine: float
    range: float
    passed: bool
    reason: str = ""


@dataclass
class Parity:
    outputs: list[OutputParity] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def summary(self) -> dict:
        """The worst figures over all outputs (what the manifest and the table show)."""
        if not self.outputs:
            return {"max_abs": None, "mean_abs": None, "cosine": None}
        return {"max_abs": max(o.max_abs for o in self.outputs),
                "mean_abs": max(o.mean_abs for o in self.outputs),
                "cosine": min(o.cosine for o in self.outputs)}

    def failure(self) -> str:
        return "; ".join(f"{o.name}: {o.reason}" for o in self.outputs if not o.passed)


def compare_arrays(name: str, ref: np.ndarray, got: np.ndarray, precision: str) -> OutputParity:
    tol = tolerance(precision)
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if ref.shape != got.shape:
        if ref.size == got.size:
            got = got.reshape(ref.shape)
        else:
            return OutputParity(name, float("inf"), float("inf"), 0.0, 0.0, False,
                                f"shape {list(got.shape)} differs from the source's {list(ref.shape)}")
    bad_ref, bad_got = ~np.isfinite(ref), ~np.isfinite(got)
    if (bad_got & ~bad_ref).any():
        return OutputParity(name, float("inf"), float("inf"), 0.0, 0.0, False, "NaN or Inf where the source is finite")
    ok = ~bad_ref
    diff = np.abs(ref[ok] - got[ok])
    r, g = ref[ok].ravel(), got[ok].ravel()
    span = float(r.max() - r.min()) if r.size else 0.0
    scale = span if span > 0 else max(float(np.abs(r).max()) if r.size else 0.0, 1e-12)
    max_abs = float(diff.max()) if diff.size else 0.0
    mean_abs = float(diff.mean()) if diff.size else 0.0
    nr, ng = float(np.linalg.norm(r)), float(np.linalg.norm(g))
    cosine = 1.0 if nr == 0 and ng == 0 else (float(r @ g) / (nr * ng) if nr and ng else 0.0)
    reasons = []
    if max_abs > tol["max_abs_rel"] * scale:
        reasons.append(f"max abs error {max_abs:.3g} > {tol['max_abs_rel']:g} x range {scale:.3g}")
    if cosine < tol["cosine"]:
        reasons.append(f"cosine {cosine:.6f} < {tol['cosine']}")
    return OutputParity(name, max_abs, mean_abs, cosine, span, not reasons, "; ".join(reasons))


def compare(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], precision: str) -> Parity:
    """Pair outputs by name when both sides use the same names, else by position."""
    p = Parity()
    if set(ref) == set(got):
        pairs = [(k, ref[k], got[k]) for k in ref]
    else:
        if len(ref) != len(got):
            p.outputs.append(OutputParity("*", float("inf"), float("inf"), 0.0, 0.0, False,
                                          f"{len(got)} outputs where the source has {len(ref)}"))
            return p
        pairs = [(f"{k}~{k2}" if k != k2 else k, v, got[k2]) for (k, v), k2 in zip(ref.items(), got)]
        p.notes.append("outputs paired by position (names differ: "
                       + ", ".join(f"{a}->{b}" for a, b in zip(ref, got) if a != b) + ")")
    for name, r, g in pairs:
        p.outputs.append(compare_arrays(name, r, g, precision))
    return p
