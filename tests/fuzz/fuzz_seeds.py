"""Small real models the fuzz suite mutates, built by code with fixed seeds (never downloaded).

- TFLite: a Keras CNN converted by TensorFlow's converter (CONV_2D, RESHAPE, FULLY_CONNECTED, MEAN, SOFTMAX and
  the shape ops the converter adds), and a second CNN (DEPTHWISE_CONV_2D, CONCATENATION, AVERAGE_POOL_2D,
  LOGISTIC) in float and full-integer int8 versions.
- ONNX: Conv -> Relu -> Reshape -> MatMul -> Add -> Softmax, written with onnx.helper (opset 17).
- OpenVINO IR: that ONNX model through openvino.convert_model, saved with fp32 weights.

Also used by the atheris harnesses in fuzz/ to write their starting corpus.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _weights(model, seed: int) -> None:
    rng = np.random.default_rng(seed)  # non-zero biases, so the converter keeps every parameter
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(w.dtype) for w in model.get_weights()])


def tflite_seeds(out: Path) -> dict[str, Path]:
    """{"tflite_float": path, "tflite_float2": path, "tflite_int8": path}."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    i = keras.Input((6, 6, 2), name="image")
    x = keras.layers.Conv2D(3, 3, activation="relu")(i)
    x = keras.layers.Reshape((16, 3))(x)
    x = keras.layers.Dense(4)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    float_model = keras.Model(i, keras.layers.Softmax()(x))
    _weights(float_model, 0)

    i = keras.Input((6, 6, 2), name="image")
    a = keras.layers.DepthwiseConv2D(3, padding="same")(i)
    b = keras.layers.Conv2D(2, 1, activation="relu6")(i)
    x = keras.layers.AveragePooling2D(2)(keras.layers.Concatenate()([a, b]))
    x = keras.layers.Dense(5, activation="sigmoid")(keras.layers.Flatten()(x))
    int8_model = keras.Model(i, keras.layers.Dense(3, activation="softmax")(x))
    _weights(int8_model, 1)

    def calibration():
        rng = np.random.default_rng(2)
        for _ in range(4):
            yield [rng.random((1, 6, 6, 2), dtype=np.float32)]

    paths = {"tflite_float": out / "seed_float.tflite", "tflite_float2": out / "seed_float2.tflite",
             "tflite_int8": out / "seed_int8.tflite"}
    paths["tflite_float"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(float_model).convert())
    paths["tflite_float2"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(int8_model).convert())
    conv = tf.lite.TFLiteConverter.from_keras_model(int8_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = calibration
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    paths["tflite_int8"].write_bytes(conv.convert())
    return paths


def onnx_model():
    """The seed ONNX model as a ModelProto."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)

    def init(name, arr):
        return numpy_helper.from_array(np.asarray(arr), name)

    inits = [
        init("conv_w", rng.normal(0, 0.3, (3, 2, 3, 3)).astype(np.float32)),
        init("conv_b", rng.normal(0, 0.3, (3,)).astype(np.float32)),
        init("shape", np.array([1, 48], np.int64)),
        init("fc_w", rng.normal(0, 0.3, (48, 4)).astype(np.float32)),
        init("fc_b", rng.normal(0, 0.3, (4,)).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["c"], kernel_shape=[3, 3], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "fc_w"], ["mm"], name="fc"),
        helper.make_node("Add", ["mm", "fc_b"], ["logits"], name="bias"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="softmax"),
    ]
    graph = helper.make_graph(nodes, "seed",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 2, 6, 6])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgekit-fuzz")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def onnx_seed(out: Path) -> Path:
    path = out / "seed.onnx"
    path.write_bytes(onnx_model().SerializeToString())
    return path


def ir_seed(out: Path, onnx_path: Path) -> Path:
    import openvino as ov

    path = out / "seed_ir.xml"
    ov.save_model(ov.convert_model(str(onnx_path)), str(path), compress_to_fp16=False)
    return path


def build_seeds(out: Path) -> dict[str, Path]:
    """Every seed: {"tflite_float", "tflite_float2", "tflite_int8", "onnx", "ir"} -> path (the IR's .bin lies next
    to its .xml)."""
    out.mkdir(parents=True, exist_ok=True)
    seeds = tflite_seeds(out)
    seeds["onnx"] = onnx_seed(out)
    seeds["ir"] = ir_seed(out, seeds["onnx"])
    return seeds
