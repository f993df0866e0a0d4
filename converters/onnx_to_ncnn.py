"""ONNX -> NCNN (.ncnn.param + .ncnn.bin) with pnnx, which reads ONNX directly (pnnx_common.py). The I/O keep
the ONNX names; dims are traced at the sample's sizes with batch 1. TFLite and Keras sources reach this edge
through tflite_to_onnx / keras_to_onnx.

Known limit (pnnx 20261020): on the dynamic-sequence fixture (MatMul on a 3-D input, then ReduceMean over the
sequence) pnnx writes a Reduction that keeps the sequence axis, from ONNX and from the ONNX graph lowered to torch
alike; the parity gate fails it (output [1, 7, 6] for [1, 6]). The same model from PyTorch (torch_to_ncnn, an
nn.Linear) converts exactly.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.formats import Format

from .base import Artifact, ConvertOptions, Edge, register
from .pnnx_common import input_shapes, name_io, run_pnnx


def _inline(path: Path, scratch: Path) -> Path:
    """The model with its external data (torch.onnx.export's .onnx.data) inlined in a copy: pnnx's ONNX Runtime
    session reads the model from memory and cannot find external files."""
    import onnx

    if not any(t.data_location == onnx.TensorProto.EXTERNAL for t in onnx.load(str(path), load_external_data=False)
               .graph.initializer):
        return path
    scratch.mkdir(parents=True, exist_ok=True)
    copy = scratch / path.name
    onnx.save_model(onnx.load(str(path)), str(copy), save_as_external_data=False)
    return copy


@register
class OnnxToNcnn(Edge):
    name = "onnx_to_ncnn"
    source = (Format.ONNX,)
    target = Format.NCNN
    requires = (("onnx", "onnx"), ("pnnx", "pnnx"))
    extra = "pnnx"
    install_hint = "pip install 'edgekit[pnnx,onnx]'"
    tools = ("onnx", "pnnx")
    priority = 2

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        import onnx

        from .onnx_to_coreml import _onnx_inputs
        from .onnx_torch_shape_ops import DTYPES

        model = onnx.load(str(src.path), load_external_data=False)
        inputs = _onnx_inputs(model)
        names = [n for n, _, _ in inputs]
        shapes = [[d if isinstance(d, int) else None for d in dims] for _, _, dims in inputs]
        dtypes = [str(DTYPES.get(elem, "float32")) for _, elem, _ in inputs]
        dims = input_shapes(names, shapes, options)
        scratch = out.parent / f".pnnx-{src.path.stem}"
        fp16 = options.float_precision == "fp16"
        notes: list[str] = []
        param, _ = run_pnnx(_inline(src.path, scratch), dims, dtypes, fp16, out, src.path.stem, scratch)
        out_shapes = [[1] + [d.dim_value or None for d in o.type.tensor_type.shape.dim][1:]
                      if o.type.tensor_type.HasField("shape") else None for o in model.graph.output]
        name_io(param, names, [o.name for o in model.graph.output], [[1] + s[1:] for s in shapes], notes,
                out_shapes)
        return Artifact(param, Format.NCNN, precision="fp16" if fp16 else "fp32", notes=notes)
