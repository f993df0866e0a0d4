"""Keras / SavedModel -> TFLite with TensorFlow's TFLiteConverter (dynamic dims kept via shape signatures)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgekit.formats import Format

from ._sources import keras_model, saved_model_with_names
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
            data = _convert(tf.lite.TFLiteConverter.from_saved_model(str(src.path)), options)
        else:
            # through a SavedModel with a named signature: from_concrete_functions on a Keras 3 model wrote a
            # model whose variables read as NaN (TF 2.21), which the parity gate caught
            with tempfile.TemporaryDirectory(dir=out) as tmp:
                saved_model_with_names(keras_model(src), tmp)
                data = _convert(tf.lite.TFLiteConverter.from_saved_model(tmp), options)
        path = out / f"{src.path.stem}.tflite"
        path.write_bytes(data)
        return Artifact(path, Format.TFLITE, options.precision)


def _convert(conv, options: ConvertOptions) -> bytes:
    import tensorflow as tf

    if options.precision == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    try:
        return conv.convert()
    except Exception as e:  # the converter raises ConverterError and plain exceptions
        raise fail("TFLiteConverter failed", e, _failing_op(e)) from e


def _failing_op(err: Exception) -> str | None:
    import re

    m = re.search(r"'(tf\.\w+|[\w.]+)' op", str(err))
    return m.group(1) if m else None
