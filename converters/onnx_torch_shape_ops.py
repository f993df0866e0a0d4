"""Shape and data-movement ops of edgekit's ONNX -> torch lowering (onnx_torch_ops builds the op table from these
and the numeric ops). Shape values (Shape's output and what is computed from it) are ``Dims``/``Scalar`` lists of
Python ints or, under torch.export with dynamic dims, SymInts, so shape arithmetic never becomes int64 tensors.
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


def ints(v) -> list:
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
    xs, ys = ints(a), ints(b)
    if len(xs) == 1 and len(ys) != 1:
        xs = xs * len(ys)
    if len(ys) == 1 and len(xs) != 1:
        ys = ys * len(xs)
    scalar = all(isinstance(v, Scalar) or np.ndim(v) == 0 for v in (a, b))
    return (Scalar if scalar else Dims)(fn(x, y) for x, y in zip(xs, ys))


def binary(torch_fn, py_fn):
    def op(n, a, b):
        if isinstance(a, Dims) or isinstance(b, Dims):
            return _shape_math(py_fn, a, b)
        return torch_fn(a, b)
    return op


def axes_of(n, inputs, pos, rank=None):
    axes = n.attrs.get("axes")
    if axes is None and len(inputs) > pos and inputs[pos] is not None:
        axes = ints(inputs[pos])
    if axes is None:
        return None
    return [a + rank if a < 0 and rank is not None else a for a in axes]


def _reshape(n, x, shape):
    dims = ints(shape)
    if isinstance(x, Dims):  # a shape value reshaped to 0-d or 1-d
        return Scalar(x) if dims == [] else Dims(x)
    if not n.attrs.get("allowzero"):
        dims = [x.shape[i] if isinstance(d, int) and d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _slice(n, x, starts=None, ends=None, axes=None, steps=None):
    if n.attrs.get("starts") is not None:  # opset < 10
        starts, ends, axes = n.attrs["starts"], n.attrs["ends"], n.attrs.get("axes")
    if isinstance(x, Dims):
        s, e = ints(starts)[0], ints(ends)[0]
        step = ints(steps)[0] if steps is not None else 1
        return Dims(list(x)[s:e:step] if abs(e) < 1 << 62 else list(x)[s::step])
    starts, ends = ints(starts), ints(ends)
    axes = ints(axes) if axes is not None else list(range(len(starts)))
    steps = ints(steps) if steps is not None else [1] * len(starts)
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
        i = ints(idx)
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
    axes = axes_of(n, [x, axes], 1)
    if isinstance(x, Dims):  # a scalar shape element made a 1-D shape value
        return Dims(x)
    rank = x.dim() + len(axes)
    for a in sorted(a % rank for a in axes):
        x = x.unsqueeze(a)
    return x


def _squeeze(n, x, axes=None):
    if isinstance(x, Dims):
        return Scalar(x)
    axes = axes_of(n, [x, axes], 1, x.dim())
    if axes is None:
        return x.squeeze()
    for a in sorted(axes, reverse=True):
        x = x.squeeze(a)
    return x


def _concat(n, *xs):
    import torch

    if any(isinstance(x, Dims) for x in xs):
        return Dims(d for x in xs for d in ints(x))
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
    return binary(torch.remainder, lambda x, y: x % y)(n, a, b)


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

    dims = ints(shape)
    rank = max(x.dim(), len(dims))
    dims = [1] * (rank - len(dims)) + dims
    have = [1] * (rank - x.dim()) + list(x.shape)
    target = [h if (isinstance(d, int) and d == 1) else d for d, h in zip(dims, have)]
    return torch.broadcast_to(x.reshape(have), target)


def _where(n, c, a, b):
    import torch

    if isinstance(c, Dims):  # shape arithmetic (e.g. Where(Equal(shape, -1), 1, shape)): stays a shape value
        cs, xs, ys = ints(c), ints(a), ints(b)
        xs, ys = (xs * len(cs) if len(xs) == 1 else xs), (ys * len(cs) if len(ys) == 1 else ys)
        return Dims(x if k else y for k, x, y in zip(cs, xs, ys))
    return torch.where(to_tensor(c).bool(), to_tensor(a), to_tensor(b))


def _range(n, start, limit, delta):
    import torch

    first, last, step = (ints(v)[0] for v in (start, limit, delta))
    dtype = torch.float32 if any(isinstance(v, float) for v in (first, last, step)) else torch.int64
    return torch.arange(first, last, step, dtype=dtype)


def _tile(n, x, repeats):
    return x.repeat(ints(repeats))


def _constant_of_shape(n, shape):
    import torch

    value = n.attrs.get("value")
    fill = torch.from_numpy(__import__("onnx").numpy_helper.to_array(value).copy()) if value is not None else \
        torch.zeros(1)
    return torch.full(ints(shape), fill.reshape(-1)[0].item(), dtype=fill.dtype)


def _split(n, x, split=None):
    import torch

    axis = n.attrs.get("axis", 0)
    sizes = ints(split) if split is not None else n.attrs.get("split")
    if sizes is None:
        parts = n.attrs.get("num_outputs", len(n.outputs))
        size = x.shape[axis]
        step = -(-size // parts)
        sizes = [min(step, size - i * step) for i in range(parts)]
    return tuple(torch.split(x, list(sizes), dim=axis))


def _pad(n, x, pads=None, value=None, axes=None):
    import torch.nn.functional as F

    mode = n.attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads = ints(pads) if pads is not None else list(n.attrs["pads"])
    fill = float(np.asarray(value).reshape(-1)[0]) if value is not None else float(n.attrs.get("value", 0.0))
    rank = x.dim()
    axes = [a % rank for a in ints(axes)] if axes is not None else list(range(rank))
    half = len(axes)
    begin, end = dict(zip(axes, pads[:half])), dict(zip(axes, pads[half:]))
    spec = [p for d in reversed(range(rank)) for p in (begin.get(d, 0), end.get(d, 0))]
    while len(spec) > 2 and spec[-2:] == [0, 0]:
        spec = spec[:-2]
    if mode == "constant":
        return F.pad(x, spec, value=fill)
    if mode not in ("reflect", "edge") or len(spec) // 2 > rank - 1 - (rank > 3):
        raise NotImplementedError(f"Pad mode {mode} on these axes")
    return F.pad(x, spec, mode="reflect" if mode == "reflect" else "replicate")


def shape_ops() -> dict:
    """ONNX op name -> function, for the ops of this module."""
    return {"Reshape": _reshape, "Transpose": _transpose, "Flatten": _flatten, "Squeeze": _squeeze,
            "Unsqueeze": _unsqueeze, "Concat": _concat, "Slice": _slice, "Gather": _gather, "Cast": _cast,
            "Shape": _shape, "Expand": _expand, "ConstantOfShape": _constant_of_shape, "Where": _where, "Mod": _mod,
            "Split": _split, "Pad": _pad, "Range": _range, "Tile": _tile}
