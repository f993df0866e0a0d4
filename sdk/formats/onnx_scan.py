"""Scan an ONNX ModelProto at the protobuf wire level: stdlib only, bounds-checked, no copies of weights.

Three uses: (1) safety before ONNX Runtime loads a file -- every tensor with external data must point inside the
model's folder (``check_external_data``); (2) content-based format detection (``looks_like_onnx``: an ONNX model,
not a Core ML ``.mlmodel``, which is protobuf too); (3) ``edgekit inspect`` where only onnxruntime is installed:
inputs, outputs, opsets, op histogram and parameter count (``scan_onnx``).

Field numbers follow onnx/onnx.proto (onnx 1.23). A truncated or corrupt file raises ``OnnxScanError``; nesting is
capped at ``_MAX_DEPTH`` messages and varints at 10 bytes, and every length is checked against its enclosing message,
so a hostile file cannot cause an IndexError, a RecursionError, a huge allocation or a hang.
"""

from __future__ import annotations

import mmap
import ntpath
import os
import posixpath
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["OnnxScanError", "ExternalDataError", "OnnxValueInfo", "OnnxInfo",
           "looks_like_onnx", "scan_onnx", "check_external_data"]

_MAX_DEPTH = 64          # nested messages (Model > Graph > Node > Attribute > Graph ... or nested TypeProtos)
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_EXTERNAL = 1            # TensorProto.DataLocation.EXTERNAL

# TensorProto.DataType -> numpy name
_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
           9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64", 15: "complex128",
           16: "bfloat16"}

# Wire types allowed per known field (bit 1 << wire type), from onnx/onnx.proto (onnx 1.23). Unknown fields are
# skipped as protobuf does; a known field with another wire type is corruption. V varint, L length-delimited.
V, L, F = 1 << _VARINT, 1 << _LEN, 1 << _I32
_MODEL = {1: V, 2: L, 3: L, 4: L, 5: V, 6: L, 7: L, 8: L, 14: L, 20: L, 25: L, 26: L}
_OPSET = {1: L, 2: V}                                        # OperatorSetIdProto{domain, version}
_TRAINING = {1: L, 2: L, 3: L, 4: L}                         # TrainingInfoProto{initialization, algorithm, ...}
_GRAPH = {1: L, 2: L, 5: L, 10: L, 11: L, 12: L, 13: L, 14: L, 15: L, 16: L}
_FUNCTION = {1: L, 4: L, 5: L, 6: L, 7: L, 8: L, 9: L, 10: L, 11: L, 12: L, 13: L, 14: L}
_NODE = {1: L, 2: L, 3: L, 4: L, 5: L, 6: L, 7: L, 8: L, 9: L, 10: L}
_ATTR = {1: L, 2: F, 3: V, 4: L, 5: L, 6: L, 7: L | F, 8: L | V, 9: L, 10: L, 11: L, 13: L, 14: L, 15: L,
         20: V, 21: L, 22: L, 23: L}
_TENSOR = {1: L | V, 2: V, 8: L, 9: L, 12: L, 13: L, 14: V}  # dims packed or not
_ENTRY = {1: L, 2: L}                                        # StringStringEntryProto{key, value}
_SPARSE = {1: L, 2: L, 3: L | V}                             # SparseTensorProto{values, indices, dims}
_VALUE_INFO = {1: L, 2: L, 3: L}
_TYPE = {1: L, 4: L, 5: L, 6: L, 7: L, 8: L, 9: L}          # TypeProto oneof kinds + denotation
_TENSOR_TYPE = {1: V, 2: L}                                  # TypeProto.Tensor / .SparseTensor{elem_type, shape}
_SHAPE = {1: L}
_DIM = {1: V, 2: L, 3: L}                                    # Dimension{dim_value, dim_param, denotation}
del V, L, F


_NOT_WEIGHTS = frozenset({7, 8, 9})  # TensorProto.INT64, STRING, BOOL


