"""edgekit.checks.localize: planted faults must be found at the operation where they were planted."""

from __future__ import annotations

import numpy as np
import pytest
from edgekit.checks.localize import localize, rel_error

ORDER = ["conv1", "relu1", "conv2", "relu2", "flatten", "fc", "softmax"]


def _onnx_model(weights: dict, extra_mul: float | None = None):
    from onnx import TensorProto, helper, numpy_helper

    first_in = "x"
    nodes = []
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    if extra_mul is not None:  # a wrong input normalization baked in right after the input
        inits.append(numpy_helper.from_array(np.array(extra_mul, np.float32), "half"))
        nodes.append(helper.make_node("Mul", ["x", "half"], ["x_norm"], name="bad_norm"))
        first_in = "x_norm"
    nodes += [
        helper.make_node("Conv", [first_in, "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Flatten", ["r2"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], name="fc"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax"),
    ]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture(scope="module")
def onnx_pair(tmp_path_factory):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    w = {"w1": rng.normal(0, 0.5, (4, 3, 3, 3)), "b1": rng.normal(0, 0.1, 4),
         "w2": rng.normal(0, 0.5, (4, 4, 3, 3)), "b2": rng.normal(0, 0.1, 4),
         "w3": rng.normal(0, 0.2, (256, 10)), "b3": rng.normal(0, 0.1, 10)}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    d = tmp_path_factory.mktemp("onnx")
    paths = {}
    bad = dict(w, w2=w["w2"].copy())
    bad["w2"][1, 2, 1, 1] += 0.5
    for name, model in {"ref": _onnx_model(w), "same": _onnx_model(w), "bad_conv2": _onnx_model(bad),
                        "bad_norm": _onnx_model(w, extra_mul=0.5)}.items():
        onnx.checker.check_model(model)
        paths[name] = d / f"{name}.onnx"
        onnx.save(model, str(paths[name]))
    feeds = {"x": rng.normal(0, 1, (1, 3, 8, 8)).astype(np.float32)}
    return paths, feeds


def _check_conv2(loc):
    assert loc.supported and loc.first is not None
    assert (loc.first.op_name, loc.first.op_type, loc.first.tensor) == ("conv2", "Conv", "c2")
    assert loc.first.rel_error > 1e-3
    assert [g["tensor"] for g in loc.growth] == ["c2", "r2", "f", "logits", "probs"]
    assert [g["op_type"] for g in loc.growth] == ["Conv", "Relu", "Flatten", "Gemm", "Softmax"]
    assert all(g["rel_error"] > 1e-3 for g in loc.growth)
    assert loc.compared == 7  # every node output of the reference, all names shared


def test_rel_error_definition():
    ref = np.array([0.0, 1.0, 3.0])
    assert rel_error(ref, ref + np.array([0, 0, 0.3])) == pytest.approx(0.1)  # 0.3 / range 3
    assert rel_error(np.full(3, 2.0), np.array([2.0, 2.0, 2.5])) == pytest.approx(0.25)  # range 0: / max|ref|
    assert rel_error(np.zeros(3), np.array([0.0, 0.0, 0.5])) == pytest.approx(0.5)  # all zero: abs error
    assert rel_error(ref, np.array([0.0, np.nan, 3.0])) == float("inf")
    assert rel_error(ref, np.zeros(4)) is None
    assert rel_error(ref.reshape(1, 3), ref) == 0.0


def test_onnx_faithful_copy_has_no_departure(onnx_pair):
    paths, feeds = onnx_pair
    loc = localize(paths["ref"], paths["same"], feeds)
    assert loc.supported and loc.method == "onnxruntime"
    assert loc.first is None and loc.growth == [] and loc.compared == 7


def test_onnx_perturbed_weight_found_at_second_conv(onnx_pair):
    paths, feeds = onnx_pair
    loc = localize(paths["ref"], paths["bad_conv2"], feeds)
    _check_conv2(loc)
    d = loc.to_dict()
    assert d["first"]["op_name"] == "conv2" and d["growth"][0]["tensor"] == "c2"
    # the first conv is still exact, so it was compared and passed
    assert localize(paths["ref"], paths["bad_conv2"], feeds, threshold=10.0).first is None


def test_onnx_perturbed_weight_on_openvino(onnx_pair):
    pytest.importorskip("openvino")
    paths, feeds = onnx_pair
    loc = localize(paths["ref"], paths["bad_conv2"], feeds, candidate_backend="openvino")
    assert loc.method == "onnxruntime-vs-openvino"
    assert loc.compared >= 4  # OpenVINO keeps most ONNX tensor names; conv2's output must be among them
    assert (loc.first.op_name, loc.first.op_type) == ("conv2", "Conv")
    assert loc.growth[-1]["tensor"] == "probs"
    same = localize(paths["ref"], paths["same"], feeds, candidate_backend="openvino")
    assert same.first is None and same.compared >= 4


def test_onnx_extra_input_scaling(onnx_pair):
    """The extra Mul exists only in the candidate, so name matching reports the first reference op consuming
    its output (conv1); the note names the candidate-only Mul as the cause."""
    paths, feeds = onnx_pair
    loc = localize(paths["ref"], paths["bad_norm"], feeds)
    assert (loc.first.op_name, loc.first.op_type, loc.first.tensor) == ("conv1", "Conv", "c1")
    assert loc.first.rel_error > 0.1
    assert "Mul 'bad_norm'" in loc.note
    assert [g["tensor"] for g in loc.growth][:2] == ["c1", "r1"]


def _keras_model(keras, dense_kernel=None):
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        keras.layers.Conv2D(4, 3, name="conv"),
        keras.layers.ReLU(name="relu"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(10, activation="softmax", name="dense"),
    ], name="net")
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    if dense_kernel is not None:
        model.get_layer("dense").kernel.assign(dense_kernel)
    return model


@pytest.fixture(scope="module")
def tflite_pair(tmp_path_factory):
    pytest.importorskip("ai_edge_litert")
    tf = pytest.importorskip("tensorflow")
    import keras

    d = tmp_path_factory.mktemp("tflite")
    ref = _keras_model(keras)
    feeds = {"image": np.random.default_rng(2).normal(0, 1, (1, 8, 8, 1)).astype(np.float32)}
    flat = keras.Model(ref.inputs, ref.get_layer("flatten").output)([feeds["image"]]).numpy()[0]
    kernel = ref.get_layer("dense").kernel.numpy().copy()
    kernel[int(np.argmax(flat)), 3] += 0.5  # a weight whose input is active (a ReLU'd-out one changes nothing)
    paths = {}
    for name, model in {"ref": ref, "same": _keras_model(keras), "bad_dense": _keras_model(keras, kernel)}.items():
        paths[name] = d / f"{name}.tflite"
        paths[name].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    paths["keras"] = d / "ref.keras"
    ref.save(paths["keras"])
    return paths, feeds


def test_tflite_perturbed_dense_found_at_fully_connected(tflite_pair):
    paths, feeds = tflite_pair
    loc = localize(paths["ref"], paths["bad_dense"], feeds)
    assert loc.supported and loc.method == "litert"
    assert loc.first is not None and loc.first.op_type == "FULLY_CONNECTED"
    assert loc.first.rel_error > 1e-3 and loc.first.op_name == loc.first.tensor
    assert loc.growth[0]["op_type"] == "FULLY_CONNECTED" and loc.growth[-1]["op_type"] == "SOFTMAX"
    assert loc.compared >= 3  # conv (fused relu), reshape, fully connected, softmax
    assert localize(paths["ref"], paths["same"], feeds).first is None
    positional = localize(paths["ref"], paths["bad_dense"], {"whatever": feeds["image"]})
    assert positional.first.tensor == loc.first.tensor


def test_mixed_formats_unsupported(tflite_pair, onnx_pair):
    tpaths, tfeeds = tflite_pair
    opaths, _ = onnx_pair
    for ref, cand in [(tpaths["keras"], tpaths["ref"]), (opaths["ref"], tpaths["ref"])]:
        loc = localize(ref, cand, tfeeds)
        assert not loc.supported and loc.method == "none" and loc.first is None
        assert "convert the reference to the candidate's format first" in loc.note
    loc = localize(opaths["ref"], opaths["same"], {}, candidate_backend="coreml")
    assert not loc.supported and "on coreml" in loc.note
