"""Keras / SavedModel -> OpenVINO IR: through a SavedModel (Keras' own export) and openvino.convert_model.

The SavedModel's signature carries the Keras input and output names (see _sources.keras_serving), as the
TFLite signature does, so the source and every target take and return the same keys.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgekit.formats import Format

from ._sources import keras_model, saved_model_with_names
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
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            saved_model_with_names(keras_model(src), tmp)
            return save_ir(lambda ov: ov.convert_model(tmp), src, options, out)
