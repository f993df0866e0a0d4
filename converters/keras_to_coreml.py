"""Keras / SavedModel -> Core ML (ML program) with coremltools' TensorFlow frontend.

The model goes through a SavedModel whose serving signature carries the Keras names; dynamic dims become
unbounded ranges (coremltools would otherwise bound an undeclared dim to [1, 2]); outputs get the signature's
names. Keras 3's exact gelu lowers to TF Erfc, which coremltools lacks: it is registered as 1 - erf(x).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgekit.formats import Format

from ._sources import keras_model, saved_model_with_names
from .base import Artifact, ConvertOptions, Edge, register
from .coreml_common import compute_precision, deployment_target, quiet_import, save

_ERFC_REGISTERED = False
RANGE_MAX = 4096  # ML programs refuse unbounded ranges


def _register_erfc() -> None:
    global _ERFC_REGISTERED
    if _ERFC_REGISTERED:
        return
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.tensorflow.tf_op_registry import _TF_OPS_REGISTRY, register_tf_op

    if "Erfc" not in _TF_OPS_REGISTRY:
        @register_tf_op
        def Erfc(context, node):  # noqa: N802 (the TF op's name)
            x = context[node.inputs[0]]
            context.add(node.name, mb.sub(x=np.float32(1.0), y=mb.erf(x=x), name=node.name))
    _ERFC_REGISTERED = True


@register
class KerasToCoreML(Edge):
    name = "keras_to_coreml"
    source = (Format.KERAS, Format.KERAS_H5, Format.SAVEDMODEL)
    target = Format.COREML
    requires = (("tensorflow", "tensorflow"), ("coremltools", "coremltools"))
    extra = "coreml"
    tools = ("tensorflow", "coremltools")
    priority = 2

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        import tensorflow as tf

        ct = quiet_import()
        _register_erfc()
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            sm = str(src.path)
            if src.format is not Format.SAVEDMODEL:
                saved_model_with_names(keras_model(src), tmp)
                sm = tmp
            loaded = tf.saved_model.load(sm)
            fn = loaded.signatures.get("serving_default") or next(iter(loaded.signatures.values()))
            from edgekit.formats.tflite_io import natural_key

            given = fn.structured_input_signature[1]
            inputs, notes = [], []
            for name in sorted(given, key=natural_key):
                spec = given[name]
                fixed = options.input_shapes.get(name)
                dims = list(fixed) if fixed else [
                    d if d is not None else ct.RangeDim(lower_bound=1, upper_bound=RANGE_MAX, default=1)
                    for i, d in enumerate(spec.shape.as_list())]
                if not fixed and None in spec.shape.as_list():
                    notes.append(f"{name}: dynamic dims kept as ranges 1..{RANGE_MAX} (ML programs need a bound; "
                                 "fix them with --input-shape)")
                dtype = np.dtype(spec.dtype.as_numpy_dtype)
                inputs.append(ct.TensorType(name=name, shape=dims, dtype=np.int32 if dtype.kind in "iu" else dtype))
            out_names = sorted(fn.structured_outputs)  # TF flattens a dict of outputs in key order
            art = save(ct, lambda: ct.convert([fn], source="tensorflow", inputs=inputs, convert_to="mlprogram",
                                              compute_precision=compute_precision(ct, options),
                                              minimum_deployment_target=deployment_target(ct, options)),
                       src, options, out, out_names)
        art.notes += notes
        return art
