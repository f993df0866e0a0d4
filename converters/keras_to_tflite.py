"""Keras / SavedModel -> TFLite with TensorFlow's TFLiteConverter (dynamic dims kept via shape signatures)."""

from __future__ import annotations

from pathlib import Path

from edgekit.formats import Format

from ._sources import keras_model
from .base import Artifact, ConvertOptions, Edge, fail, register


@register
class KerasToTFLite(Edge):
    name = "keras_to_tflite"
    source = (Format.KERAS, Format.KERAS_H5, Format.SAVEDMODEL)
    target = Format.TFLITE
    requires = (("tensorflow", "tensorflow"),)
    extra = "tensorflow"
    tools = ("tensorflow",)
    priority = 2

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        import tensorflow as tf

        if src.format is Format.SAVEDMODEL:
            conv = tf.lite.TFLiteConverter.from_saved_model(str(src.path))
        else:
            conv = tf.lite.TFLiteConverter.from_keras_model(keras_model(src))
        if options.precision == "fp16":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
        try:
            data = conv.convert()
        except Exception as e:  # the converter raises ConverterError and plain exceptions
            raise fail("TFLiteConverter failed", e, _failing_op(e)) from e
        path = out / f"{src.path.stem}.tflite"
        path.write_bytes(data)
        return Artifact(path, Format.TFLITE, options.precision)


def _failing_op(err: Exception) -> str | None:
    import re

    m = re.search(r"'(tf\.\w+|[\w.]+)' op", str(err))
    return m.group(1) if m else None
