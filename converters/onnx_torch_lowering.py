"""An owned lowering of an ONNX graph to a torch.nn.Module: one torch call per ONNX node, for a tested op set.

The module runs the graph node by node. Constant subgraphs are folded once, eagerly; what a node needs as plain
integers (axes, shapes, slice bounds) comes from those constants or from shape values, which stay Python lists of
ints (or, under torch.export with dynamic dims, SymInts) instead of int64 tensors, so a Shape -> Gather -> Concat
-> Reshape chain is exported as a reshape with symbolic sizes. An op outside ``SUPPORTED`` (or a non-standard domain)
fails naming the op before any tracing (``unsupported``).
"""

from __future__ import annotations

import numpy as np

from .onnx_torch_ops import STATIC, SUPPORTED, build_ops
from .onnx_torch_shape_ops import Dims, to_tensor


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class Node:
    __slots__ = ("op", "inputs", "outputs", "attrs", "name", "opset")

    def __init__(self, op, inputs, outputs, attrs, name, opset):
        self.op, self.inputs, self.outputs, self.attrs, self.name = op, inputs, outputs, attrs, name
        self.opset = opset  # the model's default-domain opset: a few ops changed meaning across versions


SMALL = 64  # constants up to this many elements stay numpy (static); larger ones become buffers


def unsupported(model) -> list[str]:
    """The ops of ``model`` (an onnx.ModelProto, local functions inlined) this lowering cannot run."""
    bad = [f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
           for n in model.graph.node if n.domain not in ("", "ai.onnx") or n.op_type not in SUPPORTED]
    return list(dict.fromkeys(bad))


def lower(model):
    """An nn.Module running ``model`` (an onnx.ModelProto): forward takes the graph inputs (initializers
    excluded) in order and returns a tuple of the graph outputs. Raises NotImplementedError naming the first
    unsupported op (``.op`` holds it)."""
    import onnx

    model = onnx.inliner.inline_local_functions(model) if model.functions else model
    bad = unsupported(model)
    if bad:
        err = NotImplementedError(f"ONNX op {bad[0]} is not in the lowering's op set"
                                  + (f" (also: {', '.join(bad[1:])})" if bad[1:] else ""))
        err.op = bad[0]
        raise err
    return _module_class()(model)


def _build_module_class():
    import onnx
    import torch
    from onnx import numpy_helper

    class _OnnxModule(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            g = model.graph
            inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
            self.input_names = [i.name for i in g.input if i.name not in inits]
            self.output_names = [o.name for o in g.output]
            opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 21)
            self.nodes = [Node(n.op_type, list(n.input), list(n.output), _attrs(n), n.name, opset) for n in g.node]
            self._static: dict[str, np.ndarray] = {}
            self._buffers_of: dict[str, str] = {}
            for name, arr in inits.items():
                self._keep(name, arr)
            self._fold()

        def _keep(self, name, value):
            arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            if arr.size <= SMALL:  # static: read as plain numbers where an op needs them (axes, scales, ...)
                self._static[name] = arr
            else:
                key = f"c{len(self._buffers_of)}"
                self.register_buffer(key, torch.from_numpy(arr.copy()), persistent=False)
                self._buffers_of[name] = key

        def _known(self, name):
            return name == "" or name in self._static or name in self._buffers_of

        def _fold(self):
            """Run the nodes whose inputs are all constants once, eagerly; drop them from the graph."""
            kept = []
            for n in self.nodes:
                if n.op == "Constant":
                    value = n.attrs.get("value")
                    arr = numpy_helper.to_array(value) if value is not None else np.asarray(
                        next(v for k, v in n.attrs.items() if k.startswith("value_")))
                    self._keep(n.outputs[0], arr)
                elif n.op != "Shape" and all(self._known(i) for i in n.inputs):
                    with torch.no_grad():
                        outs = self._run(n, {})
                    for name, v in zip(n.outputs, outs):
                        self._keep(name, to_tensor(v))
                else:
                    kept.append(n)
            self.nodes = kept

        def _get(self, env, name):
            if name == "":
                return None
            if name in env:
                return env[name]
            if name in self._static:
                return self._static[name]
            return getattr(self, self._buffers_of[name])

        def _run(self, n, env):
            vals = [self._get(env, i) for i in n.inputs]
            if not any(isinstance(v, Dims) for v in vals):
                static = STATIC.get(n.op, ())
                vals = [to_tensor(v) if isinstance(v, np.ndarray) and i not in static else v
                        for i, v in enumerate(vals)]
            while vals and vals[-1] is None:
                vals.pop()
            try:
                out = _op_table()[n.op](n, *vals)
            except NotImplementedError as e:
                e.op = n.op
                raise
            return out if isinstance(out, tuple) else (out,)

        def forward(self, *args):
            env = dict(zip(self.input_names, args))
            for n in self.nodes:
                env.update(zip(n.outputs, self._run(n, env)))
            return tuple(to_tensor(self._get(env, o)) for o in self.output_names)

    return _OnnxModule


_CACHE: dict = {}


def _op_table() -> dict:
    if "ops" not in _CACHE:
        _CACHE["ops"] = build_ops()
    return _CACHE["ops"]


def _module_class():
    if "cls" not in _CACHE:
        _CACHE["cls"] = _build_module_class()
    return _CACHE["cls"]