class OnnxScanError(ValueError):
    """The bytes are not a (complete, well-formed) ONNX model; the message says what is wrong."""


class ExternalDataError(OnnxScanError):
    """A tensor's external data points outside the model's folder or to a missing file."""


@dataclass
class OnnxValueInfo:
    name: str
    elem_type: int
    dtype: str                                   # numpy name, "unknown" for other/absent element types
    shape: tuple[int | str | None, ...] | None   # int dim_value, str dim_param, None neither; None: no shape


@dataclass
class OnnxInfo:
    ir_version: int
    producer: str
    opsets: dict[str, int]
    inputs: list[OnnxValueInfo]
    outputs: list[OnnxValueInfo]
    op_histogram: dict[str, int]
    parameter_count: int
    external_data: list[tuple[str, str]] = field(default_factory=list)   # (tensor name, location as written)
    weight_dtypes: dict[str, int] = field(default_factory=dict)           # numpy name -> elements in initializers


class _Truncated(Exception):
    """Internal: the data ended at byte ``args[0]`` in the middle of a field."""


# ---------------------------------------------------------------- wire level

def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result, shift, i = 0, 0, pos
    while i < end:
        b = buf[i]
        result |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, i
        if i - pos >= 10:
            raise OnnxScanError(f"corrupt: varint longer than 10 bytes at byte {pos}")
        shift += 7
    raise _Truncated(end)


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= (1 << 63) else v


def _fields(buf, pos: int, end: int, schema: dict[int, int], what: str):
    """Yield (field, wire type, a, b): varint -> (value, next pos); others -> (start, stop) of the payload."""
    while pos < end:
        tag_at, tag = pos, buf[pos]
        if tag < 0x80:                    # one-byte fast paths: almost every tag and most lengths
            pos += 1
        else:
            tag, pos = _varint(buf, pos, end)
        fn, wt = tag >> 3, tag & 7
        if fn == 0 or fn >= 1 << 29 or wt not in (_VARINT, _I64, _LEN, _I32):
            raise OnnxScanError(f"corrupt: invalid tag (field {fn}, wire type {wt}) in {what} at byte {tag_at}")
        allowed = schema.get(fn)
        if allowed is not None and not allowed >> wt & 1:
            raise OnnxScanError(f"corrupt: {what} field {fn} has wire type {wt} at byte {tag_at}")
        if wt == _VARINT:
            v, pos = _varint(buf, pos, end)
            yield fn, wt, v, pos
            continue
        if wt == _LEN:
            if pos < end and buf[pos] < 0x80:
                n, pos = buf[pos], pos + 1
            else:
                n, pos = _varint(buf, pos, end)
        else:
            n = 8 if wt == _I64 else 4
        if n > end - pos:
            raise _Truncated(end)
        yield fn, wt, pos, pos + n
        pos += n


def _str(buf, s: int, e: int) -> str:
    return str(buf[s:e], "utf-8", "replace")


# ---------------------------------------------------------------- detection

def _head_problem(head: bytes) -> str | None:
    """Why ``head`` (the first bytes of a file) cannot start an ONNX ModelProto; None when it can.

    Reads top-level fields until head ends (possibly inside a field). The first must be ir_version; every tag must
    be a ModelProto field with its wire type; producer/domain strings must be short and NUL-free (a Core ML
    description, field 2 too, is a message); graph (7) or opset_import (8) must start, or could still follow.
    """
    end, pos, n, max_fn = len(head), 0, 0, 0
    try:
        while pos < end:
            tag, p = _varint(head, pos, end)
            fn, wt = tag >> 3, tag & 7
            if n == 0 and tag != 0x08:
                return "the first field is not ir_version (field 1, varint)"
            if not _MODEL.get(fn, 0) >> wt & 1:
                return f"field {fn} with wire type {wt} at byte {pos} is not a ModelProto field"
            if fn in (7, 8):
                return None
            n, max_fn = n + 1, max(max_fn, fn)
            v, p = _varint(head, p, end)
            if n == 1 and not 1 <= v <= 127:
                return f"implausible ir_version {v}"
            if wt == _LEN:
                if fn in (2, 3, 4) and (v > 4096 or b"\x00" in head[p:p + v]):
                    return f"field {fn} at byte {pos} is not a producer/domain string"
                p += v
            pos = p
    except _Truncated:
        pass                          # head ends inside a field whose tag was valid: more may follow
    except OnnxScanError as e:
        return str(e)
    if n == 0:
        return "empty" if not end else "the first field is not ir_version (field 1, varint)"
    if n == 1:
        return "nothing after ir_version"
    # serializers write fields in number order: after fields above 8 no graph or opset_import can follow
    return None if max_fn < 7 else "no graph or opset_import"


