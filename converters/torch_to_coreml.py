"""PyTorch (torch.export program) -> Core ML (ML program) with coremltools' torch.export frontend.

Dynamic dims declared with torch.export.Dim carry over as ranges. The default decomposition table is used
(DESIGN.md field notes: `run_decompositions({})` can leave ops coremltools cannot convert). Outputs are named
output_0, output_1, ... as the torch backend names them.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.formats import Format

from ._sources import torch_program
from .base import Artifact, ConvertOptions, Edge, register
from .coreml_common import compute_precision, deployment_target, quiet_import, save


def _contiguous(ep):
    """Re-export a program whose recorded inputs are not in the default dim order (a transposed numpy sample
    gives that): coremltools refuses it with "no general support for non-contiguous dim order". The dynamic
    dims and their ranges are carried over."""
    import torch

    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    vals = [nodes[n].meta["val"] for n in ep.graph_signature.user_inputs]
    if all(tuple(v.dim_order()) == tuple(range(v.dim())) for v in vals):
        return ep
    dims: dict[str, object] = {}
    args, dynamic = [], []
    for name, v in zip(ep.graph_signature.user_inputs, vals):
        shape, spec = [], {}
        for j, d in enumerate(v.shape):
            if isinstance(d, int):
                shape.append(d)
                continue
            key = str(d)
            if key not in dims:
                rc = ep.range_constraints.get(d.node.expr)
                lo = max(int(rc.lower), 1) if rc is not None else 1
                hi = int(rc.upper) if rc is not None and rc.upper.is_finite else 1 << 16
                dims[key] = torch.export.Dim(f"{name}_{j}", min=lo, max=hi)
            spec[j] = dims[key]
            shape.append(max(2, getattr(dims[key], "min", 2) or 2))
        make = torch.randn if v.dtype.is_floating_point else (lambda *s, dtype: torch.randint(0, 10, s, dtype=dtype))
        args.append(make(*shape, dtype=v.dtype))
        dynamic.append(spec or None)
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
