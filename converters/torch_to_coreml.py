"""PyTorch (torch.export program) -> Core ML (ML program) with coremltools' torch.export frontend.

Dynamic dims declared with torch.export.Dim carry over as ranges. The default decomposition table is used
(DESIGN.md field notes: `run_decompositions({})` can leave ops coremltools cannot convert). Outputs are named
output_0, output_1, ... as the torch backend names them.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.formats import Format

from ._sources import bounded_example, torch_program, user_inputs
from .base import Artifact, ConvertOptions, Edge, register
from .coreml_common import compute_precision, deployment_target, quiet_import, save


def _contiguous(ep):
    """Re-export a program whose recorded inputs are not in the default dim order (a transposed numpy sample
    gives that): coremltools refuses it with "no general support for non-contiguous dim order". The dynamic
    dims and their ranges are carried over."""
    import torch

    vals = user_inputs(ep)
    if all(tuple(v.dim_order()) == tuple(range(v.dim())) for v in vals):
        return ep
    args, dynamic = bounded_example(ep, list(ep.graph_signature.user_inputs), {}, 1 << 16)
    return torch.export.export(ep.module(), tuple(args), dynamic_shapes=tuple(dynamic))


@register
class TorchToCoreML(Edge):
    name = "torch_to_coreml"
    source = (Format.TORCH_EXPORT,)
    target = Format.COREML
    requires = (("torch", "torch"), ("coremltools", "coremltools"))
    extra = "coreml"
    tools = ("torch", "coremltools")
    priority = 2

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        ct = quiet_import()
        ep = torch_program(src, options)
        n_out = len(ep.graph_signature.user_outputs)

        def make():
            program = _contiguous(ep).run_decompositions()
            return ct.convert(program, convert_to="mlprogram", compute_precision=compute_precision(ct, options),
                              minimum_deployment_target=deployment_target(ct, options))

        return save(ct, make, src, options, out, [f"output_{i}" for i in range(n_out)])
