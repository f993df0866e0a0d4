"""Tests for the stdlib-only TFLite flatbuffer reader (edgekit.formats.tflite_fb).

Real models are built here with TensorFlow and checked field by field against what the LiteRT interpreter
itself reports; corrupt files (truncated, mutated, forged, amplified) must raise FlatbufferError and
nothing else, quickly. Tests that need TensorFlow / ai-edge-litert skip when those are not installed.
"""

from __future__ import annotations

import mmap
import os
import random
import struct
from collections import Counter
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")



from edgekit.formats import tflite_fb as fb  # noqa: E402

FlatbufferError = fb.FlatbufferError
SAFETY_NET = "malformed flatbuffer:"  # the reader's catch-all; explicit checks must fire before it


def expect_error(data, match: str | None = None) -> str:
    with pytest.raises(FlatbufferError) as exc:
        fb.read_tflite(data)
    msg = str(exc.value)
    assert not msg.startswith(SAFETY_NET), f"a bounds check is missing: {msg}"
    if match is not None:
        assert match in msg, msg
    return msg


# ---------------------------------------------------------------- model building helpers


def _schema():
    import importlib

    return importlib.import_module("ai_edge_litert.schema_py_generated")


def _pack(model_t) -> bytes:
    import flatbuffers

    b = flatbuffers.Builder(1024)
    b.Finish(model_t.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _edit(data: bytes, fn) -> bytes:
    """Unpack with the official generated schema code, let ``fn`` change the object tree, repack."""
    m = _schema().ModelT.InitFromPackedBuf(bytearray(data), 0)
    fn(m)
    return _pack(m)


def _randomize_weights(model, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)  # non-zero biases, so the converter keeps every parameter
    model.set_weights([rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in model.get_weights()])


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


def _interpreter(path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # no default delegates: the node list must be the file's operators, not a DELEGATE node
    return Interpreter(model_path=str(path),
                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


KINDS = ("float", "int8", "fp16", "dynamic")

# ---------------------------------------------------------------- no TensorFlow needed


def test_is_tflite():
    assert fb.is_tflite(b"\x1c\x00\x00\x00TFL3")
    assert fb.is_tflite(b"\x1c\x00\x00\x00TFL3rest of file")
    assert not fb.is_tflite(b"\x1c\x00\x00\x00TFL")
    assert not fb.is_tflite(b"\x1c\x00\x00\x00TFL2....")
    assert not fb.is_tflite(b"")


@pytest.mark.parametrize("data", [b"", b"TFL3", b"\x00\x00\x00\x00TFL", b"1234567"])
def test_too_short(data):
    expect_error(data, "too short")


def test_wrong_identifier():
    expect_error(b"\x08\x00\x00\x00ONNX" + bytes(64), "not a TFLite model")


def test_random_bytes_with_forged_identifier():
    rng = random.Random(1234)
    for i in range(400):
        n = rng.choice([8, 9, 12, 16, 64, 255, 1024, 4096])
        blob = bytearray(rng.getrandbits(8) for _ in range(n))
        blob[4:8] = b"TFL3"
        if i % 2 and n >= 16:  # a plausible root offset, so the parser gets past the first check
            blob[0:4] = struct.pack("<I", rng.randrange(8, n - 4) & ~3)
        expect_error(bytes(blob))


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


# ---------------------------------------------------------------- corrupt files


@pytest.mark.parametrize("kind", KINDS)
def test_truncation_always_detected(models, kind):
    data = models[kind][0].read_bytes()
    n = len(data)
    cuts = sorted({n * k // 50 for k in range(50)} | {n - k for k in (1, 2, 3, 4, 5, 8, 16, 17)})
    for cut in cuts:
        expect_error(data[:cut])


def _field_pos(table, slot: int) -> int:
    """Absolute position of a field, from the official generated accessors (slot = 4 + 2 * field id)."""
    off = table._tab.Offset(slot)
    assert off, "field absent"
    return table._tab.Pos + off


def _poke(data: bytes, pos: int, fmt: str, value) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, pos, value)
    return bytes(b)


def test_flipped_offsets_name_the_culprit(models):
    s = _schema()
    data = models["float"][0].read_bytes()
    n = len(data)
    m = s.Model.GetRootAs(data, 0)
    tensor3 = m.Subgraphs(0).Tensors(3)
    name_pos = _field_pos(tensor3, 10)  # Tensor.name
    msg = expect_error(_poke(data, name_pos, "<I", 0x7FFF0000), "subgraph 0 tensor 3 name")
    assert f"0x{name_pos:x}" in msg and f"points past end of file (size {n})" in msg
    expect_error(_poke(data, name_pos, "<I", 0), "is zero")  # a zero offset would point at itself
    expect_error(_poke(data, 0, "<I", n + 4), "model root")
    expect_error(_poke(data, 0, "<I", 2), "not 4-byte aligned")
    shape_pos = _field_pos(tensor3, 4)  # Tensor.shape -> vector length becomes absurd
    vec = shape_pos + struct.unpack_from("<I", data, shape_pos)[0]
    expect_error(_poke(data, vec, "<I", 0x3FFFFFFF), "subgraph 0 tensor 3 shape")
    # the soffset of a table sends its vtable outside the file
    expect_error(_poke(data, tensor3._tab.Pos, "<i", -(n * 2)), "vtable of subgraph 0 tensor 3")
    # a string whose NUL terminator is overwritten
    strpos = name_pos + struct.unpack_from("<I", data, name_pos)[0]
    slen = struct.unpack_from("<I", data, strpos)[0]
    expect_error(_poke(data, strpos + 4 + slen, "<B", 0x41), "NUL")


def test_invalid_utf8_name_rejected(models):
    s = _schema()
    data = models["float"][0].read_bytes()
    t = s.Model.GetRootAs(data, 0).Subgraphs(0).Tensors(0)
    name_pos = _field_pos(t, 10)
    strpos = name_pos + struct.unpack_from("<I", data, name_pos)[0]
    expect_error(_poke(data, strpos + 4, "<B", 0xFF), "UTF-8")


def test_random_word_mutations_never_escape(models):
    """Overwrite random aligned words with random values: the reader either accepts the file or raises
    FlatbufferError from an explicit check, and stays fast."""
    for kind in ("int8", "dynamic"):
        data = models[kind][0].read_bytes()
        rng = random.Random(kind)
        for _ in range(1500):
            b = bytearray(data)
            pos = rng.randrange(0, len(b) - 4) & ~3
            value = rng.choice([rng.getrandbits(32), 0, 0xFFFFFFFF, 0x7FFFFFFF,
                                (struct.unpack_from("<I", b, pos)[0] + rng.choice([4, -4, 8, 1 << 16])) & 0xFFFFFFFF])
            struct.pack_into("<I", b, pos, value)
            try:
                fb.read_tflite(bytes(b))
            except FlatbufferError as e:
                assert not str(e).startswith(SAFETY_NET), str(e)


def test_index_checks(models):
    data = models["float"][0].read_bytes()

    def bad_buffer(m):
        m.subgraphs[0].tensors[1].buffer = len(m.buffers) + 5

    def bad_opcode(m):
        m.subgraphs[0].operators[0].opcodeIndex = len(m.operatorCodes)

    def bad_input(m):
        m.subgraphs[0].inputs = [len(m.subgraphs[0].tensors)]

    def bad_op_tensor(m):
        m.subgraphs[0].operators[0].inputs = [0, -2]

    def bad_signature(m):
        m.signatureDefs[0].outputs[0].tensorIndex = 999

    def bad_signature_subgraph(m):
        m.signatureDefs[0].subgraphIndex = 3

    def no_subgraphs(m):
        m.subgraphs = []

    def no_buffers(m):
        m.buffers = None

    cases = [(bad_buffer, "subgraph 0 tensor 1 refers to buffer"),
             (bad_opcode, "subgraph 0 operator 0 uses opcode_index"),
             (bad_input, "subgraph 0 inputs refers to tensor"),
             (bad_op_tensor, "subgraph 0 operator 0 inputs refers to tensor -2"),
             (bad_signature, "refers to tensor 999"),
             (bad_signature_subgraph, "refers to subgraph 3"),
             (no_subgraphs, "no subgraphs"),
             (no_buffers, "no buffers")]
    for edit, match in cases:
        expect_error(_edit(data, edit), match)

    def optional_input(m):  # -1 marks an omitted optional operand and is legal
        m.subgraphs[0].operators[0].inputs = [*m.subgraphs[0].operators[0].inputs, -1]

    assert fb.read_tflite(_edit(data, optional_input)).op_histogram() == fb.read_tflite(data).op_histogram()


def test_missing_required_input_is_refused_before_litert_crashes(models, tmp_path):
    """A FULLY_CONNECTED whose weights are -1 passes every structural check but segfaults LiteRT in
    allocate_tensors(); the reader refuses it, and edgekit.load turns that into a ModelFileError."""
    import edgekit

    data = models["float"][0].read_bytes()
    names = fb.read_tflite(data).subgraphs[0].op_codes
    fc = names.index("FULLY_CONNECTED")

    def drop_weights(m):
        m.subgraphs[0].operators[fc].inputs[1] = -1

    bad = _edit(data, drop_weights)
    expect_error(bad, "required inputs")
    path = tmp_path / "no_weights.tflite"
    path.write_bytes(bad)
    with pytest.raises(edgekit.ModelFileError, match="FULLY_CONNECTED"):
        edgekit.load(path)


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


def _shared_table_model(n_refs: int, n_dims: int) -> bytes:
    """A subgraph whose tensors vector holds ``n_refs`` offsets to ONE tensor with an ``n_dims`` shape."""
    import flatbuffers

    s = _schema()
    b = flatbuffers.Builder(0)
    s.TensorStartShapeVector(b, n_dims)
    for _ in range(n_dims):
        b.PrependInt32(1)
    shape = b.EndVector()
    s.TensorStart(b)
    s.TensorAddShape(b, shape)
    tensor = s.TensorEnd(b)
    s.SubGraphStartTensorsVector(b, n_refs)
    for _ in range(n_refs):
        b.PrependUOffsetTRelative(tensor)
    tensors = b.EndVector()
    s.SubGraphStart(b)
    s.SubGraphAddTensors(b, tensors)
    graph = s.SubGraphEnd(b)
    s.BufferStart(b)
    buf0 = s.BufferEnd(b)
    s.ModelStartBuffersVector(b, 1)
    b.PrependUOffsetTRelative(buf0)
    buffers = b.EndVector()
    s.ModelStartSubgraphsVector(b, 1)
    b.PrependUOffsetTRelative(graph)
    graphs = b.EndVector()
    s.ModelStart(b)
    s.ModelAddVersion(b, 3)
    s.ModelAddSubgraphs(b, graphs)
    s.ModelAddBuffers(b, buffers)
    b.Finish(s.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_shared_tables_are_legal_but_amplification_is_bounded():
    small = fb.read_tflite(_shared_table_model(3, 4))
    assert [t.shape for t in small.subgraphs[0].tensors] == [(1, 1, 1, 1)] * 3
    bomb = _shared_table_model(20000, 20000)  # ~160 KB that would decode 4e8 ints
    expect_error(bomb, "far more objects")


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
