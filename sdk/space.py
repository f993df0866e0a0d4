"""Search-space declarations: each module that owns a knob declares it here, never in one central dict.

A converter, a compression pass or a runner lists its tunable options as ``KNOBS = (Knob(...), ...)`` at module
level; ``edgekit tune`` collects them from the modules it searches over. A knob is categorical (the values a user
could pass) and may be conditional: it is active only when every knob named in ``when`` has one of the listed
values (static-int8 knobs only when the precision is int8 static), so a sampler never draws a knob that would be
ignored. Stdlib only: importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Knob:
    name: str                                    # unique, dotted by owner: "precision", "onnx.calibrate_method"
    choices: tuple[Any, ...]                     # the values, in the order a grid walks them
    targets: tuple[str, ...] = ()                # targets it applies to ("tflite", "onnx", ...); () = all
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)  # active only when these knobs match
    owner: str = ""                              # declaring module, for reports
    help: str = ""

    def __post_init__(self):
        if not self.choices:
            raise ValueError(f"knob {self.name} has no choices")

    def active(self, target: str, params: Mapping[str, Any]) -> bool:
        """True when this knob matters for ``target`` given the values already chosen in ``params``."""
        if self.targets and target not in self.targets:
            return False
        return all(k in params and params[k] in allowed for k, allowed in self.when.items())


def collect(modules: Iterable[Any]) -> list[Knob]:
    """The knobs declared by ``modules`` (module objects with a ``KNOBS`` tuple), names checked unique."""
    knobs: dict[str, Knob] = {}
    for m in modules:
        for k in getattr(m, "KNOBS", ()):
            if k.name in knobs and knobs[k.name] != k:
                raise ValueError(f"knob {k.name} declared twice ({knobs[k.name].owner}, {k.owner})")
            knobs[k.name] = k
    return list(knobs.values())


def thread_choices() -> tuple[int, ...]:
    """Intra-op thread counts worth trying on this machine: powers of two up to its usable cores."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return tuple(t for t in (1, 2, 4, 8, 16) if t <= max(cores, 1)) or (1,)
