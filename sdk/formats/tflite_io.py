"""TFLite I/O conventions shared by every backend that runs `.tflite` (LiteRT, OpenVINO).

- Public names: when one signature covers exactly the main subgraph's inputs and outputs, its keys ("image",
  "output_0") are used instead of tensor names ("serving_default_image:0"), and I/O is ordered by key.
- Quantized int8/uint8 I/O: callers pass and receive floats, quantized with the tensor's scale and zero point,
  unless raw integer I/O is asked for.
"""

from __future__ import annotations

import re

import numpy as np

from edgekit.types import TensorSpec


def natural_key(name: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def public_names(info) -> tuple[dict[str, str], dict[str, str]]:
    """tensor name -> signature key, for inputs and for outputs (empty when no single signature fits)."""
    sub = info.subgraphs[0]
    if len(info.signature_defs) != 1 or info.signature_defs[0].get("subgraph", 0) != 0:
        return {}, {}
    s = info.signature_defs[0]
    if sorted(s["inputs"].values()) != sorted(sub.inputs) or sorted(s["outputs"].values()) != sorted(sub.outputs):
        return {}, {}
    return ({sub.tensors[i].name: k for k, i in s["inputs"].items()},
            {sub.tensors[i].name: k for k, i in s["outputs"].items()})


def tensor_specs(info) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The model's inputs and outputs from the flatbuffer, with public names, in public order."""
    sub = info.subgraphs[0]
    names_in, names_out = public_names(info)

    def spec(i: int, names: dict[str, str]) -> TensorSpec:
        t = sub.tensors[i]
        shape = t.shape_signature if t.shape_signature else t.shape
        return TensorSpec(name=names.get(t.name, t.name), shape=tuple(d if d >= 0 else None for d in shape),
                          dtype=t.dtype, scale=tuple(t.scale) if t.dtype in ("int8", "uint8", "int16") else (),
                          zero_point=tuple(t.zero_point) if t.dtype in ("int8", "uint8", "int16") else (),
                          extra={"tensor_name": t.name, "index": i})

    ins = [spec(i, names_in) for i in sub.inputs]
    outs = [spec(i, names_out) for i in sub.outputs]
    if names_in:
        ins.sort(key=lambda s: natural_key(s.name))
        outs.sort(key=lambda s: natural_key(s.name))
    return ins, outs


def precision(info) -> str:
    """int8 when weights are quantized integers, fp16 when float weights are stored as fp16, else fp32."""
    tensors = [t for g in info.subgraphs for t in g.tensors if t.buffer_size]
    if any(t.scale and t.dtype in ("int8", "uint8", "int16") for t in tensors):
        return "int8"
    if any(t.dtype == "float16" for t in tensors):
        return "fp16"
    return "fp32"


class Quantizer:
    """Float <-> integer conversion for one quantized tensor (per-tensor or per-channel parameters)."""

    __slots__ = ("scale", "zp", "dtype", "lo", "hi")

    def __init__(self, spec: TensorSpec):
        scale = np.asarray(spec.scale, dtype=np.float32)
        zp = np.asarray(spec.zero_point, dtype=np.float32)
        if scale.size > 1 and spec.shape is not None:  # per-channel: broadcast along the quantized axis
            shape = [1] * len(spec.shape)
            shape[spec.quantized_dimension] = scale.size
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        else:
            scale, zp = scale.reshape(()), zp.reshape(())
        self.scale, self.zp, self.dtype = scale, zp, np.dtype(spec.dtype)
        info = np.iinfo(self.dtype)
        self.lo, self.hi = float(info.min), float(info.max)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.round(x / self.scale + self.zp), self.lo, self.hi).astype(self.dtype)

    def dequantize(self, y: np.ndarray) -> np.ndarray:
        return ((y.astype(np.float32) - self.zp) * self.scale).astype(np.float32)


def quantizers(specs: list[TensorSpec], raw: bool) -> dict[str, Quantizer]:
    return {} if raw else {s.name: Quantizer(s) for s in specs if s.quantized}
