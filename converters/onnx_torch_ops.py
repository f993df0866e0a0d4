"""The ONNX ops of edgekit's ONNX -> torch lowering (onnx_torch_lowering): one function per op type, called as
``fn(node, *inputs)`` with the node's attributes in ``node.attrs``.

Shape values (Shape's output and what is computed from it) are ``Dims``/``Scalar`` lists of Python ints or, under
torch.export with dynamic dims, SymInts; integer constants up to a few dozen elements arrive as numpy arrays at
the positions in ``STATIC`` (axes, shapes, slice bounds, gather indices). ONNX semantics that torch has no direct
form for (asymmetric pool pads, negative slice steps, ConvTranspose output_shape) raise NotImplementedError.
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


def _ints(v) -> list:
    """A static integer list from a shape value, a constant tensor or a Python list."""
    if isinstance(v, Dims):
        return list(v)
    if hasattr(v, "tolist"):
        out = v.tolist()
        return out if isinstance(out, list) else [out]
    return list(v)


def to_tensor(v):
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
    idx = to_tensor(idx)
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
    dtype = _dt(n.attrs["to"])
    if isinstance(x, Dims):  # a shape value stays one while integer
        return x if not dtype.is_floating_point else to_tensor(x).to(dtype)
    return x.to(dtype)


def _mod(n, a, b):
    import torch

    if n.attrs.get("fmod"):
        return torch.fmod(to_tensor(a), to_tensor(b))
    return _binary(torch.remainder, lambda x, y: x % y)(n, a, b)


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

    return torch.where(to_tensor(c), to_tensor(a), to_tensor(b))


def _constant_of_shape(n, shape):
    import torch

    value = n.attrs.get("value")
    fill = torch.from_numpy(__import__("onnx").numpy_helper.to_array(value).copy()) if value is not None else \
        torch.zeros(1)
    return torch.full(_ints(shape), fill.reshape(-1)[0].item(), dtype=fill.dtype)


def build_ops() -> dict:
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
        "Pow": lambda n, a, b: torch.pow(a, b), "Mod": _mod, "Equal": _binary(torch.eq, operator.eq),
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
             "MaxPool Min Mod Mul Neg Not Pow Reciprocal ReduceMax ReduceMean ReduceMin ReduceSum Relu Reshape Shape "
             "Sigmoid Slice Softmax Softplus Sqrt Squeeze Sub Sum Tanh Transpose Unsqueeze Where").split()

# inputs read as plain integers (kept as numpy constants or shape values, never made tensors)
STATIC = {"Reshape": (1,), "Slice": (1, 2, 3, 4), "Squeeze": (1,), "Unsqueeze": (1,), "ReduceMean": (1,),
          "ReduceSum": (1,), "ReduceMax": (1,), "ReduceMin": (1,), "Expand": (1,), "ConstantOfShape": (0,),
          "Gather": (1,)}
