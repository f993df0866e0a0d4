"""Scan a SavedModel's graph for ops that reach files, the network, the process or Python -- without running it.

A SavedModel is a program: loading it runs resource initializers and its signatures run whatever ops they hold
(``tf.io.write_file`` in an initializer wrote a file on ``edgekit inspect``; ``tf.io.read_file`` in a signature read
/etc/hostname on ``edgekit run``). ``check_savedmodel`` reads saved_model.pb at the protobuf wire level (stdlib
only, with the bounds-checked reader of the ONNX scan, so it also works where TensorFlow is not installed, e.g. an
OpenVINO-only device), collects the ops of the top-level graph and of every library function, and refuses the
denied ones (``denied``) unless the user trusts the file. Every library function is scanned, called or not: the
object graph can call any of them at load.

Checkpoint ops (SaveV2, MergeV2Checkpoints, RestoreV2) are in every SavedModel's saver functions
(``__inference__traced_save`` / ``__inference__traced_restore``, reached from ``saver_def``); they are allowed there
only: save ops in what only the save tensor reaches, restore ops in what only the restore op reaches. Anywhere else
(a signature, an initializer, a function the object graph names) they are refused like any file op.

Field numbers follow tensorflow/core/protobuf (saved_model, meta_graph, saver, saved_object_graph) and
tensorflow/core/framework (graph, function, node_def, attr_value, op_def); tests/sdk/formats/test_savedmodel_scan.py checks the
reader against TensorFlow's own parse.
"""

from __future__ import annotations

import mmap
import re
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import ModelFileError, TrustRequiredError
from edgekit.formats.onnx_scan import OnnxScanError, _fields, _Truncated

__all__ = ["Finding", "SavedModelScan", "scan_savedmodel", "check_savedmodel", "denied"]

_L = 1 << 2                      # length-delimited: every field read here is a message or a string
_MAX_DEPTH = 32                  # nested function-valued attributes (NameAttrList > attr > AttrValue > ...)
_NODE = {1: _L, 2: _L, 3: _L, 5: _L}         # NodeDef{name, op, input, attr}
_ENTRY = {1: _L, 2: _L}                      # map entry{key, value}
_ATTR_VALUE = {1: _L, 2: _L, 10: _L}         # AttrValue{list, s, func}
# the tag bytes of AttrValue.func (0x52) and ListValue.func (0x4a), also as the first byte of an overlong varint
# tag: an attribute value without any of them names no function
_MAY_CALL = re.compile(rb"[\x52\xd2\x4a\xca]")
_STRING_ATTRS = frozenset({"output_stream", "descriptor_source"})   # string attributes denied() reads

# --------------------------------------------------------------------------------------------- the op table
_SAVE_OPS = frozenset({"SaveV2", "Save", "SaveSlices", "MergeV2Checkpoints"})
_RESTORE_OPS = frozenset({"RestoreV2", "Restore", "RestoreSlice"})
_PURE_STRING = frozenset({"ShardedFilename", "ShardedFilespec"})  # build checkpoint file names; touch no file
_FILE_WORDS = ("File", "Reader", "Writer", "Record", "TextLine", "CSVDataset", "SqlDataset", "LMDB", "Snapshot",
               "Gcs", "BigQuery", "Bigtable")
_FILE_OPS = frozenset({"ImmutableConst", "CacheDataset", "CacheDatasetV2", "SaveDataset", "SaveDatasetV2",
                       "LoadDataset", "DistributedSave", "GenerateVocabRemapping", "LoadAndRemapMatrix", "ImportEvent"})
_NET_WORDS = ("Rpc", "DataService", "Collective", "RegisterDataset")
_NET_OPS = frozenset({"RemoteCall"})
_LOG_STREAMS = frozenset({"stderr", "stdout", "log(info)", "log(warning)", "log(error)"})


def denied(op: str, attrs: dict[str, str] | None = None) -> str | None:
    """Why ``op`` may not run from an untrusted model ("reads or writes files", ...); None when it may."""
    attrs = attrs or {}
    if op in _PURE_STRING:
        return None
    if op in _SAVE_OPS or op in _RESTORE_OPS:
        return "reads or writes checkpoint files"
    if "PyFunc" in op:                                     # PyFunc, PyFuncStateless, EagerPyFunc
        return "runs Python code"
    if op == "PrintV2":
        stream = attrs.get("output_stream", "stderr")
        return None if stream in _LOG_STREAMS else f"prints to {stream!r}"
    if op in ("DecodeProtoV2", "EncodeProto"):
        src = attrs.get("descriptor_source", "local://")
        return None if src == "local://" or src.startswith("bytes://") else "reads a descriptor file"
    if op in _FILE_OPS or op.startswith("Write") or any(w in op for w in _FILE_WORDS):
        return "reads or writes files"
    if op in _NET_OPS or any(w in op for w in _NET_WORDS):
        return "reaches the network"
    if op.startswith("Debug"):                             # DebugIdentity*: dumps tensors to file:// or grpc://
        return "dumps tensors to files or the network"
    if op == "Abort":
        return "ends the process"
    return None


