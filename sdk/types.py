"""Core value types: tensor specs and dtype names shared by every runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

Shape = Optional[Tuple[Optional[int], ...]]  # None: rank unknown; a None dim: dynamic


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as edgekit sees it, whatever the runtime.

    ``dtype`` is a numpy dtype name ("float32", "int8", ...). ``scale``/``zero_point`` are set for quantized
    tensors (one value per tensor, or one per channel along ``quantized_dimension``).
    """

    name: str
    shape: Shape
    dtype: str
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    quantized_dimension: int = 0
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def quantized(self) -> bool:
        return bool(self.scale) and self.dtype in ("int8", "uint8", "int16", "int32")

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    def shape_str(self) -> str:
        if self.shape is None:
            return "?"
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"

    def to_dict(self) -> dict:
        d = {"name": self.name, "shape": None if self.shape is None else list(self.shape), "dtype": self.dtype}
        if self.scale:
            d["quantization"] = {"scale": list(self.scale), "zero_point": list(self.zero_point)}
        return d


def dims(shape) -> tuple[int | None, ...]:
    """Normalise a runtime's shape (ints, -1, None, symbolic names) to ints and None for dynamic dims."""
    out = []
    for d in shape:
        if isinstance(d, (int,)) or (hasattr(d, "__index__") and not isinstance(d, bool)):
            v = int(d)
            out.append(v if v >= 0 else None)
        else:
            out.append(None)
    return tuple(out)