def looks_like_onnx(head: bytes) -> bool:
    """Cheap check on the first <= 4096 bytes of a file: is it the start of an ONNX ModelProto?"""
    return _head_problem(bytes(head[:4096])) is None


# ---------------------------------------------------------------- full scan

class _Scan:
    def __init__(self, buf):
        self.buf = buf
        self.ops: Counter = Counter()
        self.params = 0
        self.weight_dtypes: Counter = Counter()
        self.external: list[tuple[str, str]] = []
        self.counting = True              # False while walking training_info (external data only)

    def fields(self, s: int, e: int, depth: int, schema: dict[int, int], what: str):
        if depth >= _MAX_DEPTH:
            raise OnnxScanError(f"corrupt: messages nested deeper than {_MAX_DEPTH} at byte {s}")
        return _fields(self.buf, s, e, schema, what)

    def model(self) -> OnnxInfo:
        buf = self.buf
        problem = _head_problem(bytes(buf[:4096]))
        if problem is not None:
            raise OnnxScanError(f"not an ONNX model: {problem}")
        ir, name, version, opsets, graphs = 0, "", "", {}, 0
        inputs: list[OnnxValueInfo] = []
        outputs: list[OnnxValueInfo] = []
        for fn, _, a, b in self.fields(0, len(buf), 0, _MODEL, "ModelProto"):
            if fn == 1:
                ir = _signed(a)
            elif fn == 2:
                name = _str(buf, a, b)
            elif fn == 3:
                version = _str(buf, a, b)
            elif fn == 7:
                graphs += 1
                gi, go = self.graph(a, b, 1, main=True)
                inputs += gi
                outputs += go
            elif fn == 8:
                dom, ver = "", 0
                for f2, _, c, d in self.fields(a, b, 1, _OPSET, "OperatorSetIdProto"):
                    if f2 == 1:
                        dom = _str(buf, c, d)
                    elif f2 == 2:
                        ver = _signed(c)
                opsets["" if dom == "ai.onnx" else dom] = ver
            elif fn == 20:                # training graphs: walked for external data, not counted
                self.counting = False
                for f2, _, c, d in self.fields(a, b, 1, _TRAINING, "TrainingInfoProto"):
                    if f2 in (1, 2):
                        self.graph(c, d, 2)
                self.counting = True
            elif fn == 25:
                for f2, _, c, d in self.fields(a, b, 1, _FUNCTION, "FunctionProto"):
                    if f2 == 7:           # node
                        self.node(c, d, 2)
                    elif f2 == 11:        # attribute_proto: default values may hold tensors
                        self.attribute(c, d, 2)
        if not graphs:
            raise OnnxScanError("not an ONNX model: no graph")
        if not opsets and ir >= 3:        # required since IR 3; also catches a cut between graph and opset_import
            raise OnnxScanError("incomplete ONNX model (truncated?): no opset_import")
        return OnnxInfo(ir_version=ir, producer=f"{name} {version}".strip(), opsets=opsets, inputs=inputs,
                        outputs=outputs, op_histogram=dict(self.ops), parameter_count=self.params,
                        weight_dtypes=dict(self.weight_dtypes),
                        external_data=self.external)

    def graph(self, s: int, e: int, depth: int, main: bool = False):
        inits: set[str] = set()
        ins: list[OnnxValueInfo] = []
        outs: list[OnnxValueInfo] = []
        for fn, _, a, b in self.fields(s, e, depth, _GRAPH, "GraphProto"):
            if fn == 1:
                self.node(a, b, depth + 1)
            elif fn == 5 or fn == 15:     # initializer, sparse_initializer
                name, numel = (self.tensor if fn == 5 else self.sparse)(a, b, depth + 1)
                inits.add(name)
                self.params += numel if self.counting else 0
            elif main and fn in (11, 12):
                (ins if fn == 11 else outs).append(self.value_info(a, b, depth + 1))
        return [v for v in ins if v.name not in inits], outs

    def node(self, s: int, e: int, depth: int) -> None:
        buf, op, domain, numel = self.buf, "", "", 0
        for fn, _, a, b in self.fields(s, e, depth, _NODE, "NodeProto"):
            if fn == 4:
                op = _str(buf, a, b)
            elif fn == 7:
                domain = _str(buf, a, b)
            elif fn == 5:
                numel += self.attribute(a, b, depth + 1)
        if self.counting:
            default = domain in ("", "ai.onnx")
            self.ops[op if default else f"{domain}::{op}"] += 1
            if default and op == "Constant":
                self.params += numel

    def attribute(self, s: int, e: int, depth: int) -> int:
        """Walk an AttributeProto; return the element count of its tensor / sparse tensor values."""
        numel = 0
        for fn, _, a, b in self.fields(s, e, depth, _ATTR, "AttributeProto"):
            if fn in (5, 10):             # t, tensors
                numel += self.tensor(a, b, depth + 1)[1]
            elif fn in (22, 23):          # sparse_tensor, sparse_tensors
                numel += self.sparse(a, b, depth + 1)[1]
            elif fn in (6, 11):           # g, graphs: If/Loop/Scan bodies
                self.graph(a, b, depth + 1)
        return numel

    def tensor(self, s: int, e: int, depth: int) -> tuple[str, int]:
        """Walk a TensorProto, record its external data; return (name, element count). Data is skipped, not copied."""
        buf, name, dims, external, dtype = self.buf, "", [], False, 0
        locations: list[str] = []
        for fn, wt, a, b in self.fields(s, e, depth, _TENSOR, "TensorProto"):
            if fn == 1 and wt == _VARINT:
                dims.append(_signed(a))
            elif fn == 1:                 # packed dims
                while a < b:
                    d, a = _varint(buf, a, b)
                    dims.append(_signed(d))
            elif fn == 8:
                name = _str(buf, a, b)
            elif fn == 2:
                dtype = a
            elif fn == 13:
                key, value = "", ""
                for f2, _, c, d in self.fields(a, b, depth + 1, _ENTRY, "StringStringEntryProto"):
                    if f2 == 1:
                        key = _str(buf, c, d)
                    elif f2 == 2:
                        value = _str(buf, c, d)
                if key == "location":
                    locations.append(value)
            elif fn == 14:
                external = a == _EXTERNAL
        if external and not locations:
            locations.append("")
        self.external += [(name, loc) for loc in locations]
        numel = 1
        for d in dims:
            if d < 0:
                raise OnnxScanError(f"corrupt: tensor {name!r} has a negative dimension {d}")
            numel *= d
        # int64 / bool / string tensors are shapes, axes and indices (e.g. a Reshape target), not learned
        # weights: they do not count as parameters, as in the TFLite and OpenVINO counts
        if dtype not in _NOT_WEIGHTS and self.counting:
            self.weight_dtypes[_DTYPES.get(dtype, "unknown")] += numel
        return name, (0 if dtype in _NOT_WEIGHTS else numel)

    def sparse(self, s: int, e: int, depth: int) -> tuple[str, int]:
        """SparseTensorProto: (name of values, number of stored values); indices are walked for external data."""
        name, numel = "", 0
        for fn, _, a, b in self.fields(s, e, depth, _SPARSE, "SparseTensorProto"):
            if fn in (1, 2):
                tname, n = self.tensor(a, b, depth + 1)
                if fn == 1:
                    name, numel = tname, n
        return name, numel

    def value_info(self, s: int, e: int, depth: int) -> OnnxValueInfo:
        buf, name, elem, shape = self.buf, "", 0, None
        for fn, _, a, b in self.fields(s, e, depth, _VALUE_INFO, "ValueInfoProto"):
            if fn == 1:
                name = _str(buf, a, b)
            elif fn == 2:                 # TypeProto: tensor_type (1) or sparse_tensor_type (8); others stay unknown
                for f2, _, c, d in self.fields(a, b, depth + 1, _TYPE, "TypeProto"):
                    if f2 in (1, 8):
                        for f3, _, g, h in self.fields(c, d, depth + 2, _TENSOR_TYPE, "TypeProto.Tensor"):
                            if f3 == 1:
                                elem = _signed(g)
                            elif f3 == 2:
                                shape = self.shape(g, h, depth + 3)
        return OnnxValueInfo(name, elem, _DTYPES.get(elem, "unknown"), shape)

    def shape(self, s: int, e: int, depth: int) -> tuple[int | str | None, ...]:
        dims: list[int | str | None] = []
        for _, _, a, b in self.fields(s, e, depth, _SHAPE, "TensorShapeProto"):
            dim: int | str | None = None
            for fn, _, c, d in self.fields(a, b, depth + 1, _DIM, "TensorShapeProto.Dimension"):
                if fn == 1:
                    dim = _signed(c)
                elif fn == 2:
                    dim = _str(self.buf, c, d)
            dims.append(dim)
        return tuple(dims)


