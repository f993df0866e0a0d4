"""A strict, stdlib-only reader of TFLite flatbuffer files.

Two jobs: reject a corrupt, truncated or hostile ``.tflite`` file *before* the native LiteRT interpreter
sees it (a bad file can crash the process, which no ``except`` clause catches), and give ``edgekit inspect``
the op histogram, parameter count and tensor signature without importing any runtime.

Beyond structure it refuses the graphs that crashed LiteRT 2.3.0 natively (a -1 where a kernel needs a tensor,
a -1 operator output, an operator writing a constant, a subgraph input or another operator's output, reading a
later operator's output, a constant subgraph input) and checks the operands of the operators it knows
(``tflite_ops.OPERANDS``). A file with any other operator is not "vouched for" (``TFLiteInfo.vouched``) and is
run once in a child process before it is loaded in-process (runtimes/_probe.py).

Every offset, vtable, vector length, string and table field is bounds-checked before it is read, and every
index the interpreter will follow (tensor -> buffer, operator -> opcode, operator/subgraph/signature ->
tensor, buffer -> external data) is range-checked. Constant data is never copied: only its size is
recorded. Field numbers follow the official schema
(tensorflow/compiler/mlir/lite/schema/schema.fbs); the vtable slot of field ``i`` is ``4 + 2 * i``.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import NoReturn

from .tflite_ops import BUILTIN_OPERATORS, CUSTOM, POSITIVE_OPTIONS, operand_check

__all__ = ["FlatbufferError", "TFLiteInfo", "TFLiteSubgraph", "TFLiteTensor", "is_tflite", "read_tflite"]

IDENTIFIER = b"TFL3"

# TensorType code -> numpy (or ml_dtypes) dtype name; STRING/RESOURCE/VARIANT have no numpy equivalent.
DTYPES: tuple[str, ...] = (
    "float32", "float16", "int32", "uint8", "int64", "string", "bool", "int16", "complex64", "int8",
    "float64", "complex128", "uint64", "resource", "variant", "uint32", "uint16", "int4", "bfloat16",
    "int2", "uint4", "float8_e4m3fn", "float8_e5m2",
)

# dtypes the operand table vouches for; a STRING output of SOFTMAX, for one, crashed LiteRT
_PLAIN = frozenset(("float32", "float16", "int32", "uint8", "int64", "bool", "int16", "int8"))
_I8, _U8 = struct.Struct("<b"), struct.Struct("<B")
_U16x2 = struct.Struct("<HH")
_I32, _U32, _U64 = struct.Struct("<i"), struct.Struct("<I"), struct.Struct("<Q")
_VTABLES: dict[int, struct.Struct] = {}  # number of u16 vtable entries -> Struct reading them at once
_MAX_FIELDS = 16  # the highest field id read below is 13 (Operator.debug_metadata_index)


class FlatbufferError(ValueError):
    """The bytes are not a well-formed TFLite flatbuffer; the message says what is wrong and where."""


@dataclass
class TFLiteTensor:
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...] | None
    dtype: str
    buffer: int
    buffer_size: int  # bytes of constant data (inline or external), 0 if none
    scale: list[float] = field(default_factory=list)
    zero_point: list[int] = field(default_factory=list)
    is_variable: bool = False


@dataclass
class TFLiteSubgraph:
    name: str
    tensors: list[TFLiteTensor]
    inputs: list[int]
    outputs: list[int]
    op_codes: list[str]  # builtin op name per operator, e.g. "CONV_2D", or "CUSTOM:<custom_code>"
    unchecked: list[str] = field(default_factory=list)  # ops whose operands the reader does not check fully


@dataclass
class TFLiteInfo:
    version: int
    description: str
    subgraphs: list[TFLiteSubgraph]
    signature_defs: list[dict]  # {"key", "subgraph", "inputs": {name: tensor}, "outputs": {name: tensor}}
    num_buffers: int

    def op_histogram(self) -> dict[str, int]:
        """Operator count per op name over all subgraphs, most frequent first."""
        counts = Counter(op for g in self.subgraphs for op in g.op_codes)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def vouched(self) -> bool:
        """True when the reader checked every operator's operands (see ``tflite_ops.OPERANDS``)."""
        return not any(g.unchecked for g in self.subgraphs)

    def activation_bytes(self) -> int:
        """Bytes of every non-constant tensor at its declared shape (dynamic dims as 1): about what LiteRT
        allocates at load. A fuzzed input shape of 16.7M x 6 x 2 took 6 GB."""
        sizes = {"float16": 2, "int16": 2, "bfloat16": 2, "uint16": 2, "int8": 1, "uint8": 1, "bool": 1,
                 "int64": 8, "float64": 8, "uint64": 8, "complex64": 8, "complex128": 16}
        total = 0
        for g in self.subgraphs:
            for t in g.tensors:
                if not t.buffer_size:
                    n = sizes.get(t.dtype, 4)
                    for d in t.shape:
                        n *= max(d, 1)
                    total += n
        return total

    def parameter_count(self) -> int:
        """Elements of the learned weights: constant tensors with data (inline or external), excluding the
        integer shape/axis/index operands (int32/int64 without quantization parameters) that feed ops
        such as RESHAPE or MEAN. Quantized int32 biases are counted."""
        total = 0
        for g in self.subgraphs:
            for t in g.tensors:
                if t.buffer_size <= 0 or (t.dtype in ("int32", "int64", "string", "bool") and not t.scale):
                    continue
                n = 1
                for d in t.shape:
                    n *= max(d, 0)
                total += n
        return total


