"""The stdlib-only TFLite flatbuffer reader (edgekit.formats.tflite_fb) on corrupt files.

Files that are too short, misidentified, truncated, mutated, forged or amplified must raise FlatbufferError from
an explicit check (never the reader's catch-all, never another exception), quickly. Structural checks: offsets,
vtables, strings, vectors, shared tables; op-operand checks: tensor, buffer, opcode and signature indices and
missing required inputs. Real models come from the `models` fixture in conftest.py; agreement with LiteRT is in
test_tflite_fb_agreement.py.
"""

from __future__ import annotations

import random
import struct

import pytest

from _tflite_fb_helpers import KINDS, SAFETY_NET, FlatbufferError, _edit, _schema, expect_error, fb


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
