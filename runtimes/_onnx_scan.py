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

# ModelProto field number -> wire type (onnx.proto: 1 ir_version, 2 producer_name, 3 producer_version, 4 domain,
# 5 model_version, 6 doc_string, 7 graph, 8 opset_import, 14 metadata_props, 20 training_info, 25 functions,
# 26 configuration)
_MODEL_FIELDS = {1: _VARINT, 2: _LEN, 3: _LEN, 4: _LEN, 5: _VARINT, 6: _LEN, 7: _LEN, 8: _LEN,
                 14: _LEN, 20: _LEN, 25: _LEN, 26: _LEN}


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


class _Truncated(Exception):
    """Internal: the data ended at byte ``args[0]`` in the middle of a field."""


# ---------------------------------------------------------------- wire level

def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise _Truncated(end)
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result, shift, i = b & 0x7F, 7, pos + 1
    while True:
        if i >= end:
            raise _Truncated(end)
        b = buf[i]
        result |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, i
        shift += 7
        if i - pos >= 10:
            raise OnnxScanError(f"corrupt: varint longer than 10 bytes at byte {pos}")


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= (1 << 63) else v


def _fields(buf, pos: int, end: int):
    """Yield (field, wire type, a, b): varint -> (value, next pos); LEN -> (start, stop); fixed -> (start, stop)."""
    while pos < end:
        tag_at = pos
        tag, pos = _varint(buf, pos, end)
        fn, wt = tag >> 3, tag & 7
        if fn == 0 or fn >= 1 << 29:
            raise OnnxScanError(f"corrupt: invalid field number {fn} at byte {tag_at}")
        if wt == _VARINT:
            v, pos = _varint(buf, pos, end)
            yield fn, wt, v, pos
            continue
        if wt == _LEN:
            n, pos = _varint(buf, pos, end)
        elif wt == _I64 or wt == _I32:
            n = 8 if wt == _I64 else 4
        else:
            raise OnnxScanError(f"corrupt: unsupported wire type {wt} (field {fn}) at byte {tag_at}")
        if n > end - pos:
            raise _Truncated(end)
        yield fn, wt, pos, pos + n
        pos += n


def _need(wt: int, want: int, fn: int, msg: str, pos: int) -> None:
    if wt != want:
        raise OnnxScanError(f"corrupt: {msg} field {fn} has wire type {wt}, expected {want} (near byte {pos})")


def _str(buf, s: int, e: int) -> str:
    return str(buf[s:e], "utf-8", "replace")


