"""Crafted TFLite files that kill a LiteRT 2.3.0 process (SIGSEGV / SIGABRT) instead of raising.

Each is one edit of a converter-built seed (fuzz_seeds.py), found by the structural fuzzer. The first group is
refused by the reader (``read_tflite`` raises ``FlatbufferError``, matching ``refused``); the second passes the
reader but is not vouched for, so edgekit runs it once in a child process first and reports the crash.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

SEED_OPS_FLOAT = ["CONV_2D", "SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE", "SHAPE", "GATHER", "REDUCE_PROD",
                  "CONCATENATION", "GATHER", "REDUCE_PROD", "PACK", "RESHAPE", "FULLY_CONNECTED", "RESHAPE", "ADD",
                  "MEAN", "SOFTMAX"]


def edit(data: bytes, fn) -> bytes:
    """Unpack with the official generated schema code, let ``fn(model, schema)`` change it, repack."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as S

    m = S.ModelT.InitFromPackedBuf(bytearray(data), 0)
    fn(m, S)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _op(m, name: str, nth: int = 0):
    from edgekit.formats.tflite_ops import BUILTIN_OPERATORS

    ops = [op for op in m.subgraphs[0].operators
           if BUILTIN_OPERATORS[m.operatorCodes[op.opcodeIndex].builtinCode] == name]
    return ops[nth]


def _output_minus_one(m, S):  # the "-1 tensor index on an operator output"
    _op(m, "STRIDED_SLICE").outputs = [-1]


def _output_is_graph_input(m, S):  # an operator output index pointing at the subgraph's input tensor
    _op(m, "SOFTMAX").outputs = [int(m.subgraphs[0].inputs[0])]


def _output_written_twice(m, S):
    _op(m, "CONV_2D").outputs = [int(_op(m, "RESHAPE").outputs[0])]


def _read_before_write(m, S):  # a cycle: LOGISTIC -> FULLY_CONNECTED -> SOFTMAX -> LOGISTIC
    _op(m, "LOGISTIC").inputs[0] = int(_op(m, "SOFTMAX").outputs[0])


def _reshape_shape_minus_one(m, S):  # the "RESHAPE shape input of -1"
    _op(m, "RESHAPE", 2).inputs[1] = -1


def _constant_graph_input(m, S):  # the "constant tensor used as a subgraph input"
    m.subgraphs[0].inputs[0] = int(_op(m, "CONV_2D").inputs[1])


def _split_without_options(m, S):  # SPLIT reads num_splits from options it does not have
    from edgekit.formats.tflite_ops import BUILTIN_OPERATORS

    oc = S.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = BUILTIN_OPERATORS.index("SPLIT")
    oc.version = 1
    m.operatorCodes.append(oc)
    op = _op(m, "REDUCE_PROD")
    op.opcodeIndex = len(m.operatorCodes) - 1
    op.builtinOptionsType, op.builtinOptions = 0, None


def _depthwise_without_bias(m, S):
    op = _op(m, "DEPTHWISE_CONV_2D")
    op.inputs = op.inputs[:2]


def _pool_filter_int_min(m, S):  # options a kernel sizes its work from
    _op(m, "AVERAGE_POOL_2D").builtinOptions.filterHeight = -(2**31)


def _string_output(m, S):
    m.subgraphs[0].tensors[_op(m, "SOFTMAX").outputs[0]].type = S.TensorType.STRING


# name -> (seed, edit, the reader's message fragment, or None: accepted but not vouched for)
CRASHERS = {
    "output_minus_one": ("tflite_float", _output_minus_one, "output 0 is -1"),
    "output_is_graph_input": ("tflite_float", _output_is_graph_input, "writes tensor 0, which is a subgraph input"),
    "output_written_twice": ("tflite_float", _output_written_twice, "written by operator 0 too"),
    "read_before_write": ("tflite_float2", _read_before_write, "before operator 11 writes it"),
    "reshape_shape_minus_one": ("tflite_float", _reshape_shape_minus_one, "input 1 is -1 (omitted), but RESHAPE"),
    "constant_graph_input": ("tflite_float", _constant_graph_input, "input tensor 11 is a constant"),
    "split_without_options": ("tflite_float", _split_without_options, None),
    "depthwise_without_bias": ("tflite_int8", _depthwise_without_bias, None),
    "string_output": ("tflite_float", _string_output, None),
    "pool_filter_int_min": ("tflite_float2", _pool_filter_int_min, None),
}


def build_crashers(seeds: dict, out) -> dict:
    """{name: path} of every crafted file, written to the folder ``out``."""
    paths = {}
    for name, (seed, fn, _refused) in CRASHERS.items():
        paths[name] = out / f"{name}.tflite"
        paths[name].write_bytes(edit(seeds[seed].read_bytes(), fn))
    return paths


RAW_LITERT = """
import sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=sys.argv[1])
it.allocate_tensors()
for d in it.get_input_details():
    it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
it.invoke()
"""


def raw_litert_rc(path) -> int:
    """Return code of a child process that loads, allocates and invokes ``path`` with bare LiteRT (no edgekit):
    negative when a signal killed it."""
    return subprocess.run([sys.executable, "-c", RAW_LITERT, str(path)], capture_output=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=120).returncode


def reshape_mismatch(m, S):
    """Not a crasher: a RESHAPE whose computed shape no longer matches its input, which LiteRT reports at
    invoke time ("Node number 4 (RESHAPE) failed to invoke")."""
    g = m.subgraphs[0]
    t = next(t for t in g.tensors if t.name.endswith(b"Reshape/shape/1"))
    m.buffers[t.buffer].data = list(np.array([5], np.int32).tobytes())


def big_declared_output(m, S):
    """Not a crasher: the SOFTMAX output declared as [1, 2**27] floats (512 MiB; LiteRT sizes it [1, 4] itself)."""
    m.subgraphs[0].tensors[_op(m, "SOFTMAX").outputs[0]].shape = [1, 2**27]


def custom_op(m, S):
    """Not a crasher: SOFTMAX replaced by a custom op LiteRT does not know (an error at invoke time)."""
    from edgekit.formats.tflite_ops import BUILTIN_OPERATORS

    op = _op(m, "SOFTMAX")
    oc = m.operatorCodes[op.opcodeIndex]
    oc.builtinCode = oc.deprecatedBuiltinCode = BUILTIN_OPERATORS.index("CUSTOM")
    oc.customCode = "MyFancyOp"
    op.builtinOptionsType, op.builtinOptions = 0, None
