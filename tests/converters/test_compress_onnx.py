"""ONNX compression: static int8 (QDQ), dynamic int8 and 4-bit weights keep accuracy, change the graph and shrink
the file; options ONNX cannot honour, and quantization that did nothing, are errors."""

from __future__ import annotations

import itertools
import shutil
import types
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime.quantization")

from edgekit.converters.compress_onnx import compress_onnx, quant_summary
from edgekit.errors import ConversionError

DIGITS = Path(__file__).resolve().parents[2] / "sdk" / "examples" / "digits"
DYNAMIC_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger"}


def opts(**kw):
    base = {"precision": "fp32", "calibration": None, "per_channel": True, "int8_io": False,
            "palettize_bits": None, "prune_sparsity": None, "weights_only_bits": None}
    base.update(kw)
    return types.SimpleNamespace(**base)


@pytest.fixture(scope="module")
def digits():
    data = np.load(DIGITS / "digits_test.npz")
    x, y = data["image"].astype(np.float32), data["labels"]
    cal = [{"image": x[i:i + 1]} for i in range(100)]
    return DIGITS / "digits_cnn.onnx", x, y, cal


def predict(path, x, name="image"):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def op_types(path):
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def int8_weights(path):
    return [t for t in onnx.load(str(path)).graph.initializer if t.data_type == onnx.TensorProto.INT8]


