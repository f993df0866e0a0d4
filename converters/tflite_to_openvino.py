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
        from edgekit.formats.tflite_fb import read_tflite
        from edgekit.formats.tflite_io import public_names

        info = read_tflite(src.path.read_bytes())
        ins, outs = public_names(info)
        return save_ir(lambda ov: ov.convert_model(str(src.path)), src, options, out, names={**ins, **outs})
