"""MediaPipe's ``Convolution2DTransposeBias`` custom operator -> the builtin TRANSPOSE_CONV with its bias input.

Matches: a CUSTOM operator with custom_code ``Convolution2DTransposeBias`` (MediaPipe's segmentation and
landmark models: mediapipe/util/tflite/operations/transpose_conv_bias.cc), float32, with inputs (input NHWC,
weights [out_ch, kh, kw, in_ch] as TRANSPOSE_CONV's, bias [out_ch]) and one output, whose custom_options hold a
``TfLiteTransposeConvParams`` C struct: int32 padding (TfLitePadding: 1 SAME, 2 VALID), int32 stride_width,
int32 stride_height (later fields, when present, are ignored, as MediaPipe's kernel and XNNPACK ignore them).

Emits: TRANSPOSE_CONV version 3 with inputs (output_shape int32 constant, weights, input, bias) and
TransposeConvOptions (padding SAME/VALID, the strides, no fused activation): the form TensorFlow's converter
writes for a Keras Conv2DTranspose with bias, which tf2onnx and OpenVINO convert. The weights and bias tensors
are reused as they are. ``output_shape`` is the output tensor's declared static shape, the shape LiteRT's XNNPACK
delegate (which runs the custom op in LiteRT) produces; with that shape TRANSPOSE_CONV pads like MediaPipe's
kernel. Where MediaPipe's CPU kernel would compute another size (SAME padding, odd input sizes) a note says so.
A dynamic input or output shape, another dtype or malformed options are refused by name: the operator has no
builtin equivalent then.
"""

from __future__ import annotations

import struct

from edgekit.errors import ConversionError

CUSTOM_CODE = "Convolution2DTransposeBias"
TRIGGER = f"CUSTOM:{CUSTOM_CODE}"
TRANSPOSE_CONV = 67  # BuiltinOperator
_PADDING = {1: 0, 2: 1}  # TfLitePadding kTfLitePaddingSame / kTfLitePaddingValid -> schema Padding SAME / VALID
_HINT = "re-export the model with a fixed input shape, or convert it from its source framework"


def run(model) -> list[str]:
    """Rewrite every matching operator in place; one note when any was rewritten, else none."""
    from . import tflite_model as tm

    count, notes = 0, []
    for gi, g in enumerate(model.subgraphs):
        for oi, op in enumerate(g.operators):
            if tm.op_name(model, op) == TRIGGER:
                notes += _rewrite(model, g, op, f"subgraph {gi} operator {oi} ({CUSTOM_CODE})")
                count += 1
    if not count:
        return []
    return [f"rewrote {count} {CUSTOM_CODE} -> TRANSPOSE_CONV (with bias) before converting", *notes]


def _rewrite(model, g, op, what: str) -> list[str]:
    import numpy as np

    from . import tflite_model as tm

    s = tm.schema()
    padding, stride_w, stride_h = _params(op, what)
    x, w, b, y = _operands(model, g, op, what)
    kh, kw = int(w.shape[1]), int(w.shape[2])
    out_shape = [int(d) for d in y.shape]
    notes = []
    expected = _mediapipe_shape([int(d) for d in x.shape], int(w.shape[0]), kh, kw, padding, stride_h, stride_w)
    if out_shape != expected:
        notes.append(f"{what}: the file declares output shape {out_shape}, MediaPipe's CPU kernel would compute "
                     f"{expected}; kept the declared shape, which LiteRT (XNNPACK) produces")
    shape_t = tm.add_tensor(model, g, tm.unique_name(g, f"{tm.text(y.name)}/output_shape"),
                            np.asarray(out_shape, dtype=np.int32))
    op.opcodeIndex = tm.opcode_index(model, TRANSPOSE_CONV, version=3)
    ins = [int(i) for i in op.inputs]
    op.inputs = np.asarray([shape_t, ins[1], ins[0], ins[2]], dtype=np.int32)
    opts = s.TransposeConvOptionsT()
    opts.padding, opts.strideW, opts.strideH = _PADDING[padding], stride_w, stride_h
    op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.TransposeConvOptions, opts
    op.customOptions, op.customOptionsFormat = None, 0
    return notes


def _params(op, what: str) -> tuple[int, int, int]:
    raw = bytes(bytearray(op.customOptions if op.customOptions is not None else b""))
    if len(raw) < 12:
        raise _error(f"{what}: custom options are {len(raw)} bytes, not the 12 of TfLiteTransposeConvParams "
                     "(padding, stride_width, stride_height)", _HINT)
    padding, stride_w, stride_h = struct.unpack_from("<3i", raw)
    if padding not in _PADDING or stride_w < 1 or stride_h < 1:
        raise _error(f"{what}: unsupported parameters (padding {padding}, strides {stride_w}x{stride_h}); "
                     "expected padding 1 (SAME) or 2 (VALID) and strides >= 1", _HINT)
    return padding, stride_w, stride_h


def _operands(model, g, op, what: str):
    from . import tflite_model as tm

    ins, outs = [int(i) for i in op.inputs], [int(i) for i in op.outputs]
    if len(ins) != 3 or len(outs) != 1 or min(ins) < 0:
        raise _error(f"{what}: expected 3 inputs (input, weights, bias) and 1 output, found "
                     f"{len(ins)} and {len(outs)}", _HINT)
    x, w, b, y = (g.tensors[i] for i in (*ins, *outs))
    for t, role in ((x, "input"), (w, "weights"), (b, "bias"), (y, "output")):
        if tm.CODE_DTYPES.get(t.type) != "float32":
            raise _error(f"{what}: the {role} is {tm.CODE_DTYPES.get(t.type, t.type)}; MediaPipe's "
                         "operator (and this rewrite) is float32 only", _HINT)
    for t, role, rank in ((x, "input", 4), (y, "output", 4), (w, "weights", 4), (b, "bias", 1)):
        sig = t.shapeSignature if t.shapeSignature is not None else t.shape  # weights: constant or DEQUANTIZE'd
        if t.shape is None or len(t.shape) != rank or any(int(d) < 1 for d in (*t.shape, *sig)):
            raise _error(f"{what}: the {role} shape {_shape(t)} is not a static {rank}-D shape", _HINT)
    if list(b.shape) != [w.shape[0]] or w.shape[3] != x.shape[3] or w.shape[0] != y.shape[3]:
        raise _error(f"{what}: shapes do not fit (input {_shape(x)}, weights {_shape(w)}, bias "
                     f"{_shape(b)}, output {_shape(y)})", _HINT)
    return x, w, b, y


def _error(message: str, hint: str) -> ConversionError:
    """A ConversionError naming the operator, as the converter edges' own errors do."""
    e = ConversionError(message, hint)
    e.op = TRIGGER
    return e


def _shape(t) -> list[int]:
    sig = t.shapeSignature if t.shapeSignature is not None else t.shape
    return [int(d) for d in (sig if sig is not None else ())]


def _mediapipe_shape(x: list[int], out_ch: int, kh: int, kw: int, padding: int, sh: int, sw: int) -> list[int]:
    """The output shape MediaPipe's CPU kernel (Prepare) computes."""

    def size(n: int, k: int, s: int) -> int:
        pad = max(0, k - (n - 1) % s - 1) if padding == 1 else 0
        return s * (n - 1) + k - pad

    return [x[0], size(x[1], kh, sh), size(x[2], kw, sw), out_ch]