def build_mlp(path: Path, sizes=(256, 512, 512, 10), seed=0):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits, prev = [], [], "x"
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        w = (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        bias = (0.1 * rng.standard_normal(b)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(bias, f"b{i}")]
        nodes += [helper.make_node("MatMul", [prev, f"w{i}"], [f"mm{i}"]),
                  helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"h{i}"])]
        prev = f"h{i}"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [prev], [f"r{i}"]))
            prev = f"r{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", sizes[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", sizes[-1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    path = build_mlp(tmp_path_factory.mktemp("mlp") / "mlp.onnx")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 256)).astype(np.float32)
    return path, x


def check_digits_quality(q, digits, min_agree=0.98, max_drop=0.01):
    path, x, y, _ = digits
    ref, out = predict(path, x), predict(q, x)
    acc_ref, acc_q = (ref.argmax(1) == y).mean(), (out.argmax(1) == y).mean()
    agree = (out.argmax(1) == ref.argmax(1)).mean()
    assert acc_ref - acc_q <= max_drop, (acc_ref, acc_q)
    assert agree >= min_agree, agree
    return acc_ref, acc_q, agree


def test_static_int8_digits(digits, tmp_path):
    path, *_, cal = digits
    q, notes = compress_onnx(path, opts(precision="int8", calibration=cal), tmp_path)
    assert q == tmp_path / "digits_cnn.onnx" and q.exists()
    assert any("static int8 QDQ" in n and "per-channel" in n and "uint8 activations" in n and "100 samples" in n
               for n in notes), notes
    ops = op_types(q)
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert int8_weights(q), "weights should be stored as int8"
    # activations are unsigned 8-bit
    zps = [t for t in onnx.load(str(q)).graph.initializer if t.data_type == onnx.TensorProto.UINT8]
    assert zps
    # float I/O is kept
    g = onnx.load(str(q)).graph
    assert g.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert g.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    check_digits_quality(q, digits)
    assert q.stat().st_size < 0.6 * path.stat().st_size  # small model: scales and zero points weigh a lot


def test_dynamic_int8_digits(digits, tmp_path):
    path, *_ = digits
    q, notes = compress_onnx(path, opts(precision="int8-dynamic"), tmp_path)
    assert op_types(q) & DYNAMIC_OPS
    assert "QuantizeLinear" not in op_types(q)
    assert int8_weights(q)
    assert any("dynamic int8" in n for n in notes)
    check_digits_quality(q, digits)


def test_weights_only_8_is_dynamic_int8(digits, tmp_path):
    path, *_ = digits
    q, _ = compress_onnx(path, opts(weights_only_bits=8), tmp_path)
    assert op_types(q) & DYNAMIC_OPS
    check_digits_quality(q, digits)


def test_weights_only_4_matmul_nbits(digits, mlp, tmp_path):
    path, *_ = digits
    q, notes = compress_onnx(path, opts(weights_only_bits=4), tmp_path)
    assert any("MatMulNBits" in n for n in notes)
    assert "MatMulNBits" in op_types(q)
    check_digits_quality(q, digits, min_agree=0.98, max_drop=0.02)

    mpath, x = mlp
    q, _ = compress_onnx(mpath, opts(weights_only_bits=4), tmp_path)
    assert q.stat().st_size <= 0.2 * mpath.stat().st_size
    ref, out = predict(mpath, x, "x"), predict(q, x, "x")
    # random weights and inputs give near-tied logits, so judge 4-bit by closeness, not argmax agreement
    cos = (ref * out).sum() / np.linalg.norm(ref) / np.linalg.norm(out)
    assert cos >= 0.98, cos


@pytest.mark.parametrize("precision", ["int8", "int8-dynamic"])
def test_mlp_size_and_agreement(mlp, tmp_path, precision):
    path, x = mlp
    cal = [{"x": x[i:i + 1]} for i in range(100)]
    q, _ = compress_onnx(path, opts(precision=precision, calibration=cal), tmp_path)
    ratio = q.stat().st_size / path.stat().st_size
    assert ratio <= 0.3, ratio
    ref, out = predict(path, x, "x"), predict(q, x, "x")
    assert (ref.argmax(1) == out.argmax(1)).mean() >= 0.95
    cos = (ref * out).sum() / np.linalg.norm(ref) / np.linalg.norm(out)
    assert cos >= 0.99, cos


def test_per_tensor_weights(mlp, tmp_path):
    path, _ = mlp
    q, notes = compress_onnx(path, opts(precision="int8-dynamic", per_channel=False), tmp_path)
    assert any("per-tensor" in n for n in notes)
    assert quant_summary(onnx.load(str(q)))["MatMulInteger"] == 3


def test_out_equal_to_source_folder_replaces_in_place(digits, tmp_path):
    path, *_, cal = digits
    local = tmp_path / path.name
    shutil.copyfile(path, local)
    q, _ = compress_onnx(local, opts(precision="int8", calibration=cal), tmp_path)
    assert q == local
    assert "QuantizeLinear" in op_types(q)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp files left behind


def test_fp32_without_compression_copies(digits, tmp_path):
    path, *_ = digits
    q, notes = compress_onnx(path, opts(), tmp_path)
    assert q.read_bytes() == path.read_bytes() and notes == []


def test_static_without_calibration_raises(digits, tmp_path):
    path, *_ = digits
    for cal in (None, []):
        with pytest.raises(ConversionError, match="calibration"):
            compress_onnx(path, opts(precision="int8", calibration=cal), tmp_path)
    assert not (tmp_path / "digits_cnn.onnx").exists()


@pytest.mark.parametrize("field,value,flag", [
    ("palettize_bits", 4, "--palettize"),
    ("prune_sparsity", 0.5, "--prune"),
    ("int8_io", True, "--int8-io"),
])
def test_unsupported_options_raise(digits, tmp_path, field, value, flag):
    path, *_, cal = digits
    with pytest.raises(ConversionError) as info:
        compress_onnx(path, opts(precision="int8", calibration=cal, **{field: value}), tmp_path)
    assert "onnx" in str(info.value) and flag in str(info.value)


def test_weights_only_4_without_matmul_has_no_effect(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], [w])
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ConversionError, match="had no effect"):
        compress_onnx(path, opts(weights_only_bits=4), tmp_path / "out")


def test_quantization_without_quantizable_ops_has_no_effect(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ConversionError, match="had no effect"):
        compress_onnx(path, opts(precision="int8-dynamic"), tmp_path / "out")
