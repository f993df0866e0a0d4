"""PyTorch -> NCNN (.ncnn.param + .ncnn.bin) with pnnx (pnnx_common.py).

pnnx reads TorchScript: the torch.export program is traced (``torch.jit.trace`` of ``ExportedProgram.module()``)
at the sample's shape with batch 1. A TorchScript source (traced at its own, often fixed, batch) goes through ONNX
instead (torchscript_to_onnx, onnx_to_ncnn).
fp32 unless ``--precision fp16`` (pnnx fp16=1: fp16 weights, and the runner computes in fp16).
"""

from __future__ import annotations

from pathlib import Path

from edgekit.formats import Format

from ._sources import torch_program, user_inputs
from .base import Artifact, ConvertOptions, Edge, fail, register
from .pnnx_common import input_shapes, name_io, run_pnnx

_DTYPE = {"torch.float32": "float32", "torch.float16": "float16", "torch.int64": "int64", "torch.int32": "int32"}


def program_to_ncnn(ep, names: list[str], out_names: list[str], src: Artifact, options: ConvertOptions, out: Path,
                    notes: list[str]) -> Artifact:
    """Trace ``ep`` at the sample's shapes (batch 1), run pnnx on the TorchScript and name the I/O."""
    import torch

    scratch = out.parent / f".pnnx-{src.path.stem}"
    scratch.mkdir(parents=True, exist_ok=True)
    vals = user_inputs(ep)
    shapes = [[d if isinstance(d, int) else None for d in v.shape] for v in vals]
    dtypes = [_DTYPE.get(str(v.dtype), "float32") for v in vals]
    dims = input_shapes(names, shapes, options)
    args = tuple((torch.randn if v.dtype.is_floating_point else torch.zeros)(*d, dtype=v.dtype)
                 for v, d in zip(vals, dims))
    traced = scratch / f"{src.path.stem}.pt"
    try:
        with torch.no_grad():
            static = torch.export.export(ep.module(), args).module()  # no SymInts: jit.trace cannot take them
            torch.jit.trace(static, args, check_trace=False).save(str(traced))
    except Exception as e:
        raise fail("tracing the torch.export program for pnnx failed", e) from e
    fp16 = options.float_precision == "fp16"
    param, _ = run_pnnx(traced, dims, dtypes, fp16, out, src.path.stem, scratch)
    outs = [n.meta.get("val") for n in ep.graph.output_node().args[0]] if hasattr(ep.graph, "output_node") else []
    out_shapes = [[1] + [d if isinstance(d, int) else None for d in v.shape[1:]] if hasattr(v, "shape") else None
                  for v in outs]
    name_io(param, names, out_names, [[1] + s[1:] for s in shapes], notes, out_shapes)
    return Artifact(param, Format.NCNN, precision="fp16" if fp16 else "fp32", notes=notes)


@register
class TorchToNcnn(Edge):
    name = "torch_to_ncnn"
    source = (Format.TORCH_EXPORT,)
    target = Format.NCNN
    requires = (("torch", "torch"), ("pnnx", "pnnx"))
    extra = "pnnx"
    install_hint = "pip install 'edgekit[pnnx,torch]'"
    tools = ("torch", "pnnx")
    priority = 2

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        ep = torch_program(src, options)
        n_out = len(ep.graph_signature.user_outputs)
        return program_to_ncnn(ep, list(ep.graph_signature.user_inputs), [f"output_{i}" for i in range(n_out)],
                               src, options, out, [])
