"""An owned lowering of an ONNX graph to a torch.nn.Module: one torch call per ONNX node, for a tested op set.

The module runs the graph node by node. Constant subgraphs are folded once, eagerly; what a node needs as plain
integers (axes, shapes, slice bounds) comes from those constants or from shape values, which stay Python lists of
ints (or, under torch.export with dynamic dims, SymInts) instead of int64 tensors, so a Shape -> Gather -> Concat
-> Reshape chain is exported as a reshape with symbolic sizes. An op outside ``SUPPORTED`` (or a non-standard domain)
fails naming the op before any tracing (``unsupported``).
"""

from __future__ import annotations

import numpy as np

# ONNX TensorProto element type -> torch dtype name
DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
          11: "float64", 16: "bfloat16"}


class Dims(list):
    """A shape value (the output of Shape and what is computed from it): Python ints or SymInts."""


class Scalar(Dims):
    """A 0-d shape value (one element of a shape): a one-element list."""


def _dt(code: int):
    import torch

    return getattr(torch, DTYPES[code])


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class Node:
    __slots__ = ("op", "inputs", "outputs", "attrs", "name")

    def __init__(self, op, inputs, outputs, attrs, name):
        self.op, self.inputs, self.outputs, self.attrs, self.name = op, inputs, outputs, attrs, name


def _ints(v) -> list:
    """A static integer list from a shape value, a constant tensor or a Python list."""
    if isinstance(v, Dims):
        return list(v)
    if hasattr(v, "tolist"):
        out = v.tolist()
        return out if isinstance(out, list) else [out]
    return list(v)


def _tensor(v):
    import torch

    if isinstance(v, np.ndarray):
        return torch.from_numpy(v.copy())
    if isinstance(v, Scalar):
        return torch.as_tensor(v[0], dtype=torch.int64)
    if isinstance(v, Dims):
        return torch.stack([torch.as_tensor(d, dtype=torch.int64) for d in v]) if v else torch.zeros(
            0, dtype=torch.int64)
    return v


def _shape_math(fn, a, b):
    """Elementwise arithmetic where one side is a shape value: stays a shape value."""
    xs, ys = _ints(a), _ints(b)
    if len(xs) == 1 and len(ys) != 1:
        xs = xs * len(ys)
    if len(ys) == 1 and len(xs) != 1:
        ys = ys * len(xs)
    scalar = all(isinstance(v, Scalar) or np.ndim(v) == 0 for v in (a, b))
    return (Scalar if scalar else Dims)(fn(x, y) for x, y in zip(xs, ys))


def _binary(torch_fn, py_fn):
    def op(n, a, b):
        if isinstance(a, Dims) or isinstance(b, Dims):
            return _shape_math(py_fn, a, b)
        return torch_fn(a, b)
    return op


def _div(a, b):
    import torch

    if not a.dtype.is_floating_point:
        return torch.div(a, b, rounding_mode="trunc")
    return a / b


def _axes(n, inputs, pos, rank=None):
    axes = n.attrs.get("axes")
    if axes is None and len(inputs) > pos and inputs[pos] is not None:
        axes = _ints(inputs[pos])
    if axes is None:
        return None
    return [a + rank if a < 0 and rank is not None else a for a in axes]


def _pads(n, rank: int):
    pads = list(n.attrs.get("pads", [0] * (2 * rank)))
    if n.attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise NotImplementedError(f"{n.op} auto_pad={n.attrs['auto_pad']!r}")
    begin, end = pads[:rank], pads[rank:]
    return begin, end


def _conv(n, x, w, b=None):
    import torch.nn.functional as F

    rank = x.dim() - 2
    begin, end = _pads(n, rank)
    if begin != end:
        x = F.pad(x, [p for i in reversed(range(rank)) for p in (begin[i], end[i])])
        begin = [0] * rank
    fn = (F.conv1d, F.conv2d, F.conv3d)[rank - 1]
    return fn(x, w, b, stride=n.attrs.get("strides", 1), padding=begin, dilation=n.attrs.get("dilations", 1),
              groups=n.attrs.get("group", 1))


def _conv_transpose(n, x, w, b=None):
    import torch.nn.functional as F

    rank = x.dim() - 2
    begin, end = _pads(n, rank)
    if begin != end or "output_shape" in n.attrs:
        raise NotImplementedError("ConvTranspose with asymmetric pads or output_shape")
    fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[rank - 1]
    return fn(x, w, b, stride=n.attrs.get("strides", 1), padding=begin,
              output_padding=n.attrs.get("output_padding", 0), groups=n.attrs.get("group", 1),
              dilation=n.attrs.get("dilations", 1))