def _ints(buf, fn: int, wt: int, a: int, b: int, out: list, msg: str) -> None:
    """Append a repeated int64 field, packed (LEN) or not (VARINT)."""
    if wt == _VARINT:
        out.append(_signed(a))
    elif wt == _LEN:
        p = a
        while p < b:
            v, p = _varint(buf, p, b)
            out.append(_signed(v))
    else:
        _need(wt, _VARINT, fn, msg, a)


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
            if _MODEL_FIELDS.get(fn) != wt:
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
        self.external: list[tuple[str, str]] = []
        self.counting = True              # False while walking training_info (external data only)

    def _enter(self, depth: int, pos: int) -> int:
        if depth >= _MAX_DEPTH:
            raise OnnxScanError(f"corrupt: messages nested deeper than {_MAX_DEPTH} at byte {pos}")
        return depth + 1

    def model(self) -> OnnxInfo:
        buf = self.buf
        problem = _head_problem(bytes(buf[:4096]))
        if problem is not None:
            raise OnnxScanError(f"not an ONNX model: {problem}")
        ir, name, version, opsets, graphs = 0, "", "", {}, 0
        inputs: list[OnnxValueInfo] = []
        outputs: list[OnnxValueInfo] = []
        for fn, wt, a, b in _fields(buf, 0, len(buf)):
            want = _MODEL_FIELDS.get(fn)
            if want is not None:
                _need(wt, want, fn, "ModelProto", a)
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
                for f2, w2, c, d in _fields(buf, a, b):
                    if f2 == 1:
                        _need(w2, _LEN, f2, "OperatorSetIdProto", c)
                        dom = _str(buf, c, d)
                    elif f2 == 2:
                        _need(w2, _VARINT, f2, "OperatorSetIdProto", c)
                        ver = _signed(c)
                opsets["" if dom == "ai.onnx" else dom] = ver
            elif fn == 20:                # TrainingInfoProto{initialization=1, algorithm=2}: check tensors only
                self.counting = False
                for f2, w2, c, d in _fields(buf, a, b):
                    if f2 in (1, 2):
                        _need(w2, _LEN, f2, "TrainingInfoProto", c)
                        self.graph(c, d, 2)
                self.counting = True
            elif fn == 25:
                self.function(a, b, 1)
        if not graphs:
            raise OnnxScanError("not an ONNX model: no graph")
        if not opsets and ir >= 3:        # required since IR 3; also catches a cut between graph and opset_import
            raise OnnxScanError("incomplete ONNX model (truncated?): no opset_import")
        return OnnxInfo(ir_version=ir, producer=f"{name} {version}".strip(), opsets=opsets, inputs=inputs,
                        outputs=outputs, op_histogram=dict(self.ops), parameter_count=self.params,
                        external_data=self.external)

    def graph(self, s: int, e: int, depth: int, main: bool = False):
        depth, buf = self._enter(depth, s), self.buf
        inits: set[str] = set()
        ins: list[OnnxValueInfo] = []
        outs: list[OnnxValueInfo] = []
        for fn, wt, a, b in _fields(buf, s, e):
            if fn in (1, 5, 11, 12, 15):
                _need(wt, _LEN, fn, "GraphProto", a)
            if fn == 1:
                self.node(a, b, depth)
            elif fn == 5:
                name, numel = self.tensor(a, b, depth)
                inits.add(name)
                self.params += numel if self.counting else 0
            elif fn == 15:
                name, numel = self.sparse(a, b, depth)
                inits.add(name)
                self.params += numel if self.counting else 0
            elif main and fn == 11:
                ins.append(self.value_info(a, b, depth))
            elif main and fn == 12:
                outs.append(self.value_info(a, b, depth))
        return [v for v in ins if v.name not in inits], outs

    def function(self, s: int, e: int, depth: int) -> None:
        depth = self._enter(depth, s)
        for fn, wt, a, b in _fields(self.buf, s, e):
            if fn == 7:                   # FunctionProto.node
                _need(wt, _LEN, fn, "FunctionProto", a)
                self.node(a, b, depth)
            elif fn == 11:                # attribute_proto: default values may hold tensors
                _need(wt, _LEN, fn, "FunctionProto", a)
                self.attribute(a, b, depth)

    def node(self, s: int, e: int, depth: int) -> None:
        depth, buf = self._enter(depth, s), self.buf
        op, domain, numel = "", "", 0
        for fn, wt, a, b in _fields(buf, s, e):
            if fn in (4, 5, 7):
                _need(wt, _LEN, fn, "NodeProto", a)
            if fn == 4:
                op = _str(buf, a, b)
            elif fn == 7:
                domain = _str(buf, a, b)
            elif fn == 5:
                numel += self.attribute(a, b, depth)
        if self.counting:
            const = domain in ("", "ai.onnx")
            self.ops[op if const else f"{domain}::{op}"] += 1
            if const and op == "Constant":
                self.params += numel

    def attribute(self, s: int, e: int, depth: int) -> int:
        """Walk an AttributeProto; return the element count of its tensor / sparse tensor values."""
        depth, numel = self._enter(depth, s), 0
        for fn, wt, a, b in _fields(self.buf, s, e):
            if fn in (5, 6, 10, 11, 22, 23):
                _need(wt, _LEN, fn, "AttributeProto", a)
            if fn in (5, 10):             # t, tensors
                numel += self.tensor(a, b, depth)[1]
            elif fn in (22, 23):          # sparse_tensor, sparse_tensors
                numel += self.sparse(a, b, depth)[1]
            elif fn in (6, 11):           # g, graphs: If/Loop/Scan bodies
                self.graph(a, b, depth)
        return numel

    def tensor(self, s: int, e: int, depth: int) -> tuple[str, int]:
        """Walk a TensorProto; record external data; return (name, element count)."""
        self._enter(depth, s)
        buf, dims, name, loc, where = self.buf, [], "", None, 0
        for fn, wt, a, b in _fields(buf, s, e):
            if fn == 1:
                _ints(buf, fn, wt, a, b, dims, "TensorProto")
            elif fn == 8:
                _need(wt, _LEN, fn, "TensorProto", a)
                name = _str(buf, a, b)
            elif fn == 13:                # StringStringEntryProto{key=1, value=2}
                _need(wt, _LEN, fn, "TensorProto", a)
                key, value = "", ""
                for f2, w2, c, d in _fields(buf, a, b):
                    if f2 in (1, 2):
                        _need(w2, _LEN, f2, "StringStringEntryProto", c)
                        if f2 == 1:
                            key = _str(buf, c, d)
                        else:
                            value = _str(buf, c, d)
                if key == "location":
                    loc = value
            elif fn == 14:
                _need(wt, _VARINT, fn, "TensorProto", a)
                where = a
            # raw_data (9) and the typed *_data fields are skipped by offset, never copied
        if loc is not None or where == _EXTERNAL:
            self.external.append((name, loc or ""))
        numel = 1
        for d in dims:
            if d < 0:
                raise OnnxScanError(f"corrupt: tensor {name!r} has a negative dimension {d}")
            numel *= d
        return name, numel

    def sparse(self, s: int, e: int, depth: int) -> tuple[str, int]:
        """SparseTensorProto{values=1, indices=2, dims=3}: (name of values, number of stored values)."""
        depth, name, numel = self._enter(depth, s), "", 0
        for fn, wt, a, b in _fields(self.buf, s, e):
            if fn in (1, 2):
                _need(wt, _LEN, fn, "SparseTensorProto", a)
                tname, n = self.tensor(a, b, depth)
                if fn == 1:
                    name, numel = tname, n
        return name, numel

    def value_info(self, s: int, e: int, depth: int) -> OnnxValueInfo:
        depth, buf = self._enter(depth, s), self.buf
        name, elem, shape = "", 0, None
        for fn, wt, a, b in _fields(buf, s, e):
            if fn == 1:
                _need(wt, _LEN, fn, "ValueInfoProto", a)
                name = _str(buf, a, b)
            elif fn == 2:
                _need(wt, _LEN, fn, "ValueInfoProto", a)
                elem, shape = self.type_proto(a, b, depth)
        return OnnxValueInfo(name, elem, _DTYPES.get(elem, "unknown"), shape)

    def type_proto(self, s: int, e: int, depth: int):
        """TypeProto: (elem_type, shape) of tensor_type (1) or sparse_tensor_type (8); (0, None) for others."""
        depth, buf = self._enter(depth, s), self.buf
        elem, shape = 0, None
        for fn, wt, a, b in _fields(buf, s, e):
            if fn not in (1, 8):
                continue
            _need(wt, _LEN, fn, "TypeProto", a)
            for f2, w2, c, d in _fields(buf, a, b):
                if f2 == 1:
                    _need(w2, _VARINT, f2, "TypeProto.Tensor", c)
                    elem = _signed(c)
                elif f2 == 2:
                    _need(w2, _LEN, f2, "TypeProto.Tensor", c)
                    shape = self.shape(c, d)
        return elem, shape

    def shape(self, s: int, e: int) -> tuple:
        buf, dims = self.buf, []
        for fn, wt, a, b in _fields(buf, s, e):
            if fn != 1:
                continue
            _need(wt, _LEN, fn, "TensorShapeProto", a)
            dim = None
            for f2, w2, c, d in _fields(buf, a, b):
                if f2 == 1:
                    _need(w2, _VARINT, f2, "Dimension", c)
                    dim = _signed(c)
                elif f2 == 2:
                    _need(w2, _LEN, f2, "Dimension", c)
                    dim = _str(buf, c, d)
            dims.append(dim)
        return tuple(dims)


def scan_onnx(path: str | os.PathLike) -> OnnxInfo:
    """Read an ONNX model file (memory-mapped) and return what it declares; raise OnnxScanError if it is not one."""
    with open(path, "rb") as f:
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:                # empty file
            raise OnnxScanError(f"not an ONNX model: {os.fspath(path)} is empty") from None
        except OSError:                   # a file system without mmap: read it
            buf = f.read()
    try:
        return _Scan(buf).model()
    except _Truncated as e:
        at = e.args[0]
        if at >= len(buf):
            raise OnnxScanError(f"truncated at byte {at}: {os.fspath(path)} ends inside a field") from None
        raise OnnxScanError(f"corrupt: a field overruns its enclosing message at byte {at} "
                            f"of {os.fspath(path)}") from None
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