def is_tflite(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file) carries the TFLite file identifier."""
    return len(head) >= 8 and bytes(head[4:8]) == IDENTIFIER


class _Reader:
    """Bounds-checked flatbuffer access. A table is the tuple (pos, vtable entries): entries[0] is the vtable
    size, entries[1] the table size, entries[2 + i] the offset of field i inside the table (0 = absent)."""

    __slots__ = ("b", "n", "budget")

    def __init__(self, data) -> None:
        self.b, self.n = data, len(data)
        # every table / vector element decoded costs one unit; a well-formed file needs far fewer units
        # than it has bytes, so this bounds the work on files that share one object from many places
        self.budget = self.n + 4096

    def fail(self, msg: str) -> NoReturn:
        raise FlatbufferError(msg)

    def spend(self, units: int, what: str) -> None:
        self.budget -= units
        if self.budget < 0:
            self.fail(f"{what}: the file references far more objects than its size allows (shared or looped offsets)")

    def deref(self, pos: int, what: str) -> int:
        """Follow the uoffset stored at ``pos``; return the absolute position it points to."""
        if pos + 4 > self.n:
            self.fail(f"offset 0x{pos:x} of {what} points past end of file (size {self.n})")
        off = _U32.unpack_from(self.b, pos)[0]
        tgt = pos + off
        if off == 0:
            self.fail(f"offset 0x{pos:x} of {what} is zero (an offset may not point at itself)")
        if off >= 0x80000000 or tgt + 4 > self.n:
            self.fail(f"offset 0x{pos:x} of {what} points past end of file (size {self.n})")
        if tgt & 3:
            self.fail(f"{what} at 0x{tgt:x} is not 4-byte aligned")
        return tgt

    def table(self, pos: int, what: str) -> tuple[int, tuple[int, ...]]:
        self.spend(1, what)
        if pos + 4 > self.n:
            self.fail(f"table of {what} at 0x{pos:x} lies past end of file (size {self.n})")
        vt = pos - _I32.unpack_from(self.b, pos)[0]
        if vt < 0 or vt + 4 > self.n or vt & 1:
            self.fail(f"vtable of {what} (table at 0x{pos:x}) at 0x{vt:x} lies outside the file (size {self.n})")
        vsize, tsize = _U16x2.unpack_from(self.b, vt)
        if vsize < 4 or vsize & 1 or vt + vsize > self.n:
            self.fail(f"vtable of {what} at 0x{vt:x} has invalid size {vsize} (file size {self.n})")
        if tsize < 4:
            self.fail(f"table of {what} at 0x{pos:x} has invalid size {tsize}")
        if pos + tsize > self.n:
            self.fail(f"table of {what} at 0x{pos:x} with size {tsize} runs past end of file (size {self.n})")
        entries = min(vsize // 2, _MAX_FIELDS + 2)  # never decode more of a (possibly huge) vtable than we use
        st = _VTABLES.get(entries)
        if st is None:
            st = _VTABLES[entries] = struct.Struct(f"<{entries}H")
        return pos, st.unpack_from(self.b, vt)

    def fpos(self, t: tuple[int, tuple[int, ...]], idx: int, size: int, what: str) -> int:
        """Absolute position of field ``idx`` (``size`` bytes inline), or 0 when the field is absent."""
        entries = t[1]
        if idx + 2 >= len(entries):
            return 0
        off = entries[idx + 2]
        if off == 0:
            return 0
        if off < 4 or off + size > entries[1]:
            self.fail(f"field {idx} of {what} at table offset {off} overruns its table (table 0x{t[0]:x}, "
                      f"size {entries[1]})")
        return t[0] + off

    def scalar(self, t, idx: int, st: struct.Struct, default, what: str):
        p = self.fpos(t, idx, st.size, what)
        return st.unpack_from(self.b, p)[0] if p else default

    def ref(self, t, idx: int, what: str) -> int:
        p = self.fpos(t, idx, 4, what)
        return self.deref(p, what) if p else 0

    def vec(self, t, idx: int, esize: int, what: str, spend: bool = True) -> tuple[int, int] | None:
        p = self.ref(t, idx, what)
        if not p:
            return None
        count = _U32.unpack_from(self.b, p)[0]
        left = self.n - p - 4
        if count * esize > left:
            self.fail(f"vector of {what} at 0x{p:x} claims {count} elements of {esize} bytes, "
                      f"more than the {left} bytes left in the file")
        if spend:
            self.spend(count, what)
        return p + 4, count

    def ints(self, t, idx: int, what: str, code: str = "i", esize: int = 4) -> tuple | None:
        v = self.vec(t, idx, esize, what)
        return None if v is None else struct.unpack_from(f"<{v[1]}{code}", self.b, v[0])

    def string(self, t, idx: int, what: str) -> str | None:
        v = self.vec(t, idx, 1, what, spend=False)
        if v is None:
            return None
        start, count = v
        end = start + count
        if end >= self.n or self.b[end] != 0:
            self.fail(f"string of {what} at 0x{start - 4:x} is not NUL-terminated (file size {self.n})")
        self.spend(count >> 3, what)
        try:  # the schema says UTF-8; LiteRT's Python API fails on anything else
            return bytes(self.b[start:end]).decode("utf-8")
        except UnicodeDecodeError as e:
            self.fail(f"string of {what} at 0x{start - 4:x} is not valid UTF-8 ({e.reason} at byte {e.start})")

    def tables(self, t, idx: int, what: str) -> list | None:
        v = self.vec(t, idx, 4, what)
        if v is None:
            return None
        start, count = v
        return [self.table(self.deref(start + 4 * i, f"{what} {i}"), f"{what} {i}") for i in range(count)]

    def table_at(self, t, idx: int, what: str):
        p = self.ref(t, idx, what)
        return self.table(p, what) if p else None

    def indices(self, t, idx: int, what: str, limit: int, optional_ok: bool = False) -> list[int]:
        vals = self.ints(t, idx, what) or ()
        lo = -1 if optional_ok else 0
        for v in vals:
            if v < lo or v >= limit:
                self.fail(f"{what} refers to tensor {v}, but the subgraph has {limit} tensors")
        return list(vals)


def read_tflite(data) -> TFLiteInfo:
    """Parse and validate a whole ``.tflite`` file (bytes, bytearray, memoryview or mmap)."""
    if isinstance(data, memoryview) and data.itemsize != 1:
        data = data.cast("B")
    n = len(data)
    if n < 8:
        raise FlatbufferError(f"file is {n} bytes, too short to be a TFLite flatbuffer")
    if bytes(data[4:8]) != IDENTIFIER:
        raise FlatbufferError(f"file identifier is {bytes(data[4:8])!r}, not {IDENTIFIER!r}: not a TFLite model")
    r = _Reader(data)
    try:
        return _read_model(r)
    except (struct.error, IndexError, OverflowError) as e:  # safety net; explicit checks come first
        raise FlatbufferError(f"malformed flatbuffer: {e}") from e


def _read_model(r: _Reader) -> TFLiteInfo:
    m = r.table(r.deref(0, "model root"), "model")
    version = r.scalar(m, 0, _U32, 0, "model")

    op_names: list[str] = []
    for i, oc in enumerate(r.tables(m, 1, "operator code") or ()):
        what = f"operator code {i}"
        code = max(r.scalar(oc, 0, _I8, 0, what), r.scalar(oc, 3, _I32, 0, what))
        custom = r.string(oc, 1, f"{what} custom_code")
        r.scalar(oc, 2, _I32, 1, what)
        if code == CUSTOM:
            if custom is None:
                r.fail(f"{what} is CUSTOM but has no custom_code")
            op_names.append(f"CUSTOM:{custom}")
        else:
            op_names.append(BUILTIN_OPERATORS[code] if 0 <= code < len(BUILTIN_OPERATORS) else f"BUILTIN_{code}")

    buffers = r.tables(m, 4, "buffer")
    if buffers is None:
        r.fail("model has no buffers vector")
    sizes: list[int] = []
    for i, b in enumerate(buffers):
        what = f"buffer {i}"
        inline = r.vec(b, 0, 1, f"{what} data", spend=False)
        offset, size = r.scalar(b, 1, _U64, 0, what), r.scalar(b, 2, _U64, 0, what)
        if inline is not None:  # the interpreter prefers inline data when both are set
            sizes.append(inline[1])
        elif offset > 1:  # data appended after the flatbuffer (models over 2 GB); offset is from file start
            if offset + size > r.n:
                r.fail(f"{what} external data at offset 0x{offset:x} with size {size} runs past end of file "
                       f"(size {r.n})")
            sizes.append(size)
        else:
            sizes.append(0)

    graphs = r.tables(m, 2, "subgraph")
    if not graphs:
        r.fail("model has no subgraphs")
    subgraphs = [_read_subgraph(r, g, gi, sizes, op_names) for gi, g in enumerate(graphs)]

    description = r.string(m, 3, "model description") or ""
    for i, b in enumerate(r.ints(m, 5, "model metadata_buffer") or ()):
        if not 0 <= b < len(sizes):
            r.fail(f"metadata_buffer {i} refers to buffer {b}, but the model has {len(sizes)} buffers")
    for i, md in enumerate(r.tables(m, 6, "metadata") or ()):
        r.string(md, 0, f"metadata {i} name")
        b = r.scalar(md, 1, _U32, 0, f"metadata {i}")
        if b >= len(sizes):
            r.fail(f"metadata {i} refers to buffer {b}, but the model has {len(sizes)} buffers")

    sigs = []
    for i, s in enumerate(r.tables(m, 7, "signature_def") or ()):
        what = f"signature_def {i}"
        sg = r.scalar(s, 4, _U32, 0, what)
        if sg >= len(subgraphs):
            r.fail(f"{what} refers to subgraph {sg}, but the model has {len(subgraphs)} subgraphs")
        ntensors = len(subgraphs[sg].tensors)
        maps = []
        for fi, kind in ((0, "inputs"), (1, "outputs")):
            entries = {}
            for j, tm in enumerate(r.tables(s, fi, f"{what} {kind}") or ()):
                name = r.string(tm, 0, f"{what} {kind} {j} name")
                ti = r.scalar(tm, 1, _U32, 0, f"{what} {kind} {j}")
                if ti >= ntensors:
                    r.fail(f"{what} {kind} {j} refers to tensor {ti}, but subgraph {sg} has {ntensors} tensors")
                if name is not None:
                    entries[name] = ti
            maps.append(entries)
        key = r.string(s, 2, f"{what} signature_key") or ""
        r.string(s, 3, f"{what} deprecated_tag")
        sigs.append({"key": key, "subgraph": sg, "inputs": maps[0], "outputs": maps[1]})

    return TFLiteInfo(version=version, description=description, subgraphs=subgraphs,
                      signature_defs=sigs, num_buffers=len(sizes))


def _read_subgraph(r: _Reader, g, gi: int, sizes: list[int], op_names: list[str]) -> TFLiteSubgraph:
    nbuf = len(sizes)
    tensors: list[TFLiteTensor] = []
    sparse: set[int] = set()
    for ti, t in enumerate(r.tables(g, 0, f"subgraph {gi} tensor") or ()):
        what = f"subgraph {gi} tensor {ti}"
        shape = r.ints(t, 0, f"{what} shape") or ()
        ttype = r.scalar(t, 1, _I8, 0, what)
        buf = r.scalar(t, 2, _U32, 0, what)
        name = r.string(t, 3, f"{what} name") or ""
        scale: list[float] = []
        zero_point: list[int] = []
        q = r.table_at(t, 4, f"{what} quantization")
        if q is not None:
            qw = f"{what} quantization"
            r.vec(q, 0, 4, f"{qw} min")
            r.vec(q, 1, 4, f"{qw} max")
            scale = list(r.ints(q, 2, f"{qw} scale", "f") or ())
            zero_point = list(r.ints(q, 3, f"{qw} zero_point", "q", 8) or ())
            r.scalar(q, 4, _U8, 0, qw)
            r.table_at(q, 5, f"{qw} details")
            r.scalar(q, 6, _I32, 0, qw)
        is_variable = bool(r.scalar(t, 5, _U8, 0, what))
        if r.table_at(t, 6, f"{what} sparsity") is not None:
            sparse.add(ti)
        sig = r.ints(t, 7, f"{what} shape_signature")
        r.scalar(t, 8, _U8, 0, what)
        r.vec(t, 9, 4, f"{what} variant_tensors")
        r.scalar(t, 10, _U32, 0, what)
        if buf >= nbuf and buf != 0:  # buffer 0 is the conventional "no data" sentinel
            r.fail(f"{what} refers to buffer {buf}, but the model has {nbuf} buffers")
        size = sizes[buf] if buf < nbuf else 0
        if size and any(d < 0 for d in shape):
            r.fail(f"{what} is a constant with a negative dimension in shape {shape}")
        tensors.append(TFLiteTensor(
            name=name, shape=tuple(shape), shape_signature=None if sig is None else tuple(sig),
            dtype=DTYPES[ttype] if 0 <= ttype < len(DTYPES) else "unknown", buffer=buf, buffer_size=size,
            scale=scale, zero_point=zero_point, is_variable=is_variable))
    nt = len(tensors)
    inputs = r.indices(g, 1, f"subgraph {gi} inputs", nt)
    outputs = r.indices(g, 2, f"subgraph {gi} outputs", nt)
    # LiteRT crashed on each case refused from here on (see tests/fuzz/tflite_crafted.py)
    for i in (i for i in inputs if tensors[i].buffer_size):
        r.fail(f"subgraph {gi} input tensor {i} is a constant (buffer {tensors[i].buffer} holds its data)")
    codes: list[str] = []
    unchecked: set[str] = set()
    ops = r.tables(g, 3, f"subgraph {gi} operator") or ()
    producer = [-1] * nt  # the operator writing each tensor, -1 for none (a -1 output is refused below)
    for oi, op in enumerate(ops):
        for o in (o for o in r.indices(op, 2, f"subgraph {gi} operator {oi} outputs", nt, True) if o >= 0):
            if tensors[o].buffer_size or o in inputs or producer[o] >= 0:
                r.fail(f"subgraph {gi} operator {oi} writes tensor {o}, which is " + (
                    "a constant" if tensors[o].buffer_size else "a subgraph input" if o in inputs
                    else f"written by operator {producer[o]} too"))
            producer[o] = oi
    for oi, op in enumerate(ops):
        what = f"subgraph {gi} operator {oi}"
        idx = r.scalar(op, 0, _U32, 0, what)
        if idx >= len(op_names):
            r.fail(f"{what} uses opcode_index {idx}, but the model has {len(op_names)} operator codes")
        codes.append(op_names[idx])
        op_inputs = r.indices(op, 1, f"{what} inputs", nt, optional_ok=True)
        op_outputs = r.indices(op, 2, f"{what} outputs", nt, optional_ok=True)
        problem, vouched = operand_check(op_names[idx], op_inputs, op_outputs, r.scalar(op, 3, _U8, 0, what))
        if problem:
            r.fail(f"{what} ({op_names[idx]}) {problem}")
        for t in op_inputs:  # operators run in file order: reading a later operator's output (a cycle) crashed
            if t >= 0 and producer[t] > oi:
                r.fail(f"{what} ({op_names[idx]}) reads tensor {t} before operator {producer[t]} writes it")
            if t >= 0 and producer[t] < 0 and not (tensors[t].buffer_size or tensors[t].is_variable or t in inputs):
                vouched = False  # data from nowhere (LiteRT: "lacks data")
        opts = r.table_at(op, 4, f"{what} builtin_options")
        if vouched and opts is not None and op_names[idx] in POSITIVE_OPTIONS:
            vouched = all(r.scalar(opts, f, _I32, d, what) >= 1 for f, d in POSITIVE_OPTIONS[op_names[idx]].items())
        if not vouched or r.scalar(op, 11, _U8, 0, what) or any(  # builtin_options_2: StableHLO ops
                t >= 0 and (tensors[t].dtype not in _PLAIN or t in sparse) for t in (*op_inputs, *op_outputs)):
            unchecked.add(op_names[idx])
        r.vec(op, 5, 1, f"{what} custom_options", spend=False)
        r.scalar(op, 6, _I8, 0, what)
        r.vec(op, 7, 1, f"{what} mutating_variable_inputs", spend=False)
        r.indices(op, 8, f"{what} intermediates", nt, optional_ok=True)
        off, size = r.scalar(op, 9, _U64, 0, what), r.scalar(op, 10, _U64, 0, what)
        if off > 1 and off + size > r.n:
            r.fail(f"{what} large custom options at offset 0x{off:x} with size {size} run past end of file "
                   f"(size {r.n})")
        r.table_at(op, 12, f"{what} builtin_options_2")
        r.scalar(op, 13, _I32, 0, what)
    name = r.string(g, 4, f"subgraph {gi} name") or ""
    return TFLiteSubgraph(name=name, tensors=tensors, inputs=inputs, outputs=outputs, op_codes=codes,
                          unchecked=sorted(unchecked))
