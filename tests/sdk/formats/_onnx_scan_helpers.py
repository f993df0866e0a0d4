"""Shared by the test_onnx_scan_*.py files: the reference view of a model through the onnx package
(what the stdlib scanner must agree with) and the small ONNX models the tests build.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit.formats import onnx_scan as scan


# ---------------------------------------------------------------- reference view through the onnx package

def _subgraphs(node):
    for a in node.attribute:
        if a.HasField("g"):
            yield a.g
        yield from a.graphs


def _graphs(g):
    """``g`` and every subgraph below it (If/Loop/Scan bodies)."""
    yield g
    for n in g.node:
        for sg in _subgraphs(n):
            yield from _graphs(sg)


def _all_graphs(model):
    graphs = list(_graphs(model.graph))
    for f in model.functions:
        for n in f.node:
            for sg in _subgraphs(n):
                graphs += _graphs(sg)
    return graphs


def _all_nodes(model):
    return [n for g in _all_graphs(model) for n in g.node] + [n for f in model.functions for n in f.node]


def ref_histogram(model) -> dict[str, int]:
    return dict(Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
                        for n in _all_nodes(model)))


def ref_params(model) -> int:
    """Elements of weight tensors; int64/bool/string tensors (shapes, axes, indices) are not parameters."""
    def size(t) -> int:
        return 0 if t.data_type in (TensorProto.INT64, TensorProto.BOOL, TensorProto.STRING) \
            else numpy_helper.to_array(t).size

    total = 0
    for g in _all_graphs(model):
        total += sum(size(t) for t in g.initializer)
        total += sum(size(s.values) for s in g.sparse_initializer)
    for n in _all_nodes(model):
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            for a in n.attribute:
                if a.HasField("t"):
                    total += size(a.t)
                if a.HasField("sparse_tensor"):
                    total += size(a.sparse_tensor.values)
    return total


def _np_name(elem_type: int) -> str:
    return "string" if elem_type == TensorProto.STRING else helper.tensor_dtype_to_np_dtype(elem_type).name


def ref_values(model, which: str):
    inits = {t.name for t in model.graph.initializer} | {s.values.name for s in model.graph.sparse_initializer}
    out = []
    for vi in getattr(model.graph, which):
        if which == "input" and vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = None
        if tt.HasField("shape"):
            shape = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param if d.HasField("dim_param") else None
                          for d in tt.shape.dim)
        out.append((vi.name, tt.elem_type, _np_name(tt.elem_type), shape))
    return out


def assert_matches_onnx(path: Path, model=None):
    model = model if model is not None else onnx.load(str(path))
    info = scan.scan_onnx(path)
    assert info.ir_version == model.ir_version
    assert info.producer == f"{model.producer_name} {model.producer_version}".strip()
    assert info.opsets == {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}
    assert info.op_histogram == ref_histogram(model)
    assert info.parameter_count == ref_params(model)
    got_in = [(v.name, v.elem_type, v.dtype, v.shape) for v in info.inputs]
    got_out = [(v.name, v.elem_type, v.dtype, v.shape) for v in info.outputs]
    assert got_in == ref_values(model, "input")
    assert got_out == ref_values(model, "output")
    with open(path, "rb") as f:
        assert scan.looks_like_onnx(f.read(4096))
    return info


def assert_ort_agrees(path: Path, info):
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, list(i.shape)) for i in sess.get_inputs()] == [(v.name, list(v.shape)) for v in info.inputs]
    assert [o.name for o in sess.get_outputs()] == [v.name for v in info.outputs]


# ---------------------------------------------------------------- models

def _f32(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def conv_gemm_model(batch="N"):
    w = numpy_helper.from_array(_f32(4, 3, 3, 3), "conv.w")
    b = numpy_helper.from_array(_f32(4, seed=1), "conv.b")
    g = numpy_helper.from_array(_f32(10, 4 * 8 * 8, seed=2), "fc.w")
    nodes = [
        helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Constant", [], ["bias"], value=numpy_helper.from_array(_f32(10, seed=3), "bias_c")),
        helper.make_node("Gemm", ["f", "fc.w", "bias"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"]),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8]),
              # IR<4 style: an initializer also listed as a graph input is not a user input
              helper.make_tensor_value_info("conv.b", TensorProto.FLOAT, [4])]
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, 10])]
    graph = helper.make_graph(nodes, "convgemm", inputs, outputs, [w, b, g])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgekit-test",
                              producer_version="1.0")
    onnx.checker.check_model(model)
    return model


def _branch(name, scale, nested=None):
    nodes = [helper.make_node("Constant", [], [f"{name}_k"], value=numpy_helper.from_array(
                 np.full((2, 3), scale, np.float32), f"{name}_kt")),
             helper.make_node("Mul", ["x", f"{name}_k"], [f"{name}_m"]),
             helper.make_node("Add", [f"{name}_m", f"{name}_init"], [f"{name}_out"])]
    inits = [numpy_helper.from_array(_f32(2, 3, seed=int(scale)), f"{name}_init")]
    if nested is not None:
        nodes[-1].output[0] = f"{name}_pre"
        nodes.append(helper.make_node("If", ["flag"], [f"{name}_out"], then_branch=nested[0], else_branch=nested[1]))
    out = helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [2, 3])
    return helper.make_graph(nodes, name, [], [out], inits)


def if_function_model():
    inner = (_branch("inner_then", 5), _branch("inner_else", 6))
    then_g, else_g = _branch("then", 2, nested=inner), _branch("else", 3)
    fn = helper.make_function("com.example", "Scale2", ["a"], ["b"],
                              [helper.make_node("Constant", [], ["two"], value_float=2.0),
                               helper.make_node("Mul", ["a", "two"], ["b"])],
                              [helper.make_opsetid("", 17)])
    nodes = [helper.make_node("If", ["flag"], ["y0"], then_branch=then_g, else_branch=else_g),
             helper.make_node("Scale2", ["y0"], ["y"], domain="com.example")]
    graph = helper.make_graph(
        nodes, "main",
        [helper.make_tensor_value_info("flag", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(graph, functions=[fn], opset_imports=[helper.make_opsetid("", 17),
                                                                    helper.make_opsetid("com.example", 1)])
    onnx.checker.check_model(model)
    return model


def sparse_model():
    sp = helper.make_sparse_tensor(numpy_helper.from_array(np.array([1.0, 2.0, 3.0], np.float32), "S"),
                                   numpy_helper.from_array(np.array([0, 5, 11], np.int64), "S_idx"), [3, 4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "S"], ["y"])], "sparse",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])])
    graph.sparse_initializer.append(sp)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def save(model, path: Path) -> Path:
    onnx.save_model(model, str(path))
    return path