def _gemm(n, a, b, c=None):
    if n.attrs.get("transA"):
        a = a.t()
    if n.attrs.get("transB"):
        b = b.t()
    y = (a @ b) * n.attrs.get("alpha", 1.0)
    return y if c is None else y + c * n.attrs.get("beta", 1.0)


def _pool(n, x, kind: str):
    import torch.nn.functional as F

    rank = x.dim() - 2
    k = n.attrs["kernel_shape"]
    begin, end = _pads(n, rank)
    if begin != end:
        raise NotImplementedError(f"{n.op} with asymmetric pads")
    stride, ceil = n.attrs.get("strides", [1] * rank), bool(n.attrs.get("ceil_mode", 0))
    if kind == "max":
        if n.attrs.get("storage_order") or len(n.outputs) > 1:
            raise NotImplementedError("MaxPool indices output")
        fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[rank - 1]
        return fn(x, k, stride, begin, n.attrs.get("dilations", 1), ceil)
    if any(d != 1 for d in n.attrs.get("dilations", [1])):
        raise NotImplementedError("AveragePool with dilations")
    fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[rank - 1]
    return fn(x, k, stride, begin, ceil, bool(n.attrs.get("count_include_pad", 0)))


def _reduce(fn_name):
    def op(n, x, axes_in=None):
        import torch

        axes = _axes(n, [x, axes_in], 1, x.dim())
        keep = bool(n.attrs.get("keepdims", 1))
        if axes is None or axes == []:
            if n.attrs.get("noop_with_empty_axes"):
                return x
            axes = list(range(x.dim()))
        if fn_name == "mean":
            return torch.mean(x, dim=axes, keepdim=keep)
        if fn_name == "sum":
            return torch.sum(x, dim=axes, keepdim=keep)
        return (torch.amax if fn_name == "max" else torch.amin)(x, dim=axes, keepdim=keep)
    return op


def _reshape(n, x, shape):
    dims = _ints(shape)
    if isinstance(x, Dims):  # a shape value reshaped to 0-d or 1-d
        return Scalar(x) if dims == [] else Dims(x)
    if not n.attrs.get("allowzero"):
        dims = [x.shape[i] if isinstance(d, int) and d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _slice(n, x, starts=None, ends=None, axes=None, steps=None):
    if n.attrs.get("starts") is not None:  # opset < 10
        starts, ends, axes = n.attrs["starts"], n.attrs["ends"], n.attrs.get("axes")
    if isinstance(x, Dims):
        s, e = _ints(starts)[0], _ints(ends)[0]
        step = _ints(steps)[0] if steps is not None else 1
        return Dims(list(x)[s:e:step] if abs(e) < 1 << 62 else list(x)[s::step])
    starts, ends = _ints(starts), _ints(ends)
    axes = _ints(axes) if axes is not None else list(range(len(starts)))
    steps = _ints(steps) if steps is not None else [1] * len(starts)
    idx = [slice(None)] * x.dim()
    for s, e, a, st in zip(starts, ends, axes, steps):
        if isinstance(st, int) and st < 0:
            raise NotImplementedError("Slice with a negative step")
        e = None if isinstance(e, int) and e >= 1 << 62 else e
        idx[a % x.dim()] = slice(s, e, st)
    return x[tuple(idx)]


def _gather(n, x, idx):
    import torch

    axis = n.attrs.get("axis", 0)
    if isinstance(x, Dims):
        i = _ints(idx)
        return Scalar([x[i[0]]]) if np.ndim(idx) == 0 else Dims(x[j] for j in i)
    axis %= x.dim()
    if isinstance(idx, np.ndarray) and idx.ndim == 0:
        return x.select(axis, int(idx))
    idx = _tensor(idx)
    if idx.dim() == 0:
        return torch.index_select(x, axis, idx.reshape(1)).squeeze(axis)
    flat = torch.where(idx < 0, idx + x.shape[axis], idx).reshape(-1)
    out = torch.index_select(x, axis, flat)
    return out.reshape(list(x.shape[:axis]) + list(idx.shape) + list(x.shape[axis + 1:]))


def _unsqueeze(n, x, axes=None):
    axes = _axes(n, [x, axes], 1)
    if isinstance(x, Dims):  # a scalar shape element made a 1-D shape value
        return Dims(x)
    rank = x.dim() + len(axes)
    for a in sorted(a % rank for a in axes):
        x = x.unsqueeze(a)
    return x


def _squeeze(n, x, axes=None):
    if isinstance(x, Dims):
        return Scalar(x)
    axes = _axes(n, [x, axes], 1, x.dim())
    if axes is None:
        return x.squeeze()
    for a in sorted(axes, reverse=True):
        x = x.squeeze(a)
    return x


def _concat(n, *xs):
    import torch

    if any(isinstance(x, Dims) for x in xs):
        return Dims(d for x in xs for d in _ints(x))
    return torch.cat(xs, n.attrs["axis"])


def _cast(n, x):
    if isinstance(x, Dims):
        return x
    return x.to(_dt(n.attrs["to"]))


def _softmax(fn):
    def op(n, x):
        axis = n.attrs.get("axis", -1)
        return fn(x, axis)
    return op


def _layer_norm(n, x, scale, bias=None):
    import torch.nn.functional as F

    axis = n.attrs.get("axis", -1) % x.dim()
    shape = list(x.shape[axis:])
    return F.layer_norm(x, shape, scale.reshape(shape), None if bias is None else bias.reshape(shape),
                        n.attrs.get("epsilon", 1e-5))


def _batch_norm(n, x, scale, bias, mean, var):
    import torch.nn.functional as F

    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, n.attrs.get("epsilon", 1e-5))


