"""ONNX -> ExecuTorch (.pte) through edgekit's own lowering (onnx_torch_lowering: one torch call per ONNX node),
torch.export (dynamic dims kept where the graph allows, else pinned with a note: onnx_to_coreml.export), then the
same XNNPACK lowering, write and smoke run as PyTorch sources (executorch_common.py). The inputs keep the ONNX
names. TFLite and Keras sources reach this edge through tflite_to_onnx / keras_to_onnx."""

from __future__ import annotations

from pathlib import Path

from edgekit.formats import Format

from .base import Artifact, ConvertOptions, Edge, fail, register
from .executorch_common import write_pte


def lowered_program(src: Artifact, options: ConvertOptions, notes: list[str]):
    """(torch.export program of the lowered ONNX graph, the ONNX input names)."""
    import onnx

    from .onnx_to_coreml import _onnx_inputs, export
    from .onnx_torch_lowering import lower

    model = onnx.load(str(src.path))
    try:
        module = lower(model).eval()
    except NotImplementedError as e:
        raise fail("the ONNX -> torch lowering cannot convert this graph", e, getattr(e, "op", None)) from e
    except Exception as e:  # folding a constant subgraph failed: a malformed graph
        raise fail("the ONNX -> torch lowering failed", e) from e
    inputs = _onnx_inputs(model)
    try:
        program = export(module, inputs, options, notes)
    except Exception as e:
        raise fail("torch.export of the lowered ONNX graph failed", e, getattr(e, "op", None)) from e
    return program, [n for n, _, _ in inputs]


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
        program, names = lowered_program(src, options, notes)
        return write_pte(program, names, src, options, out, notes)
