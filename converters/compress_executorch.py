"""ExecuTorch and NCNN compression: what each target honours, declared before any conversion starts.

ExecuTorch int8 is applied inside the conversion (``in_converter``, as TFLite's): torchao's PT2E flow with
XNNPACK's quantizer and the user's calibration samples, before lowering (executorch_common._calibrate). ``ensures``
reads the written .pte with edgekit's own reader: the XNNPACK graphs must hold int8 constant tensors.
ExecuTorch writes no fp16 program here. NCNN's compression is fp16 (a conversion precision: pnnx fp16=1 writes fp16
weights and the runner computes in fp16); NCNN's int8 needs its own calibration-table tool (ncnn2table/ncnn2int8),
which no pip package ships, so it is refused with that reason.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import ConversionError
from edgekit.formats import Format

from .compress_base import INT8, CompressionPass, refusal, register

for _opt, _why in (("palettize_bits", "XNNPACK has no lookup-table weights"),
                   ("prune_sparsity", "XNNPACK stores dense weights"),
                   ("int8_io", "the PT2E program keeps float inputs and outputs"),
                   ("weights_only_bits", "edgekit applies XNNPACK's static int8 (weights and activations) only"),
                   ("fp16", "edgekit writes fp32 or int8 ExecuTorch programs")):
    refusal(Format.EXECUTORCH, _opt, _why, "use --precision int8 with --calibration DATA, or fp32")
for _knob in ("calibrate_method", "activation_type", "quant_format", "preset", "smooth_quant", "keep_float"):
    refusal(Format.EXECUTORCH, _knob, "XNNPACK's quantizer has no such choice here",
            f"drop --{_knob.replace('_', '-')} for executorch")
_NCNN_INT8 = ("NCNN's int8 needs its calibration-table tools (ncnn2table, ncnn2int8), which no pip package ships",
              "use --precision fp16 for ncnn (fp16 weights and arithmetic)")
for _opt in ("precision", "palettize_bits", "prune_sparsity", "int8_io", "weights_only_bits", "per_channel", "calibrate_method",
             "activation_type", "quant_format", "preset", "smooth_quant", "keep_float"):
    refusal(Format.NCNN, _opt, *_NCNN_INT8)
KNOBS = ()


@register
class ExecuTorchInt8(CompressionPass):
    target = Format.EXECUTORCH
    technique = INT8
    summary = "static int8 with torchao PT2E + XNNPACKQuantizer on the calibration samples, lowered to XNNPACK"
    honours = frozenset({"per_channel"})
    float_precisions = ("fp32",)
    needs = (("executorch", "executorch"), ("torchao", "torchao"))
    extra = "executorch"
    needs_calibration = runs_model = True
    in_converter = True

    @staticmethod
    def inspect(path) -> dict:
        from edgekit.formats.pte_fb import read_pte

        info = read_pte(Path(path).read_bytes())
        return {"xnnpack_constants": dict(info.xnnpack_constants), "ops": info.op_histogram}

    def ensures(self, before, after, options) -> None:
        if not after["xnnpack_constants"].get("int8"):
            raise ConversionError("executorch int8 had no effect: the program's XNNPACK graphs hold no int8 weights "
                                  f"(constants: {after['xnnpack_constants'] or 'none'})",
                                  "XNNPACK quantizes convolutions and linear layers; this model may have none")
