"""Sparse constant weights (TFLite's sparsity format, behind DENSIFY or read directly) -> dense constants.

Matches: constant tensors with sparsity parameters (``SparsityParameters``: traversal_order, block_map and one
dimension per traversed level, DENSE with its size or SPARSE_CSR with int32/uint16/uint8 segments and indices),
as TFLiteConverter writes them with ``Optimize.EXPERIMENTAL_SPARSITY``: random sparsity feeds a DENSIFY operator,
1x4 block sparsity is read by FULLY_CONNECTED directly. tf2onnx reads such buffers as if they were dense (a
reshape error) and OpenVINO takes only a sparse last dimension.

Emits: each DENSIFY operator removed, its output tensor a constant holding the dense values (same dtype and
quantization); each sparse constant read directly by another operator given its dense values in place, its
sparsity parameters dropped. The sparse buffers no operator reads any more are removed. The dense values are
decoded as LiteRT's FormatConverter decodes them (tensorflow/lite/kernels/internal/utils/
sparsity_format_converter.cc), every index bounds-checked first: a malformed tensor is an error, never a guess.
"""

from __future__ import annotations

from edgekit.errors import ConversionError

TRIGGER = "DENSIFY"
_MAX_BYTES = 2**31  # a flatbuffer (and so a rewritten file without external buffers) stays under 2 GB
_HINT = "convert from the dense source model, or re-export the TFLite file without EXPERIMENTAL_SPARSITY"


def run(model) -> list[str]:
    """Densify every sparse constant in place; one note when any was, else none."""
    from . import tflite_model as tm

    removed = direct = 0
    for gi, g in enumerate(model.subgraphs):
        outputs = {int(t) for t in (g.outputs if g.outputs is not None else ())}
        kept = []
        for oi, op in enumerate(g.operators):
            if tm.op_name(model, op) == "DENSIFY" and len(op.inputs) == 1 and len(op.outputs) == 1 \
                    and int(op.outputs[0]) not in outputs:
                src, dst = g.tensors[int(op.inputs[0])], g.tensors[int(op.outputs[0])]
                if src.sparsity is not None:
                    dense = dense_values(model, src, f"subgraph {gi} operator {oi} (DENSIFY) input")
                    if list(dense.shape) != [int(d) for d in dst.shape]:
                        raise _error(f"subgraph {gi} operator {oi} (DENSIFY): dense shape "
                                     f"{list(dense.shape)} differs from its output's {list(dst.shape)}", _HINT)
                    dst.buffer = tm.add_buffer(model, dense.tobytes())
                    removed += 1
                    continue
            kept.append(op)
        g.operators = kept
        direct += _densify_read_directly(model, g, gi)
    if not removed and not direct:
        return []
    tm.compact(model)
    what = [f"{removed} DENSIFY -> dense constant"] if removed else []
    what += [f"{direct} sparse constant(s) read directly -> dense"] if direct else []
    return [f"rewrote {' and '.join(what)} before converting (sparse weights stored dense)"]


def _densify_read_directly(model, g, gi: int) -> int:
    from . import tflite_model as tm

    done: set[int] = set()
    for op in g.operators:
        for i in (int(i) for i in (op.inputs if op.inputs is not None else ()) if i >= 0):
            t = g.tensors[i]
            if i in done or t.sparsity is None or not _has_data(model, t):
                continue
            dense = dense_values(model, t, f"subgraph {gi} tensor {i}")
            t.buffer = tm.add_buffer(model, dense.tobytes())
            t.sparsity = None
            done.add(i)
    return len(done)


def _has_data(model, t) -> bool:
    b = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
    return b is not None and b.data is not None and len(b.data) > 0


