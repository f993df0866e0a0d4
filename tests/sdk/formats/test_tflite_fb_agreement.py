"""The stdlib-only TFLite flatbuffer reader (edgekit.formats.tflite_fb) on real models.

Models built with TensorFlow (the `models` fixture in conftest.py) are checked field by field against what the
LiteRT interpreter itself reports: op histogram, I/O signature, every tensor, quantization, constant buffers,
parameter counts; op codes against the official schema, custom / unknown op codes, buffers stored outside the
flatbuffer, and a 15 MB model. Corrupt files are in test_tflite_fb_corrupt.py.
"""

from __future__ import annotations

import mmap
from collections import Counter

import pytest

from _tflite_fb_helpers import KINDS, _edit, _interpreter, _pack, _randomize_weights, _schema, expect_error, fb


# ---------------------------------------------------------------- agreement with the LiteRT interpreter


@pytest.mark.parametrize("kind", KINDS)
def test_op_histogram_matches_interpreter(models, kind):
    path, _ = models[kind]
    info = fb.read_tflite(path.read_bytes())
    ops = [d["op_name"] for d in _interpreter(path)._get_ops_details()]
    assert len(info.subgraphs) == 1  # _get_ops_details only covers the primary subgraph
    assert info.subgraphs[0].op_codes == ops
    assert info.op_histogram() == dict(Counter(ops))
    assert sum(info.op_histogram().values()) == len(ops)


def _check_tensor(t, d):
    import numpy as np

    assert t.name == d["name"]
    assert t.shape == tuple(d["shape"].tolist())
    assert (t.shape_signature if t.shape_signature is not None else t.shape) == tuple(d["shape_signature"].tolist())
    assert t.dtype == np.dtype(d["dtype"]).name
    qp = d["quantization_parameters"]
    assert t.scale == qp["scales"].tolist()
    assert t.zero_point == qp["zero_points"].tolist()
    # the legacy (scale, zero_point) pair is only filled for per-tensor quantization
    assert d["quantization"] == ((t.scale[0], t.zero_point[0]) if len(t.scale) == 1 else (0.0, 0))


@pytest.mark.parametrize("kind", KINDS)
def test_io_signature_matches_interpreter(models, kind):
    path, _ = models[kind]
    info = fb.read_tflite(path.read_bytes())
    it = _interpreter(path)
    sub = info.subgraphs[0]
    ins, outs = it.get_input_details(), it.get_output_details()
    assert [d["index"] for d in ins] == sub.inputs
    assert [d["index"] for d in outs] == sub.outputs
    for d in ins + outs:
        _check_tensor(sub.tensors[d["index"]], d)
    for d in it.get_tensor_details():  # every tensor, not just the I/O ones
        _check_tensor(sub.tensors[d["index"]], d)
    assert len(sub.tensors) == len(it.get_tensor_details())
    full = it._get_full_signature_list()
    assert {s["key"]: {"inputs": s["inputs"], "outputs": s["outputs"]} for s in info.signature_defs} == full
    assert info.version == 3


def test_dtypes_and_quantization(models):
    float_info = fb.read_tflite(models["float"][0].read_bytes())
    int8_info = fb.read_tflite(models["int8"][0].read_bytes())
    dyn_info = fb.read_tflite(models["dynamic"][0].read_bytes())
    fin = float_info.subgraphs[0].tensors[float_info.subgraphs[0].inputs[0]]
    qin = int8_info.subgraphs[0].tensors[int8_info.subgraphs[0].inputs[0]]
    assert fin.dtype == "float32" and fin.scale == [] and fin.shape == (1, 16, 16, 3)
    assert qin.dtype == "int8" and len(qin.scale) == 1 and len(qin.zero_point) == 1
    per_channel = [t for t in int8_info.subgraphs[0].tensors if t.buffer_size and len(t.scale) > 1]
    assert per_channel, "the int8 conv/dense weights are quantized per channel"
    din = dyn_info.subgraphs[0].tensors[dyn_info.subgraphs[0].inputs[0]]
    assert din.shape_signature == (-1, -1, 8) and din.shape == (1, 1, 8)


@pytest.mark.parametrize("kind", KINDS)
def test_constant_buffer_sizes_match_interpreter(models, kind):
    path, _ = models[kind]
    info = fb.read_tflite(path.read_bytes())
    it = _interpreter(path)
    consts = [(i, t) for i, t in enumerate(info.subgraphs[0].tensors) if t.buffer_size]
    assert consts
    for i, t in consts:
        assert it.get_tensor(i).nbytes == t.buffer_size, t.name
    assert info.num_buffers == len(_schema().ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0).buffers)


@pytest.mark.parametrize("kind", KINDS)
def test_parameter_count_matches_keras(models, kind):
    path, keras_count = models[kind]
    assert fb.read_tflite(path.read_bytes()).parameter_count() == keras_count


