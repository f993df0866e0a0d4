"""The precisions a model's numbers can carry, from lowest to highest, and how to read them from weights.

A model's precision is the lowest of what its stored weights hold and what its runtime computes in: an IR whose
weights are stored as fp16 carries fp16 error even when OpenVINO decompresses them and computes in f32, so it is
judged with fp16 tolerances. Unknown words are errors, never a silent fp32.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from .errors import InputError


class Precision(str, enum.Enum):
    """The precisions a model's numbers can carry; a str enum, so ``Precision.FP16 == "fp16"``."""

    INT4 = "int4"
    INT8 = "int8"
    FP16 = "fp16"
    BF16 = "bf16"
    FP32 = "fp32"

    def __str__(self) -> str:
        return self.value


# lowest first; "int8-dynamic" is a conversion choice whose weights are int8
ORDER = tuple(p.value for p in Precision)

# element types (numpy names, OpenVINO type names) -> precision of weights stored in them
_WEIGHT_TYPES = {
    "float32": "fp32", "f32": "fp32", "float64": "fp32", "f64": "fp32",
    "float16": "fp16", "f16": "fp16", "bfloat16": "bf16", "bf16": "bf16",
    "int8": "int8", "uint8": "int8", "i8": "int8", "u8": "int8", "int16": "int8", "i16": "int8",
    "int4": "int4", "uint4": "int4", "i4": "int4", "u4": "int4", "nf4": "int4", "f4e2m1": "int4",
}


def normalize(word: str) -> str:
    """One vocabulary: fp32/fp16/bf16/int8/int4 (accepts f32, f16, int8-dynamic, ...); anything else is an error."""
    w = str(word).strip().lower()
    w = {"f32": "fp32", "float32": "fp32", "f16": "fp16", "float16": "fp16", "int8-dynamic": "int8"}.get(w, w)
    if w not in ORDER:
        raise InputError(f"unknown precision '{word}'", f"choose one of: {', '.join(reversed(ORDER))}")
    return Precision(w).value


def lowest(*words: str | None) -> str:
    """The lowest of the given precisions (None entries are ignored; none at all gives fp32)."""
    ps = [normalize(w) for w in words if w]
    return min(ps, key=ORDER.index) if ps else "fp32"


def from_weights(counts: Mapping[str, int]) -> str:
    """The precision of the weights, from element counts per stored element type: the type holding most of the
    weight elements decides (a quantized model keeps small float tensors, e.g. biases or first/last layers)."""
    by_precision: dict[str, int] = {}
    for dtype, n in counts.items():
        p = _WEIGHT_TYPES.get(str(dtype).lower())
        if p is not None and n > 0:
            by_precision[p] = by_precision.get(p, 0) + int(n)
    if not by_precision:
        return "fp32"
    return max(by_precision, key=lambda p: (by_precision[p], -ORDER.index(p)))