def dense_values(model, t, what: str):
    """The dense array (the tensor's shape and dtype) a sparse constant tensor stands for."""
    import numpy as np

    from . import tflite_model as tm

    dtype = tm.CODE_DTYPES.get(t.type)
    if dtype is None or not _has_data(model, t):
        raise _error(f"{what}: a sparse tensor of type {t.type} without constant data", _HINT)
    raw = np.asarray(model.buffers[t.buffer].data, dtype=np.uint8).tobytes()
    if len(raw) % np.dtype(dtype).itemsize:
        raise _error(f"{what}: {len(raw)} bytes of sparse values is not a whole number of {dtype}", _HINT)
    values = np.frombuffer(raw, dtype=dtype)
    shape = [int(d) for d in t.shape]
    if int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize >= _MAX_BYTES:
        raise _error(f"{what}: its dense form {shape} ({dtype}) would exceed 2 GB, the flatbuffer limit", _HINT)
    flat = _positions(t.sparsity, shape, len(values), what)
    if len(np.unique(flat)) != len(flat):
        raise _error(f"{what}: the sparsity parameters address one dense element twice", _HINT)
    dense = np.zeros(int(np.prod(shape)), dtype=dtype)
    dense[flat] = values
    return dense.reshape(shape)


def _positions(sp, shape: list[int], count: int, what: str):
    """The flat dense index of each stored value, in storage order (FormatConverter::Populate, breadth-first)."""
    import numpy as np

    rank = len(shape)
    order = [int(v) for v in (sp.traversalOrder if sp.traversalOrder is not None else ())]
    block_map = [int(v) for v in (sp.blockMap if sp.blockMap is not None else ())]
    dims = list(sp.dimMetadata or ())
    n = len(order)
    if (n != rank + len(block_map) or len(dims) != n or sorted(order[:rank]) != list(range(rank))
            or sorted(order[rank:]) != list(range(rank, n)) or any(not 0 <= d < rank for d in block_map)):
        raise _error(f"{what}: sparsity parameters do not fit its shape {shape} (traversal_order "
                     f"{order}, block_map {block_map}, {len(dims)} dimensions)", _HINT)
    block = [int(dims[rank + j].denseSize) for j in range(len(block_map))]
    total = int(np.prod(shape))  # no level can reach more positions than the dense tensor has
    prev = np.zeros(1, dtype=np.int64)  # the position reached at the previous level, per path
    idx = np.zeros((1, 0), dtype=np.int64)  # the index at each level so far, per path
    for level, dm in enumerate(dims):
        if dm.format == 0:  # DENSE
            size = int(dm.denseSize)
            if size < 0 or len(prev) * size > total:
                raise _error(f"{what}: dimension {level} has dense size {size}, more than its shape holds", _HINT)
            col = np.tile(np.arange(size, dtype=np.int64), len(prev))
            prev = (prev[:, None] * size + np.arange(size)).ravel()
            idx = np.repeat(idx, size, axis=0)
        else:  # SPARSE_CSR
            seg, ind = _vector(dm.arraySegments), _vector(dm.arrayIndices)
            if len(prev) and (prev.max() + 1 >= len(seg) or np.any(np.diff(seg) < 0) or seg[0] < 0
                              or seg[-1] > len(ind)):
                raise _error(f"{what}: dimension {level} has malformed CSR segments", _HINT)
            starts, counts = seg[prev], seg[prev + 1] - seg[prev]
            paths = int(counts.sum())
            if paths > total:
                raise _error(f"{what}: dimension {level} addresses more values than its shape holds", _HINT)
            pos = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(paths)
            col, prev = ind[pos], pos
            idx = np.repeat(idx, counts, axis=0)
        idx = np.concatenate([idx, col[:, None]], axis=1)
    if len(prev) != count:
        raise _error(f"{what}: the sparsity parameters address {len(prev)} values, the buffer holds {count}",
                     _HINT)
    orig = [None] * rank
    for i in range(rank):
        orig[order[i]] = idx[:, i]
    for i in range(rank, n):
        j = order[i] - rank
        orig[block_map[j]] = orig[block_map[j]] * block[j] + idx[:, i]
    for d in range(rank):
        if len(orig[d]) and (orig[d].min() < 0 or orig[d].max() >= shape[d]):
            raise _error(f"{what}: a sparse index lies outside dimension {d} of shape {shape}", _HINT)
    return np.ravel_multi_index(orig, shape) if rank else np.zeros(count, dtype=np.int64)


def _error(message: str, hint: str) -> ConversionError:
    """A ConversionError naming the operator, as the converter edges' own errors do."""
    e = ConversionError(message, hint)
    e.op = TRIGGER
    return e


def _vector(v):
    import numpy as np

    values = getattr(v, "values", None)
    return np.zeros(0, dtype=np.int64) if values is None else np.asarray(values, dtype=np.int64)
