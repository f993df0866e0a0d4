"""TFLite quantization: applied by TensorFlow's TFLiteConverter inside the keras_to_tflite edge, not to a file.

Two registered passes (compress_base.py) with ``in_converter = True``: ``configure`` sets the converter up,
and ``ensures`` reads the written flatbuffer (edgekit's own stdlib reader, no runtime) for int8 weights and,
with ``int8_io``, int8 inputs and outputs. What TFLite cannot do (4-bit weights, palettization, pruning,
per-tensor weights) is refused before any conversion starts.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import ConversionError
from edgekit.formats import Format

from .compress_base import INT8, INT8_WEIGHTS, CompressionPass, compress_options, refusal, register, select

_NO_LUT = ("TFLite has no palettization or pruning option", "leave the option out for this target, or use it for "
           "coreml")
refusal(Format.TFLITE, "palettize_bits", *_NO_LUT)
refusal(Format.TFLITE, "prune_sparsity", *_NO_LUT)
refusal(Format.TFLITE, "weights_only_bits", "TFLite stores 8-bit weights", "use --weights-only-bits 8")
refusal(Format.TFLITE, "int8_io", "it needs --precision int8 (full-integer quantization)",
        "add --precision int8 with --calibration DATA, or drop --int8-io")
refusal(Format.TFLITE, "per_channel", "the TFLite converter has no per-tensor weight option",
        "drop --per-tensor for tflite")
refusal(Format.TFLITE, "keep_float", "edgekit's TFLite edge has no selective quantization yet (the quantization "
        "debugger's denylists)", "drop --keep-float for tflite (--max-accuracy-drop is still judged), or target "
        "onnx/openvino")
for _knob in ("calibrate_method", "activation_type", "quant_format"):
    refusal(Format.TFLITE, _knob, "the TFLite converter calibrates int8 activations its own way",
            f"drop --{_knob.replace('_', '-')} for tflite, or use it for onnx")
for _knob in ("preset", "smooth_quant"):
    refusal(Format.TFLITE, _knob, "it is an NNCF (OpenVINO) option", "use it for openvino only")
KNOBS = ()  # TFLite's full-integer quantization has no option edgekit can tune yet


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
                "outputs": [g.tensors[i].dtype for i in g.outputs]}

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
    summary = "full-integer int8 (representative dataset, TFLITE_BUILTINS_INT8); int8 I/O with int8_io"
    honours = frozenset({"int8_io"})
    needs_calibration = runs_model = True

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
