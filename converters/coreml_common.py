"""Shared by the edges that end in Core ML: precision, output names, saving the ML program."""

from __future__ import annotations

from pathlib import Path

from edgekit.formats import Format

from .base import Artifact, ConvertOptions, fail


def quiet_import():
    import logging

    from edgekit._quiet import quiet_native

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    with quiet_native():
        import coremltools as ct
    return ct


def compute_precision(ct, options: ConvertOptions):
    # fp32 must be asked for: coremltools' ML programs default to fp16 compute
    return ct.precision.FLOAT32 if options.precision == "fp32" else ct.precision.FLOAT16


def deployment_target(ct, options: ConvertOptions):
    """iOS 18 where the asked compression needs it (4-bit weights, pruning combined with another step);
    otherwise coremltools' default (the oldest target that runs the program)."""
    joint = options.prune_sparsity is not None and (options.palettize_bits or options.weights_only_bits)
    return ct.target.iOS18 if options.weights_only_bits == 4 or joint else None


def save(ct, make, src: Artifact, options: ConvertOptions, out: Path, out_names: list[str] | None,
         in_names: list[str] | None = None) -> Artifact:
    """Convert (``make()``), give the outputs (and inputs, when given) these names, in order, and save."""
    try:
        mlmodel = make()
    except Exception as e:  # coremltools raises NotImplementedError naming the op, ValueError, ...
        raise fail("coremltools failed", e, _failing_op(e)) from e
    spec = mlmodel.get_spec()
    renamed = False
    for names, features in ((out_names, spec.description.output), (in_names, spec.description.input)):
        current = [f.name for f in features]
        if names and len(current) == len(names):
            for old, new in zip(current, names):
                if old != new:
                    ct.utils.rename_feature(spec, old, new)
                    renamed = True
    if renamed:
        mlmodel = ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)
    path = out / f"{src.path.stem}.mlpackage"
    mlmodel.save(str(path))
    notes = []
    ins = mlmodel.get_spec().description.input
    if any(i.type.multiArrayType.dataType == 131104 for i in ins):  # INT32
        notes.append("Core ML has no int64 tensors: integer inputs are int32")
    return Artifact(path, Format.COREML, options.precision, notes=notes)


def _failing_op(err: Exception) -> str | None:
    import re

    s = str(err)
    m = re.search(r"(?:TF op|op|operator)\s+'([\w.:]+)'", s) or re.search(r"Unsupported fx node (\w+)", s) \
        or re.search(r"convert function for op '?([\w.]+)'?", s)
    return m.group(1) if m else None