def test_accepts_bytearray_memoryview_and_mmap(models):
    path, _ = models["float"]
    data = path.read_bytes()
    want = fb.read_tflite(data)
    assert fb.read_tflite(bytearray(data)) == want
    assert fb.read_tflite(memoryview(data)) == want
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert fb.read_tflite(mm) == want


def test_custom_and_unknown_op_codes(models):
    s = _schema()
    data = models["float"][0].read_bytes()
    names = fb.read_tflite(data).subgraphs[0].op_codes

    def recode(m):
        m.operatorCodes[0].builtinCode = m.operatorCodes[0].deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
        m.operatorCodes[0].customCode = "MyFancyOp"
        m.operatorCodes[1].builtinCode, m.operatorCodes[1].deprecatedBuiltinCode = 900, 127
        m.operatorCodes[2].builtinCode, m.operatorCodes[2].deprecatedBuiltinCode = 150, 127  # > 127: placeholder
        m.operatorCodes[3].builtinCode, m.operatorCodes[3].deprecatedBuiltinCode = 0, 3  # old files: only deprecated

    got = fb.read_tflite(_edit(data, recode)).subgraphs[0].op_codes
    first = {}
    m = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
    for op, name in zip(m.subgraphs[0].operators, names):
        first.setdefault(op.opcodeIndex, name)
    expect = {0: "CUSTOM:MyFancyOp", 1: "BUILTIN_900", 2: fb.BUILTIN_OPERATORS[150], 3: "CONV_2D"}
    for op, name in zip(m.subgraphs[0].operators, got):
        assert name == expect.get(op.opcodeIndex, first[op.opcodeIndex])

    def custom_without_code(m):
        m.operatorCodes[0].builtinCode = m.operatorCodes[0].deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
        m.operatorCodes[0].customCode = None

    expect_error(_edit(data, custom_without_code), "no custom_code")


def test_op_table_matches_official_schema():
    s = _schema()
    table = fb.BUILTIN_OPERATORS
    official = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    assert max(official) < len(table)
    for code, name in official.items():
        assert table[code] == name
    types_ = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
    for code, name in types_.items():
        assert fb.DTYPES[code] == name.lower()


def _externalize(data: bytes) -> bytes:
    """Move every constant buffer out of the flatbuffer into data appended after it (Buffer.offset/size),
    the layout LiteRT uses for models over 2 GB."""
    import numpy as np

    m = _schema().ModelT.InitFromPackedBuf(bytearray(data), 0)
    payloads = {}
    for i, b in enumerate(m.buffers):
        if b.data is not None and len(b.data):
            payloads[i] = np.asarray(b.data, dtype=np.uint8).tobytes()
            b.data, b.offset, b.size = None, 1, len(payloads[i])  # offset 1: placeholder, same encoded size
    head = _pack(m)
    pos, tail = len(head), bytearray()
    for i, blob in payloads.items():
        pad = -(pos + len(tail)) % 16
        tail += bytes(pad)
        m.buffers[i].offset = pos + len(tail)
        tail += blob
    head2 = _pack(m)
    assert len(head2) == len(head)
    return head2 + bytes(tail)


def test_external_buffers(models, tmp_path):
    import numpy as np

    path, keras_count = models["float"]
    data = path.read_bytes()
    ext = _externalize(data)
    a, b = fb.read_tflite(data), fb.read_tflite(ext)
    assert [t.buffer_size for t in b.subgraphs[0].tensors] == [t.buffer_size for t in a.subgraphs[0].tensors]
    assert b.parameter_count() == keras_count

    # LiteRT reads the same weights from the appended region: identical outputs
    ext_path = tmp_path / "external.tflite"
    ext_path.write_bytes(ext)
    x = np.random.default_rng(3).random((1, 16, 16, 3), dtype=np.float32)
    results = []
    for p in (path, ext_path):
        it = _interpreter(p)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        results.append(it.get_tensor(it.get_output_details()[0]["index"]))
    np.testing.assert_array_equal(results[0], results[1])

    expect_error(ext[:-1], "runs past end of file")  # the last external buffer loses a byte

    def huge_offset(m):
        big = next(i for i, buf in enumerate(m.buffers) if buf.data is not None and len(buf.data))
        m.buffers[big].data, m.buffers[big].offset, m.buffers[big].size = None, 2**63, 16

    expect_error(_edit(data, huge_offset), "external data")


def test_parses_15mb_model(tmp_path):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((250,))
    x = inp
    for _ in range(60):
        x = keras.layers.Dense(250, activation="relu")(x)
    m = keras.Model(inp, x)
    _randomize_weights(m)
    data = tf.lite.TFLiteConverter.from_keras_model(m).convert()
    assert len(data) > 14_000_000
    info = fb.read_tflite(data)
    assert info.parameter_count() == m.count_params()
    # speed is measured by `python tools/scan_cost.py`, not asserted here (shared, noisy machines)
