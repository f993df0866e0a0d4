"""The stdlib ONNX scanner fails closed on corrupt and hostile bytes: every truncation and random corruption
raises OnnxScanError (never another exception), nesting deep enough to exhaust the stack is refused while
moderate nesting is fine, and hand-encoded wire-level errors are each caught.

Agreement with onnx/onnxruntime is in test_onnx_scan_agreement.py; refusal rules in test_onnx_scan_refusal.py.
"""

from __future__ import annotations

import random

import pytest

import onnx
from onnx import TensorProto, helper

from edgekit.formats import onnx_scan as scan

from _onnx_scan_helpers import assert_matches_onnx, conv_gemm_model, if_function_model, save, sparse_model


# ---------------------------------------------------------------- corrupt and hostile files

def test_every_truncation_raises(tmp_path):
    for model in (if_function_model(), sparse_model(), conv_gemm_model()):
        data = model.SerializeToString()
        p = tmp_path / "t.onnx"
        step, undetectable = max(1, len(data) // 1500), 0
        for cut in list(range(0, len(data), step)) + [len(data) - 1]:
            p.write_bytes(data[:cut])
            try:
                scan.scan_onnx(p)
            except scan.OnnxScanError as e:
                assert any(w in str(e) for w in ("truncated", "not an ONNX", "corrupt", "incomplete")), cut
                continue
            # protobuf has no end marker: a cut between two top-level fields after graph and opset_import is
            # itself a valid ModelProto (protobuf parses it too); only trailing opsets/functions are lost
            prefix = onnx.ModelProto.FromString(data[:cut])
            assert prefix.graph == model.graph and len(prefix.opset_import) >= 1, cut
            undetectable += 1
        assert undetectable <= len(model.opset_import) + len(model.functions)


def test_random_corruption_never_crashes(tmp_path):
    data = bytearray(if_function_model().SerializeToString())
    rng = random.Random(7)
    p = tmp_path / "c.onnx"
    for _ in range(1500):
        bad = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            bad[rng.randrange(len(bad))] = rng.randrange(256)
        p.write_bytes(bytes(bad))
        try:
            scan.scan_onnx(p)
        except scan.OnnxScanError:
            pass


def _tag(fn, wt):
    return _uv(fn << 3 | wt)


def _uv(v):
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _ld(fn, payload):
    return _tag(fn, 2) + _uv(len(payload)) + payload


def test_deep_nesting_is_refused_not_recursion_error(tmp_path):
    graph = _ld(1, _ld(4, b"Relu"))                          # a graph with one node
    for _ in range(2000):                                    # node > attribute g > graph, 2000 times
        graph = _ld(1, _ld(4, b"If") + _ld(5, _ld(1, b"then_branch") + _ld(6, graph)))
    data = _tag(1, 0) + _uv(8) + _ld(7, graph) + _ld(8, _ld(1, b"") + _tag(2, 0) + _uv(17))
    p = tmp_path / "deep.onnx"
    p.write_bytes(data)
    assert scan.looks_like_onnx(data[:4096])
    with pytest.raises(scan.OnnxScanError, match="nested deeper"):
        scan.scan_onnx(p)


def test_moderate_nesting_is_fine(tmp_path):
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "leaf", [],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    for i in range(12):
        g = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=g, else_branch=g)], f"g{i}", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    info = assert_matches_onnx(save(model, tmp_path / "n.onnx"), model)
    assert info.op_histogram == {"If": 2 ** 12 - 1, "Identity": 2 ** 12}


def test_wire_level_errors(tmp_path):
    opset = _ld(8, _tag(2, 0) + _uv(17))
    cases = {
        "overlong varint in graph": _tag(1, 0) + _uv(8) + _ld(7, _tag(1, 0) + b"\xff" * 11 + b"\x01") + opset,
        "group wire type": _tag(1, 0) + _uv(8) + _ld(7, _tag(1, 3)) + opset,
        "node as varint": _tag(1, 0) + _uv(8) + _ld(7, _tag(1, 0) + _uv(5)) + opset,
        "overrun": _tag(1, 0) + _uv(8) + _ld(7, _tag(1, 2) + _uv(50) + b"abc") + opset,
        "negative dim": _tag(1, 0) + _uv(8) + _ld(7, _ld(5, _tag(1, 0) + _uv((1 << 64) - 3))) + opset,
        "no opset": _tag(1, 0) + _uv(8) + _ld(7, b""),
        "no graph": _tag(1, 0) + _uv(8) + _ld(2, b"x") + opset,
    }
    p = tmp_path / "w.onnx"
    for name, data in cases.items():
        p.write_bytes(data)
        with pytest.raises(scan.OnnxScanError):
            scan.scan_onnx(p)
    p.write_bytes(b"")
    with pytest.raises(scan.OnnxScanError, match="empty"):
        scan.scan_onnx(p)
