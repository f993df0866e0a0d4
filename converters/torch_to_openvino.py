"""PyTorch (torch.export program) -> OpenVINO IR with openvino.convert_model.

Static dims recorded by torch.export stay static in the IR (OpenVINO would otherwise make every dim dynamic);
outputs are renamed output_0, output_1, ... as the torch backend names them.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.formats import Format

from ._sources import torch_program
from .base import Artifact, ConvertOptions, Edge, register
from .openvino_common import save_ir


@register
class TorchToOpenVINO(Edge):
    name = "torch_to_openvino"
    source = (Format.TORCH_EXPORT,)
    target = Format.OPENVINO_IR
    requires = (("torch", "torch"), ("openvino", "openvino"))
    extra = "openvino"
    tools = ("torch", "openvino")
    priority = 2

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        ep = torch_program(src, options)
        nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
        names = list(ep.graph_signature.user_inputs)

        def make(ov):
            shapes = []
            for n in names:
                fixed = options.input_shapes.get(n)
                val = nodes[n].meta["val"]
                dims = fixed or [d if isinstance(d, int) else -1 for d in val.shape]
                shapes.append(ov.PartialShape([-1 if d is None else d for d in dims]))  # None: kept dynamic
            model = ov.convert_model(ep, input=shapes)
            for i, port in enumerate(model.outputs):
                port.get_tensor().set_names({f"output_{i}"})
            for n, port in zip(names, model.inputs):
                port.get_tensor().set_names({n})
            return model

        return save_ir(make, src, options, out)
