"""ONNX -> OpenVINO IR with openvino.convert_model (names and dynamic dims kept)."""

from __future__ import annotations

from pathlib import Path

from edgekit.formats import Format

from .base import Artifact, ConvertOptions, Edge, register
from .openvino_common import save_ir


@register
class OnnxToOpenVINO(Edge):
    name = "onnx_to_openvino"
    source = (Format.ONNX,)
    target = Format.OPENVINO_IR
    requires = (("openvino", "openvino"),)
    extra = "openvino"
    tools = ("openvino",)
    priority = 2

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        from edgekit.runtimes.onnxruntime import check_onnx_file

        check_onnx_file(src.path)  # external data must stay inside the model's folder
        return save_ir(lambda ov: ov.convert_model(str(src.path)), src, options, out)
