"""TorchScript / pickled PyTorch module -> ONNX with the TorchScript-based exporter.

These files record no input shapes, so the example inputs come from the user's `--sample` (its first axis is
kept dynamic). Loading either format runs code from the file: it needs trust.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import InputError
from edgekit.formats import Format

from .base import Artifact, ConvertOptions, Edge, fail, register


def load_module(src: Artifact, options: ConvertOptions):
    """The module of a TorchScript or pickled file, through the runtimes' one PyTorch loader (trust was required
    by Edge.convert before any edge runs)."""
    from edgekit.runtimes.torch import load_torch

    return load_torch(src.path, src.format)[0]


def example_tensors(options: ConvertOptions, what: str):
    import numpy as np
    import torch

    if not options.sample:
        raise InputError(f"a {what} records no input shapes, so edgekit needs example inputs to convert it",
                         "pass --sample FILE.npz (arrays keyed by input name, first axis = samples)")
    return list(options.sample), tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in options.sample.values())


@register
class TorchScriptToOnnx(Edge):
    name = "torchscript_to_onnx"
    source = (Format.TORCHSCRIPT, Format.TORCH_PICKLE)
    target = Format.ONNX
    requires = (("torch", "torch"), ("onnx", "onnx"))
    extra = "torch"
    tools = ("torch", "onnx")
    priority = 1

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        import torch

        module = load_module(src, options)
        names, args = example_tensors(options, f"{src.format.value} file")
        with torch.no_grad():
            y = module(*args)
        n_out = len(y) if isinstance(y, (tuple, list)) else 1
        outs = [f"output_{i}" for i in range(n_out)]
        path = out / f"{src.path.stem}.onnx"
        try:
            torch.onnx.export(module, args, str(path), dynamo=False, input_names=names, output_names=outs,
                              dynamic_axes={n: {0: "batch"} for n in names + outs}, opset_version=17)
        except Exception as e:
            raise fail("torch.onnx.export (TorchScript exporter) failed", e) from e
        if options.precision == "fp16":
            from .torch_to_onnx import _to_fp16

            _to_fp16(path)
        return Artifact(path, Format.ONNX, options.precision, notes=["only the batch dimension is dynamic"])
