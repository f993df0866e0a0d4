"""ONNX pass: ``Reshape(x[N,C,H,W] -> [N,C,H*W])`` then ``Transpose(perm=[0,2,1])`` becomes
``Transpose(x, perm=[0,2,3,1])`` then ``Reshape(-> [N,H*W,C])``: the same numbers, in the order onnx2tf handles.

Detection heads written in PyTorch as ``conv(h).flatten(2).transpose(1, 2)`` (boxes/scores per anchor,
[batch, anchors, 4]) export as the first form. onnx2tf keeps tensors NHWC inside and lost track of this one: the
TFLite output came out [1, 8, 32] instead of [1, 64, 4] (the parity gate caught it, max abs error ~1). The second
form, what ``permute(0, 2, 3, 1).reshape(b, -1, 4)`` exports, converts exactly.

Matched only where the transposed tensor is a graph output (through elementwise ops only), and only when shape
inference proves it: ``x`` is 4-D with static C, H, W, the Reshape's output is 3-D with
dim 1 equal to C and either dim 2 equal to H*W or dim 0 equal to N (a size or the same symbol), and the Reshape's
output feeds only the Transpose.
"""

from __future__ import annotations


def run(model) -> int:
    """Rewrite ``model`` (an ``onnx.ModelProto``, changed in place); returns how many pairs were rewritten."""
    import onnx
    from onnx import helper, numpy_helper

    import numpy as np

    shapes = _shapes(onnx.shape_inference.infer_shapes(model, data_prop=True))  # data_prop: Shape->Concat targets
    graph = model.graph
    users: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    count = 0
    for node in list(graph.node):
        if node.op_type != "Reshape" or node.output[0] in outputs:
            continue
        after = users.get(node.output[0], [])
        if len(after) != 1 or after[0].op_type != "Transpose" or _perm(after[0]) != [0, 2, 1]:
            continue
        x, y = shapes.get(node.input[0]), shapes.get(node.output[0])
        if not _channels_flatten(x, y) or not _to_output(after[0].output[0], users, outputs):
            continue
        t = after[0]
        const = f"{node.output[0]}__nhwc_shape"
        graph.initializer.append(numpy_helper.from_array(np.array([0, -1, x[1]], np.int64), const))
        node.op_type, node.input[:] = "Transpose", [node.input[0]]
        del node.attribute[:]
        node.attribute.append(helper.make_attribute("perm", [0, 2, 3, 1]))
        t.op_type, t.input[:] = "Reshape", [node.output[0], const]
        del t.attribute[:]
        count += 1
    if count:  # the value info of the renamed intermediate no longer holds
        keep = [v for v in graph.value_info if v.name not in {n.output[0] for n in graph.node}]
        del graph.value_info[:]
        graph.value_info.extend(keep)
    return count


def _to_output(name: str, users: dict, outputs: set) -> bool:
    """Whether ``name`` reaches a graph output through elementwise ops only. onnx2tf lost track of the layout there
    (a head's result); where the transposed tensor feeds more layers (a MatMul head) it converts the original form
    exactly and scrambled the rewritten one, so the pass leaves those alone."""
    for _ in range(8):
        if name in outputs:
            return True
        nxt = users.get(name, [])
        if len(nxt) != 1 or nxt[0].op_type not in _ELEMENTWISE:
            return False
        name = nxt[0].output[0]
    return False


_ELEMENTWISE = ("Sigmoid", "Relu", "Tanh", "Exp", "Identity", "Clip", "LeakyRelu", "HardSigmoid")


def _perm(node) -> list[int] | None:
    for a in node.attribute:
        if a.name == "perm":
            return list(a.ints)
    return None


def _shapes(model) -> dict[str, list]:
    """name -> dims (an int, a symbol's name, or None when unknown) for every value shape inference typed."""
    out = {}
    for v in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        t = v.type.tensor_type
        if t.HasField("shape"):
            out[v.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
    return out


def _channels_flatten(x, y) -> bool:
    if x is None or y is None or len(x) != 4 or len(y) != 3:
        return False
    n, c, h, w = x
    if not all(isinstance(d, int) for d in (c, h, w)) or y[1] != c:
        return False
    # [N, C, H*W]: dim 2 is H*W, or dim 0 is provably N (the same size or the same symbol) and the rest follows
    return y[2] == h * w or (n is not None and y[0] == n)
