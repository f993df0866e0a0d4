"""TFLite quantization: applied by TensorFlow's TFLiteConverter inside the keras_to_tflite edge, not to a file.

Two registered passes (compress_base.py) with ``in_converter = True``: ``configure`` sets the converter up,
and ``ensures`` reads the written flatbuffer (edgekit's own stdlib reader, no runtime) for int8 weights and,
with ``int8_io``, int8 inputs and outputs. What TFLite cannot do (4-bit weights, palettization, pruning,
per-tensor weights) is refused before any conversion starts.

Static int8 with ``keep_float`` / ``max_accuracy_drop`` converts through TensorFlow's quantization debugger
(tf.lite.experimental.QuantizationDebugger): it calibrates once, then each quantization with layers denylisted
(QuantizationDebugOptions.denylisted_nodes, by output tensor name) is a cheap re-quantization of the calibrated
model (``Requantizer``, carried on the Artifact's ``obj`` to the repair in edgekit.compression). ``ensures``
checks each named layer's output tensor is float32 in the written file. The layers are ranked by the shared
one-at-a-time search (compress_repair.py), not by the debugger's per-layer RMSE/scale: on the outlier-channel
fixture that metric ranks the attention matmuls first and misses the FFN layer writing the outliers (its error is
small against its own huge scale), which the top-1 drop ranks first.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import ConversionError
from edgekit.formats import Format

from .compress_base import INT8, INT8_WEIGHTS, CompressionPass, compress_options, refusal, register, select
from .compress_repair import KEEP_FLOAT_KNOB

_NO_LUT = ("TFLite has no palettization or pruning option", "leave the option out for this target, or use it for "
           "coreml")
refusal(Format.TFLITE, "palettize_bits", *_NO_LUT)
refusal(Format.TFLITE, "prune_sparsity", *_NO_LUT)
refusal(Format.TFLITE, "weights_only_bits", "TFLite stores 8-bit weights", "use --weights-only-bits 8")
refusal(Format.TFLITE, "int8_io", "it needs --precision int8 (full-integer quantization)",
        "add --precision int8 with --calibration DATA, or drop --int8-io")
refusal(Format.TFLITE, "per_channel", "the TFLite converter has no per-tensor weight option",
        "drop --per-tensor for tflite")
for _knob in ("calibrate_method", "activation_type", "quant_format"):
    refusal(Format.TFLITE, _knob, "the TFLite converter calibrates int8 activations its own way",
            f"drop --{_knob.replace('_', '-')} for tflite, or use it for onnx")
for _knob in ("preset", "smooth_quant"):
    refusal(Format.TFLITE, _knob, "it is an NNCF (OpenVINO) option", "use it for openvino only")
KNOBS = (KEEP_FLOAT_KNOB,)  # the TFLite converter has no per-tensor weight option (per_channel is refused)


class _TFLitePass(CompressionPass):
    target = Format.TFLITE
    needs = (("tensorflow", "tensorflow"),)
    extra = "tensorflow"
    in_converter = True
    float_precisions = ("fp32",)  # the converter applies fp16 or int8 weight quantization, not both

    @staticmethod
    def inspect(path) -> dict:
        """Bytes of constant data per dtype, and the input/output dtypes of the main subgraph."""
        from edgekit.formats.tflite_fb import read_tflite

        data = path if isinstance(path, (bytes, bytearray)) else Path(path).read_bytes()
        info = read_tflite(data)
        consts: dict[str, int] = {}
        for g in info.subgraphs:
            for t in g.tensors:
                if t.buffer_size > 0:
                    consts[t.dtype] = consts.get(t.dtype, 0) + t.buffer_size
        g = info.subgraphs[0]
        return {"consts": consts, "inputs": [g.tensors[i].dtype for i in g.inputs],
                "outputs": [g.tensors[i].dtype for i in g.outputs],
                "activations": {t.name: t.dtype for t in g.tensors if not t.buffer_size}}

    def ensures(self, before, after, options) -> None:
        if not after["consts"].get("int8"):
            raise ConversionError(f"tflite {self.what(options)} had no effect: the model holds no int8 weights",
                                  "the TFLite converter quantizes only weights with enough elements (>= 1024); a "
                                  "model this small gains nothing from it")

    def what(self, options) -> str:
        return options.label(options.field_of(self.technique)).split(" (")[0]


@register
class TFLiteFullInt8(_TFLitePass):
    technique = INT8
    summary = ("full-integer int8 (representative dataset, TFLITE_BUILTINS_INT8); int8 I/O with int8_io; named layers "
               "kept float (the quantization debugger's denylisted_nodes)")
    honours = frozenset({"int8_io", "keep_float"})
    needs_calibration = runs_model = True

    def requires(self, options) -> None:
        super().requires(options)
        if options.int8_io and selective(options):
            raise self.refuse(options, "int8_io", "with layers kept float (keep_float, max_accuracy_drop) the "
                              "quantization debugger writes float inputs and outputs", "drop --int8-io for tflite")

    def layers(self, art, options, scratch) -> list[str]:
        """Output tensor names of the int8 ops in the converted file that the debugger's denylist can keep float
        (all denylisted at once, they are float32). A data-movement op (RESHAPE, TRANSPOSE, ...) is no layer of
        its own: it follows the op it reads from (kept float with it; alone it is never quantized, and left int8
        between two float layers it still crushes an outlier channel). ``art`` is the edge's Artifact: an
        in-converter pass reads the calibrated model off it."""
        q = self._requantizer(art)
        ops = _int8_ops(art.path)
        names = [name for name, _, _ in ops]
        acts = self.inspect(q.quantize(tuple(names)))["activations"]
        producer = {name: src for name, op, src in ops if op in MOVES and src}
        layers = [name for name, op, _ in ops if op not in MOVES and acts.get(name) == "float32"]
        q.follow = {n: tuple(m for m in producer if _root(m, producer) == n and acts.get(m) == "float32")
                    for n in layers}
        return layers

    @staticmethod
    def _requantizer(art) -> "Requantizer":
        if not isinstance(art.obj, Requantizer):
            raise ConversionError("the TFLite edge kept no calibrated model to re-quantize",
                                  "convert from the Keras, SavedModel or ONNX source with the compression options")
        return art.obj

    def requantize(self, art, options, out: Path) -> Path:
        """Write the model quantized with ``options.keep_float`` (names) float to ``out``; checked by ``ensures``."""
        data = self._requantizer(art).quantize(tuple(options.keep_float or ()))
        out.mkdir(parents=True, exist_ok=True)
        path = out / art.path.name
        path.write_bytes(data)
        self.ensures(None, self.inspect(path), options)
        return path

    def configure(self, conv, options, input_order: list[str] | None) -> str:
        import tensorflow as tf

        calib = options.calibration
        order = input_order or list(calib[0])
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([c[n] for n in order] for c in calib)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if options.int8_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        return (f"full-integer int8, calibrated on {len(calib)} samples"
                + (", int8 inputs/outputs" if options.int8_io else ", float inputs/outputs"))

    def ensures(self, before, after, options) -> None:
        super().ensures(before, after, options)
        keep = options.keep_float if isinstance(options.keep_float, tuple) else ()
        acts = after["activations"]
        unknown = [k for k in keep if k not in acts]
        if unknown:
            raise ConversionError(f"keep_float names no layer {', '.join(unknown[:3])} in the model",
                                  f"name output tensors of its layers, e.g. {', '.join(list(acts)[:4])}")
        lost = [k for k in keep if acts[k] != "float32"]
        if lost:
            raise ConversionError(f"keep_float had no effect on {', '.join(lost[:3])}: quantized anyway "
                                  f"({acts[lost[0]]})", "name the output tensor of a layer with weights")
        if options.int8_io and not all(d == "int8" for d in after["inputs"] + after["outputs"]):
            raise ConversionError(f"tflite --int8-io had no effect: inputs {after['inputs']}, outputs "
                                  f"{after['outputs']}", "the converter kept float I/O; report the model's ops")


@register
class TFLiteDynamicInt8(_TFLitePass):
    technique = INT8_WEIGHTS
    summary = "dynamic-range int8 (Optimize.DEFAULT): int8 weights, float activations"

    def configure(self, conv, options, input_order: list[str] | None) -> str:
        import tensorflow as tf

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        return "dynamic-range int8: int8 weights, float activations"


def selective(options) -> bool:
    """Static int8 with layers to keep float (names or a count) or an accuracy budget: the debugger's route."""
    c = compress_options(options)
    return c is not None and c.precision == "int8" and bool(c.keep_float or c.max_accuracy_drop is not None)


