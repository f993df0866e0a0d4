"""OpenVINO compression with NNCF: static int8 keeps digits accuracy, weight-only int8/int4 stores low-bit
weights, int8 shrinks an MLP's weights about 4x, and options OpenVINO cannot honour are refused."""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ov = pytest.importorskip("openvino")
pytest.importorskip("nncf")

from edgekit.converters.compress_openvino import compress_openvino
from edgekit.errors import ConversionError

DIGITS = Path(__file__).resolve().parents[2] / "sdk" / "examples" / "digits"
F32 = {"INFERENCE_PRECISION_HINT": "f32"}


def _opts(**kw):
    return SimpleNamespace(**{"precision": "fp32", "calibration": None, "per_channel": True, "int8_io": False,
                              "palettize_bits": None, "prune_sparsity": None, "weights_only_bits": None, **kw})


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    d = tmp_path_factory.mktemp("digits")
    for ext in ("xml", "bin"):
        shutil.copy(DIGITS / f"digits_cnn.{ext}", d)
    z = np.load(DIGITS / "digits_test.npz")
    return d / "digits_cnn.xml", z["image"].astype(np.float32), z["labels"]


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """256 -> 512 -> 512 -> 10 with random weights, saved as a true fp32 IR."""
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([1, 256], np.float32, name="x")
    x.output(0).get_tensor().set_names({"x"})
    h = x
    for i, (a, b) in enumerate([(256, 512), (512, 512), (512, 10)]):
        w = (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        h = ops.add(ops.matmul(h, ops.constant(w), False, False), ops.constant(np.zeros(b, np.float32)))
        if i < 2:
            h = ops.relu(h)
    model = ov.Model([h], [x], "mlp")
    d = tmp_path_factory.mktemp("mlp")
    path = d / "mlp.xml"
    ov.save_model(model, str(path), compress_to_fp16=False)
    calib = [{"x": rng.standard_normal((1, 256)).astype(np.float32)} for _ in range(50)]
    return path, calib


def _run(xml, images):
    compiled = ov.Core().compile_model(str(xml), "CPU", F32)
    return np.concatenate([compiled({"image": images[i:i + 1]})[0] for i in range(len(images))])


def _op_types(xml):
    return [op.get_type_name() for op in ov.Core().read_model(str(xml)).get_ops()]


def _low_bit_weights(xml, kinds=("u8", "i8", "u4", "i4")):
    return [op for op in ov.Core().read_model(str(xml)).get_ops()
            if op.get_type_name() == "Constant" and op.get_output_element_type(0).get_type_name() in kinds]


def test_static_int8_keeps_digits_accuracy(digits, tmp_path):
    xml, images, labels = digits
    calib = [{"image": images[i:i + 1]} for i in range(100)]
    path, notes = compress_openvino(xml, _opts(precision="int8", calibration=calib), tmp_path)
    assert path == tmp_path / "digits_cnn.xml" and path.with_suffix(".bin").exists()
    assert "FakeQuantize" in _op_types(path)
    assert any("FakeQuantize" in n for n in notes)
    ref, q = _run(xml, images), _run(path, images)
    acc_ref = float((ref.argmax(1) == labels).mean())
    acc_q = float((q.argmax(1) == labels).mean())
    agree = float((ref.argmax(1) == q.argmax(1)).mean())
    print(f"\ndigits fp32 acc {acc_ref:.4f}  int8 acc {acc_q:.4f}  top-1 agreement {agree:.4f}  "
          f"bin {xml.with_suffix('.bin').stat().st_size} -> {path.with_suffix('.bin').stat().st_size} bytes")
    assert acc_ref - acc_q <= 0.01
    assert agree >= 0.98


def test_static_int8_in_place_replaces_the_ir(digits, tmp_path):
    """out == the source folder: the .bin being read is memory-mapped, so the result must replace it safely."""
    xml, images, _ = digits
    for ext in ("xml", "bin"):
        shutil.copy(xml.with_suffix(f".{ext}"), tmp_path)
    src = tmp_path / xml.name
    calib = [{"image": images[i:i + 1]} for i in range(20)]
    path, _ = compress_openvino(src, _opts(precision="int8", calibration=calib), tmp_path)
    assert path == src and "FakeQuantize" in _op_types(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits_cnn.bin", "digits_cnn.xml"]
    assert np.isfinite(_run(path, images[:5])).all()


def test_static_int8_needs_calibration(digits, tmp_path):
    xml, _, _ = digits
    with pytest.raises(ConversionError, match="calibration"):
        compress_openvino(xml, _opts(precision="int8"), tmp_path)


@pytest.mark.parametrize("how", [{"precision": "int8-dynamic"}, {"weights_only_bits": 8}])
def test_weight_only_int8(digits, tmp_path, how):
    xml, images, labels = digits
    path, _ = compress_openvino(xml, _opts(**how), tmp_path)
    assert _low_bit_weights(path, ("u8", "i8"))
    assert "FakeQuantize" not in _op_types(path)
    ref, q = _run(xml, images), _run(path, images)
    assert (ref.argmax(1) == q.argmax(1)).mean() >= 0.98
    assert abs((ref.argmax(1) == labels).mean() - (q.argmax(1) == labels).mean()) <= 0.01


def test_weight_only_int4_on_mlp(mlp, tmp_path):
    xml, calib = mlp
    path, notes = compress_openvino(xml, _opts(weights_only_bits=4), tmp_path)
    assert len(_low_bit_weights(path, ("u4", "i4"))) >= 2  # the two 512-wide layers at least
    ratio = path.with_suffix(".bin").stat().st_size / xml.with_suffix(".bin").stat().st_size
    print(f"\nmlp int4 weights: bin ratio {ratio:.3f}; {notes}")
    assert ratio <= 0.2
    a = ov.Core().compile_model(str(xml), "CPU", F32)
    b = ov.Core().compile_model(str(path), "CPU", F32)
    ya, yb = a(calib[0])[0].ravel(), b(calib[0])[0].ravel()
    assert np.dot(ya, yb) / (np.linalg.norm(ya) * np.linalg.norm(yb)) > 0.97


def test_mlp_int8_size_and_latency(mlp, tmp_path):
    xml, calib = mlp
    path, _ = compress_openvino(xml, _opts(precision="int8", calibration=calib), tmp_path / "int8")
    assert "FakeQuantize" in _op_types(path)
    ratio = path.with_suffix(".bin").stat().st_size / xml.with_suffix(".bin").stat().st_size
    dyn, _ = compress_openvino(xml, _opts(precision="int8-dynamic"), tmp_path / "dyn")
    dyn_ratio = dyn.with_suffix(".bin").stat().st_size / xml.with_suffix(".bin").stat().st_size
    cfg = {**F32, "INFERENCE_NUM_THREADS": 1}
    medians = {}
    for name, p in (("fp32", xml), ("int8", path), ("int8-dynamic", dyn)):
        req = ov.Core().compile_model(str(p), "CPU", cfg).create_infer_request()
        for _ in range(50):
            req.infer(calib[0])
        times = []
        for i in range(300):
            t = time.perf_counter_ns()
            req.infer(calib[i % len(calib)])
            times.append(time.perf_counter_ns() - t)
        medians[name] = statistics.median(times) / 1e3
    print(f"\nmlp bin ratio int8 {ratio:.3f}, int8-dynamic {dyn_ratio:.3f}; median latency at 1 thread (us): "
          + ", ".join(f"{k} {v:.1f}" for k, v in medians.items()))
    assert ratio <= 0.3
    assert dyn_ratio <= 0.3


@pytest.mark.parametrize("opt", [{"int8_io": True}, {"palettize_bits": 4}, {"prune_sparsity": 0.5}])
def test_unsupported_options_are_refused(digits, tmp_path, opt):
    xml, _, _ = digits
    name = next(iter(opt))
    with pytest.raises(ConversionError, match="openvino") as err:
        compress_openvino(xml, _opts(precision="int8-dynamic", **opt), tmp_path)
    assert name in str(err.value)
    assert not (tmp_path / "digits_cnn.xml").exists()


def test_no_effect_is_an_error(tmp_path):
    """A model without weights to compress must not come back 'compressed'."""
    import openvino.opset13 as ops

    x = ops.parameter([1, 8], np.float32, name="x")
    model = ov.Model([ops.relu(x)], [x], "noweights")
    ov.save_model(model, str(tmp_path / "relu.xml"), compress_to_fp16=False)
    with pytest.raises(ConversionError, match="no effect"):
        compress_openvino(tmp_path / "relu.xml", _opts(precision="int8-dynamic"), tmp_path / "out")
