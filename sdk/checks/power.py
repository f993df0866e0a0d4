"""Whether a check has the power to tell a faithful model from a broken one.

A comparison proves nothing when the reference's output does not depend on its input (an untrained network
that gives 0.1 everywhere: any candidate that outputs a constant agrees with it), or when it ran on too few
samples (one flipped prediction in two decides the verdict). Such checks still run, but their results carry a
warning in the summary and the manifest instead of a silent ok.
"""

from __future__ import annotations

import numpy as np

MIN_PARITY_SAMPLES = 8  # elementwise parity (convert's fp32/fp16 gate)
MIN_AGREEMENT_SAMPLES = 50  # task level: below this, one disagreement moves top-1 agreement by more than 2 %


def power_warnings(outputs: dict[str, np.ndarray], samples: int, minimum: int, what: str = "check") -> list[str]:
    """Warnings for reference ``outputs`` (sample axis first, ``samples`` rows) that cannot show a fault."""
    warnings = []
    if samples < minimum:
        warnings.append(f"{what} ran on only {samples} sample{'s' if samples != 1 else ''} (at least {minimum} "
                        "advised): too few to show a fault; pass more real inputs")
    for name, y in outputs.items():
        y = np.asarray(y)
        if y.dtype.kind not in "biuf" or y.size == 0:
            continue
        if samples > 1 and y.ndim >= 1 and y.shape[0] == samples:
            constant = bool(np.all(y == y[:1]))
            where = f"the same on all {samples} samples"
        else:
            constant = y.size > 1 and bool(np.all(y == y.flat[0]))
            where = "one value everywhere"
        if constant:
            warnings.append(constant_warning(name, where, what))
    return warnings


def constant_warning(name: str, where: str, what: str) -> str:
    return (f"the reference's output '{name}' does not depend on its input ({where}): this {what} cannot tell a "
            "faithful model from a broken one; use a trained model and real data")
