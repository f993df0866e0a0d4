"""The TFLite rewrites (edgekit.converters.rewrite): each pass against the un-rewritten model's numbers, the
writer's round trip, and convert to ONNX / OpenVINO (and Core ML, through ONNX) of what tf2onnx and OpenVINO could
not read before.

Fixtures, built here: a Keras Conv2DTranspose pair (with bias) converted by TFLiteConverter (TRANSPOSE_CONV) and
turned by edgekit's writer into MediaPipe's form (the custom op Convolution2DTransposeBias with packed
TfLiteTransposeConvParams and the bias as third input); a model with sparse weights from
Optimize.EXPERIMENTAL_SPARSITY: a random-sparse Conv2D (behind DENSIFY) and a 1x4 block-sparse Dense (read by
FULLY_CONNECTED directly). LiteRT runs the custom op itself (its default XNNPACK delegate implements it), so the
un-rewritten file run by LiteRT is every check's reference.
"""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

import edgekit
from edgekit.conversion import convert
from edgekit.converters.rewrite import tflite_model as tm
from edgekit.converters.rewrite.tflite import rewrite_tflite
from edgekit.errors import ConversionError
from edgekit.formats.tflite_fb import read_tflite
from edgekit.formats.tflite_io import public_names

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
RNG = np.random.default_rng(0)


