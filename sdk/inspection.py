"""`edgekit.inspect`: what a model file is (format, backend, precision, I/O signature, size, parameters, ops)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .types import TensorSpec


@dataclass
class InspectReport:
    """One model's facts. ``details``: what the backend reports beyond the common fields (e.g. opset, producer).
    ``to_dict()`` is the JSON `edgekit inspect --json` prints."""
    path: str
    format: str
    backend: str
    precision: str
    size_bytes: int | None
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    parameters: int | None = None
    ops: dict[str, int] | None = None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "backend": self.backend, "precision": self.precision,
                "size_bytes": self.size_bytes, "inputs": [s.to_dict() for s in self.inputs],
                "outputs": [s.to_dict() for s in self.outputs], "parameters": self.parameters, "ops": self.ops,
                "details": self.details}


def inspect(path: str | os.PathLike, backend: str | None = None, *, trust_code: bool = False) -> InspectReport:
    """Load ``path`` (with ``backend``, or the best installed one) and report what it is. ``trust_code``: allow
    formats whose loading can run code (TorchScript, pickled .pt, .pt2)."""
    from .model import load

    with load(path, backend=backend, trust_code=trust_code) as m:
        facts = dict(m.describe())
        return InspectReport(path=str(m.path), format=m.format.value, backend=m.backend, precision=m.precision,
                             size_bytes=m.source.size_bytes, inputs=list(m.inputs), outputs=list(m.outputs),
                             parameters=facts.pop("parameters", None), ops=facts.pop("ops", None), details=facts)