# ------------------------------------------------------------------------------------------------ the reader
@dataclass
class _Vertex:
    """A top-level graph node or a library function: the ops it runs and what it calls or reads."""
    ops: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)   # (op, node name, string attrs)
    calls: set[str] = field(default_factory=set)                               # function names
    inputs: set[str] = field(default_factory=set)                              # top-level node names


@dataclass
class Finding:
    op: str
    where: str       # "function __inference__initializer_30" or "graph node 'x'"
    why: str


@dataclass
class SavedModelScan:
    ops: dict[str, set[str]]             # function name (or "" for the top-level graph) -> op types
    findings: list[Finding]
    assets: list[str]                    # asset file names as written


def _s(buf, s, e) -> str:
    return str(buf[s:e], "utf-8", "replace")


class _Reader:
    def __init__(self, buf):
        self.buf = buf
        self.nodes: dict[str, _Vertex] = {}
        self.functions: dict[str, _Vertex] = {}
        self.saver: list[tuple[str, str]] = []          # (save tensor node, restore op node) per meta graph
        self.object_fns: set[str] = set()               # concrete functions the object graph names
        self.gradient_fns: set[str] = set()
        self.assets: list[str] = []

    def f(self, s, e, schema, what):
        return _fields(self.buf, s, e, schema, what)

    def saved_model(self) -> None:
        for fn, _wt, s, e in self.f(0, len(self.buf), {2: _L}, "SavedModel"):
            if fn == 2:
                self.meta_graph(s, e)

    def meta_graph(self, s, e) -> None:
        for fn, _wt, a, b in self.f(s, e, {2: _L, 3: _L, 6: _L, 7: _L}, "MetaGraphDef"):
            if fn == 2:
                self.graph(a, b)
            elif fn == 3:
                self.saver_def(a, b)
            elif fn == 6:
                for f2, _w, c, d in self.f(a, b, {2: _L}, "AssetFileDef"):
                    if f2 == 2:
                        self.assets.append(_s(self.buf, c, d))
            elif fn == 7:
                for f2, _w, c, d in self.f(a, b, {2: _L}, "SavedObjectGraph"):
                    if f2 == 2:                              # map<string, SavedConcreteFunction>: the key
                        self.object_fns |= {_s(self.buf, x, y) for k, _, x, y in self.f(c, d, {1: _L}, "entry")
                                            if k == 1}

    def saver_def(self, s, e) -> None:
        save = restore = ""
        for fn, _wt, a, b in self.f(s, e, {2: _L, 3: _L}, "SaverDef"):
            if fn == 2:
                save = _s(self.buf, a, b)
            elif fn == 3:
                restore = _s(self.buf, a, b)
        self.saver.append((_node_name(save), _node_name(restore)))

    def graph(self, s, e) -> None:
        for fn, _wt, a, b in self.f(s, e, {1: _L, 2: _L}, "GraphDef"):
            if fn == 1:
                name, v = self.node(a, b, _Vertex(), top=True)
                self.nodes.setdefault(name, _Vertex())
                top = self.nodes[name]
                top.ops += v.ops
                top.calls |= v.calls
                top.inputs |= v.inputs
            elif fn == 2:
                for f2, _w, c, d in self.f(a, b, {1: _L, 2: _L}, "FunctionDefLibrary"):
                    if f2 == 1:
                        self.function(c, d)
                    elif f2 == 2:                            # GradientDef{function_name, gradient_func}
                        self.gradient_fns |= {_s(self.buf, x, y) for _k, _, x, y in
                                              self.f(c, d, {1: _L, 2: _L}, "GradientDef")}

    def function(self, s, e) -> None:
        name, v = "", _Vertex()
        for fn, _wt, a, b in self.f(s, e, {1: _L, 3: _L}, "FunctionDef"):
            if fn == 1:                                      # OpDef signature: its name
                for f2, _w, c, d in self.f(a, b, {1: _L}, "OpDef"):
                    if f2 == 1:
                        name = _s(self.buf, c, d)
            elif fn == 3:
                self.node(a, b, v, top=False)                # a function's node inputs are its own nodes
        self.functions.setdefault(name, _Vertex())
        self.functions[name].ops += v.ops
        self.functions[name].calls |= v.calls

    def node(self, s, e, v: _Vertex, top: bool) -> tuple[str, _Vertex]:
        name, ops, attrs = "", [], {}
        for fn, _wt, a, b in self.f(s, e, _NODE, "NodeDef"):
            if fn == 2:
                ops.append(_s(self.buf, a, b))               # every occurrence is checked, not only the last
            elif fn == 5:
                self.attr_entry(a, b, attrs, v.calls, 0)
            elif fn == 1:
                name = _s(self.buf, a, b)
            elif fn == 3 and top:
                v.inputs.add(_node_name(_s(self.buf, a, b)))
        v.calls.update(ops)                                  # an op may name a library function: a call
        v.ops += [(op, name, attrs) for op in ops]
        return name, v

    def attr_entry(self, s, e, attrs: dict, calls: set, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise OnnxScanError(f"corrupt: function attributes nested deeper than {_MAX_DEPTH}")
        key, values, buf = "", [], self.buf
        for fn, _wt, a, b in self.f(s, e, _ENTRY, "attr entry"):
            if fn == 1:
                key = _s(buf, a, b)
            elif fn == 2:
                values.append((a, b))                        # a repeated message field is merged: read them all
        for a, b in values:                                  # AttrValue{list=1, s=2, func=10}
            if key not in _STRING_ATTRS and _MAY_CALL.search(buf, a, b) is None:
                continue
            for f2, _w, c, d in self.f(a, b, _ATTR_VALUE, "AttrValue"):
                if f2 == 2:
                    attrs[key] = _s(buf, c, d)
                elif f2 == 10:
                    self.name_attr_list(c, d, calls, depth)
                elif f2 == 1:                                # ListValue{func=9}
                    for f3, _w3, x, y in self.f(c, d, {9: _L}, "ListValue"):
                        if f3 == 9:
                            self.name_attr_list(x, y, calls, depth)

    def name_attr_list(self, s, e, calls: set, depth: int) -> None:
        for fn, _wt, a, b in self.f(s, e, {1: _L, 2: _L}, "NameAttrList"):
            if fn == 1:
                calls.add(_s(self.buf, a, b))
            elif fn == 2:
                self.attr_entry(a, b, {}, calls, depth + 1)


def _node_name(ref: str) -> str:
    """'^name', 'name:0', 'name:out:0' -> 'name'."""
    return ref.lstrip("^").split(":", 1)[0]


def _closure(r: _Reader, roots: set[tuple[str, str]]) -> set[tuple[str, str]]:
    seen, todo = set(), list(roots)
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        kind, name = key
        v = (r.nodes if kind == "n" else r.functions).get(name)
        if v is None:
            continue
        seen.add(key)
        todo += [("f", c) for c in v.calls if c in r.functions]
        todo += [("n", i) for i in v.inputs if i in r.nodes] if kind == "n" else []
    return seen


def _scan_bytes(buf) -> SavedModelScan:
    r = _Reader(buf)
    r.saved_model()
    save_roots = {("n", sv) for sv, _ in r.saver if sv}
    restore_roots = {("n", rs) for _, rs in r.saver if rs}
    saving, restoring = _closure(r, save_roots), _closure(r, restore_roots)
    everything = {("n", n) for n in r.nodes} | {("f", f) for f in r.functions}
    # every vertex the saver does not reach is a root, and so is every function the object graph or a gradient
    # names: whatever they reach can run at load or on a call
    other = _closure(r, (everything - saving - restoring)
                     | {("f", f) for f in r.object_fns | r.gradient_fns})
    findings = []
    for kind, name in sorted(everything):
        v = (r.nodes if kind == "n" else r.functions)[name]
        key = (kind, name)
        for op, node, attrs in v.ops:
            if op in r.functions:                            # a call (TensorFlow refuses functions named like ops)
                continue
            why = denied(op, attrs)
            if why is None:
                continue
            if key not in other and ((op in _SAVE_OPS and key in saving and key not in restoring)
                                     or (op in _RESTORE_OPS and key in restoring and key not in saving)):
                continue
            where = f"function {name}" if kind == "f" else f"graph node {node!r}"
            findings.append(Finding(op, where, why))
    ops: dict[str, set[str]] = {f: {op for op, _, _ in v.ops if op not in r.functions}
                                for f, v in r.functions.items()}
    ops[""] = {op for v in r.nodes.values() for op, _, _ in v.ops if op not in r.functions}
    return SavedModelScan(ops, findings, r.assets)


_SCANS: dict[tuple, SavedModelScan] = {}  # (folder, size, mtime) -> scan: one SavedModel is checked by the CLI,
# convert, each edge and each runner load; a MobileNetV2 graph takes ~0.15 s to scan


def scan_savedmodel(folder: str | Path) -> SavedModelScan:
    """Read ``folder``/saved_model.pb (or .pbtxt) and return its ops and the denied ones; raise ModelFileError if it
    is not a readable SavedModel. The result is reused while the file's size and mtime stay the same."""
    folder = Path(folder)
    try:
        pb = next(f for f in (folder / "saved_model.pb", folder / "saved_model.pbtxt") if f.is_file())
        st = pb.stat()
        key = (str(pb.resolve()), st.st_size, st.st_mtime_ns)
    except (StopIteration, OSError):
        return _scan_folder(folder)
    if key not in _SCANS:
        if len(_SCANS) >= 64:  # bounded: a long-lived process scanning many models
            _SCANS.clear()
        _SCANS[key] = _scan_folder(folder)
    return _SCANS[key]


def _scan_folder(folder: Path) -> SavedModelScan:
    pb, pbtxt = folder / "saved_model.pb", folder / "saved_model.pbtxt"
    try:
        if pb.is_file():
            with open(pb, "rb") as f:
                try:
                    buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                except ValueError:                          # empty file
                    raise ModelFileError(f"the SavedModel {folder.name} has an empty saved_model.pb") from None
            try:
                return _scan_bytes(buf)
            finally:
                buf.close()
        return _scan_bytes(_text_to_binary(pbtxt, folder))
    except _Truncated:
        raise ModelFileError(f"the SavedModel {folder.name} is truncated or corrupt: a field of saved_model.pb "
                             "overruns its message") from None
    except OnnxScanError as e:
        raise ModelFileError(f"the SavedModel {folder.name} is corrupt: saved_model.pb is not a SavedModel "
                             f"protobuf ({e})") from None
    except OSError as e:
        raise ModelFileError(f"cannot read the SavedModel {folder.name}: {e.strerror or e}") from e


def _text_to_binary(pbtxt: Path, folder: Path) -> bytes:
    """A text-format SavedModel, as the binary message the reader takes (needs TensorFlow's message classes)."""
    try:
        from google.protobuf import text_format
        from tensorflow.core.protobuf import saved_model_pb2
    except ImportError:
        raise TrustRequiredError(f"the SavedModel {folder.name} is in text format (saved_model.pbtxt), which edgekit "
                                 "can check for file and Python ops only with TensorFlow installed",
                                 "pip install 'edgekit[tensorflow]', or pass --trust-code if you trust its origin"
                                 ) from None
    msg = saved_model_pb2.SavedModel()
    try:
        text_format.Parse(pbtxt.read_text("utf-8"), msg)
    except (text_format.ParseError, UnicodeDecodeError) as e:
        raise ModelFileError(f"the SavedModel {folder.name} has a corrupt saved_model.pbtxt: {e}") from None
    return msg.SerializeToString()


def check_savedmodel(folder: str | Path, trust_code: bool) -> None:
    """Refuse a SavedModel whose graph holds file, network, process or Python ops (TrustRequiredError) unless
    ``trust_code``, and one whose asset paths leave its folder (ModelFileError) in any case. Runs nothing."""
    folder = Path(folder)
    if (folder / "saved_model.cpb").exists() and not trust_code:
        raise TrustRequiredError(f"the SavedModel {folder.name} is chunked (saved_model.cpb), which edgekit cannot "
                                 "check for file and Python ops", "pass --trust-code if you trust its origin")
    try:
        scan = scan_savedmodel(folder)
    except TrustRequiredError:                               # a text SavedModel where TensorFlow is not installed
        if trust_code:
            return
        raise
    from edgekit.trust import unsafe_relative

    for name in scan.assets:
        why = unsafe_relative(name)
        if why is not None:
            raise ModelFileError(f"the SavedModel {folder.name} names the asset file {name!r}, which {why}; asset "
                                 "paths must stay inside its assets folder", "re-export the model from its source")
    if scan.findings and not trust_code:
        first = scan.findings[0]
        more = sorted({f.op for f in scan.findings} - {first.op})
        also = f" (also: {', '.join(more[:5])}{', ...' if len(more) > 5 else ''})" if more else ""
        raise TrustRequiredError(
            f"the SavedModel {folder.name} runs {first.op} ({first.why}) in {first.where}{also}; a SavedModel is a "
            "program and edgekit does not run file, network or Python ops from a model without trust",
            "pass --trust-code (trust_code=True) only if you trust where this SavedModel came from")
