"""PyTorch (torch.export program) -> ExecuTorch (.pte): re-exported with named inputs and bounded dynamic dims,
``to_edge_transform_and_lower(..., partitioner=[XnnpackPartitioner()])``, written and run once
(executorch_common.py). int8 is PT2E with XNNPACK's quantizer on the calibration samples (compress_executorch.py)."""

from __future__ import annotations

from pathlib import Path

from edgekit.formats import Format

from ._sources import torch_program
from .base import Artifact, ConvertOptions, Edge, register
from .executorch_common import write_pte


@register
class TorchToExecuTorch(Edge):
    name = "torch_to_executorch"
    source = (Format.TORCH_EXPORT,)
    target = Format.EXECUTORCH
    requires = (("torch", "torch"), ("executorch", "executorch"))
    extra = "executorch"
    install_hint = "pip install 'edgekit[executorch,torch]'"
    tools = ("torch", "executorch")
    priority = 2

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        ep = torch_program(src, options)
        return write_pte(ep, list(ep.graph_signature.user_inputs), src, options, out, [])
