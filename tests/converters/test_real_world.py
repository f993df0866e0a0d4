"""What real models bring and toy models do not: fp16 weights behind DEQUANTIZE, sparse weights (DENSIFY),
vendor custom operators, a transformer with int64 tokens and a dynamic batch, odd tensor names.
An operator a target cannot express is reported by name, never turned into a silently wrong model."""

from __future__ import annotations

import os

import numpy as np
import pytest

import edgekit
from edgekit.conversion import convert

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    import keras
    import onnx
    import tensorflow as tf
    import torch
    from onnx import TensorProto, helper, numpy_helper

    d = tmp_path_factory.mktemp("real")
    keras.utils.set_random_seed(0)
    files = {}
    # fp16 weights: FULLY_CONNECTED fed by DEQUANTIZE
    i = keras.Input((16,), name="x")
    m = keras.Model(i, keras.layers.Dense(8, name="y")(keras.layers.Dense(32, activation="relu")(i)))
    c = tf.lite.TFLiteConverter.from_keras_model(m)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.target_spec.supported_types = [tf.float16]
    files["fp16"] = d / "fp16.tflite"
    files["fp16"].write_bytes(c.convert())
    # sparse weights: DENSIFY
    i = keras.Input((64,), name="x")
    dense = keras.layers.Dense(64)
    m2 = keras.Model(i, keras.layers.Dense(4)(dense(i)))
    w, b = dense.get_weights()
    dense.set_weights([w * (np.random.default_rng(0).random(w.shape) > 0.9), b])
    c = tf.lite.TFLiteConverter.from_keras_model(m2)
    c.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    files["sparse"] = d / "sparse.tflite"
    files["sparse"].write_bytes(c.convert())
    # a vendor custom operator
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["h"]), helper.make_node("MyFancyOp", ["h"], ["y"], domain="com.example")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])])
    files["custom"] = d / "custom.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]),
              files["custom"])
    # odd tensor names: dots, slashes, colons, spaces
    w = numpy_helper.from_array(np.random.default_rng(1).random((4, 3)).astype("float32"), "W/0:weights")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["input.1", "W/0:weights"], ["out/0 odd"]),
         helper.make_node("Sigmoid", ["out/0 odd"], ["prob:0"])],
        "g", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("prob:0", TensorProto.FLOAT, ["batch", 3])], [w])
    files["odd"] = d / "odd.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), files["odd"])

    # a transformer encoder over int64 tokens, dynamic batch and sequence
    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(50, 16)
            layer = torch.nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, dropout=0.0)
            self.enc = torch.nn.TransformerEncoder(layer, 1)
            self.head = torch.nn.Linear(16, 3)

        def forward(self, tokens):
            return self.head(self.enc(self.emb(tokens)).mean(1))

    torch.manual_seed(0)
    enc = Encoder().eval()
    dims = {"tokens": {0: torch.export.Dim("batch", min=1, max=64), 1: torch.export.Dim("seq", min=2, max=128)}}
    ep = torch.export.export(enc, (torch.randint(0, 50, (2, 7)),), dynamic_shapes=dims)
    files["encoder"] = d / "encoder.pt2"
    torch.export.save(ep, files["encoder"])
    files["encoder_module"] = enc
    return files


def test_fp16_weights_behind_dequantize(real, tmp_path):
    with edgekit.load(real["fp16"]) as m:
        assert m.precision == "fp16" and m.describe()["ops"]["DEQUANTIZE"] == 2
    rep = convert(real["fp16"], ["openvino", "onnx"], output_dir=tmp_path)
    for t in ("openvino", "onnx"):
        assert rep[t].status == "pass", rep[t].error
        assert rep[t].parity["max_abs"] <= 1e-5  # the fp16 weights are the same numbers in every target


