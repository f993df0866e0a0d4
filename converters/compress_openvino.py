"""Compress an OpenVINO IR with NNCF: static int8 (FakeQuantize, calibrated), weight-only int8 or 4-bit.

Three registered passes (compress_base.py): each refuses what it cannot honour before any conversion starts and
``ensures`` the saved IR gained FakeQuantize ops (static int8) or int8/4-bit weight constants (weight-only):
never a silent no-op. ``compress_openvino(xml_path, options, out)`` saves ``out/<stem>.xml`` + ``.bin``.

Weight-only int8 is what "int8-dynamic" means here: OpenVINO's CPU plugin quantizes activations on the fly
at run time (dynamic quantization), so the IR only carries int8 weights.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from pathlib import Path

from edgekit._offline import vendor_telemetry_off
from edgekit.errors import ConversionError
from edgekit.formats import Format

from edgekit.space import Knob

from .base import fail
from .compress_base import (
    INT4_WEIGHTS,
    INT8,
    INT8_WEIGHTS,
    CompressionPass,
    compress_options,
    refusal,
    register,
)
from .compress_repair import KEEP_FLOAT_KNOB, PER_CHANNEL_KNOB

TARGET = "openvino"
_LOW_BIT_WEIGHTS = {"u8", "i8", "u4", "i4"}

refusal(Format.OPENVINO_IR, "int8_io", "OpenVINO IR keeps float inputs and outputs",
        "drop --int8-io (int8_io) for openvino, or target tflite")
refusal(Format.OPENVINO_IR, "palettize_bits", "palettization is Core ML's",
        "use --weights-only-bits 4 or 8 (weights_only_bits) for openvino, or target coreml")
refusal(Format.OPENVINO_IR, "prune_sparsity", "the CPU plugin gains nothing from unstructured sparsity",
        "drop --prune (prune_sparsity) for openvino")
refusal(Format.OPENVINO_IR, "per_channel", "NNCF weight compression is per channel (int8) or per group (4-bit); "
        "only static int8 has a per-tensor choice", "drop --per-tensor for openvino, or use --precision int8")


_STATIC = {"precision": ("int8",)}
KNOBS = (
    Knob("openvino.preset", ("performance", "mixed"), targets=("openvino",), when=_STATIC, owner=__name__,
         help="NNCF preset: symmetric (performance) or asymmetric (mixed) activations (preset)"),
    Knob("openvino.smooth_quant", (False, True), targets=("openvino",), when=_STATIC, owner=__name__,
         help="NNCF SmoothQuant with the transformer model type (smooth_quant)"),
    PER_CHANNEL_KNOB,
    KEEP_FLOAT_KNOB,
)


def compress_openvino(xml_path: Path, options, out: Path) -> tuple[Path, list[str]]:
    """Compress the IR at ``xml_path`` as ``options`` asks; return (saved .xml path, notes)."""
    from .compress_run import run_passes

    xml_path, out = Path(xml_path), Path(out)
    copts = compress_options(options)
    if copts is None or not copts.active:  # nothing to compress: fp16 weights are the conversion's job
        out.mkdir(parents=True, exist_ok=True)
        target = out / xml_path.name
        if target.resolve() != xml_path.resolve():
            for ext in (".xml", ".bin"):
                shutil.copyfile(xml_path.with_suffix(ext), target.with_suffix(ext))
        return target, []
    return run_passes(Format.OPENVINO_IR, xml_path, options, out)


class _OpenVINOPass(CompressionPass):
    target = Format.OPENVINO_IR
    needs = (("nncf", "nncf"),)  # openvino itself is the route's (the planner names its extra)
    extra = "compress"

    @staticmethod
    def inspect(path: Path) -> dict:
        with vendor_telemetry_off():  # importing openvino sends a telemetry event
            import openvino as ov

        model = ov.Core().read_model(str(path))
        return {"FakeQuantize": _count_ops(model, "FakeQuantize"), "low_bit": _low_bit_constants(model),
                "fq_fed": _fq_fed(model),
                "low_bit_4": _low_bit_constants(model, {"u4", "i4"}),
                "bytes": Path(path).with_suffix(".bin").stat().st_size}

    def run(self, src, options, out):
        with vendor_telemetry_off():
            import openvino as ov

        notes: list[str] = []
        core = ov.Core()
        model = core.read_model(str(src))
        dest = out / src.name
        try:
            model = self.compress(model, options, notes)
            ov.save_model(model, str(dest), compress_to_fp16=False)
        except ConversionError:
            raise
        except Exception as e:  # NNCF/OpenVINO raise RuntimeError, ValueError, nncf.ValidationError, ...
            raise fail(f"{TARGET}: compression with NNCF failed", e) from e
        finally:
            del model, core  # release the memory-mapped .bin
        return dest, notes

    def compress(self, model, options, notes: list[str]):
        raise NotImplementedError

    def report(self, before, after) -> list[str]:
        b, a = before["bytes"], after["bytes"]
        return [f"weights (.bin) {b / 1024:.1f} KiB -> {a / 1024:.1f} KiB ({a / b:.2f}x)"] if b else []


@register
class OpenVINOStaticInt8(_OpenVINOPass):
    technique = INT8
    summary = ("static int8 (NNCF quantize): FakeQuantize on activations and weights, PERFORMANCE or MIXED preset, "
               "optional SmoothQuant; named layers kept float (ignored_scope)")
    honours = frozenset({"per_channel", "preset", "smooth_quant", "keep_float"})
    needs_calibration = runs_model = True

    def compress(self, model, options, notes):
        from .compress_repair import named_layers

        keep = named_layers(options)
        known = {op.get_friendly_name() for op in model.get_ops()}
        unknown = [k for k in keep if k not in known]
        if unknown:
            raise ConversionError(f"{TARGET}: keep_float names no operation {', '.join(unknown[:3])} in the model",
                                  f"operation names: {', '.join(sorted(known)[:8])}, ...")
        model = _quantize_static(model, options, keep, notes)
        notes.append(f"static int8: {_count_ops(model, 'FakeQuantize')} FakeQuantize ops, calibrated on "
                     f"{len(options.calibration)} samples, preset {options.preset or 'performance'}"
                     + (", SmoothQuant" if options.smooth_quant else "")
                     + (f"; kept float: {', '.join(keep)}" if keep else ""))
        return model

    def layers(self, src, options, scratch) -> list[str]:
        """The operations NNCF quantizes the inputs of (those fed by a FakeQuantize after a full quantization on a
        few samples), in graph order: what ``keep_float`` (ignored_scope) can name."""
        from dataclasses import replace

        with vendor_telemetry_off():
            import openvino as ov

        model = ov.Core().read_model(str(src))
        few = replace(options, keep_float=0, calibration=list(options.calibration[:16]))
        try:
            fed = set(_fq_fed(_quantize_static(model, few, (), [])))
        except Exception as e:  # noqa: BLE001 - as in run: NNCF raises many types
            raise fail(f"{TARGET}: compression with NNCF failed", e) from e
        return [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_friendly_name() in fed]

    def ensures(self, before, after, options) -> None:
        if after["FakeQuantize"] <= before["FakeQuantize"]:
            raise ConversionError(f"{TARGET}: static int8 quantization had no effect (no FakeQuantize ops)",
                                  "the model may have no quantizable layers (Convolution, MatMul)")
        lost = [k for k in (options.keep_float or ()) if k in after["fq_fed"]]
        if isinstance(options.keep_float, tuple) and lost:
            raise ConversionError(f"{TARGET}: keep_float had no effect on {', '.join(lost[:3])}: quantized anyway",
                                  "this is an edgekit bug in the OpenVINO pass; please report it")


class _OpenVINOWeights(_OpenVINOPass):
    bits = 8

    def compress(self, model, options, notes):
        model = _compress_weights(model, self.bits, notes)
        if self.bits == 8:
            notes.append(f"weight-only int8 (asymmetric, per channel): {_low_bit_constants(model)} weights compressed")
        return model

    def ensures(self, before, after, options) -> None:
        if after["low_bit"] <= before["low_bit"]:
            raise ConversionError(f"{TARGET}: {self.bits}-bit weight compression had no effect "
                                  "(no int8/4-bit weight constants)",
                                  "the model may have no weights NNCF can compress (MatMul, Convolution)")


@register
class OpenVINOWeights8(_OpenVINOWeights):
    technique = INT8_WEIGHTS
    summary = "weight-only int8 (NNCF compress_weights INT8_ASYM, per channel); the CPU plugin quantizes " \
              "activations at run time"


@register
class OpenVINOWeights4(_OpenVINOWeights):
    technique = INT4_WEIGHTS
    summary = "weight-only int4 (NNCF INT4_SYM, group 128, all layers; int8 where channels cannot be grouped)"
    bits = 4


@contextlib.contextmanager
def _quiet():
    """NNCF logs INFO lines and draws rich progress bars on stdout; keep both out of the user's terminal."""
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        logger.setLevel(level)


