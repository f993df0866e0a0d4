"""Shared by the test_tflite_fb_*.py files (and the `models` fixture in conftest.py): the error expectation,
unpacking / editing / repacking a model with the official generated schema code, and the LiteRT interpreter.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edgekit.formats import tflite_fb as fb  # noqa: E402

FlatbufferError = fb.FlatbufferError
SAFETY_NET = "malformed flatbuffer:"  # the reader's catch-all; explicit checks must fire before it


def expect_error(data, match: str | None = None) -> str:
    with pytest.raises(FlatbufferError) as exc:
        fb.read_tflite(data)
    msg = str(exc.value)
    assert not msg.startswith(SAFETY_NET), f"a bounds check is missing: {msg}"
    if match is not None:
        assert match in msg, msg
    return msg


# ---------------------------------------------------------------- model building helpers


def _schema():
    import importlib

    return importlib.import_module("ai_edge_litert.schema_py_generated")


def _pack(model_t) -> bytes:
    import flatbuffers

    b = flatbuffers.Builder(1024)
    b.Finish(model_t.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _edit(data: bytes, fn) -> bytes:
    """Unpack with the official generated schema code, let ``fn`` change the object tree, repack."""
    m = _schema().ModelT.InitFromPackedBuf(bytearray(data), 0)
    fn(m)
    return _pack(m)


def _randomize_weights(model, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)  # non-zero biases, so the converter keeps every parameter
    model.set_weights([rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in model.get_weights()])


def _interpreter(path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # no default delegates: the node list must be the file's operators, not a DELEGATE node
    return Interpreter(model_path=str(path),
                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


KINDS = ("float", "int8", "fp16", "dynamic")
