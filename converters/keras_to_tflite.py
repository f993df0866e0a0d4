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

        from .compress_base import select

        select(Format.TFLITE, options)  # refuses what TFLite cannot honour before the export starts
        if src.format is Format.SAVEDMODEL:
            data, notes, obj = _convert(tf.lite.TFLiteConverter.from_saved_model(str(src.path)), options,
                                        _signature_order(str(src.path)))
        else:
            # through a SavedModel with a named signature: from_concrete_functions on a Keras 3 model wrote a
            # model whose variables read as NaN (TF 2.21), which the parity gate caught
            with tempfile.TemporaryDirectory(dir=out) as tmp:
                saved_model_with_names(keras_model(src), tmp)
                data, notes, obj = _convert(tf.lite.TFLiteConverter.from_saved_model(tmp), options,
                                            _signature_order(tmp))
        path = out / f"{src.path.stem}.tflite"
        path.write_bytes(data)
        return Artifact(path, Format.TFLITE, options.precision, notes=notes, obj=obj)  # obj: the repair's Requantizer


def _convert(conv, options: ConvertOptions, input_order: list[str] | None = None) -> tuple[bytes, list[str], object]:
    """Run the converter; compression is configured and checked by the TFLite passes (compress_tflite.py), which
    return the re-quantizer the accuracy repair uses (None without keep_float / max_accuracy_drop)."""
    import tensorflow as tf

    from . import compress_tflite
    from .compress_base import float_precision

    passes, notes = compress_tflite.configure(conv, options, input_order)  # refuses what TFLite cannot honour
    if float_precision(options) == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    try:
        data, obj = compress_tflite.convert(conv, options)
    except Exception as e:  # the converter raises ConverterError and plain exceptions
        raise fail("TFLiteConverter failed", e, _failing_op(e)) from e
    compress_tflite.verify(passes, data, options)  # the quantization had an effect
    return data, notes, obj


def _signature_order(saved_model: str) -> list[str]:
    """The order the representative dataset must give inputs in: the serving signature's, sorted by name as
    the TFLite converter flattens keyword inputs."""
    import tensorflow as tf

    from edgekit.formats.tflite_io import natural_key

    sig = tf.saved_model.load(saved_model).signatures
    fn = sig.get("serving_default") or next(iter(sig.values()))
    return sorted(fn.structured_input_signature[1], key=natural_key)


def _failing_op(err: Exception) -> str | None:
    import re

    m = re.search(r"'(tf\.\w+|[\w.]+)' op", str(err))
    return m.group(1) if m else None
