"""ONNX -> ExecuTorch (.pte) through edgekit's own lowering (onnx_torch_lowering: one torch call per ONNX node),
torch.export (dynamic dims kept where the graph allows, else pinned with a note: onnx_to_coreml.export), then the
same XNNPACK lowering, write and smoke run as PyTorch sources (executorch_common.py). The inputs keep the ONNX
names. TFLite and Keras sources reach this edge through tflite_to_onnx / keras_to_onnx."""

from __future__ import annotations

from pathlib import Path

from edgekit.formats import Format

from .base import Artifact, ConvertOptions, Edge, register
from .executorch_common import write_pte
from .onnx_to_coreml import lowered_program


@register
class OnnxToExecuTorch(Edge):
    name = "onnx_to_executorch"
    source = (Format.ONNX,)
    target = Format.EXECUTORCH
    requires = (("onnx", "onnx"), ("torch", "torch"), ("executorch", "executorch"))
    extra = "executorch"
    install_hint = "pip install 'edgekit[executorch,torch]'"  # the lowering runs on torch
    tools = ("onnx", "torch", "executorch")
    priority = 2

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        notes: list[str] = []
        _model, program, inputs = lowered_program(src, options, notes)
        return write_pte(program, [n for n, _, _ in inputs], src, options, out, notes)
