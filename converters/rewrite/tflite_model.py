"""Read a TFLite flatbuffer into an editable object tree and write it back: what the TFLite passes edit.

The tree is the TFLite schema's generated object API (``ModelT`` and friends, ``InitFromBuf`` / ``Pack``), taken
from ``ai_edge_litert.schema_py_generated`` (the LiteRT runtime's own copy of the schema, light to import) or,
without LiteRT, from TensorFlow's ``tensorflow.lite.python.schema_py_generated``; ``flatbuffers`` is a dependency
of both. A hand-written writer would have to track every table of the schema; the generated one does, and a
field it does not know (a file newer than the schema) is the only thing a round trip can lose, so ``read_model``
refuses files whose layout the object tree cannot carry (buffers stored after the flatbuffer, files over 2 GB).

Two things differ from a plain ``ModelT.Pack``: constant buffers are written 16-byte aligned, as TensorFlow's
converter writes them (kernels may read them in place as float32/int64 arrays), and writing is deterministic, so
``write_model(read_model(write_model(m)))`` is byte-identical to ``write_model(m)``. Heavy imports stay inside
functions: this module is imported by the converter edges only when a pass applies.
"""

from __future__ import annotations

from functools import lru_cache

from edgekit.errors import ConversionError

IDENTIFIER = b"TFL3"
# TensorType codes (schema.fbs) <-> numpy dtype names, for the types the passes create or read
DTYPE_CODES = {"float32": 0, "float16": 1, "int32": 2, "uint8": 3, "int64": 4, "bool": 6, "int16": 7, "int8": 9,
               "float64": 10, "uint32": 15, "uint16": 16}
CODE_DTYPES = {v: k for k, v in DTYPE_CODES.items()}
CUSTOM = 32  # BuiltinOperator.CUSTOM
PLACEHOLDER_FOR_GREATER_OP_CODES = 127


@lru_cache(maxsize=1)
def schema():
    """The generated TFLite schema module (object API): LiteRT's copy, else TensorFlow's."""
    try:
        from ai_edge_litert import schema_py_generated as s
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated as s
        except ImportError as e:
            from edgekit.errors import MissingDependencyError

            raise MissingDependencyError("ai-edge-litert", "litert", "rewrite TFLite graphs") from e
    return s


def read_model(data: bytes):
    """The whole model as an editable ``ModelT`` tree (constant data as numpy uint8 views of ``data``)."""
    s = schema()
    data = bytes(data)
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        raise ConversionError("not a TFLite flatbuffer: the rewrite needs a .tflite file")
    try:  # edgekit's reader checked the structure first; the tables it skips (sparsity, ...) are checked here
        model = s.ModelT.InitFromObj(s.Model.GetRootAs(data, 0))
    except Exception as e:  # flatbuffers raises IndexError, struct.error, ... on a malformed table
        raise ConversionError(f"the TFLite file cannot be opened for rewriting: {type(e).__name__}: {e}",
                              "re-export or re-download the model; the file on disk is not a complete model") from e
    if any(b.offset > 1 for b in model.buffers or ()):
        raise ConversionError("this TFLite file keeps its weights after the flatbuffer (a model over 2 GB): "
                              "edgekit cannot rewrite it yet",
                              "export the model without the custom operator or sparse weights instead")
    return model


def write_model(model) -> bytes:
    """The ``ModelT`` tree as TFLite flatbuffer bytes (file identifier TFL3, buffers 16-byte aligned)."""
    import flatbuffers

    s = schema()
    aligned = _aligned_buffer_class(s)
    saved = model.buffers
    model.buffers = [b if isinstance(b, aligned) else aligned.wrap(b) for b in saved or ()]
    try:
        builder = flatbuffers.Builder(1024 + sum(len(b.data) for b in model.buffers if b.data is not None))
        builder.Finish(model.Pack(builder), file_identifier=IDENTIFIER)
    finally:
        model.buffers = saved
    return bytes(builder.Output())


@lru_cache(maxsize=1)
def _aligned_buffer_class(s):
    import numpy as np

    class AlignedBufferT(s.BufferT):
        """BufferT whose data vector starts on a 16-byte boundary (schema.fbs: ``force_align: 16``)."""

        @classmethod
        def wrap(cls, b):
            x = cls()
            x.data, x.offset, x.size = b.data, b.offset, b.size
            return x

        def Pack(self, builder):
            data = None
            if self.data is not None:
                raw = np.ascontiguousarray(self.data, dtype=np.uint8).tobytes()
                builder.StartVector(1, len(raw), 16)
                builder.head -= len(raw)
                builder.Bytes[builder.head:builder.head + len(raw)] = raw
                builder.vectorNumElems = len(raw)
                data = builder.EndVector()
            s.BufferStart(builder)
            if data is not None:
                s.BufferAddData(builder, data)
            s.BufferAddOffset(builder, self.offset)
            s.BufferAddSize(builder, self.size)
            return s.BufferEnd(builder)

    return AlignedBufferT


# ---- small editing helpers the passes share ----

def op_name(model, op) -> str:
    """``"TRANSPOSE_CONV"``, or ``"CUSTOM:<custom_code>"`` for a custom operator."""
    from edgekit.formats.tflite_ops import BUILTIN_OPERATORS

    oc = model.operatorCodes[op.opcodeIndex]
    code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
    if code == CUSTOM:
        return f"CUSTOM:{text(oc.customCode)}"
    return BUILTIN_OPERATORS[code] if 0 <= code < len(BUILTIN_OPERATORS) else f"BUILTIN_{code}"


