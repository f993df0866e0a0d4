"""Compression inside `edgekit convert`: every option on every target it applies to, checked on real data
(the digits test split) for accuracy and agreement, and checked for having really changed the model."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from typer.testing import CliRunner

import edgekit
from edgekit.cli.main import app
from edgekit.conversion import convert
from edgekit.converters.base import ConvertOptions
from edgekit.converters.compress_base import check_compression
from edgekit.examples import DIGITS_DIR

KERAS = DIGITS_DIR / "digits_cnn.keras"
DATA = DIGITS_DIR / "digits_test.npz"


@pytest.fixture(scope="module")
def digits():
    with np.load(DATA) as z:
        return z["image"], z["labels"]


def _accuracy(path, images):
    with edgekit.load(path) as m:
        return next(iter(m.predict(images).values())).argmax(-1)


@pytest.fixture(scope="module")
def int8_report(tmp_path_factory, digits):
    images, _ = digits
    out = tmp_path_factory.mktemp("int8")
    np.savez(out / "calib.npz", image=images[:200])  # calibrate on one part, judge on the whole split
    return convert(KERAS, ["tflite", "onnx", "openvino"], precision="int8", calibration=out / "calib.npz",
                   sample=DATA, output_dir=out / "models", check_speed=True)


@pytest.mark.parametrize("target", ["tflite", "onnx", "openvino"])
def test_static_int8_keeps_accuracy_and_changes_the_model(int8_report, digits, target):
    import onnx
    import openvino as ov

    images, labels = digits
    res = int8_report[target]
    assert res.status == "pass", res.error
    assert res.parity["agreement_top1"] >= 0.98 and res.parity["samples"] == 360
    assert res.size_bytes < 0.5 * res.fp32_size_bytes  # weights stored as int8
    fp32_pred = _accuracy(KERAS, images)
    pred = _accuracy(res.path, images)
    assert np.mean(pred == labels) >= np.mean(fp32_pred == labels) - 0.01  # accuracy drop <= 1 point
    assert np.mean(pred == fp32_pred) >= 0.98
    if target == "tflite":
        with edgekit.load(res.path) as m:
            assert m.precision == "int8"
    elif target == "onnx":
        ops = {n.op_type for n in onnx.load(str(res.path)).graph.node}
        assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    else:
        ops = {op.get_type_name() for op in ov.Core().read_model(str(res.path)).get_ordered_ops()}
        assert "FakeQuantize" in ops
    s = res.speed  # --check-speed: both medians, interleaved in one run
    assert s["p50_ms"] > 0 and s["fp32_p50_ms"] > 0 and s["slower"] == (s["p50_ms"] >= s["fp32_p50_ms"])
    m = json.loads((int8_report.output_dir / "manifest.json").read_text())
    t = next(x for x in m["targets"] if x["target"] == target)
    assert t["size_ratio_fp32"] == pytest.approx(res.size_bytes / res.fp32_size_bytes)


def test_dynamic_int8_and_weight_only(tmp_path, digits):
    images, labels = digits
    rep = convert(KERAS, ["tflite", "onnx", "openvino"], precision="int8-dynamic", sample=DATA, output_dir=tmp_path)
    for t in ("tflite", "onnx", "openvino"):
        r = rep[t]
        assert r.status == "pass", r.error
        assert r.size_bytes < 0.6 * r.fp32_size_bytes
        assert np.mean(_accuracy(r.path, images) == labels) >= 0.96
    rep4 = convert(KERAS, ["openvino", "onnx"], weights_only_bits=4, sample=DATA, output_dir=tmp_path / "w4")
    for t in ("openvino", "onnx"):
        assert rep4[t].status == "pass", rep4[t].error
        assert rep4[t].size_bytes < rep4[t].fp32_size_bytes


@pytest.mark.parametrize("target,kwargs,needle", [
    ("tflite", {"palettize_bits": 4}, "tflite cannot honour --palettize"),
    ("tflite", {"weights_only_bits": 4}, "--weights-only-bits 4"),
    ("onnx", {"prune_sparsity": 0.5}, "onnx cannot honour --prune"),
    ("openvino", {"palettize_bits": 4}, "openvino"),
    ("onnx", {"precision": "int8", "int8_io": True, "calibration": "random"}, "--int8-io"),
])
def test_an_option_a_target_cannot_honour_is_an_error(tmp_path, target, kwargs, needle):
    # the same refusal before any conversion starts, in well under a second (the source is not even loaded)
    with pytest.raises(edgekit.InputError) as e:
        check_compression([target], ConvertOptions(**{k: v for k, v in kwargs.items() if k != "calibration"}))
    assert needle in str(e.value)
    t = time.perf_counter()
    with pytest.raises(edgekit.InputError) as err:  # convert() calls check_compression before any work
        convert(KERAS, [target], output_dir=tmp_path / "o", **kwargs)
    assert needle in str(err.value) and time.perf_counter() - t < 5
    assert not (tmp_path / "o").exists()  # nothing written, not even the output folder


def test_coreml_compression_options(tmp_path):
    import platform

    rep = convert(KERAS, ["coreml"], palettize_bits=6, output_dir=tmp_path / "p")
    r = rep["coreml"]
    assert r.status == ("pass" if platform.system() == "Darwin" else "unverified"), r.error
    assert r.size_bytes < r.fp32_size_bytes and any("palettiz" in n for n in r.notes)
    rep = convert(KERAS, ["coreml"], weights_only_bits=4, output_dir=tmp_path / "w4")  # needs an iOS 18 program
    assert rep["coreml"].status in ("pass", "unverified"), rep["coreml"].error
    assert rep["coreml"].size_bytes < 0.5 * rep["coreml"].fp32_size_bytes
    if platform.system() != "Darwin":  # refused before any conversion starts (it took 12-35 s before)
        t = time.perf_counter()
        with pytest.raises(edgekit.InputError, match="needs macOS"):
            check_compression(["coreml"], ConvertOptions(precision="int8"))
        assert time.perf_counter() - t < 1
        with pytest.raises(edgekit.InputError, match="macOS"):  # convert() refuses before any work
            convert(KERAS, ["coreml"], precision="int8", calibration="random", calibration_samples=10,
                    output_dir=tmp_path / "a")
        assert not (tmp_path / "a").exists()


def test_calibration_edge_cases_fail_before_any_work(tmp_path):
    x = np.random.default_rng(0).random((5, 8, 8, 1), dtype=np.float32)
    cases = {
        "empty": ({"image": x[:0]}, "0 samples"),
        "names": ({"pixels": x}, "no array for input 'image'"),
        "shapes": ({"image": x[:, :4]}, "per sample"),
        "nan": ({"image": np.where(x > 0.9, np.nan, x)}, "NaN"),
    }
    for name, (arrays, needle) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(edgekit.InputError, match=needle):
            convert(KERAS, ["tflite"], precision="int8", calibration=tmp_path / f"{name}.npz",
                    output_dir=tmp_path / f"out_{name}")
        assert not (tmp_path / f"out_{name}" / "manifest.json").exists()
    with pytest.raises(edgekit.InputError, match="needs calibration data"):
        convert(KERAS, ["tflite"], precision="int8", output_dir=tmp_path / "none")


def test_random_calibration_and_too_few_samples_warn(tmp_path):
    rep = convert(KERAS, ["onnx"], precision="int8", calibration="random", calibration_samples=20,
                  output_dir=tmp_path / "r")
    notes = " ".join(rep["onnx"].notes)
    assert "random inputs" in notes and "WARNING" in notes
    np.savez(tmp_path / "few.npz", image=np.load(DATA)["image"][:12])
    rep = convert(KERAS, ["onnx"], precision="int8", calibration=tmp_path / "few.npz", output_dir=tmp_path / "f")
    assert any("only 12 calibration samples" in n for n in rep["onnx"].notes)


def test_cli_compression_flags(tmp_path):
    res = CliRunner().invoke(app, ["convert", str(KERAS), "--to", "onnx", "--precision", "int8",
                                   "--calibration", str(DATA), "--calibration-samples", "150", "--per-tensor",
                                   "-o", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    t = json.loads(res.stdout)["targets"][0]
    assert t["status"] == "pass" and t["precision"] == "int8" and t["size_ratio_fp32"] < 0.6
    bad = CliRunner().invoke(app, ["convert", str(KERAS), "--to", "onnx", "--weights-only-bits", "3", "-o",
                                   str(tmp_path / "b")])
    assert bad.exit_code == 2 and "must be 8 or 4" in bad.stderr and "hint: use --weights-only-bits 8 or 4" in bad.stderr
    none = CliRunner().invoke(app, ["convert", str(KERAS), "--to", "onnx", "--precision", "int8", "-o",
                                    str(tmp_path / "c")])
    assert none.exit_code == 2 and "calibration" in none.stderr


def test_tflite_full_integer_with_int8_io(tmp_path, digits):
    images, labels = digits
    rep = convert(KERAS, ["tflite"], precision="int8", int8_io=True, calibration={"image": images[:150]},
                  sample=DATA, output_dir=tmp_path)
    r = rep["tflite"]
    assert r.status == "pass", r.error
    with edgekit.load(r.path) as m:
        assert m.inputs[0].dtype == "int8" and m.inputs[0].quantized and m.outputs[0].dtype == "int8"
        pred = next(iter(m.predict(images).values())).argmax(-1)  # floats in, quantized with the tensor's scale
    assert np.mean(pred == labels) >= 0.96
    with edgekit.load(r.path, raw_quantized_io=True) as raw:
        s, zp = raw.inputs[0].scale[0], raw.inputs[0].zero_point[0]
        q = np.clip(np.round(images / s + zp), -128, 127).astype(np.int8)
        assert next(iter(raw.predict(q).values())).dtype == np.int8