def scan_onnx(path: str | os.PathLike) -> OnnxInfo:
    """Read an ONNX model file (memory-mapped) and return what it declares; raise OnnxScanError if it is not one."""
    with open(path, "rb") as f:
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:                # empty file
            raise OnnxScanError("not an ONNX model: the file is empty") from None
        except OSError:                   # a file system without mmap: read it
            buf = f.read()
    try:
        return _Scan(buf).model()
    except _Truncated as e:
        at = e.args[0]
        if at >= len(buf):
            raise OnnxScanError(f"truncated at byte {at}: the file ends inside a field") from None
        raise OnnxScanError(f"corrupt: a field overruns its enclosing message at byte {at}") from None
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()


def check_external_data(info: OnnxInfo, model_path: str | os.PathLike) -> None:
    """Raise ExternalDataError unless every external-data location is a file inside the model's folder."""
    folder = os.path.realpath(os.path.dirname(os.path.abspath(os.fspath(model_path))))
    for name, loc in info.external_data:
        def bad(why: str) -> ExternalDataError:
            return ExternalDataError(f"tensor {name!r}: external data location {loc!r} {why}; ONNX external data "
                                     f"must be a file inside the model's folder {folder}")
        if not loc:
            raise bad("is empty")
        if "\x00" in loc:
            raise bad("contains a NUL byte")
        unified = loc.replace("\\", "/")
        if posixpath.isabs(unified) or ntpath.isabs(loc) or ntpath.splitdrive(loc)[0]:
            raise bad("is an absolute path")
        if posixpath.normpath(unified).split("/")[0] == "..":
            raise bad("escapes the model's folder with '..'")
        target = os.path.realpath(os.path.join(folder, loc))
        if os.path.commonpath([folder, target]) != folder:
            raise bad(f"resolves to {target}, outside the model's folder")
        if not os.path.isfile(target):
            raise bad("does not exist" if not os.path.exists(target) else "is not a regular file")
