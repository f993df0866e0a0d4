"""`edgekit validate`: planted faults fail with the right explanation; faithful conversions pass."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

import edgekit
from edgekit.cli.main import app
from edgekit.examples import DIGITS_DIR
from edgekit.checks.stream import ErrorAccumulator
from edgekit.validation import validate

DATA = DIGITS_DIR / "digits_test.npz"
KERAS, ONNX = DIGITS_DIR / "digits_cnn.keras", DIGITS_DIR / "digits_cnn.onnx"


def _save(model, path):
    onnx.save_model(model, str(path))
    return path


def _insert_after_input(model, op: str, const: np.ndarray | None, attrs=None):
    """A copy whose first input goes through `op` (with an optional constant second operand) first."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inp = g.input[0].name
    new = inp + "__planted"
    for node in g.node:
        node.input[:] = [new if x == inp else x for x in node.input]
    inputs = [inp]
    if const is not None:
        g.initializer.append(numpy_helper.from_array(const, "planted_const"))
        inputs.append("planted_const")
    g.node.insert(0, helper.make_node(op, inputs, [new], name="planted_" + op, **(attrs or {})))
    return m


def test_faithful_conversions_pass():
    rep = validate(KERAS, [DIGITS_DIR / "digits_cnn.tflite", ONNX, DIGITS_DIR / "digits_cnn.xml"], DATA)
    assert rep["task"] == "classification" and rep["data"]["samples"] == 360
    for c in rep["candidates"]:
        assert c["verdict"] == "pass", c["reasons"]
        m = c["metrics"]
        assert m["labels"] == "given" and m["delta"]["accuracy"] == 0.0
        assert m["mcnemar_p"] == 1.0 and m["ci95"]["low"] == m["ci95"]["high"] == 0.0
        assert c["agreement_top1"] == 1.0
        out = next(iter(c["outputs"].values()))
        assert out["max_abs"] < 1e-5 and out["cosine"] > 0.99999 and out["within_tol"] == 1.0


def test_one_perturbed_weight_fails(tmp_path):
    m = onnx.load(str(ONNX))
    w = next(t for t in m.graph.initializer if len(t.dims) == 4)
    arr = numpy_helper.to_array(w).copy()
    arr.flat[0] += 3.0
    w.CopyFrom(numpy_helper.from_array(arr, w.name))
    bad = _save(m, tmp_path / "perturbed.onnx")
    rep = validate(ONNX, [bad], DATA, localize=True)
    c = rep["candidates"][0]
    assert c["verdict"] == "fail"
    assert any("max abs error" in r for r in c["reasons"])
    loc = c["localization"]
    assert loc["supported"] and loc["first"]["op_type"] == "Conv"


def test_wrong_input_normalization_fails(tmp_path):
    bad = _save(_insert_after_input(onnx.load(str(ONNX)), "Mul", np.array(0.5, np.float32)), tmp_path / "norm.onnx")
    rep = validate(ONNX, [bad], DATA)
    c = rep["candidates"][0]
    # accuracy barely moves (one image flips), but the outputs are plainly not the model's: it fails
    assert c["verdict"] == "fail" and any("max abs error" in r for r in c["reasons"])
    assert c["agreement_top1"] < 1.0


def _rgb_model():
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.standard_normal((4 * 6 * 6, 5)).astype(np.float32) * 0.1, "fc")
    shape = numpy_helper.from_array(np.array([-1, 4 * 6 * 6], np.int64), "shape")
    nodes = [helper.make_node("Conv", ["image", "w"], ["c"], name="conv"), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["f"]), helper.make_node("MatMul", ["f", "fc"], ["logits"])]
    g = helper.make_graph(nodes, "rgb", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, 8, 8])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 5])], [w, fc, shape])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_swapped_channel_order_fails(tmp_path):
    ref = _save(_rgb_model(), tmp_path / "rgb.onnx")
    swapped = _insert_after_input(_rgb_model(), "Gather", np.array([2, 1, 0], np.int64), {"axis": 1})
    bad = _save(swapped, tmp_path / "bgr.onnx")
    x = np.random.default_rng(1).random((50, 3, 8, 8), dtype=np.float32)
    np.savez(tmp_path / "d.npz", image=x)
    rep = validate(ref, [bad, ref], tmp_path / "d.npz", task="raw")
    bad_c, same = rep["candidates"]
    assert bad_c["verdict"] == "fail" and any("cosine" in r or "max abs" in r for r in bad_c["reasons"])
    assert same["verdict"] == "pass"


