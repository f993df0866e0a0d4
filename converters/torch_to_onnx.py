"""PyTorch (torch.export program) -> ONNX with torch.onnx.export (dynamo exporter, dynamic dims kept).

Inputs keep the program's argument names; outputs are named output_0, output_1, ... as the torch backend
names them, so the same arrays validate the source and every target.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.formats import Format

from ._sources import torch_program
from .base import Artifact, ConvertOptions, Edge, fail, register


@register
class TorchToOnnx(Edge):
    name = "torch_to_onnx"
    source = (Format.TORCH_EXPORT,)
    target = Format.ONNX
    requires = (("torch", "torch"), ("onnxscript", "onnxscript"), ("onnx", "onnx"))
    extra = "torch"
    tools = ("torch", "onnxscript", "onnx")
    priority = 2

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        import torch

        ep = torch_program(src, options)
        n_out = len(ep.graph_signature.user_outputs)
        path = out / f"{src.path.stem}.onnx"
        try:
            prog = torch.onnx.export(ep, (), str(path), dynamo=True, external_data=False, verbose=False,
                                     output_names=[f"output_{i}" for i in range(n_out)], optimize=True)
        except Exception as e:  # the exporter raises many types; keep the first line and the op if named
            raise fail("torch.onnx.export failed", e, _failing_op(e)) from e
        if options.precision == "fp16":
            _to_fp16(path)
        del prog
        return Artifact(path, Format.ONNX, options.precision)


def fp16_proto(model):
    """Store weights and compute in fp16, keeping fp32 inputs/outputs so the I/O contract holds."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(model, keep_io_types=True)


def _to_fp16(path: Path) -> None:
    import onnx

    onnx.save_model(fp16_proto(onnx.load(str(path))), str(path))


def _failing_op(err: Exception) -> str | None:
    import re

    m = re.search(r"(aten::\w+|aten\.\w+(?:\.\w+)?)", str(err))
    return m.group(1) if m else None
