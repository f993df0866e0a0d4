"""The ONNX ops of edgekit's ONNX -> torch lowering (onnx_torch_lowering): one function per op type, called as
``fn(node, *inputs)`` with the node's attributes in ``node.attrs``.

Shape values (Shape's output and what is computed from it) are ``Dims``/``Scalar`` lists of Python ints or, under
torch.export with dynamic dims, SymInts; integer constants up to a few dozen elements arrive as numpy arrays at
the positions in ``STATIC`` (axes, shapes, slice bounds, gather indices). ONNX semantics that torch has no direct
form (uncounted asymmetric average-pool pads, negative slice steps, ConvTranspose output_shape, Resize modes
torch.nn.functional.interpolate does not compute) raise NotImplementedError naming the op.
"""

from __future__ import annotations

from .onnx_torch_shape_ops import axes_of, binary, ints, shape_ops


def _div(a, b):
    import torch

    if not a.dtype.is_floating_point:
        return torch.div(a, b, rounding_mode="trunc")
    return a / b


def _pads(n, x, kernel) -> tuple[list, list]:
    """(begin, end) pads per spatial dim, from ``pads`` or ``auto_pad`` (SAME_UPPER/SAME_LOWER as ONNX defines)."""
    rank = x.dim() - 2
    auto = n.attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        strides, dil = n.attrs.get("strides", [1] * rank), n.attrs.get("dilations", [1] * rank)
        begin, end = [], []
        for i in range(rank):
            size = x.shape[2 + i]
            total = max((-(-size // strides[i]) - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - size, 0)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
        return begin, end
    pads = [0] * (2 * rank) if auto == "VALID" else list(n.attrs.get("pads", [0] * (2 * rank)))
    return pads[:rank], pads[rank:]


def _pad_explicit(x, begin, end, value=0.0):
    import torch.nn.functional as F

    rank = len(begin)
    return F.pad(x, [p for i in reversed(range(rank)) for p in (begin[i], end[i])], value=value)


def _conv(n, x, w, b=None):
    import torch.nn.functional as F

    rank = x.dim() - 2
    begin, end = _pads(n, x, list(w.shape[2:]))
    if begin != end:
        x, begin = _pad_explicit(x, begin, end), [0] * rank
    fn = (F.conv1d, F.conv2d, F.conv3d)[rank - 1]
    return fn(x, w, b, stride=n.attrs.get("strides", 1), padding=begin, dilation=n.attrs.get("dilations", 1),
              groups=n.attrs.get("group", 1))


def _conv_transpose(n, x, w, b=None):
    import torch.nn.functional as F

    rank = x.dim() - 2
    if n.attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise NotImplementedError("ConvTranspose with auto_pad")
    begin, end = _pads(n, x, list(w.shape[2:]))
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
    begin, end = _pads(n, x, k)
    if begin != end:  # pad first: -inf for max, zeros for an average that counts them
        if kind == "avg" and not n.attrs.get("count_include_pad"):
            raise NotImplementedError("AveragePool with asymmetric pads that are not counted")
        x, begin = _pad_explicit(x, begin, end, float("-inf") if kind == "max" else 0.0), [0] * rank
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

        axes = axes_of(n, [x, axes_in], 1, x.dim())
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


def _softmax(fn):
    def op(n, x):
        if n.opset >= 13:
            return fn(x, n.attrs.get("axis", -1))
        axis = n.attrs.get("axis", 1) % x.dim()  # before opset 13: over everything from axis on, as one 2-D row
        return fn(x.reshape(list(x.shape[:axis]) + [-1]), -1).reshape(x.shape)
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


def _resize(n, x, roi=None, scales=None, sizes=None):
    """Resize as torch's interpolate computes it: nearest with asymmetric/floor, (bi/tri)linear with half_pixel,
    pytorch_half_pixel or align_corners; other modes raise."""
    import torch.nn.functional as F

    def word(key, default):
        v = n.attrs.get(key, default)
        return v.decode() if isinstance(v, bytes) else v

    mode, coord = word("mode", "nearest"), word("coordinate_transformation_mode", "half_pixel")
    spatial = x.dim() - 2
    size = ints(sizes)[2:] if sizes is not None and len(ints(sizes)) else None
    factor = [float(s) for s in ints(scales)[2:]] if size is None else None
    if mode == "nearest" and coord == "asymmetric" and word("nearest_mode", "round_prefer_floor") == "floor":
        return F.interpolate(x, size=size, scale_factor=factor, mode="nearest")
    if mode == "linear" and coord in ("half_pixel", "pytorch_half_pixel", "align_corners") and spatial <= 3:
        kind = ("linear", "bilinear", "trilinear")[spatial - 1]
        return F.interpolate(x, size=size, scale_factor=factor, mode=kind, align_corners=coord == "align_corners",
                             recompute_scale_factor=False if factor else None)
    raise NotImplementedError(f"Resize mode={mode} coordinate_transformation_mode={coord}")


def _arg(fn):
    def op(n, x):
        if n.attrs.get("select_last_index"):
            raise NotImplementedError(f"{n.op} with select_last_index")
        return fn(x, dim=n.attrs.get("axis", 0), keepdim=bool(n.attrs.get("keepdims", 1)))
    return op


def build_ops() -> dict:
    import operator

    import torch
    import torch.nn.functional as F

    unary = {"Relu": torch.relu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Erf": torch.erf, "Exp": torch.exp,
             "Log": torch.log, "Sqrt": torch.sqrt, "Neg": torch.neg, "Abs": torch.abs, "Reciprocal": torch.reciprocal,
             "Softplus": F.softplus, "Floor": torch.floor, "Ceil": torch.ceil, "Not": torch.logical_not,
             "Sin": torch.sin, "Cos": torch.cos}
    ops = {k: (lambda fn: lambda n, x: fn(x))(fn) for k, fn in unary.items()}
    ops.update({
        "Identity": lambda n, x: x, "Dropout": lambda n, x, *rest: x,
        "Add": binary(torch.add, operator.add), "Sub": binary(torch.sub, operator.sub),
        "Mul": binary(torch.mul, operator.mul), "Div": binary(_div, operator.floordiv),
        "Pow": lambda n, a, b: torch.pow(a, b), "Equal": binary(torch.eq, operator.eq),
        "Less": lambda n, a, b: torch.lt(a, b), "Greater": lambda n, a, b: torch.gt(a, b),
        "Max": lambda n, *xs: _fold(torch.maximum, xs), "Min": lambda n, *xs: _fold(torch.minimum, xs),
        "Sum": lambda n, *xs: _fold(torch.add, xs), "Resize": _resize, "ArgMax": _arg(torch.argmax),
        "ArgMin": _arg(torch.argmin),
        "MatMul": lambda n, a, b: torch.matmul(a, b), "Gemm": _gemm, "Conv": _conv, "ConvTranspose": _conv_transpose,
        "Gelu": _gelu, "Clip": _clip, "LeakyRelu": lambda n, x: F.leaky_relu(x, n.attrs.get("alpha", 0.01)),
        "HardSigmoid": lambda n, x: torch.clamp(x * n.attrs.get("alpha", 0.2) + n.attrs.get("beta", 0.5), 0, 1),
        "Softmax": _softmax(torch.softmax), "LogSoftmax": _softmax(torch.log_softmax),
        "LayerNormalization": _layer_norm, "BatchNormalization": _batch_norm,
        "MaxPool": lambda n, x: _pool(n, x, "max"), "AveragePool": lambda n, x: _pool(n, x, "avg"),
        "GlobalAveragePool": lambda n, x: x.mean(dim=list(range(2, x.dim())), keepdim=True),
        "GlobalMaxPool": lambda n, x: x.amax(dim=list(range(2, x.dim())), keepdim=True),
        "ReduceMean": _reduce("mean"), "ReduceSum": _reduce("sum"), "ReduceMax": _reduce("max"),
        "ReduceMin": _reduce("min"), **shape_ops(),
    })
    return ops


def _fold(fn, xs):
    out = xs[0]
    for x in xs[1:]:
        out = fn(out, x)
    return out


SUPPORTED = ("Abs Add ArgMax ArgMin AveragePool BatchNormalization Cast Ceil Clip Concat Constant "
             "ConstantOfShape Conv ConvTranspose Cos Div Dropout Equal Erf Exp Expand Flatten Floor Gather Gelu "
             "Gemm GlobalAveragePool GlobalMaxPool Greater HardSigmoid Identity LayerNormalization LeakyRelu "
             "Less Log LogSoftmax MatMul Max MaxPool Min Mod Mul Neg Not Pad Pow Range Reciprocal ReduceMax "
             "ReduceMean ReduceMin ReduceSum Relu Reshape Resize Shape Sigmoid Sin Slice Softmax Softplus Split "
             "Sqrt Squeeze Sub Sum Tanh Tile Transpose Unsqueeze Where").split()

# inputs read as plain integers (kept as numpy constants or shape values, never made tensors)
STATIC = {"Reshape": (1,), "Slice": (1, 2, 3, 4), "Squeeze": (1,), "Unsqueeze": (1,), "ReduceMean": (1,),
          "ReduceSum": (1,), "ReduceMax": (1,), "ReduceMin": (1,), "Expand": (1,), "ConstantOfShape": (0,),
          "Gather": (1,), "Split": (1,), "Pad": (1, 2, 3), "Resize": (1, 2, 3), "Range": (0, 1, 2),
          "Tile": (1,)}