def _gelu(n, x):
    import torch.nn.functional as F

    approx = n.attrs.get("approximate", b"none")
    return F.gelu(x, approximate=approx.decode() if isinstance(approx, bytes) else approx)


def _clip(n, x, lo=None, hi=None):
    import torch

    lo = n.attrs.get("min", lo)
    hi = n.attrs.get("max", hi)
    return torch.clamp(x, None if lo is None else lo, None if hi is None else hi)


def _transpose(n, x):
    perm = n.attrs.get("perm", list(range(x.dim() - 1, -1, -1)))
    return x.permute(perm)


def _flatten(n, x):
    axis = n.attrs.get("axis", 1) % max(x.dim(), 1) if n.attrs.get("axis", 1) else 0
    lead = 1
    for d in x.shape[:axis]:
        lead = lead * d
    return x.reshape(lead, -1)


def _shape(n, x):
    shape = list(x.shape) if not isinstance(x, Dims) else [len(x)]
    return Dims(shape[n.attrs.get("start", 0):n.attrs.get("end", len(shape))])


def _expand(n, x, shape):
    import torch

    dims = _ints(shape)
    rank = max(x.dim(), len(dims))
    dims = [1] * (rank - len(dims)) + dims
    have = [1] * (rank - x.dim()) + list(x.shape)
    target = [h if (isinstance(d, int) and d == 1) else d for d, h in zip(dims, have)]
    return torch.broadcast_to(x.reshape(have), target)


def _where(n, c, a, b):
    import torch

    return torch.where(_tensor(c), _tensor(a), _tensor(b))


def _constant_of_shape(n, shape):
    import torch

    value = n.attrs.get("value")
    fill = torch.from_numpy(__import__("onnx").numpy_helper.to_array(value).copy()) if value is not None else \
        torch.zeros(1)
    return torch.full(_ints(shape), fill.reshape(-1)[0].item(), dtype=fill.dtype)