def text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v or "")


def opcode_index(model, builtin: int, version: int = 1, custom: str | None = None) -> int:
    """The index of the operator code (builtin, custom) in the model, added when missing; an existing code
    with a lower version is raised to ``version``."""
    s = schema()
    for i, oc in enumerate(model.operatorCodes or ()):
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == builtin and (
                custom is None or text(oc.customCode) == custom):
            oc.version = max(oc.version, version)
            return i
    oc = s.OperatorCodeT()
    oc.builtinCode = builtin
    oc.deprecatedBuiltinCode = min(builtin, PLACEHOLDER_FOR_GREATER_OP_CODES)
    oc.version = version
    oc.customCode = custom.encode() if custom is not None else None
    model.operatorCodes = [*(model.operatorCodes or ()), oc]
    return len(model.operatorCodes) - 1


def add_buffer(model, raw: bytes) -> int:
    import numpy as np

    b = schema().BufferT()
    b.data = np.frombuffer(raw, dtype=np.uint8).copy()
    model.buffers.append(b)
    return len(model.buffers) - 1


def add_tensor(model, graph, name: str, array=None, *, shape=None, dtype: str | None = None) -> int:
    """Append a tensor to ``graph``: a constant holding ``array``, or an activation of ``shape``/``dtype``."""
    import numpy as np

    t = schema().TensorT()
    if array is not None:
        array = np.ascontiguousarray(array)
        shape, dtype = array.shape, array.dtype.name
        t.buffer = add_buffer(model, array.tobytes())
    else:
        t.buffer = 0
    t.name = name.encode()
    t.shape = np.asarray(shape, dtype=np.int32)
    t.type = DTYPE_CODES[dtype]
    graph.tensors.append(t)
    return len(graph.tensors) - 1


def constant(model, tensor):
    """The constant data of a tensor as a numpy array of its shape (None for an activation)."""
    import numpy as np

    b = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    if b is None or b.data is None or not len(b.data):
        return None
    dtype = np.dtype(CODE_DTYPES[tensor.type])
    return np.frombuffer(np.asarray(b.data, dtype=np.uint8).tobytes(), dtype=dtype).reshape(tuple(tensor.shape))


def unique_name(graph, base: str) -> str:
    names = {text(t.name) for t in graph.tensors}
    name, k = base, 1
    while name in names:
        name, k = f"{base}_{k}", k + 1
    return name


def compact(model) -> None:
    """Drop tensors no operator, subgraph or signature uses, then buffers no tensor or metadata uses (buffer 0,
    the empty sentinel, stays) and operator codes no operator uses, renumbering every reference."""
    import numpy as np

    for gi, g in enumerate(model.subgraphs):
        used = {int(t) for op in g.operators for t in (*_ints(op.inputs), *_ints(op.outputs),
                                                        *_ints(op.intermediates)) if t >= 0}
        used |= {int(t) for t in (*_ints(g.inputs), *_ints(g.outputs))}
        for sd in model.signatureDefs or ():
            if sd.subgraphIndex == gi:
                used |= {m.tensorIndex for m in (*(sd.inputs or ()), *(sd.outputs or ()))}
        keep = sorted(used)
        new = {old: i for i, old in enumerate(keep)}
        g.tensors = [g.tensors[i] for i in keep]
        remap = np.vectorize(lambda t: new[int(t)] if t >= 0 else -1, otypes=[np.int32])
        for op in g.operators:
            for f in ("inputs", "outputs", "intermediates"):
                v = getattr(op, f)
                if v is not None and len(v):
                    setattr(op, f, remap(np.asarray(v)))
        g.inputs = remap(np.asarray(g.inputs)) if g.inputs is not None and len(g.inputs) else g.inputs
        g.outputs = remap(np.asarray(g.outputs)) if g.outputs is not None and len(g.outputs) else g.outputs
        for sd in model.signatureDefs or ():
            if sd.subgraphIndex == gi:
                for m in (*(sd.inputs or ()), *(sd.outputs or ())):
                    m.tensorIndex = new[m.tensorIndex]
    _compact_buffers(model)
    _compact_opcodes(model)


def _compact_buffers(model) -> None:
    used = {0} | {t.buffer for g in model.subgraphs for t in g.tensors}
    used |= {int(b) for b in _ints(model.metadataBuffer)} | {m.buffer for m in model.metadata or ()}
    keep = sorted(b for b in used if b < len(model.buffers))
    new = {old: i for i, old in enumerate(keep)}
    model.buffers = [model.buffers[i] for i in keep]
    for g in model.subgraphs:
        for t in g.tensors:
            t.buffer = new.get(t.buffer, 0)
    if model.metadataBuffer is not None and len(model.metadataBuffer):
        model.metadataBuffer = [new[int(b)] for b in model.metadataBuffer]
    for m in model.metadata or ():
        m.buffer = new[m.buffer]


def _compact_opcodes(model) -> None:
    keep = sorted({op.opcodeIndex for g in model.subgraphs for op in g.operators})
    new = {old: i for i, old in enumerate(keep)}
    model.operatorCodes = [model.operatorCodes[i] for i in keep]
    for g in model.subgraphs:
        for op in g.operators:
            op.opcodeIndex = new[op.opcodeIndex]


def _ints(v):
    return () if v is None else v