def test_sparse_weights_are_densified_before_converting(real, tmp_path):
    with edgekit.load(real["sparse"]) as m:
        assert "DENSIFY" in m.describe()["ops"]
    rep = convert(real["sparse"], ["openvino", "onnx"], output_dir=tmp_path)
    for t in ("openvino", "onnx"):  # tf2onnx read sparse buffers as dense: the rewrite stores them dense first
        assert rep[t].status == "pass" and rep[t].parity["max_abs"] <= 1e-5, rep[t].error
        assert any("DENSIFY -> dense constant" in n for n in rep[t].notes)
    assert rep.exit_code == 0


def test_custom_operator_is_named(real, tmp_path):
    rep = convert(real["custom"], ["openvino", "tflite", "onnx"], output_dir=tmp_path)
    assert rep["openvino"].status == "fail" and "MyFancyOp" in rep["openvino"].op
    assert rep["tflite"].status == "fail" and "MyFancyOp" in rep["tflite"].op
    # the source itself cannot run here (no kernel for the op): copied, but honestly unverified
    assert rep["onnx"].status == "unverified"
    assert any("cannot run here" in n and "MyFancyOp" in n for n in rep["onnx"].notes)


def test_odd_names_survive_or_are_paired_in_order(real, tmp_path):
    rep = convert(real["odd"], ["openvino", "tflite"], output_dir=tmp_path)
    assert rep["openvino"].status == "pass" and rep["tflite"].status == "pass", (rep["openvino"].error, rep["tflite"].error)
    with edgekit.load(rep["openvino"].path) as m:
        assert [s.name for s in m.inputs] == ["input.1"] and [s.name for s in m.outputs] == ["prob:0"]
    with edgekit.load(rep["tflite"].path) as m:
        assert m.inputs[0].shape == (None, 4)


def test_transformer_with_int64_tokens_and_dynamic_batch(real, tmp_path):
    import torch

    rep = convert(real["encoder"], ["onnx", "openvino", "coreml", "tflite"], output_dir=tmp_path, trust_code=True)
    assert rep["onnx"].status == "pass" and rep["openvino"].status == "pass"
    tokens = np.random.default_rng(5).integers(0, 50, size=(5, 13)).astype(np.int64)  # new batch and length
    with torch.no_grad():
        ref = real["encoder_module"](torch.from_numpy(tokens)).numpy()
    for t in ("onnx", "openvino"):
        with edgekit.load(rep[t].path) as m:
            assert m.inputs[0].dtype == "int64" and m.inputs[0].shape == (None, None)
            got = m.predict(tokens)["output_0"]
        assert np.max(np.abs(got - ref)) <= 1e-4
    assert rep["coreml"].status in ("unverified", "pass")
    assert any("int32" in n for n in rep["coreml"].notes)  # Core ML has no int64 tensors: said, not hidden
    # onnx2tf cannot keep the sequence dynamic: it is pinned to the check sample's length (13, said in the notes
    # and the manifest) and the batch stays dynamic in the TFLite signature; --input-shape picks another length
    assert rep["tflite"].status == "pass", rep["tflite"].error
    assert rep["tflite"].to_dict()["pinned"] == {"tokens": {"dim 1": 13}}
    assert any(n.startswith("pinned dynamic dims: tokens dim 1 = 13") for n in rep["tflite"].notes)
    with edgekit.load(rep["tflite"].path) as m:
        assert m.inputs[0].shape == (None, 13)
        assert np.max(np.abs(next(iter(m.predict(tokens).values())) - ref)) <= 1e-4  # batch 5
    fixed = convert(real["encoder"], ["tflite"], output_dir=tmp_path / "fixed", trust_code=True,
                    input_shapes={"tokens": (2, 7)})
    assert fixed["tflite"].status == "pass", fixed["tflite"].error
    with edgekit.load(fixed["tflite"].path) as m:
        x = tokens[:2, :7]
        with torch.no_grad():
            ref2 = real["encoder_module"](torch.from_numpy(x)).numpy()
        assert np.max(np.abs(next(iter(m.predict(x).values())) - ref2)) <= 1e-4
