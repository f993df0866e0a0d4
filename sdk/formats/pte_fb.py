"""A stdlib-only reader of ExecuTorch program files (.pte), with the bounds-checked flatbuffer access of the
TFLite reader.

What `inspect` and the ExecuTorch runner need before (or without) the runtime: the methods, each method's
inputs and outputs (dtype, sizes, whether a dim may change: ``shape_dynamism`` DYNAMIC_BOUND keeps ``sizes`` as
the upper bound), the operator histogram (ATen kernels and delegate calls by backend id) and the constant
bytes. Input names: a .pte keeps none of its own; edgekit exports with keyword arguments, so the input
pytree spec (``ContainerMetadata.encoded_inp_str``) holds them, and this reader takes them from there.

Field numbers follow executorch/schema/program.fbs (the file identifier ``ET12`` sits at bytes 4..8).
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from dataclasses import dataclass, field

from .tflite_fb import FlatbufferError, _Reader

__all__ = ["PteInfo", "PteTensor", "is_pte", "read_pte"]

IDENTIFIER = b"ET12"
# ScalarType (schema/scalar_type.fbs) -> numpy dtype name
DTYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64",
          11: "bool", 12: "int8", 13: "uint8", 14: "int32", 15: "bfloat16", 27: "uint16", 28: "uint32",
          29: "uint64"}
_TENSOR = 5  # KernelTypes union (NONE = 0): Null, Int, Bool, Double, Tensor, ...
# XNNDatatype (backends/xnnpack/serialization/runtime_schema.fbs) -> edgekit's precision words
XNN_DTYPES = {1: "fp32", 2: "fp16", 3: "int8", 4: "int8", 5: "int32", 6: "int8", 7: "int32", 8: "int4", 9: "int8",
              10: "int4", 11: "int8", 12: "int32", 13: "fp32", 14: "bf16"}
_INT = 2  # KernelTypes.Int
_I64 = struct.Struct("<q")
# the constant method edgekit adds to a program: one flag per input dim, 1 where the dim may change (a .pte marks
# dynamism per tensor, not per dim)
DYNAMIC_DIMS = "edgekit_dynamic_dims"
_U8 = struct.Struct("<B")
_I16 = struct.Struct("<h")
_I8 = struct.Struct("<b")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass
class PteTensor:
    name: str
    dtype: str
    shape: list[int | None]  # None: a dim that may change (its upper bound in ``bound``); without edgekit's
    # per-dim flags (DYNAMIC_DIMS) every dim of a tensor marked dynamic is None
    bound: list[int]


@dataclass
class PteInfo:
    methods: list[str]
    inputs: list[PteTensor]  # of "forward" (else the first method)
    outputs: list[PteTensor]
    ops: Counter = field(default_factory=Counter)
    constant_bytes: int = 0
    delegates: list[str] = field(default_factory=list)  # backend ids, e.g. XnnpackBackend
    xnnpack_constants: Counter = field(default_factory=Counter)  # constant tensors in XNNPACK graphs, by dtype
    parameters: int = 0  # elements of the constant tensors: the program's own and those inside XNNPACK graphs

    @property
    def op_histogram(self) -> dict[str, int]:
        return dict(self.ops)


def is_pte(head: bytes) -> bool:
    return len(head) >= 8 and bytes(head[4:8]) == IDENTIFIER


def _names(encoded: str | None, count: int) -> list[str] | None:
    """Input names from a torch pytree spec (JSON), when the inputs were keyword arguments: the keys of the
    one dict of the flattened (args, kwargs) spec, in order."""
    if not encoded:
        return None
    try:
        spec = json.loads(encoded)
        root = spec[1] if isinstance(spec, list) and len(spec) == 2 else spec
        kids = root.get("children_spec") or []
        kwargs = kids[1] if len(kids) == 2 else None
        if kwargs is None or "dict" not in str(kwargs.get("type")) or kids[0].get("children_spec"):
            return None
        keys = json.loads(kwargs["context"])
    except (ValueError, TypeError, AttributeError, KeyError, IndexError):
        return None
    return [str(k) for k in keys] if isinstance(keys, list) and len(keys) == count else None


def read_pte(data) -> PteInfo:
    """Read a .pte file's bytes; FlatbufferError names what is damaged."""
    if not is_pte(data[:8]):
        raise FlatbufferError("not an ExecuTorch program (no ET12 file identifier at bytes 4..8)")
    r = _Reader(data)
    root = r.table(r.deref(0, "the root offset"), "Program")
    plans = r.tables(root, 1, "execution plans") or []
    if not plans:
        raise FlatbufferError("the program has no methods (execution plans)")
    names = [r.string(p, 0, "method name") or "" for p in plans]
    plan = plans[names.index("forward")] if "forward" in names else plans[0]
    values = r.tables(plan, 2, "values") or []

    def tensor(i: int, default: str) -> PteTensor:
        if not 0 <= i < len(values):
            raise FlatbufferError(f"an input/output refers to value {i}, but the method has {len(values)}")
        ev = values[i]
        if r.scalar(ev, 0, _U8, 0, "value type") != _TENSOR:
            return PteTensor(default, "scalar", [], [])
        t = r.table_at(ev, 1, "tensor")
        if t is None:
            raise FlatbufferError(f"value {i} is a tensor without its table")
        sizes = list(r.ints(t, 2, "tensor sizes") or ())
        dynamic = r.scalar(t, 8, _I8, 0, "shape dynamism") != 0
        code = r.scalar(t, 0, _I8, 6, "scalar type")
        return PteTensor(default, DTYPES.get(code, f"scalar_type_{code}"),
                         [None if dynamic else s for s in sizes], sizes)

    ins = [tensor(i, f"input_{k}") for k, i in enumerate(r.ints(plan, 3, "method inputs") or ())]
    if DYNAMIC_DIMS in names:  # edgekit's per-dim flags: which dims of a DYNAMIC_BOUND input may change
        flags = _int_outputs(r, plans[names.index(DYNAMIC_DIMS)])
        if len(flags) == sum(len(t.bound) for t in ins):
            for t in ins:
                t.shape = [None if flags.pop(0) else b for b in t.bound]
    outs = [tensor(i, f"output_{k}") for k, i in enumerate(r.ints(plan, 4, "method outputs") or ())]
    meta = r.table_at(plan, 1, "container metadata")
    given = _names(r.string(meta, 0, "input spec") if meta else None, len(ins))
    for t, n in zip(ins, given or ()):
        t.name = n
    ops = Counter()
    operators = []
    for o in r.tables(plan, 6, "operators") or []:
        name, overload = r.string(o, 0, "operator name") or "?", r.string(o, 1, "operator overload")
        operators.append(f"{name}.{overload}" if overload else name)  # as the runtime registers kernels
    delegates = [r.string(d, 0, "delegate id") or "?" for d in r.tables(plan, 7, "delegates") or []]
    for chain in r.tables(plan, 5, "chains") or []:
        for ins_t in r.tables(chain, 2, "instructions") or []:
            kind = r.scalar(ins_t, 0, _U8, 0, "instruction type")
            call = r.table_at(ins_t, 1, "instruction")
            if call is None:
                continue
            idx = r.scalar(call, 0, _I32, 0, "call index")
            if kind == 1 and 0 <= idx < len(operators):  # KernelCall
                ops[operators[idx]] += 1
            elif kind == 2 and 0 <= idx < len(delegates):  # DelegateCall
                ops[f"delegate:{delegates[idx]}"] += 1
    consts = 0
    for b in r.tables(root, 2, "constant buffers") or []:
        v = r.vec(b, 0, 1, "constant buffer", spend=False)
        consts += v[1] if v else 0
    for d in r.tables(root, 3, "delegate data") or []:
        v = r.vec(d, 0, 1, "delegate data", spend=False)
        consts += v[1] if v else 0
    for s in r.tables(root, 4, "segments") or []:
        consts += r.scalar(s, 1, _U64, 0, "segment size")
    info = PteInfo(names, ins, outs, ops, consts, delegates)
    xnn = _xnnpack_constants(r, data, root, plan)
    own = 0
    for ev in values:  # the program's constant tensors (data_buffer_idx > 0), outside any delegate
        if r.scalar(ev, 0, _U8, 0, "value type") == _TENSOR:
            t = r.table_at(ev, 1, "tensor")
            if t is not None and r.scalar(t, 5, _U32, 0, "data buffer index"):
                own += _numel(r.ints(t, 2, "tensor sizes") or ())
    info.parameters = own + xnn.pop("elements", 0)
    info.xnnpack_constants = xnn
    return info


