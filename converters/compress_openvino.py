"""Compress an OpenVINO IR with NNCF: static int8 (FakeQuantize, calibrated), weight-only int8 or 4-bit.

``compress_openvino(xml_path, options, out)`` reads the IR, compresses it, checks that the compression
happened (FakeQuantize ops for static int8, int8/4-bit weight constants for weight-only) and saves the
result as ``out/<stem>.xml`` + ``.bin``. Options OpenVINO/NNCF cannot honour raise a ``ConversionError``
naming the target and the option: never a silent no-op.

Weight-only int8 is what "int8-dynamic" means here: OpenVINO's CPU plugin quantizes activations on the fly
at run time (dynamic quantization), so the IR only carries int8 weights.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

from edgekit.errors import ConversionError

from .base import fail
from edgekit._offline import vendor_telemetry_off

TARGET = "openvino"
_LOW_BIT_WEIGHTS = {"u8", "i8", "u4", "i4"}


def compress_openvino(xml_path: Path, options, out: Path) -> tuple[Path, list[str]]:
    """Compress the IR at ``xml_path`` as ``options`` asks; return (saved .xml path, notes)."""
    xml_path, out = Path(xml_path), Path(out)
    precision = getattr(options, "precision", "fp32")
    calibration = getattr(options, "calibration", None)
    per_channel = getattr(options, "per_channel", True)
    weights_only_bits = getattr(options, "weights_only_bits", None)
    _refuse_unsupported(options)
    if precision not in ("fp32", "fp16", "int8", "int8-dynamic"):
        raise ConversionError(f"{TARGET}: unknown precision '{precision}'", "choose one of: fp32, fp16, int8, int8-dynamic")
    if weights_only_bits not in (None, 8, 4):
        raise ConversionError(f"{TARGET}: weights_only_bits={weights_only_bits} is not supported",
                              "choose weights_only_bits 8 or 4")
    if precision == "int8" and weights_only_bits is not None:
        raise ConversionError(f"{TARGET}: precision 'int8' (static) and weights_only_bits={weights_only_bits} conflict",
                              "use precision 'int8' for static int8, or weights_only_bits for weight-only compression")
    if precision == "int8" and not calibration:
        raise ConversionError("static int8 needs calibration data",
                              "pass calibration samples (a list of feed dicts, one sample each), or use "
                              "precision 'int8-dynamic' for weight-only int8")
    if precision == "int8-dynamic" and weights_only_bits is None:
        weights_only_bits = 8

    with vendor_telemetry_off():  # importing openvino sends a telemetry event
        import openvino as ov

    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{xml_path.stem}.xml"
    tmp = out / f".{xml_path.stem}.compressing.xml"
    notes: list[str] = []
    core = ov.Core()
    model = core.read_model(str(xml_path))
    try:
        if precision == "int8":
            model = _quantize_static(model, calibration, per_channel, notes)
            found = _count_ops(model, "FakeQuantize")
            if not found:
                raise ConversionError(f"{TARGET}: static int8 quantization had no effect (no FakeQuantize ops)",
                                      "the model may have no quantizable layers (Convolution, MatMul)")
            notes.append(f"static int8: {found} FakeQuantize ops, calibrated on {len(calibration)} samples")
            compress_to_fp16 = False
        elif weights_only_bits is not None:
            model = _compress_weights(model, weights_only_bits, calibration, notes)
            found = _low_bit_constants(model)
            if not found:
                raise ConversionError(f"{TARGET}: {weights_only_bits}-bit weight compression had no effect "
                                      "(no int8/4-bit weight constants)",
                                      "the model may have no weights NNCF can compress (MatMul, Convolution)")
            if weights_only_bits == 8:
                notes.append(f"weight-only int8 (asymmetric, per channel): {found} weights compressed")
            compress_to_fp16 = False
        else:
            compress_to_fp16 = precision == "fp16"
        ov.save_model(model, str(tmp), compress_to_fp16=compress_to_fp16)
    except ConversionError:
        _remove(tmp)
        raise
    except Exception as e:  # NNCF/OpenVINO raise RuntimeError, ValueError, nncf.ValidationError, ...
        _remove(tmp)
        raise fail(f"{TARGET}: compression with NNCF failed", e) from e
    finally:
        del model, core  # release the memory-mapped .bin before replacing files
    os.replace(tmp.with_suffix(".bin"), target.with_suffix(".bin"))
    os.replace(tmp, target)
    return target, notes


def _refuse_unsupported(options) -> None:
    if getattr(options, "int8_io", False):
        raise ConversionError(f"target '{TARGET}' does not support int8_io: OpenVINO IR keeps float inputs "
                              "and outputs", "drop int8_io for OpenVINO, or target tflite")
    if getattr(options, "palettize_bits", None):
        raise ConversionError(f"target '{TARGET}' does not support palettize_bits (palettization is Core ML's)",
                              "use weights_only_bits=4 or 8 for OpenVINO, or target coreml")
    if getattr(options, "prune_sparsity", None):
        raise ConversionError(f"target '{TARGET}' does not support prune_sparsity (the CPU plugin gains "
                              "nothing from unstructured sparsity)", "drop prune_sparsity for OpenVINO")


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


def _quantize_static(model, calibration, per_channel: bool, notes: list[str]):
    with _quiet(), vendor_telemetry_off():  # NNCF sends usage telemetry otherwise
        import nncf
        from nncf.quantization.advanced_parameters import (
            AdvancedQuantizationParameters,
            QuantizationParameters,
        )

        advanced = None
        if not per_channel:
            advanced = AdvancedQuantizationParameters(
                weights_quantization_params=QuantizationParameters(per_channel=False))
            notes.append("per-tensor weight quantization")
        return nncf.quantize(model, nncf.Dataset(list(calibration)), preset=nncf.QuantizationPreset.PERFORMANCE,
                             subset_size=len(calibration), advanced_parameters=advanced)


def _compress_weights(model, bits: int, calibration, notes: list[str]):
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


def _remove(tmp: Path) -> None:
    for p in (tmp, tmp.with_suffix(".bin")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
