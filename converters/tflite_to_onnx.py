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
        import tempfile

        from .rewrite.tflite import rewrite_tflite

        with tempfile.TemporaryDirectory(prefix="rewrite-", dir=Path.cwd()) as tmp:
            path, notes = rewrite_tflite(src.path, Path(tmp))  # custom ops / sparse weights tf2onnx cannot read
            art = self._convert(src, path, options, out)
        art.notes = notes
        return art

    def _convert(self, src: Artifact, path: Path, options: ConvertOptions, out: Path) -> Artifact:
        from edgekit.formats.tflite_fb import read_tflite
        from edgekit.formats.tflite_io import public_names

        from .rewrite.tflite import custom_ops, refuse_custom

        _patch_numpy()
        import tf2onnx

        info = read_tflite(path.read_bytes())
        if "DENSIFY" in info.op_histogram():  # tf2onnx reads sparse buffers as dense and fails with a reshape error
            raise fail("tf2onnx cannot read sparse (DENSIFY) weights", ValueError(
                "the TFLite model stores sparse weights; convert from the dense source model instead"), "DENSIFY")
        if custom_ops(info):
            raise refuse_custom(custom_ops(info), "tf2onnx")
        try:
            proto, _ = tf2onnx.convert.from_tflite(str(path), opset=OPSET)
        except Exception as e:
            raise fail("tf2onnx (TFLite frontend) failed", e) from e
        ins, outs = public_names(info)
        rename(proto, {**ins, **outs})
        if options.precision == "fp16":
            from .torch_to_onnx import fp16_proto

            proto = fp16_proto(proto)
        dest = out / f"{src.path.stem}.onnx"
        finish(proto, dest, "tf2onnx")
        return Artifact(dest, Format.ONNX, options.precision)


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
