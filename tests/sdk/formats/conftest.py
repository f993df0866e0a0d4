"""Fixtures for the format tests.

`models` builds, once a session, the real TFLite models that the test_tflite_fb_*.py files read: float, int8
(full-integer I/O), fp16 and dynamic-shape. test_savedmodel_scan.py defines its own `models`, which takes
precedence in that module.
"""

from __future__ import annotations

import pytest

from _tflite_fb_helpers import _randomize_weights


def _conv_dense(keras):
    inp = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inp, out)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """{kind: (path, keras_param_count)} for float, int8 (full-integer I/O), fp16 and dynamic-shape models."""
    import tensorflow as tf
    import ai_edge_litert  # noqa: F401
    import keras
    import numpy as np

    out = tmp_path_factory.mktemp("tflite")
    built = {}

    def save(kind, model, **opts):
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        for k, v in opts.items():
            setattr(conv, k, v)
        path = out / f"{kind}.tflite"
        path.write_bytes(conv.convert())
        built[kind] = (path, model.count_params())

    keras.utils.set_random_seed(0)
    m = _conv_dense(keras)
    _randomize_weights(m)
    save("float", m)

    def rep():
        rng = np.random.default_rng(1)
        for _ in range(8):
            yield [rng.random((1, 16, 16, 3), dtype=np.float32)]

    save("int8", m, optimizations=[tf.lite.Optimize.DEFAULT], representative_dataset=rep,
         target_spec=_int8_spec(tf), inference_input_type=tf.int8, inference_output_type=tf.int8)
    fp16 = tf.lite.TargetSpec(supported_types=[tf.float16])
    save("fp16", m, optimizations=[tf.lite.Optimize.DEFAULT], target_spec=fp16)

    inp = keras.Input((None, 8))
    d = keras.Model(inp, keras.layers.Dense(4)(inp))
    _randomize_weights(d, seed=2)
    save("dynamic", d)
    return built


def _int8_spec(tf):
    spec = tf.lite.TargetSpec()
    spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return spec