def test_fp16_overflow_fails_with_inf(tmp_path):
    """A naive fp16 conversion stores a weight of 1e5 as fp16: it overflows to inf (fp16 max is 65504)."""
    w32 = np.array([[1e5, 1.0], [2.0, 3.0]], np.float32)
    scale = numpy_helper.from_array(np.array(1e-4, np.float32), "scale")

    def model(weight, cast):
        nodes = ([helper.make_node("Cast", ["w16"], ["w"], to=TensorProto.FLOAT)] if cast else []) + [
            helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Mul", ["h", "scale"], ["y"])]
        g = helper.make_graph(nodes, "ovf", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])], [weight, scale])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])

    ref = _save(model(numpy_helper.from_array(w32, "w"), False), tmp_path / "fp32.onnx")
    half = _save(model(numpy_helper.from_array(w32.astype(np.float16), "w16"), True), tmp_path / "fp16.onnx")
    x = np.random.default_rng(0).random((6, 2), dtype=np.float32) + 0.5
    np.savez(tmp_path / "d.npz", x=x)
    rep = validate(ref, [half], tmp_path / "d.npz", task="raw")
    c = rep["candidates"][0]
    assert c["verdict"] == "fail" and any("NaN/Inf" in r for r in c["reasons"])
    assert c["outputs"]["y"]["nan_mismatch"] == 6  # column 0 of every row goes through the inf weight


def test_streaming_errors_match_whole_array_definitions():
    from edgekit.checks.metrics import tensor_errors

    rng = np.random.default_rng(3)
    ref = rng.standard_normal((100, 7))
    cand = ref + rng.standard_normal((100, 7)) * 1e-3
    acc = ErrorAccumulator(atol=1e-3, rtol=1e-2)
    for i in range(0, 100, 16):  # batches of 16, last one short
        acc.add(ref[i:i + 16], cand[i:i + 16])
    got, want = acc.result(), tensor_errors(ref, cand, atol=1e-3, rtol=1e-2)
    for k in ("max_abs", "mean_abs", "p99_abs", "cosine", "snr_db", "within_tol"):
        assert got[k] == pytest.approx(want[k], rel=1e-9), k


def test_cli_exit_codes_and_reports(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", str(KERAS), str(ONNX), "--data", str(DATA), "--json-out", str(tmp_path / "r.json"),
                             "--html", str(tmp_path / "r.html"), "--markdown", str(tmp_path / "r.md")])
    assert ok.exit_code == 0, ok.output
    rep = json.loads((tmp_path / "r.json").read_text())
    c = rep["candidates"][0]
    assert set(c) >= {"model", "verdict", "outputs", "metrics", "agreement_top1", "localization"}
    assert set(c["metrics"]) >= {"reference", "candidate", "delta", "ci95", "mcnemar_p"}
    assert set(next(iter(c["outputs"].values()))) >= {"max_abs", "mean_abs", "p99_abs", "max_rel", "cosine",
                                                      "snr_db", "within_tol"}
    html = (tmp_path / "r.html").read_text()
    assert html.count("data:image/png;base64,") >= 2  # error histogram and confusion matrices
    m = onnx.load(str(ONNX))
    bad = _save(_insert_after_input(m, "Mul", np.array(0.5, np.float32)), tmp_path / "norm.onnx")
    fail = runner.invoke(app, ["validate", str(ONNX), str(bad), "--data", str(DATA)])
    assert fail.exit_code == 1
    err = runner.invoke(app, ["validate", str(ONNX), str(bad), "--data", str(tmp_path / "missing.npz")])
    assert err.exit_code == 2 and "error: no such data file" in err.stderr


def test_image_folder_with_preprocessing_spec(tmp_path):
    """A folder of images in class sub-folders, with a JSON preprocessing spec, validates like the .npz."""
    from PIL import Image

    from edgekit.datasets import Preprocess

    with np.load(DATA) as z:
        images, labels = z["image"][:40], z["labels"][:40]
    for i, (img, y) in enumerate(zip(images, labels)):
        d = tmp_path / "imgs" / f"{y}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(img[..., 0] * 255).astype(np.uint8), mode="L").save(d / f"{i:03d}.png")
    spec = tmp_path / "pre.json"
    spec.write_text(json.dumps({"size": [8, 8], "channels": "L", "scale": 255.0, "layout": "NHWC"}))
    rep = validate(KERAS, [DIGITS_DIR / "digits_cnn.tflite"], tmp_path / "imgs", preprocess=Preprocess.load(spec),
                   batch_size=16)
    c = rep["candidates"][0]
    assert rep["data"]["samples"] == 40 and c["verdict"] == "pass", c["reasons"]
    assert c["metrics"]["labels"] == "given"  # class folder names are the labels
    assert c["metrics"]["reference"]["accuracy"] > 0.9  # the pixels survived the PNG round trip


def test_python_iterable_without_labels_scores_against_the_reference():
    with np.load(DATA) as z:
        x = z["image"]
    batches = (x[i:i + 50] for i in range(0, len(x), 50))
    rep = validate(KERAS, [ONNX], batches)
    c = rep["candidates"][0]
    assert rep["data"]["samples"] == 360 and c["verdict"] == "pass"
    assert c["metrics"]["labels"] == "reference predictions"
    assert c["metrics"]["candidate"]["accuracy"] == c["agreement_top1"] == 1.0