MOVES = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE"})  # ops that only move int8 values


def _int8_ops(path) -> list[tuple[str, str, str | None]]:
    """(output tensor name, op type, the op's input activation when it is another op's output) of each op with an
    int8 output, in order (the quantizer's QUANTIZE/DEQUANTIZE aside)."""
    import numpy as np
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_path=str(path))
    t = {d["index"]: d for d in interp.get_tensor_details()}
    ops = [op for op in interp._get_ops_details() if len(op["outputs"])]  # noqa: SLF001 (as TF's debugger)
    made = {t[op["outputs"][0]]["name"] for op in ops}
    out = []
    for op in ops:
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE") or t[op["outputs"][0]]["dtype"] != np.int8:
            continue
        src = next((t[i]["name"] for i in op["inputs"] if i >= 0 and t[i]["name"] in made), None)
        out.append((t[op["outputs"][0]]["name"], op["op_name"], src))
    return out


def _root(name: str, producer: dict[str, str]) -> str:
    """The op a chain of data-movement ops reads from."""
    while name in producer:
        name = producer[name]
    return name


class Requantizer:
    """TensorFlow's quantization debugger on a configured converter: calibrated once (on construction), then
    ``quantize`` re-quantizes the calibrated model with the named layers denylisted (left float)."""

    def __init__(self, conv):
        import tensorflow as tf

        self.debugger = tf.lite.experimental.QuantizationDebugger(converter=conv,
                                                                  debug_dataset=conv.representative_dataset)
        self.follow: dict[str, tuple[str, ...]] = {}  # layer -> the data-movement ops after it (``layers``)

    def quantize(self, keep: tuple[str, ...]) -> bytes:
        """The model with ``keep`` (and the data-movement ops that follow each) denylisted."""
        import tensorflow as tf

        nodes = [m for k in keep for m in (k, *self.follow.get(k, ()))]
        self.debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes or None)
        return self.debugger.get_nondebug_quantized_model()


def convert(conv, options) -> tuple[bytes, Requantizer | None]:
    """``conv.convert()``; through the quantization debugger (kept for the accuracy repair) where layers may stay
    float: the named ones are denylisted, a count is resolved by the repair after the conversion."""
    if not selective(options):
        return conv.convert(), None
    q = Requantizer(conv)
    keep = compress_options(options).keep_float
    return q.quantize(keep if isinstance(keep, tuple) else ()), q


def configure(conv, options, input_order: list[str] | None = None) -> tuple[list[_TFLitePass], list[str]]:
    """Set the converter up for the compression ``options`` ask (refusing what TFLite cannot honour);
    returns the passes (for ``verify``) and the notes."""
    from .compress_run import check_data

    passes = select(Format.TFLITE, options)
    check_data(passes, compress_options(options))
    return passes, [p.configure(conv, compress_options(options), input_order) for p in passes]


def verify(passes: list[_TFLitePass], data: bytes, options) -> None:
    """``ensures`` of each pass on the converter's output."""
    if passes:
        after = passes[0].inspect(data)
        for p in passes:
            p.ensures(None, after, compress_options(options))
