"""Keras / SavedModel -> ONNX with tf2onnx (input and output names, NHWC layout and dynamic dims kept)."""

from __future__ import annotations

from pathlib import Path

from edgekit.formats import Format

from ._sources import keras_model
from .base import Artifact, ConvertOptions, Edge, fail, register
from .tf2onnx_common import HANDLERS, OPSET, _patch_numpy, finish


@register
class KerasToOnnx(Edge):
    name = "keras_to_onnx"
    source = (Format.KERAS, Format.KERAS_H5, Format.SAVEDMODEL)
    target = Format.ONNX
    requires = (("tensorflow", "tensorflow"), ("tf2onnx", "tf2onnx"), ("onnx", "onnx"))
    extra = "tensorflow"
    tools = ("tensorflow", "tf2onnx", "onnx")
    priority = 2

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        _patch_numpy()
        import tensorflow as tf
        import tf2onnx

        path = out / f"{src.path.stem}.onnx"
        try:
            if src.format is Format.SAVEDMODEL:
                loaded = tf.saved_model.load(str(src.path))
                sig = loaded.signatures.get("serving_default") or next(iter(loaded.signatures.values()))
                from edgekit.formats.tflite_io import natural_key

                given = sig.structured_input_signature[1]
                names = sorted(given, key=natural_key)  # signature maps have no order; the backends sort by name
                specs = [tf.TensorSpec(given[k].shape, given[k].dtype, name=k) for k in names]

                @tf.function(input_signature=specs)
                def fn(*args):  # tf2onnx wants a tf.function; a signature takes keyword arguments only
                    return sig(**dict(zip(names, args)))

                proto, _ = tf2onnx.convert.from_function(fn, input_signature=specs, opset=OPSET,
                                                         custom_op_handlers=HANDLERS)
                _rename_outputs(proto, list(sig.structured_outputs))
            else:
                proto = _from_keras(keras_model(src))
        except Exception as e:  # tf2onnx raises assorted exception types
            raise fail("tf2onnx failed", e) from e
        if options.precision == "fp16":
            from .torch_to_onnx import fp16_proto

            proto = fp16_proto(proto)
        finish(proto, path, "tf2onnx")
        return Artifact(path, Format.ONNX, options.precision)


def _from_keras(model):
    """tf2onnx's from_keras reads output names from Keras' graph; a Keras 3 Sequential model has none (it failed
    with "'keras_tensor_8'"), so it is traced as a function returning its outputs keyed output_0, ... (the names
    every other target gives it)."""
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs]
    names = list(getattr(model, "output_names", None) or [])
    if len(names) == len(model.outputs):
        return tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET, custom_op_handlers=HANDLERS)[0]
    names = [f"output_{i}" for i in range(len(model.outputs))]

    @tf.function(input_signature=spec)
    def fn(*args):
        y = model(list(args) if len(args) > 1 else args[0], training=False)
        return {n: tf.identity(v, name=n) for n, v in zip(names, y if isinstance(y, (list, tuple)) else [y])}

    return tf2onnx.convert.from_function(fn, input_signature=spec, opset=OPSET, custom_op_handlers=HANDLERS)[0]


def _rename_outputs(proto, names: list[str]) -> None:
    """Name a SavedModel's ONNX outputs by its signature keys (tf2onnx names them Identity:0, ...)."""
    if len(names) != len(proto.graph.output):
        return
    mapping = {o.name: n for o, n in zip(proto.graph.output, sorted(names))}
    for o in proto.graph.output:
        o.name = mapping[o.name]
    for node in proto.graph.node:
        node.output[:] = [mapping.get(x, x) for x in node.output]