def test_int8_candidate_is_judged_on_task_metrics(tmp_path):
    import tensorflow as tf

    from edgekit.runtimes.keras import KerasRunner  # noqa: F401  (sets the Keras backend env)
    import keras

    with np.load(DATA) as z:
        x = z["image"]
    model = keras.saving.load_model(KERAS)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[i:i + 1]] for i in range(0, 360, 3))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path = tmp_path / "int8.tflite"
    path.write_bytes(conv.convert())
    rep = validate(KERAS, [path], DATA)
    c = rep["candidates"][0]
    assert c["precision"] == "int8" and c["profile"]["max_abs_rel"] is None  # no elementwise gate for int8
    assert c["verdict"] == "pass", c["reasons"]
    assert c["agreement_top1"] >= 0.99 and c["metrics"]["delta"]["accuracy"] >= -0.01


def test_regression_and_embedding_tasks_and_output_overrides(tmp_path):
    ref = _save(_rgb_model(), tmp_path / "rgb.onnx")
    x = np.random.default_rng(1).random((40, 3, 8, 8), dtype=np.float32)
    y = np.random.default_rng(2).random((40, 5))
    np.savez(tmp_path / "d.npz", image=x, labels=y)
    rep = validate(ref, [ref], tmp_path / "d.npz", task="regression")
    m = rep["candidates"][0]["metrics"]
    assert set(m["reference"]) >= {"mae", "rmse", "r2"} and m["delta"]["mae"] == 0.0
    rep = validate(ref, [ref], tmp_path / "d.npz", task="embedding")
    assert rep["candidates"][0]["metrics"]["nn_agreement"] == 1.0
    # a per-output override tighter than any real error fails an identical model only where asked
    noisy = _insert_after_input(_rgb_model(), "Mul", np.array(1.0 + 1e-6, np.float32))
    cand = _save(noisy, tmp_path / "noisy.onnx")
    rep = validate(ref, [cand], tmp_path / "d.npz", task="raw", output_tolerances={"logits": {"atol": 0, "rtol": 0}})
    assert rep["candidates"][0]["verdict"] == "fail" and "outside atol/rtol" in rep["candidates"][0]["reasons"][0]
    res = CliRunner().invoke(app, ["validate", str(ref), str(cand), "--data", str(tmp_path / "d.npz"), "--task", "raw",
                                   "--output-tol", "logits:atol=0,rtol=0"])
    assert res.exit_code == 1
    bad = CliRunner().invoke(app, ["validate", str(ref), str(cand), "--data", str(tmp_path / "d.npz"),
                                   "--output-tol", "logits:speed=3"])
    assert bad.exit_code == 2 and "cannot read --output-tol" in bad.stderr


def test_error_statistics_stay_bounded_on_large_data(monkeypatch):
    """The p99 sample is a fixed-size reservoir: memory does not grow with the data, and p99 stays close."""
    import edgekit.checks.stream as V

    monkeypatch.setattr(V, "RESERVOIR", 5000)
    rng = np.random.default_rng(7)
    acc = ErrorAccumulator(atol=1e-3, rtol=1e-3)
    diffs = []
    for _ in range(40):  # 200k errors through a 5k reservoir
        ref = rng.standard_normal(5000)
        d = rng.exponential(1e-3, 5000)
        acc.add(ref, ref + d)
        diffs.append(d)
    assert acc.pool.size == 5000 and acc.filled == 5000 and acc.seen == 200_000
    true_p99 = np.percentile(np.concatenate(diffs), 99)
    assert acc.result()["p99_abs"] == pytest.approx(true_p99, rel=0.1)
    assert acc.result()["max_abs"] == pytest.approx(np.concatenate(diffs).max())  # exact statistics stay exact


def test_checks_without_power_are_warnings(tmp_path):
    """A reference whose output does not depend on its input passes any candidate that outputs the same constant:
    the report says so (summary and JSON), as it does for too few samples; a real reference on real data does not."""
    w = numpy_helper.from_array(np.zeros((4, 3), np.float32), "w")
    b = numpy_helper.from_array(np.full(3, 0.1, np.float32), "b")
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"])], "dead",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])], [w, b])
    dead = tmp_path / "dead.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(dead))
    x = np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32)
    rep = validate(dead, [dead], {"x": x})
    assert rep["candidates"][0]["verdict"] == "pass"  # the comparison itself is exact ...
    assert any("does not depend on its input" in w for w in rep["warnings"])  # ... and proves nothing
    assert any("does not depend" in w for w in rep["candidates"][0]["warnings"])
    assert isinstance(rep, edgekit.ValidateReport) and rep.passed and rep.verdicts == {str(dead): "pass"}
    assert rep.warnings == rep.to_dict()["warnings"] and rep.samples == 40 and json.loads(json.dumps(rep)) == rep
    few = validate(dead, [dead], {"x": x[:3]})
    assert any("only 3 samples" in w for w in few["warnings"])
    data = np.load(DIGITS_DIR / "digits_test.npz")
    real = validate(DIGITS_DIR / "digits_cnn.keras", [DIGITS_DIR / "digits_cnn.onnx"], {"image": data["image"]})
    assert real["warnings"] == [] and real["candidates"][0]["warnings"] == []
    from edgekit.validation_report import to_markdown

    assert "WARNING" in to_markdown(rep) and "WARNING" not in to_markdown(real)