def to_mediapipe(data: bytes, code: str = "Convolution2DTransposeBias") -> bytes:
    """TRANSPOSE_CONV (output_shape, weights, input, bias) -> MediaPipe's custom op (input, weights, bias)."""
    m = tm.read_model(data)
    custom = tm.opcode_index(m, tm.CUSTOM, 1, code)
    for g in m.subgraphs:
        for op in g.operators:
            if tm.op_name(m, op) == "TRANSPOSE_CONV":
                o = op.builtinOptions
                assert o.fusedActivationFunction == 0  # MediaPipe's operator has no fused activation
                _, w, x, b = (int(i) for i in op.inputs)
                op.opcodeIndex, op.inputs = custom, np.array([x, w, b], np.int32)
                op.builtinOptionsType, op.builtinOptions = 0, None
                padding = {0: 1, 1: 2}[o.padding]  # schema SAME/VALID -> TfLitePadding kSame/kValid
                op.customOptions = np.frombuffer(struct.pack("<3i", padding, o.strideW, o.strideH), np.uint8)
    tm.compact(m)
    return tm.write_model(m)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import keras
    import tensorflow as tf

    d = tmp_path_factory.mktemp("rewrite")
    keras.utils.set_random_seed(0)
    files = {}
    # transpose convolutions with bias; even sizes, where MediaPipe's kernel and TRANSPOSE_CONV agree on the shape
    i = keras.Input((6, 6, 3), batch_size=1, name="x")
    up = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same")
    up2 = keras.layers.Conv2DTranspose(2, 4, strides=2, padding="valid")
    m = keras.Model(i, up2(keras.layers.LeakyReLU(0.1)(up(i))))  # not fused into TRANSPOSE_CONV, as ReLU is
    for layer in (up, up2):
        w, b = layer.get_weights()
        layer.set_weights([w, RNG.normal(size=b.shape).astype("float32")])
    files["builtin"] = d / "builtin.tflite"
    files["builtin"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    files["mediapipe"] = d / "mediapipe.tflite"
    files["mediapipe"].write_bytes(to_mediapipe(files["builtin"].read_bytes()))
    # MediaPipe ships fp16 weights (DEQUANTIZE before the custom op); an odd input size, where MediaPipe's CPU
    # kernel would compute a smaller output than the file declares (and LiteRT's XNNPACK produces)
    i = keras.Input((5, 5, 3), batch_size=1, name="x")
    c = tf.lite.TFLiteConverter.from_keras_model(keras.Model(i, up2(keras.layers.LeakyReLU(0.1)(up(i)))))
    c.optimizations, c.target_spec.supported_types = [tf.lite.Optimize.DEFAULT], [tf.float16]
    files["mediapipe_f16"] = d / "mediapipe_f16.tflite"
    files["mediapipe_f16"].write_bytes(to_mediapipe(c.convert()))
    files["vendor"] = d / "vendor.tflite"  # a custom op edgekit has no pass for
    files["vendor"].write_bytes(to_mediapipe(files["builtin"].read_bytes(), "MyVendorDeconv"))
    # sparse weights: a random-sparse conv (DENSIFY) and a 1x4 block-sparse dense (read directly)
    i = keras.Input((6, 6, 8), batch_size=1, name="x")
    conv, dense = keras.layers.Conv2D(16, 3, padding="same"), keras.layers.Dense(12)
    m = keras.Model(i, dense(keras.layers.Flatten()(conv(i))))
    w, b = conv.get_weights()
    conv.set_weights([w * (RNG.random(w.shape) > 0.9), RNG.normal(size=b.shape)])
    w, b = dense.get_weights()  # (in, out): blocks of 4 along the input axis, as TFLite's 1x4 blocks
    dense.set_weights([w * (RNG.random((w.shape[0] // 4, w.shape[1])) > 0.8).repeat(4, axis=0), b])
    c = tf.lite.TFLiteConverter.from_keras_model(m)
    c.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    files["sparse"] = d / "sparse.tflite"
    files["sparse"].write_bytes(c.convert())
    files["kernels"] = {"conv": conv.get_weights()[0], "dense": dense.get_weights()[0]}
    return files


def run_litert(path, x):
    with edgekit.load(path, backend="litert") as m:
        return next(iter(m.predict(x).values()))


def sample(path):
    with edgekit.load(path, backend="litert") as m:
        return RNG.normal(size=m.inputs[0].shape).astype("float32")


def test_fixtures_have_the_forms_converters_could_not_read(models):
    assert read_tflite(models["mediapipe"].read_bytes()).op_histogram() == {
        "CUSTOM:Convolution2DTransposeBias": 2, "LEAKY_RELU": 1}
    ops = read_tflite(models["sparse"].read_bytes()).op_histogram()
    assert ops == {"CONV_2D": 1, "DENSIFY": 1, "FULLY_CONNECTED": 1, "RESHAPE": 1}
    sparse = [t for g in tm.read_model(models["sparse"].read_bytes()).subgraphs for t in g.tensors if t.sparsity]
    assert sorted(len(t.sparsity.blockMap if t.sparsity.blockMap is not None else ()) for t in sparse) == [0, 1]


def test_litert_runs_the_custom_op_itself(models):
    """The reference decision: LiteRT (XNNPACK) runs Convolution2DTransposeBias, as the builtin form computes it."""
    x = sample(models["builtin"])
    assert np.max(np.abs(run_litert(models["mediapipe"], x) - run_litert(models["builtin"], x))) <= 1e-6


@pytest.mark.parametrize("name", ["builtin", "mediapipe", "sparse"])
def test_writer_round_trip(models, name, tmp_path):
    data = models[name].read_bytes()
    out = tm.write_model(tm.read_model(data))
    assert tm.write_model(tm.read_model(out)) == out  # deterministic: a second round trip is byte-identical
    assert read_tflite(out) == read_tflite(data)  # the same model to edgekit's strict reader, vouched alike
    before, after = tm.read_model(data), tm.read_model(out)
    for g0, g1 in zip(before.subgraphs, after.subgraphs):
        for t0, t1 in zip(g0.tensors, g1.tensors):
            assert _raw(before, t0) == _raw(after, t1)
    root = tm.schema().Model.GetRootAs(out, 0)
    for i in range(root.BuffersLength()):
        b = root.Buffers(i)
        if b.DataLength():
            assert b._tab.Vector(b._tab.Offset(4)) % 16 == 0  # constant data 16-byte aligned, as TF writes it
    (tmp_path / "rt.tflite").write_bytes(out)
    x = sample(models[name])
    assert np.array_equal(run_litert(tmp_path / "rt.tflite", x), run_litert(models[name], x))


def _raw(model, t) -> bytes:
    b = model.buffers[t.buffer]
    return b"" if b.data is None else np.asarray(b.data, np.uint8).tobytes()


def test_no_pass_applies_returns_the_file_untouched(models, tmp_path):
    assert rewrite_tflite(models["builtin"], tmp_path) == (models["builtin"], [])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["mediapipe", "mediapipe_f16"])
def test_transpose_conv_bias_pass(models, name, tmp_path):
    path, notes = rewrite_tflite(models[name], tmp_path)
    assert notes[0] == "rewrote 2 Convolution2DTransposeBias -> TRANSPOSE_CONV (with bias) before converting"
    info = read_tflite(path.read_bytes())
    ops = {"TRANSPOSE_CONV": 2, "LEAKY_RELU": 1, **({"DEQUANTIZE": 4} if name.endswith("f16") else {})}
    assert info.op_histogram() == ops
    assert info.vouched  # edgekit's strict reader checks every operand of the rewritten file
    assert info.signature_defs == read_tflite(models[name].read_bytes()).signature_defs
    if name.endswith("f16"):  # 5x5 -> 10x10 as declared; MediaPipe's CPU kernel would give 9x9: said
        assert len(notes) == 2 and "[1, 10, 10, 4]" in notes[1] and "[1, 9, 9, 4]" in notes[1]
    x = sample(models[name])
    ref = run_litert(models[name], x)
    assert np.max(np.abs(run_litert(path, x) - ref)) <= 1e-6 and np.std(ref) > 0.1


def test_densify_pass_restores_the_keras_weights(models, tmp_path):
    path, notes = rewrite_tflite(models["sparse"], tmp_path)
    assert notes == ["rewrote 1 DENSIFY -> dense constant and 1 sparse constant(s) read directly -> dense "
                     "before converting (sparse weights stored dense)"]
    info = read_tflite(path.read_bytes())
    assert "DENSIFY" not in info.op_histogram() and info.vouched
    assert public_names(info) == public_names(read_tflite(models["sparse"].read_bytes()))  # tensors renumbered
    m = tm.read_model(path.read_bytes())
    g = m.subgraphs[0]
    assert not any(t.sparsity for t in g.tensors) and len(m.buffers) < len(tm.read_model(
        models["sparse"].read_bytes()).buffers) + 1  # the sparse buffers went
    weights = {tm.op_name(m, op): tm.constant(m, g.tensors[int(op.inputs[1])]) for op in g.operators
               if tm.op_name(m, op) in ("CONV_2D", "FULLY_CONNECTED")}
    k = models["kernels"]  # TFLite stores conv weights OHWI and dense weights (out, in)
    assert np.array_equal(weights["CONV_2D"], k["conv"].transpose(3, 0, 1, 2))
    assert np.array_equal(weights["FULLY_CONNECTED"], k["dense"].T)
    x = sample(models["sparse"])
    assert np.max(np.abs(run_litert(path, x) - run_litert(models["sparse"], x))) <= 1e-5


@pytest.mark.parametrize("name", ["mediapipe", "mediapipe_f16", "sparse"])
def test_convert_to_onnx_and_openvino(models, name, tmp_path):
    rep = convert(models[name], ["onnx", "openvino"], output_dir=tmp_path)
    for t in ("onnx", "openvino"):
        assert rep[t].status == "pass", rep[t].error
        assert rep[t].parity["max_abs"] <= 1e-5  # against the un-rewritten file run by LiteRT
        assert any(n.startswith("rewrote ") for n in rep[t].notes)
    assert not list(tmp_path.glob("*.rewritten.tflite"))  # the rewritten copy is the tools', not a target


def test_core_ml_route_through_onnx_gets_the_rewrite(models, tmp_path):
    rep = convert(models["mediapipe"], ["coreml"], output_dir=tmp_path)
    assert rep["coreml"].status in ("pass", "unverified"), rep["coreml"].error  # unverified off macOS
    assert rep["coreml"].route[0] == "tflite_to_onnx"
    assert any(n.startswith("rewrote 2 Convolution2DTransposeBias") for n in rep["coreml"].notes)


def test_unknown_custom_op_fails_naming_it(models, tmp_path, monkeypatch):
    from edgekit.converters.base import REGISTRY, Artifact
    from edgekit.formats import Format

    monkeypatch.chdir(tmp_path)  # an edge works in its current folder, a private one under convert
    for edge in ("tflite_to_onnx", "tflite_to_openvino"):
        (tmp_path / edge).mkdir()
        with pytest.raises(ConversionError) as e:
            REGISTRY[edge].convert(Artifact(models["vendor"], Format.TFLITE), _options(), tmp_path / edge)
        assert "MyVendorDeconv" in e.value.message and e.value.op == "CUSTOM:MyVendorDeconv"
        assert "Convolution2DTransposeBias" in e.value.hint  # what edgekit knows, and what to do instead
    rep = convert(models["vendor"], ["onnx"], output_dir=tmp_path / "convert")
    assert rep["onnx"].status == "fail" and "MyVendorDeconv" in rep["onnx"].error


def _options():
    from edgekit.converters.base import ConvertOptions

    return ConvertOptions()


def test_malformed_inputs_are_refused_by_name(models, tmp_path):
    m = tm.read_model(models["mediapipe"].read_bytes())
    m.subgraphs[0].operators[0].customOptions = np.zeros(4, np.uint8)
    (tmp_path / "short.tflite").write_bytes(tm.write_model(m))
    with pytest.raises(ConversionError, match="custom options are 4 bytes") as e:
        rewrite_tflite(tmp_path / "short.tflite", tmp_path / "out")
    assert e.value.op == "CUSTOM:Convolution2DTransposeBias"
    m = tm.read_model(models["sparse"].read_bytes())
    sp = next(t for t in m.subgraphs[0].tensors if t.sparsity).sparsity
    csr = next(d for d in sp.dimMetadata if d.format == 1)
    csr.arrayIndices.values = np.asarray(csr.arrayIndices.values).copy()
    csr.arrayIndices.values[0] = 200  # past the dimension
    (tmp_path / "bad.tflite").write_bytes(tm.write_model(m))
    with pytest.raises(ConversionError, match="outside dimension"):
        rewrite_tflite(tmp_path / "bad.tflite", tmp_path / "out")
    next(t for t in m.subgraphs[0].tensors if t.sparsity).shape = np.array([2**20, 2**20], np.int32)
    (tmp_path / "huge.tflite").write_bytes(tm.write_model(m))
    with pytest.raises(ConversionError, match="exceed 2 GB"):  # refused before anything is allocated
        rewrite_tflite(tmp_path / "huge.tflite", tmp_path / "out")



def test_without_a_schema_only_a_needed_rewrite_fails(models, tmp_path, monkeypatch):
    """OpenVINO alone converts TFLite: a file no pass needs must not ask for LiteRT's (or TF's) schema."""
    from edgekit.errors import MissingDependencyError

    def missing():
        raise MissingDependencyError("ai-edge-litert", "litert", "rewrite TFLite graphs")

    monkeypatch.setattr(tm, "schema", missing)
    for name in ("builtin", "vendor"):  # vouched / not vouched (looked into for sparse constants), no pass needed
        assert rewrite_tflite(models[name], tmp_path) == (models[name], [])
    with pytest.raises(MissingDependencyError, match="ai-edge-litert"):
        rewrite_tflite(models["mediapipe"], tmp_path)
