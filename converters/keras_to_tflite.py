"""Keras / SavedModel -> TFLite with TensorFlow's TFLiteConverter (dynamic dims kept via shape signatures)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgekit.formats import Format
from edgekit.runtimes._savedmodel_scan import check_savedmodel

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
            check_savedmodel(src.path, options.trust_code)  # TensorFlow runs its initializers when it loads it
            data = _convert(tf.lite.TFLiteConverter.from_saved_model(str(src.path)), options,
                            _signature_order(str(src.path)))
        else:
            # through a SavedModel with a named signature: from_concrete_functions on a Keras 3 model wrote a
            # model whose variables read as NaN (TF 2.21), which the parity gate caught
            with tempfile.TemporaryDirectory(dir=out) as tmp:
                saved_model_with_names(keras_model(src), tmp)
                data = _convert(tf.lite.TFLiteConverter.from_saved_model(tmp), options, _signature_order(tmp))
        path = out / f"{src.path.stem}.tflite"
        path.write_bytes(data)
        notes = []
        if options.precision == "int8":
            notes.append(f"full-integer int8, calibrated on {len(options.calibration)} samples"
                         + (", int8 inputs/outputs" if options.int8_io else ", float inputs/outputs"))
        elif options.precision == "int8-dynamic" or options.weights_only_bits == 8:
            notes.append("dynamic-range int8: int8 weights, float activations")
        return Artifact(path, Format.TFLITE, options.precision, notes=notes)


def _convert(conv, options: ConvertOptions, input_order: list[str] | None = None) -> bytes:
    import tensorflow as tf

    from .base import ConversionError

    if options.palettize_bits is not None or options.prune_sparsity is not None:
        opt = "--palettize" if options.palettize_bits is not None else "--prune"
        raise ConversionError(f"tflite cannot honour {opt}: TFLite has no palettization or pruning option",
                              "leave the option out for this target, or use it for coreml")
    if options.weights_only_bits == 4:
        raise ConversionError("tflite cannot honour --weights-only-bits 4 (TFLite stores 8-bit weights)",
                              "use --weights-only-bits 8")
    if options.int8_io and options.precision != "int8":
        raise ConversionError("tflite --int8-io needs --precision int8 (full-integer quantization)")
    if options.precision == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif options.precision == "int8-dynamic" or options.weights_only_bits == 8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 weights, float activations
    elif options.precision == "int8":
        if not options.calibration:
            raise ConversionError("static int8 needs calibration data", "pass --calibration DATA")
        calib = options.calibration
        order = input_order or list(calib[0])
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([c[n] for n in order] for c in calib)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if options.int8_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    try:
        return conv.convert()
    except Exception as e:  # the converter raises ConverterError and plain exceptions
        raise fail("TFLiteConverter failed", e, _failing_op(e)) from e


def _signature_order(saved_model: str) -> list[str]:
    """The order the representative dataset must give inputs in: the serving signature's, sorted by name as
    the TFLite converter flattens keyword inputs."""
    import tensorflow as tf

    from edgekit.runtimes._tflite_io import natural_key

    sig = tf.saved_model.load(saved_model).signatures
    fn = sig.get("serving_default") or next(iter(sig.values()))
    return sorted(fn.structured_input_signature[1], key=natural_key)


def _failing_op(err: Exception) -> str | None:
    import re

    m = re.search(r"'(tf\.\w+|[\w.]+)' op", str(err))
    return m.group(1) if m else None
