"""TFLite -> OpenVINO IR with openvino.convert_model; tensors get the TFLite signature's public names."""

from __future__ import annotations

from pathlib import Path

from edgekit.formats import Format

from .base import Artifact, ConvertOptions, Edge, register
from .openvino_common import save_ir


@register
class TFLiteToOpenVINO(Edge):
    name = "tflite_to_openvino"
    source = (Format.TFLITE,)
    target = Format.OPENVINO_IR
    requires = (("openvino", "openvino"),)
    extra = "openvino"
    tools = ("openvino",)
    priority = 2

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        import tempfile

        from edgekit.errors import ConversionError
        from edgekit.formats.tflite_fb import read_tflite
        from edgekit.formats.tflite_io import public_names

        from .rewrite.tflite import custom_ops, refuse_custom, rewrite_tflite

        with tempfile.TemporaryDirectory(prefix="rewrite-", dir=Path.cwd()) as tmp:
            path, notes = rewrite_tflite(src.path, Path(tmp))  # custom ops / sparse weights OpenVINO cannot read
            info = read_tflite(path.read_bytes())
            ins, outs = public_names(info)
            try:
                art = save_ir(lambda ov: ov.convert_model(str(path)), src, options, out, names={**ins, **outs})
            except ConversionError as e:
                if custom_ops(info):  # OpenVINO knows a few custom codes; name the ones it did not
                    raise refuse_custom(custom_ops(info), "OpenVINO") from e
                raise
        art.notes = notes
        return art
