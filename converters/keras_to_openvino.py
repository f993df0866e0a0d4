"""Keras / SavedModel -> OpenVINO IR: through a SavedModel (Keras' own export) and openvino.convert_model.

The SavedModel signature gives the public names (input layer names, output_0, ...), the same as the TFLite
signature, so the TFLite and OpenVINO targets of one Keras model take and return the same keys.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgekit.formats import Format

from ._sources import keras_model
from .base import Artifact, ConvertOptions, Edge, register
from .openvino_common import save_ir


@register
class KerasToOpenVINO(Edge):
    name = "keras_to_openvino"
    source = (Format.KERAS, Format.KERAS_H5, Format.SAVEDMODEL)
    target = Format.OPENVINO_IR
    requires = (("tensorflow", "tensorflow"), ("openvino", "openvino"))
    extra = "openvino"
    tools = ("tensorflow", "openvino")
    priority = 2

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        if src.format is Format.SAVEDMODEL:
            return save_ir(lambda ov: ov.convert_model(str(src.path)), src, options, out)
        model = keras_model(src)
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            model.export(tmp, format="tf_saved_model", verbose=False)
            return save_ir(lambda ov: ov.convert_model(tmp), src, options, out)