def _quantize_static(model, options, keep: tuple[str, ...], notes: list[str]):
    with _quiet(), vendor_telemetry_off():  # NNCF sends usage telemetry otherwise
        import nncf
        from nncf.quantization.advanced_parameters import (
            AdvancedQuantizationParameters,
            QuantizationParameters,
        )

        advanced = None
        if not options.per_channel:
            advanced = AdvancedQuantizationParameters(
                weights_quantization_params=QuantizationParameters(per_channel=False))
            notes.append("per-tensor weight quantization")
        preset = nncf.QuantizationPreset.MIXED if options.preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE
        kw = {"model_type": nncf.ModelType.TRANSFORMER} if options.smooth_quant else {}
        if keep:
            kw["ignored_scope"] = nncf.IgnoredScope(names=list(keep))
        calibration = options.calibration
        return nncf.quantize(model, nncf.Dataset(list(calibration)), preset=preset, subset_size=len(calibration),
                             advanced_parameters=advanced, **kw)


def _compress_weights(model, bits: int, notes: list[str]):
    with _quiet(), vendor_telemetry_off():  # NNCF sends usage telemetry otherwise
        import nncf

        if bits == 8:
            return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
        from nncf.quantization.advanced_parameters import (
            AdvancedCompressionParameters,
            GroupSizeFallbackMode,
        )

        # ratio=1.0 + all_layers: otherwise NNCF keeps the first and last layers (most of a small model) in int8.
        # Weights whose input channels do not divide by 128 get the largest power-of-two group >= 16 that does,
        # or stay int8 (NNCF's backup precision) when none does.
        advanced = AdvancedCompressionParameters(group_size_fallback_mode=GroupSizeFallbackMode.ADJUST,
                                                 min_adjusted_group_size=16)
        model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT4_SYM, ratio=1.0, group_size=128,
                                      all_layers=True, advanced_parameters=advanced)
        n4 = _low_bit_constants(model, {"u4", "i4"})
        n8 = _low_bit_constants(model) - n4
        notes.append(f"int4 symmetric (group size 128, smaller where needed): {n4} 4-bit weights"
                     + (f", {n8} kept in int8 (channels too few to group)" if n8 else ""))
        return model


def _fq_fed(model) -> list[str]:
    """Names of the operations that read a FakeQuantize output (the quantized layers)."""
    return sorted({t.get_node().get_friendly_name() for op in model.get_ops()
                   if op.get_type_name() == "FakeQuantize" for t in op.output(0).get_target_inputs()
                   if t.get_node().get_type_name() != "FakeQuantize"})


def _count_ops(model, type_name: str) -> int:
    return sum(1 for op in model.get_ops() if op.get_type_name() == type_name)


def _low_bit_constants(model, kinds=_LOW_BIT_WEIGHTS) -> int:
    """Low-bit weight constants: those decompressed as the first input of Subtract/Multiply (zero points,
    the second input of Subtract, are not counted)."""
    n = 0
    for op in model.get_ops():
        if op.get_type_name() != "Constant" or op.get_output_element_type(0).get_type_name() not in kinds:
            continue
        uses = [t for c in op.output(0).get_target_inputs() for t in c.get_node().output(0).get_target_inputs()]
        if not uses or any(u.get_index() == 0 for u in uses):
            n += 1
    return n
