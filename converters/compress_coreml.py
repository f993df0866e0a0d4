"""Compress a saved Core ML ML program: 8/4-bit weights, k-means palettization, magnitude pruning, int8 activations.

Works on the saved package with ``coremltools.optimize.coreml`` (no torch needed). Five registered passes
(compress_base.py); each ``ensures`` on disk that the ML program holds its ``constexpr_*`` ops and that the weight
file shrank. Pruning combined with palettization or 8/4-bit weights is coremltools' joint compression: the
prune pass runs first and the next one compresses the pruned weights (iOS 18 programs). Core ML cannot run a model
off macOS, so nothing here predicts; activation quantization (which calibrates by running the model) is
macOS-only and refused elsewhere before any conversion starts.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import ConversionError
from edgekit.formats import Format

from .base import fail
from .compress_base import (
    INT4_WEIGHTS,
    INT8,
    INT8_WEIGHTS,
    PALETTIZE,
    PRUNE,
    CompressionPass,
    compress_options,
    refusal,
    register,
)

WEIGHT_FILE = ("Data", "com.apple.CoreML", "weights", "weight.bin")
IOS18_SPEC = 9  # specificationVersion of iOS 18 / macOS 15: 4-bit linear weights and joint compression start here
# the *_sparse variants are what joint compression (prune, then palettize or quantize) leaves, iOS 18+
QUANT_OPS = {"constexpr_affine_dequantize", "constexpr_blockwise_shift_scale", "constexpr_sparse_blockwise_shift_scale"}
LUT_OPS = {"constexpr_lut_to_dense", "constexpr_lut_to_sparse"}
SPARSE_OPS = {"constexpr_sparse_to_dense"}
ACT_OPS = {"quantize", "dequantize"}

refusal(Format.COREML, "int8_io", "Core ML models keep float inputs and outputs", "drop --int8-io for coreml")
refusal(Format.COREML, "per_channel", "per_channel chooses the granularity of linear weight quantization; "
        "palettization and pruning have none", "drop --per-tensor, or add --weights-only-bits 8")


def compress_coreml(mlpackage: Path, options, out: Path) -> tuple[Path, list[str]]:
    """Compress ``mlpackage`` as ``options`` asks; save it as ``out / mlpackage.name``; return (path, notes)."""
    from dataclasses import replace

    from .compress_base import select
    from .compress_run import run_passes

    copts = compress_options(options)
    if copts is None or not copts.active:
        select(Format.COREML, copts)  # refuses a modifier asked without a compression, naming it
        raise ConversionError("no Core ML compression was asked for",
                              "set precision int8/int8-dynamic, weights_only_bits, palettize_bits or prune_sparsity")
    if copts.precision == "int8" and not copts.calibration and getattr(options, "sample", None):
        copts = replace(copts, calibration=[options.sample])  # calibrate on the user's sample
    return run_passes(Format.COREML, Path(mlpackage), copts, Path(out))


class _CoreMLPass(CompressionPass):
    target = Format.COREML
    needs = (("coremltools", "coremltools"),)
    extra = "coreml"
    ops: set[str] = set()
    what = ""

    @staticmethod
    def inspect(path: Path) -> dict:
        ct = _ct()
        try:
            spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
        except Exception as e:
            raise fail(f"coremltools could not read {Path(path).name}", e) from e
        program = spec.HasField("mlProgram")
        return {"name": Path(path).name, "ml_program": program, "spec": spec.specificationVersion,
                "ops": _op_counts(spec) if program else {}, "weights": _weight_size(Path(path))}

    def requires_model(self, before, options) -> None:
        if not before["ml_program"]:
            raise ConversionError(f"{before['name']} is a neural network Core ML model, not an ML program",
                                  "re-convert it with convert_to='mlprogram'; coremltools compresses ML programs")
        if options.prune_sparsity is not None and self.technique != PRUNE and before["spec"] < IOS18_SPEC:
            raise ConversionError(
                f"pruning combined with {self.technique} needs a Core ML model for iOS 18 or newer "
                f"(this one is specification version {before['spec']})",
                "re-convert with minimum deployment target iOS18, or apply one compression at a time")

    def run(self, src, options, out):
        ct = _ct()
        import coremltools.optimize.coreml as cto

        try:
            mlmodel = ct.models.MLModel(str(src), skip_model_load=True)
        except Exception as e:
            raise fail(f"coremltools could not read {src.name}", e) from e
        notes: list[str] = []
        # joint compression: the pruned weights are palettized or quantized as sparse weights
        joint = {"joint_compression": True} if options.prune_sparsity is not None and self.technique != PRUNE else {}
        try:
            mlmodel = self.apply(ct, cto, mlmodel, options, notes, joint)
        except ConversionError:
            raise
        except Exception as e:  # coremltools raises ValueError for unsupported targets, bad configs, ...
            raise fail(f"coremltools could not apply {self.technique} compression", e) from e
        dest = out / src.name
        mlmodel.save(str(dest))
        return dest, notes

    def apply(self, ct, cto, mlmodel, options, notes, joint):
        raise NotImplementedError

    def ensures(self, before, after, options) -> None:
        groups = [(self.ops, self.what)] + ([(QUANT_OPS, "8-bit weight quantization")] if self.technique == INT8
                                            else [])
        for ops, what in groups:
            if sum(after["ops"].get(o, 0) for o in ops) <= sum(before["ops"].get(o, 0) for o in ops):
                raise ConversionError(
                    f"Core ML {what} had no effect on {before['name']}: the saved ML program has no new "
                    f"{'/'.join(sorted(ops))} ops",
                    "coremltools skips weights under 2048 elements; a model this small gains nothing from compression")
        b, a = before["weights"], after["weights"]
        if b and a is not None and a >= b:
            raise ConversionError(
                f"Core ML {self.what} had no effect on {before['name']}: the weight file did not shrink "
                f"({b} -> {a} bytes)",
                "the weights may already be compressed, or too small for coremltools to compress")

    def report(self, before, after) -> list[str]:
        notes = []
        b, a = before["weights"], after["weights"]
        if b and a is not None:
            notes.append(f"Core ML weight file {b / 1e6:.2f} MB -> {a / 1e6:.2f} MB ({a / b:.0%})")
        if after["spec"] > before["spec"]:
            notes.append(f"Core ML specification version raised from {before['spec']} to {after['spec']} by "
                         "compression (newer minimum OS)")
        return notes


@register
class CoreMLPrune(_CoreMLPass):
    technique = PRUNE
    summary = "magnitude pruning to prune_sparsity (OpMagnitudePrunerConfig); first in a joint compression"
    ops, what = SPARSE_OPS, "pruning"

    def apply(self, ct, cto, mlmodel, options, notes, joint):
        s = options.prune_sparsity
        cfg = cto.OptimizationConfig(global_config=cto.OpMagnitudePrunerConfig(target_sparsity=s))
        notes.append(f"weights pruned to {s:.0%} sparsity (magnitude)")
        return cto.prune_weights(mlmodel, cfg)


@register
class CoreMLPalettize(_CoreMLPass):
    technique = PALETTIZE
    summary = "k-means palettization to 1/2/3/4/6/8 bits (OpPalettizerConfig)"
    ops, what = LUT_OPS, "palettization"

    def requires(self, options) -> None:
        if INT8_WEIGHTS in options.techniques or INT4_WEIGHTS in options.techniques:
            raise self.refuse(options, "palettize_bits", "palettization and linear weight quantization cannot "
                                                         "both be applied", "choose one of --palettize and "
                                                                            "--weights-only-bits")
        super().requires(options)

    def apply(self, ct, cto, mlmodel, options, notes, joint):
        bits = options.palettize_bits
        cfg = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(mode="kmeans", nbits=bits))
        notes.append(f"weights palettized to {bits} bits (k-means)")
        return cto.palettize_weights(mlmodel, cfg, **joint)


class _CoreMLWeights(_CoreMLPass):
    honours = frozenset({"per_channel"})
    ops = QUANT_OPS
    bits = 8

    @property
    def what(self) -> str:
        return f"{self.bits}-bit weight quantization"

    def apply(self, ct, cto, mlmodel, options, notes, joint):
        if self.bits == 8:
            gran = "per_channel" if options.per_channel else "per_tensor"
            op_cfg = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity=gran)
        else:
            gran = "per_block" if options.per_channel else "per_tensor"
            op_cfg = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity=gran,
                                                 block_size=32)
        label = gran.replace("_", "-") + (" of 32" if gran == "per_block" else "")
        notes.append(f"weights quantized to {self.bits}-bit integers ({label}, symmetric)")
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=op_cfg), **joint)


@register
class CoreMLWeights8(_CoreMLWeights):
    technique = INT8_WEIGHTS
    summary = "8-bit linear weights, symmetric, per channel or per tensor (OpLinearQuantizerConfig)"


@register
class CoreMLWeights4(_CoreMLWeights):
    technique = INT4_WEIGHTS
    summary = "4-bit linear weights, symmetric, blocks of 32 or per tensor; needs an iOS 18 program"
    bits = 4

    def requires_model(self, before, options) -> None:
        super().requires_model(before, options)
        if before["spec"] < IOS18_SPEC:
            raise ConversionError(
                f"4-bit weight quantization needs a Core ML model for iOS 18 or newer "
                f"(this one is specification version {before['spec']})",
                "re-convert with minimum deployment target iOS18, or use --palettize 4 (works from iOS 16)")


@register
class CoreMLActivations(_CoreMLPass):
    technique = INT8
    summary = "W8A8: int8 activations calibrated on the samples, then 8-bit weights (macOS: runs the model)"
    honours = frozenset({"per_channel"})
    needs_calibration = runs_model = True
    platforms = ("darwin",)
    platform_why = "Core ML activation quantization runs the model to calibrate, which needs macOS"
    platform_hint = "use --weights-only-bits 8 or --palettize here"
    ops, what = ACT_OPS, "activation quantization"

    def requires(self, options) -> None:
        if options.palettize_bits is not None or options.prune_sparsity is not None:
            raise self.refuse(options, "precision", "int8 activation quantization cannot be combined with other "
                                                    "Core ML compression", "use precision int8 alone")
        super().requires(options)

    def apply(self, ct, cto, mlmodel, options, notes, joint):
        """W8A8, as coremltools documents it: calibrate activations on the user's samples, then 8-bit weights."""
        import numpy as np

        data = [{k: np.asarray(v) for k, v in s.items()} for s in options.calibration]
        act_cfg = cto.OptimizationConfig(global_config=cto.experimental.OpActivationLinearQuantizerConfig(
            mode="linear_symmetric"))
        mlmodel = cto.experimental.linear_quantize_activations(mlmodel, act_cfg, data)
        w_cfg = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int8", granularity="per_channel" if options.per_channel else "per_tensor"))
        notes.append("activations quantized to int8 (calibrated) and weights to int8")
        return cto.linear_quantize_weights(mlmodel, w_cfg)


def _ct():
    from .coreml_common import quiet_import

    return quiet_import()


def _op_counts(spec) -> dict[str, int]:
    counts: dict[str, int] = {}

    def walk(block):
        for op in block.operations:
            counts[op.type] = counts.get(op.type, 0) + 1
            for inner in op.blocks:
                walk(inner)

    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            walk(block)
    return counts


def _weight_size(package: Path) -> int | None:
    f = package.joinpath(*WEIGHT_FILE)
    return f.stat().st_size if f.is_file() else None
