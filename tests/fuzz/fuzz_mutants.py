"""Deterministic mutants of model files: truncations, byte flips and structural edits.

Structural edits change what a parser accepts but a runtime may trip over: tensor indices, buffers and operator
inputs/outputs of a TFLite flatbuffer (through the official generated schema code), node inputs, initializers and
attributes of an ONNX graph, and edges, constants and shapes of an OpenVINO IR. Every function takes a
``random.Random`` so a fixed seed gives the same files on every run.
"""

from __future__ import annotations

import random
import struct

# ------------------------------------------------------------------------------------------------ bytes


def truncations(data: bytes, n: int, rng: random.Random) -> list[bytes]:
    """``n`` prefixes of ``data``: a few fixed cuts (empty, header, last byte) and random ones."""
    cuts = {0, 4, 8, len(data) - 1, len(data) // 2}
    while len(cuts) < n:
        cuts.add(rng.randrange(1, len(data)))
    return [data[:c] for c in sorted(cuts)[:n]]


def byte_flips(data: bytes, n: int, rng: random.Random, max_flips: int = 4) -> list[bytes]:
    """``n`` copies of ``data`` with 1..max_flips bytes changed (bit flip, 0x00, 0xFF or random)."""
    out = []
    for _ in range(n):
        b = bytearray(data)
        for _ in range(rng.randint(1, max_flips)):
            pos = rng.randrange(len(b))
            b[pos] = rng.choice([0, 0xFF, rng.randrange(256), b[pos] ^ (1 << rng.randrange(8))])
        out.append(bytes(b))
    return out


# ------------------------------------------------------------------------------------------------ TFLite


def _tflite_edit(m, rng: random.Random, S) -> None:
    g = rng.choice(m.subgraphs)
    nt = len(g.tensors)
    op = rng.choice(g.operators)

    def index():
        return rng.choice([-1, -1, nt, nt + 7, rng.randrange(nt), rng.randrange(nt)])

    kind = rng.choice(["op_in", "op_in", "op_out", "op_out", "sg_in", "sg_out", "buffer", "buffer", "shape",
                       "type", "opcode", "op_code", "drop_in", "add_in", "options", "quant", "const"])
    if kind == "op_in" and op.inputs is not None and len(op.inputs):
        op.inputs[rng.randrange(len(op.inputs))] = index()
    elif kind == "op_out" and op.outputs is not None and len(op.outputs):
        op.outputs[rng.randrange(len(op.outputs))] = index()
    elif kind == "sg_in":
        g.inputs[rng.randrange(len(g.inputs))] = rng.randrange(nt)
    elif kind == "sg_out":
        g.outputs[rng.randrange(len(g.outputs))] = index() if rng.random() < 0.3 else rng.randrange(nt)
    elif kind == "buffer":
        g.tensors[rng.randrange(nt)].buffer = rng.choice([0, rng.randrange(len(m.buffers)), len(m.buffers)])
    elif kind == "shape":
        t = g.tensors[rng.randrange(nt)]
        if t.shape is not None and len(t.shape):
            t.shape[rng.randrange(len(t.shape))] = rng.choice([0, -1, 1, 2, 7, 1 << 20])
        else:
            t.shape = [rng.choice([0, 1, 3])]
    elif kind == "type":
        g.tensors[rng.randrange(nt)].type = rng.randrange(0, 24)
    elif kind == "opcode":
        op.opcodeIndex = rng.randrange(len(m.operatorCodes))
    elif kind == "op_code":
        oc = rng.choice(m.operatorCodes)
        oc.builtinCode = rng.randrange(0, 160)
        oc.deprecatedBuiltinCode = min(oc.builtinCode, 127)
    elif kind == "drop_in" and op.inputs is not None and len(op.inputs):
        op.inputs = op.inputs[:-1]
    elif kind == "add_in":
        op.inputs = [*(op.inputs if op.inputs is not None else []), index()]
    elif kind == "options":
        o = op.builtinOptions
        fields = [k for k, v in vars(o).items() if isinstance(v, int) and not isinstance(v, bool)] if o else []
        if fields:
            setattr(o, rng.choice(fields), rng.choice([0, -1, 1, 2, 3, 100, 127, -128]))
        else:
            op.builtinOptionsType = rng.randrange(0, 127)
    elif kind == "quant":
        t = g.tensors[rng.randrange(nt)]
        q = t.quantization or S.QuantizationParametersT()
        t.quantization = q
        what = rng.choice(["scale", "zero_point", "dim"])
        if what == "scale":
            q.scale = [rng.choice([0.0, -1.0, 1e-30, 0.1])] * rng.choice([1, 2, 8])
        elif what == "zero_point":
            q.zeroPoint = [rng.choice([0, -200, 300])] * rng.choice([1, 2, 8])
        else:
            q.quantizedDimension = rng.choice([0, 1, 3, 7, 100])
    elif kind == "const":  # small integer constants: shapes, axes, gather indices
        small = [b for b in m.buffers if b.data is not None and 0 < len(b.data) <= 16 and len(b.data) % 4 == 0]
        if small:
            b = rng.choice(small)
            data = bytearray(bytes(b.data))
            struct.pack_into("<i", data, 4 * rng.randrange(len(data) // 4), rng.choice([-1, 0, -5, 100, 1 << 30]))
            b.data = list(data)


def tflite_structural(data: bytes, n: int, rng: random.Random, max_edits: int = 2) -> list[bytes]:
    """``n`` TFLite files, each with 1..max_edits structural edits (needs ai-edge-litert's schema module)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as S

    out = []
    while len(out) < n:
        m = S.ModelT.InitFromPackedBuf(bytearray(data), 0)
        for _ in range(rng.randint(1, max_edits)):
            _tflite_edit(m, rng, S)
        b = flatbuffers.Builder(1024)
        try:
            b.Finish(m.Pack(b), file_identifier=b"TFL3")
        except (TypeError, ValueError, OverflowError, struct.error):  # a value the field type cannot hold
            continue
        out.append(bytes(b.Output()))
    return out


# ------------------------------------------------------------------------------------------------ ONNX

_ONNX_OPS = ["Conv", "Relu", "Reshape", "MatMul", "Add", "Softmax", "Gemm", "Transpose", "Concat", "Gather",
             "Slice", "Split", "Flatten", "MaxPool", "Expand", "Tile", "Resize", "Pad", "TopK", "Unsqueeze"]


def _onnx_edit(model, rng: random.Random) -> None:
    from onnx import TensorProto, helper

    g = model.graph
    names = [i.name for i in g.input] + [t.name for t in g.initializer] + [o for n in g.node for o in n.output]
    node = rng.choice(g.node)
    kind = rng.choice(["input", "input", "output", "op_type", "attr", "init_dims", "init_data", "init_type",
                       "init_drop", "graph_in", "graph_out", "opset", "shape_const"])
    if kind == "input" and node.input:
        node.input[rng.randrange(len(node.input))] = rng.choice([*names, "", "missing"])
    elif kind == "output":
        node.output[0] = rng.choice([*names, "loop"])
    elif kind == "op_type":
        node.op_type = rng.choice(_ONNX_OPS)
    elif kind == "attr":
        if node.attribute:
            a = rng.choice(node.attribute)
            if a.ints:
                a.ints[rng.randrange(len(a.ints))] = rng.choice([0, -1, 2, 1 << 30])
            else:
                a.i = rng.choice([0, -5, 3, 1 << 30])
        else:
            node.attribute.append(helper.make_attribute(rng.choice(["axis", "group", "kernel_shape"]),
                                                        rng.choice([-7, 0, 5])))
    elif kind in ("init_dims", "init_data", "init_type", "init_drop", "shape_const") and g.initializer:
        t = rng.choice(g.initializer)
        if kind == "shape_const":
            t = next((x for x in g.initializer if x.data_type == TensorProto.INT64), t)
            raw = bytearray(t.raw_data)
            if len(raw) >= 8:
                struct.pack_into("<q", raw, 8 * rng.randrange(len(raw) // 8), rng.choice([-1, 0, -3, 1 << 40]))
                t.raw_data = bytes(raw)
        elif kind == "init_dims" and t.dims:
            t.dims[rng.randrange(len(t.dims))] = rng.choice([0, 1, 7, 1 << 20])
        elif kind == "init_data":
            t.raw_data = t.raw_data[: rng.randrange(len(t.raw_data) + 1)]
        elif kind == "init_type":
            t.data_type = rng.randrange(0, 22)
        else:
            g.initializer.remove(t)
    elif kind == "graph_in":
        dims = g.input[0].type.tensor_type.shape.dim
        if rng.random() < 0.5 and dims:
            dims[rng.randrange(len(dims))].dim_value = rng.choice([0, 3, 1 << 20])
        else:
            g.input[0].type.tensor_type.elem_type = rng.randrange(0, 22)
    elif kind == "graph_out":
        g.output[0].name = rng.choice([*names, "missing"])
    elif kind == "opset":
        model.opset_import[0].version = rng.choice([1, 7, 13, 99])


def onnx_structural(data: bytes, n: int, rng: random.Random, max_edits: int = 2) -> list[bytes]:
    import onnx

    out = []
    for _ in range(n):
        m = onnx.load_from_string(data)
        for _ in range(rng.randint(1, max_edits)):
            _onnx_edit(m, rng)
        out.append(m.SerializeToString())
    return out


# ------------------------------------------------------------------------------------------------ IR


def _ir_edit(root, bin_size: int, rng: random.Random) -> None:
    layers = root.find("layers").findall("layer")
    edges = root.find("edges").findall("edge")
    kind = rng.choice(["edge", "edge", "const", "const", "dim", "type", "layer_type", "drop_edge", "drop_layer"])
    if kind == "edge" and edges:
        e = rng.choice(edges)
        attr = rng.choice(["from-layer", "from-port", "to-layer", "to-port"])
        e.set(attr, str(rng.choice([-1, 0, 1, 2, 99, int(e.get(attr)) + 1])))
    elif kind == "const":
        data = [d for d in root.iter("data") if d.get("offset") is not None]
        if data:
            d = rng.choice(data)
            attr = rng.choice(["offset", "size", "element_type", "shape"])
            d.set(attr, {"offset": lambda: str(rng.choice([bin_size, bin_size - 4, 1 << 40, 3])),
                         "size": lambda: str(rng.choice([0, 4, bin_size + 4, 1 << 40])),
                         "element_type": lambda: rng.choice(["i64", "u8", "f16", "boolean", "string", "u1"]),
                         "shape": lambda: rng.choice(["0", "1000000,1000000", "-1", "3,3"])}[attr]())
    elif kind == "dim":
        dims = list(root.iter("dim"))
        if dims:
            rng.choice(dims).text = str(rng.choice([0, -1, 7, 1 << 40]))
    elif kind == "type":
        ports = [p for p in root.iter("port") if p.get("precision")]
        if ports:
            rng.choice(ports).set("precision", rng.choice(["I64", "U8", "FP16", "BOOL", "STRING"]))
    elif kind == "layer_type":
        rng.choice(layers).set("type", rng.choice(["Convolution", "ReLU", "Reshape", "MatMul", "Add", "SoftMax",
                                                    "Const", "Parameter", "Result", "Concat", "NotAnOp"]))
    elif kind == "drop_edge" and edges:
        root.find("edges").remove(rng.choice(edges))
    elif kind == "drop_layer":
        root.find("layers").remove(rng.choice(layers))


def ir_structural(xml: bytes, bin_data: bytes, n: int, rng: random.Random, max_edits: int = 2) -> list[tuple]:
    """``n`` (xml, bin) pairs: edited XML, and now and then a shortened .bin."""
    import xml.etree.ElementTree as ET

    out = []
    for _ in range(n):
        root = ET.fromstring(xml)
        for _ in range(rng.randint(1, max_edits)):
            _ir_edit(root, len(bin_data), rng)
        b = bin_data[: rng.randrange(len(bin_data))] if rng.random() < 0.15 else bin_data
        out.append((ET.tostring(root), b))
    return out
