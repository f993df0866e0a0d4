"""Compress a saved Core ML ML program: 8/4-bit weights, k-means palettization, magnitude pruning, int8 activations.

Works on the saved package with ``coremltools.optimize.coreml`` (no torch needed), then checks the result on disk:
the ML program must hold the compression's ``constexpr_*`` ops and the weight file must have shrunk. Core ML cannot
run a model off macOS, so nothing here predicts; activation quantization (which calibrates by running the model)
is macOS-only.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from edgekit.errors import ConversionError

from .base import fail

WEIGHT_FILE = ("Data", "com.apple.CoreML", "weights", "weight.bin")
PALETTIZE_BITS = (1, 2, 3, 4, 6, 8)
WEIGHT_BITS = (8, 4)
IOS18_SPEC = 9  # specificationVersion of iOS 18 / macOS 15: 4-bit linear weights and joint compression start here
# the *_sparse variants are what joint compression (prune, then palettize or quantize) leaves, iOS 18+
QUANT_OPS = {"constexpr_affine_dequantize", "constexpr_blockwise_shift_scale", "constexpr_sparse_blockwise_shift_scale"}
LUT_OPS = {"constexpr_lut_to_dense", "constexpr_lut_to_sparse"}
SPARSE_OPS = {"constexpr_sparse_to_dense"}
ACT_OPS = {"quantize", "dequantize"}


def compress_coreml(mlpackage: Path, options, out: Path) -> tuple[Path, list[str]]:
    """Compress ``mlpackage`` as ``options`` asks; save it as ``out / mlpackage.name``; return (path, notes)."""
    mlpackage, out = Path(mlpackage), Path(out)
    plan = _plan(options)
    if not plan:
        raise ConversionError("no Core ML compression was asked for",
                              "set precision int8/int8-dynamic, weights_only_bits, palettize_bits or prune_sparsity")

    from .coreml_common import quiet_import

    ct = quiet_import()
    import coremltools.optimize.coreml as cto

    try:
        mlmodel = ct.models.MLModel(str(mlpackage), skip_model_load=True)
    except Exception as e:
        raise fail(f"coremltools could not read {mlpackage.name}", e) from e
    spec = mlmodel.get_spec()
    if not spec.HasField("mlProgram"):
        raise ConversionError(f"{mlpackage.name} is a neural network Core ML model, not an ML program",
                              "re-convert it with convert_to='mlprogram'; coremltools compresses ML programs")
    spec_version = spec.specificationVersion
    before_ops = _op_counts(spec)
    before_size = _weight_size(mlpackage)

    steps = [k for k, _ in plan]
    joint = "prune" in steps and len(steps) > 1
    if joint and spec_version < IOS18_SPEC:
        raise ConversionError(
            f"pruning combined with {steps[1]} needs a Core ML model for iOS 18 or newer "
            f"(this one is specification version {spec_version})",
            "re-convert with minimum deployment target iOS18, or apply one compression at a time")
    if ("weights", 4) in plan and spec_version < IOS18_SPEC:
        raise ConversionError(
            f"4-bit weight quantization needs a Core ML model for iOS 18 or newer "
            f"(this one is specification version {spec_version})",
            "re-convert with minimum deployment target iOS18, or use --palettize 4 (works from iOS 16)")

    notes: list[str] = []
    expect: list[tuple[set[str], str]] = []
    per_channel = bool(getattr(options, "per_channel", True))
    for i, (kind, arg) in enumerate(plan):
        later = joint and i > 0
        try:
            if kind == "prune":
                cfg = cto.OptimizationConfig(global_config=cto.OpMagnitudePrunerConfig(target_sparsity=arg))
                mlmodel = cto.prune_weights(mlmodel, cfg)
                notes.append(f"weights pruned to {arg:.0%} sparsity (magnitude)")
                expect.append((SPARSE_OPS, "pruning"))
            elif kind == "palettize":
                cfg = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(mode="kmeans", nbits=arg))
                kw = {"joint_compression": True} if later else {}
                mlmodel = cto.palettize_weights(mlmodel, cfg, **kw)
                notes.append(f"weights palettized to {arg} bits (k-means)")
                expect.append((LUT_OPS, "palettization"))
            elif kind == "weights":
                if arg == 8:
                    gran = "per_channel" if per_channel else "per_tensor"
                    op_cfg = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity=gran)
                else:
                    gran = "per_block" if per_channel else "per_tensor"
                    op_cfg = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity=gran,
                                                         block_size=32)
                kw = {"joint_compression": True} if later else {}
                mlmodel = cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=op_cfg), **kw)
                label = gran.replace("_", "-") + (" of 32" if gran == "per_block" else "")
                notes.append(f"weights quantized to {arg}-bit integers ({label}, symmetric)")
                expect.append((QUANT_OPS, f"{arg}-bit weight quantization"))
            elif kind == "activations":
                mlmodel = _quantize_activations(ct, cto, mlmodel, options, per_channel)
                notes.append("activations quantized to int8 (calibrated) and weights to int8")
                expect.append((ACT_OPS, "activation quantization"))
                expect.append((QUANT_OPS, "8-bit weight quantization"))
        except ConversionError:
            raise
        except Exception as e:  # coremltools raises ValueError for unsupported targets, bad configs, ...
            raise fail(f"coremltools could not apply {kind} compression", e) from e

    path = _save(mlmodel, mlpackage, out)

    # verify on disk: the compression ops are there and the weights shrank
    saved_spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    after_ops = _op_counts(saved_spec)
    for ops, what in expect:
        if sum(after_ops.get(o, 0) for o in ops) <= sum(before_ops.get(o, 0) for o in ops):
            raise ConversionError(
                f"Core ML {what} had no effect on {mlpackage.name}: the saved ML program has no new "
                f"{'/'.join(sorted(ops))} ops",
                "coremltools skips weights under 2048 elements; a model this small gains nothing from compression")
    after_size = _weight_size(path)
    if before_size and after_size is not None and after_size >= before_size:
        raise ConversionError(
            f"Core ML compression had no effect on {mlpackage.name}: the weight file did not shrink "
            f"({before_size} -> {after_size} bytes)",
            "the weights may already be compressed, or too small for coremltools to compress")
    if before_size and after_size is not None:
        notes.append(f"Core ML weight file {before_size / 1e6:.2f} MB -> {after_size / 1e6:.2f} MB "
                     f"({after_size / before_size:.0%})")
    if saved_spec.specificationVersion > spec_version:
        notes.append(f"Core ML specification version raised from {spec_version} to "
                     f"{saved_spec.specificationVersion} by compression (newer minimum OS)")
    return path, notes


def _plan(options) -> list[tuple[str, object]]:
    """The compression steps in the order coremltools documents for joint compression: prune first."""
    if getattr(options, "int8_io", False):
        raise ConversionError("the option int8_io is not supported for target 'coreml'",
                              "Core ML models keep float inputs and outputs; drop --int8-io for coreml")
    precision = getattr(options, "precision", "fp32")
    bits = getattr(options, "weights_only_bits", None)
    pal = getattr(options, "palettize_bits", None)
    sparsity = getattr(options, "prune_sparsity", None)

    if bits is not None and bits not in WEIGHT_BITS:
        raise ConversionError(f"weights_only_bits must be 8 or 4 for Core ML, not {bits}", "use 8 or 4")
    if pal is not None and pal not in PALETTIZE_BITS:
        raise ConversionError(f"palettize_bits must be one of {PALETTIZE_BITS} for Core ML, not {pal}",
                              "4 or 6 bits are the usual choices")
    if sparsity is not None and not 0.0 < float(sparsity) < 1.0:
        raise ConversionError(f"prune_sparsity must be between 0 and 1, not {sparsity}", "e.g. 0.5")
    if precision == "int8-dynamic":
        if bits not in (None, 8):
            raise ConversionError(f"precision int8-dynamic means 8-bit weights; it conflicts with "
                                  f"weights_only_bits={bits}", "choose one of them")
        bits = 8
    if pal is not None and bits is not None:
        raise ConversionError("palettization and linear weight quantization cannot both be applied here",
                              "choose one of --palettize and --weights-only-bits")

    plan: list[tuple[str, object]] = []
    if sparsity is not None:
        plan.append(("prune", float(sparsity)))
    if pal is not None:
        plan.append(("palettize", int(pal)))
    if precision == "int8":
        if sys.platform != "darwin":
            raise ConversionError("Core ML activation quantization runs the model to calibrate, which needs macOS",
                                  "use --weights-only-bits 8 or --palettize here")
        if plan or bits not in (None, 8):
            raise ConversionError("int8 activation quantization cannot be combined with other Core ML compression",
                                  "use precision int8 alone")
        plan.append(("activations", None))
    elif bits is not None:
        plan.append(("weights", int(bits)))
    return plan


def _quantize_activations(ct, cto, mlmodel, options, per_channel: bool):
    """W8A8, as coremltools documents it: calibrate activations on the user's samples, then 8-bit weights."""
    samples = getattr(options, "calibration", None) or ([options.sample] if getattr(options, "sample", None) else None)
    if not samples:
        raise ConversionError("Core ML int8 activation quantization needs calibration samples",
                              "pass representative inputs (CLI: --calibration)")
    import numpy as np

    data = [{k: np.asarray(v) for k, v in s.items()} for s in samples]
    act_cfg = cto.OptimizationConfig(global_config=cto.experimental.OpActivationLinearQuantizerConfig(
        mode="linear_symmetric"))
    mlmodel = cto.experimental.linear_quantize_activations(mlmodel, act_cfg, data)
    w_cfg = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel" if per_channel else "per_tensor"))
    return cto.linear_quantize_weights(mlmodel, w_cfg)


def _save(mlmodel, mlpackage: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / mlpackage.name
    if path.resolve() != mlpackage.resolve() and not path.exists():
        mlmodel.save(str(path))
        return path
    # replacing a package (maybe the one we read): save beside it, then swap it in
    tmp = Path(tempfile.mkdtemp(prefix=".compress-", dir=out)) / mlpackage.name
    try:
        mlmodel.save(str(tmp))
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)
    return path


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