def _ops() -> dict:
    import operator

    import torch
    import torch.nn.functional as F

    unary = {"Relu": torch.relu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Erf": torch.erf, "Exp": torch.exp,
             "Log": torch.log, "Sqrt": torch.sqrt, "Neg": torch.neg, "Abs": torch.abs, "Reciprocal": torch.reciprocal,
             "Softplus": F.softplus, "Floor": torch.floor, "Ceil": torch.ceil, "Not": torch.logical_not}
    ops = {k: (lambda fn: lambda n, x: fn(x))(fn) for k, fn in unary.items()}
    ops.update({
        "Identity": lambda n, x: x, "Dropout": lambda n, x, *rest: x,
        "Add": _binary(torch.add, operator.add), "Sub": _binary(torch.sub, operator.sub),
        "Mul": _binary(torch.mul, operator.mul), "Div": _binary(_div, operator.floordiv),
        "Pow": lambda n, a, b: torch.pow(a, b), "Equal": _binary(torch.eq, operator.eq),
        "Less": lambda n, a, b: torch.lt(a, b), "Greater": lambda n, a, b: torch.gt(a, b),
        "Max": lambda n, *xs: _fold(torch.maximum, xs), "Min": lambda n, *xs: _fold(torch.minimum, xs),
        "Sum": lambda n, *xs: _fold(torch.add, xs), "Where": _where,
        "MatMul": lambda n, a, b: torch.matmul(a, b), "Gemm": _gemm, "Conv": _conv, "ConvTranspose": _conv_transpose,
        "Gelu": _gelu, "Clip": _clip, "LeakyRelu": lambda n, x: F.leaky_relu(x, n.attrs.get("alpha", 0.01)),
        "HardSigmoid": lambda n, x: torch.clamp(x * n.attrs.get("alpha", 0.2) + n.attrs.get("beta", 0.5), 0, 1),
        "Softmax": _softmax(torch.softmax), "LogSoftmax": _softmax(torch.log_softmax),
        "LayerNormalization": _layer_norm, "BatchNormalization": _batch_norm,
        "MaxPool": lambda n, x: _pool(n, x, "max"), "AveragePool": lambda n, x: _pool(n, x, "avg"),
        "GlobalAveragePool": lambda n, x: x.mean(dim=list(range(2, x.dim())), keepdim=True),
        "GlobalMaxPool": lambda n, x: x.amax(dim=list(range(2, x.dim())), keepdim=True),
        "ReduceMean": _reduce("mean"), "ReduceSum": _reduce("sum"), "ReduceMax": _reduce("max"),
        "ReduceMin": _reduce("min"), "Reshape": _reshape, "Transpose": _transpose, "Flatten": _flatten,
        "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Concat": _concat, "Slice": _slice, "Gather": _gather,
        "Cast": _cast, "Shape": _shape, "Expand": _expand, "ConstantOfShape": _constant_of_shape,
    })
    return ops


def _fold(fn, xs):
    out = xs[0]
    for x in xs[1:]:
        out = fn(out, x)
    return out


SUPPORTED = ("Abs Add AveragePool BatchNormalization Cast Ceil Clip Concat ConstantOfShape Constant Conv "
             "ConvTranspose Div Dropout Equal Erf Exp Expand Flatten Floor Gather Gelu Gemm GlobalAveragePool "
             "GlobalMaxPool Greater HardSigmoid Identity LayerNormalization LeakyRelu Less Log LogSoftmax MatMul Max "
             "MaxPool Min Mul Neg Not Pow Reciprocal ReduceMax ReduceMean ReduceMin ReduceSum Relu Reshape Shape "
             "Sigmoid Slice Softmax Softplus Sqrt Squeeze Sub Sum Tanh Transpose Unsqueeze Where").split()

# inputs read as plain integers (kept as numpy constants or shape values, never made tensors)
STATIC = {"Reshape": (1,), "Slice": (1, 2, 3, 4), "Squeeze": (1,), "Unsqueeze": (1,), "ReduceMean": (1,),
          "ReduceSum": (1,), "ReduceMax": (1,), "ReduceMin": (1,), "Expand": (1,), "ConstantOfShape": (0,),
          "Gather": (1,)}
SMALL = 64  # integer constants up to this many elements stay numpy (static); others become buffers


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
            self.nodes = [Node(n.op_type, list(n.input), list(n.output), _attrs(n), n.name) for n in g.node]
            self._static: dict[str, np.ndarray] = {}
            self._buffers_of: dict[str, str] = {}
            for name, arr in inits.items():
                self._keep(name, arr)
            self._fold()

        def _keep(self, name, value):
            arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            if arr.dtype.kind in "iub" and arr.size <= SMALL:
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
                        self._keep(name, _tensor(v))
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
                vals = [_tensor(v) if isinstance(v, np.ndarray) and i not in static else v
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
            return tuple(_tensor(self._get(env, o)) for o in self.output_names)

    return _OnnxModule


_CACHE: dict = {}


def _op_table() -> dict:
    if "ops" not in _CACHE:
        _CACHE["ops"] = _ops()
    return _CACHE["ops"]


def _module_class():
    if "cls" not in _CACHE:
        _CACHE["cls"] = _build_module_class()
    return _CACHE["cls"]
