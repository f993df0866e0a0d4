"""TFLite -> ONNX with tf2onnx's TFLite frontend; tensors get the TFLite signature's public names."""

from __future__ import annotations

from pathlib import Path

from edgekit.formats import Format

from .base import Artifact, ConvertOptions, Edge, fail, register
from .tf2onnx_common import OPSET, _patch_numpy, finish


@register
class TFLiteToOnnx(Edge):
    name = "tflite_to_onnx"
    source = (Format.TFLITE,)
    target = Format.ONNX
    requires = (("tf2onnx", "tf2onnx"), ("onnx", "onnx"), ("tensorflow", "tensorflow"))
    extra = "tensorflow"
    tools = ("tf2onnx", "onnx")
    priority = 2

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        from edgekit.formats.tflite_fb import read_tflite
        from edgekit.formats.tflite_io import public_names

        _patch_numpy()
        import tf2onnx

        info = read_tflite(src.path.read_bytes())
        ops = info.op_histogram()
        if "DENSIFY" in ops:  # tf2onnx reads sparse buffers as dense and fails with a reshape error
            raise fail("tf2onnx cannot read sparse (DENSIFY) weights", ValueError(
                "the TFLite model stores sparse weights; convert from the dense source model instead"), "DENSIFY")
        custom = [op for op in ops if op.startswith("CUSTOM:")]
        if custom:
            raise fail("tf2onnx cannot convert custom TFLite operators", ValueError(", ".join(custom)), custom[0])
        try:
            proto, _ = tf2onnx.convert.from_tflite(str(src.path), opset=OPSET)
        except Exception as e:
            raise fail("tf2onnx (TFLite frontend) failed", e) from e
        ins, outs = public_names(info)
        rename(proto, {**ins, **outs})
        if options.precision == "fp16":
            from .torch_to_onnx import fp16_proto

            proto = fp16_proto(proto)
        path = out / f"{src.path.stem}.onnx"
        finish(proto, path, "tf2onnx")
        return Artifact(path, Format.ONNX, options.precision)


def rename(proto, mapping: dict[str, str]) -> None:
    """Rename graph inputs/outputs (and every reference to them) after ``mapping``."""
    if not mapping:
        return
    from edgekit.formats.tflite_io import natural_key

    g = proto.graph
    for v in list(g.input) + list(g.output):
        v.name = mapping.get(v.name, v.name)
    for node in g.node:
        node.input[:] = [mapping.get(x, x) for x in node.input]
        node.output[:] = [mapping.get(x, x) for x in node.output]
    for field in (g.input, g.output):  # public order, as the TFLite backends give it
        items = []
        for v in field:
            c = type(v)()
            c.CopyFrom(v)
            items.append(c)
        items.sort(key=lambda v: natural_key(v.name))
        del field[:]
        field.extend(items)