def _int_outputs(r: _Reader, plan) -> list[int]:
    """The Int values a constant method returns, in order."""
    values = r.tables(plan, 2, "values") or []
    out = []
    for i in r.ints(plan, 4, "method outputs") or ():
        if not 0 <= i < len(values) or r.scalar(values[i], 0, _U8, 0, "value type") != _INT:
            return []
        t = r.table_at(values[i], 1, "int value")
        out.append(r.scalar(t, 0, _I64, 0, "int") if t is not None else 0)
    return out


def _segment_base(data) -> int:
    """The segments' base offset from the extended header ("eh00" at byte 8), 0 when there is none."""
    if bytes(data[8:12]) != b"eh00" or len(data) < 32:
        return 0
    return _U64.unpack_from(data, 24)[0]


def _xnnpack_constants(r: _Reader, data, root, plan) -> Counter:
    """Dtypes of the constant tensors (weights) in the program's XNNPACK graphs: the delegate payload is an
    XNNPACK header (XH00) + an XNNGraph flatbuffer, stored inline or in a segment after the program."""
    found: Counter = Counter()
    segments = r.tables(root, 4, "segments") or []
    inline = r.tables(root, 3, "delegate data") or []
    base = _segment_base(data)
    for d in r.tables(plan, 7, "delegates") or []:
        if (r.string(d, 0, "delegate id") or "") != "XnnpackBackend":
            continue
        ref = r.table_at(d, 1, "delegate data reference")
        if ref is None:
            continue
        loc, idx = r.scalar(ref, 0, _U8, 0, "data location"), r.scalar(ref, 1, _U32, 0, "data index")
        if loc == 1 and idx < len(segments):
            start = base + r.scalar(segments[idx], 0, _U64, 0, "segment offset")
            size = r.scalar(segments[idx], 1, _U64, 0, "segment size")
        elif loc == 0 and idx < len(inline):
            v = r.vec(inline[idx], 0, 1, "delegate data", spend=False)
            if v is None:
                continue
            start, size = v
        else:
            raise FlatbufferError(f"delegate data {idx} (location {loc}) is not in the file")
        if start + size > len(data) or size < 30:
            raise FlatbufferError("an XNNPACK payload lies past the end of the file")
        blob = memoryview(data)[start:start + size]
        if bytes(blob[4:8]) != b"XH00":
            continue
        fb_off, fb_size = _U32.unpack_from(blob, 10)[0], _U32.unpack_from(blob, 14)[0]
        if fb_off + fb_size > size:
            raise FlatbufferError("an XNNPACK payload's graph lies past its end")
        g = _Reader(blob[fb_off:fb_off + fb_size])
        graph = g.table(g.deref(0, "XNNPACK graph root"), "XNNGraph")
        for xv in g.tables(graph, 2, "XNNPACK values") or []:
            kind = g.scalar(xv, 0, _U8, 0, "XNNPACK value type")
            t = g.table_at(xv, 1, "XNNPACK value")
            if t is None:
                continue
            if kind == 2:  # XNNQuantizedTensorValue: its tensor_value
                t = g.table_at(t, 0, "quantized tensor value")
                if t is None:
                    continue
            if g.scalar(t, 3, _U32, 0, "constant buffer index"):
                code = g.scalar(t, 0, _I16, 0, "XNNPACK datatype")
                found[XNN_DTYPES.get(code, f"xnn_datatype_{code}")] += 1
                found["elements"] += _numel(g.ints(t, 2, "XNNPACK dims", "I") or ())
    return found


def _numel(dims) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n
