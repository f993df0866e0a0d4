"""The first steps of `edgekit convert`: the source as a file with its trust, and the reference run on the
inputs every target is checked with (with the warnings when that check has no power)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import EdgekitError, InputError
from .formats import Format


def _in_memory_source(model, example_inputs, out: Path, owned: set[str]):
    """Save an in-memory keras.Model or torch.nn.Module into out/_source, so every route starts from a file."""
    from edgekit.converters.base import Artifact

    mod = type(model).__module__
    src_dir = out / "_source"
    src_dir.mkdir(parents=True, exist_ok=True)
    if mod.startswith("keras") or mod.startswith("tf_keras"):
        path = _free(src_dir / f"{getattr(model, 'name', 'model') or 'model'}.keras", owned)
        model.save(path)
        return Artifact(path, Format.KERAS, obj=model)
    if mod.startswith("torch") or _is_torch_module(model):
        if example_inputs is None:
            raise InputError("converting a torch.nn.Module needs example inputs",
                             "pass example_inputs=(tensor, ...) matching the model's forward()")
        import torch

        args = tuple(torch.as_tensor(np.asarray(a)) if not isinstance(a, torch.Tensor) else a
                     for a in (example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)))
        ep = torch.export.export(model.eval(), args)
        path = _free(src_dir / f"{type(model).__name__.lower()}.pt2", owned)
        torch.export.save(ep, str(path))
        return Artifact(path, Format.TORCH_EXPORT, obj=ep)
    raise InputError(f"cannot convert an object of type {type(model).__name__}",
                     "pass a model file path, a keras.Model or a torch.nn.Module")


def _free(path: Path, owned: set[str]) -> Path:
    """``path``, or a numbered sibling when a file edgekit did not write is already there."""
    k, cand = 1, path
    while (cand.exists() or cand.is_symlink()) and f"_source/{cand.name}" not in owned:
        cand, k = path.with_name(f"{path.stem}-{k}{path.suffix}"), k + 1
    return cand


def _is_torch_module(obj) -> bool:
    return any(c.__module__.startswith("torch.nn") for c in type(obj).__mro__)


@dataclass
class _Source:
    art: object  # converters.base.Artifact
    files: list[Path]
    trust: bool


@dataclass
class _Reference:
    """The source run on the check's inputs: what every target is compared with."""

    names: list[str] = field(default_factory=list)  # the source's input names, in order
    sample: dict | None = None  # name -> array, samples on the first axis
    outputs: dict | None = None
    dynamic: dict = field(default_factory=dict)
    pins: dict = field(default_factory=dict)  # {input: {axis: size}}: the sample's size of each dynamic dim but dim 0
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # parity checks without power
    gate_sample: dict | None = None  # compressed targets: many samples (the user's, calibration or generated)
    gate_outputs: dict | None = None
    gate_warnings: list[str] = field(default_factory=list)
    problem: str | None = None  # why the source cannot run here (targets are then unverified)


def _prepare_source(model, example_inputs, trust_code: bool, out: Path, owned: set[str]) -> _Source:
    """The source as a file on disk, with the trust it loads under."""
    from edgekit.converters.base import Artifact

    if isinstance(model, (str, os.PathLike)):
        from .formats import detect

        source = detect(model)
        src = _Source(Artifact(source.path, source.format), list(source.files), trust_code)
    else:
        art = _in_memory_source(model, example_inputs, out, owned)
        src = _Source(art, [art.path], True)  # edgekit wrote this file itself
    from .formats import ModelSource
    from .trust import require_trust

    require_trust(ModelSource(src.art.path, src.art.format), src.trust, "convert")
    return src


def _reference(src: _Source, sample, options, calibration, calibration_samples, verify: bool) -> _Reference:
    """Run the source on the check's inputs. A source this machine cannot run (a custom operator, a missing
    runtime) is still converted; its targets are then 'unverified'. User errors are raised, not hidden."""
    from .batching import predict_samples
    from .checks import MIN_AGREEMENT_SAMPLES, MIN_PARITY_SAMPLES, power_warnings
    from .data import read_arrays
    from .errors import MissingDependencyError, TrustRequiredError
    from .model import load

    ref = _Reference()
    try:
        m = load(src.art.path, trust_code=src.trust)
    except (InputError, TrustRequiredError, MissingDependencyError):
        raise
    except EdgekitError as e:
        if options.compressing:
            raise InputError(f"cannot compress: the source cannot run here to calibrate or check ({e.message})"
                             ) from e
        ref.problem = e.message
        return ref
    with m:
        ref.names = [s.name for s in m.inputs]
        ref.dynamic = {s.name: s.shape is not None and None in s.shape[1:] for s in m.inputs}
        from .options import check_input_shapes

        check_input_shapes(options.input_shapes, m.inputs)  # an unknown name: an error before any work
        fixed = [s if s.name not in options.input_shapes else
                 type(s)(s.name, _given(options.input_shapes[s.name], s.shape), s.dtype, s.scale, s.zero_point)
                 for s in m.inputs]
        generated = sample is None
        if generated:
            _require_shapes(src, fixed)
            fixed, length_notes = _lengths(fixed)
            sample, ref.notes = _generated(fixed, MIN_PARITY_SAMPLES)
            ref.notes = length_notes + ref.notes
        else:
            if isinstance(sample, (str, os.PathLike)):
                sample = read_arrays(sample, m.inputs)
            sample = {k: np.asarray(v) for k, v in m.feeds(sample).items()}
        ref.sample = sample
        ref.pins = _pins(m.inputs, sample)
        n = _count(sample)
        if verify:
            ref.outputs = _run_generated(m, sample, options.input_shapes) if generated else predict_samples(m, sample)
            ref.warnings = power_warnings(ref.outputs, n, MIN_PARITY_SAMPLES, "parity check")
        if calibration is not None:
            from .compression import load_calibration

            options.calibration, cal_notes = load_calibration(calibration, m.inputs, calibration_samples,
                                                              options.input_shapes)
            ref.notes += cal_notes
        if options.compressing:  # task level: many samples, the user's or the calibration set
            if not generated:
                ref.gate_sample = sample
            elif options.calibration:
                ref.gate_sample = {k: np.concatenate([c[k] for c in options.calibration]) for k in ref.names}
            else:
                ref.gate_sample = _generated(fixed, 64, seed=100)[0]
                ref.notes.append("compressed targets judged on 64 generated inputs: pass --sample or "
                                 "--calibration with real data for a meaningful check")
            if verify:
                ref.gate_outputs = predict_samples(m, ref.gate_sample)
                ref.gate_warnings = power_warnings(ref.gate_outputs, _count(ref.gate_sample), MIN_AGREEMENT_SAMPLES,
                                                   "compression check")
    return ref


def _run_generated(m, sample: dict, given: dict) -> dict:
    """The source on generated inputs. Where it fails and the sizes of dynamic dims were chosen by edgekit, the
    graph most likely works only at the size it was traced at (e.g. the TorchScript exporter bakes a sequence
    length into reshapes): the user's to fix, with the sizes edgekit chose named."""
    from .batching import predict_samples

    try:
        return predict_samples(m, sample)
    except EdgekitError as e:
        chosen = [f"{s.name} dim {i} = {sample[s.name].shape[i]}" for s in m.inputs if s.shape is not None
                  and s.name in sample and s.name not in given for i, d in enumerate(s.shape) if d is None and i > 0]
        if not chosen:
            raise
        raise InputError(f"the source itself fails on generated inputs with {', '.join(chosen)}: {e.message}",
                         "its graph may only work at the size it was exported with: pass --sample FILE.npz with "
                         "real inputs, or fix the dims with --input-shape NAME=1,...") from e


def _require_shapes(src: _Source, specs) -> None:
    """TorchScript and pickled modules record no input shapes: say which file and what to pass, by input name."""
    from .formats import Format
    from .formats.torch_pickle_scan import EXPORT_HINT

    missing = [s.name for s in specs if s.shape is None]
    if not missing or src.art.format not in (Format.TORCHSCRIPT, Format.TORCH_PICKLE):
        return
    kind = "TorchScript file" if src.art.format is Format.TORCHSCRIPT else "pickled module"
    arrays = ", ".join(f"{n}=x_{i}" for i, n in enumerate(missing))
    raise InputError(f"{src.art.path.name} is a {kind}: it records no input shapes ({', '.join(missing)}), so "
                     "edgekit cannot make inputs to convert and check it",
                     f"pass --sample sample.npz, saved with np.savez('sample.npz', {arrays}) (first axis = samples), "
                     "or " + EXPORT_HINT)


def _given(asked: tuple, shape) -> tuple:
    """The user's input shape with its None (keep dynamic) dims filled from the model's shape where that is fixed."""
    return tuple(d if d is not None or shape is None else shape[i] for i, d in enumerate(asked))


SEQUENCE_LENGTH = 13  # a generated length: prime, so no layer size equals it (onnx2tf guesses layouts by size)


def _lengths(specs) -> tuple[list, list[str]]:
    """Sequence-like inputs (rank 2-3) get SEQUENCE_LENGTH for their dynamic non-batch dims in the generated
    check sample; images (rank 4+) keep data.random_inputs' size, which their convolutions have room for."""
    out, notes = [], []
    for s in specs:
        if s.shape is not None and len(s.shape) in (2, 3) and None in s.shape[1:]:
            dims = tuple(d if d is not None or i == 0 else SEQUENCE_LENGTH for i, d in enumerate(s.shape))
            notes += [f"{s.name}: dynamic dimension {i} set to {SEQUENCE_LENGTH} in the generated inputs"
                      for i, d in enumerate(s.shape) if d is None and i > 0]
            s = type(s)(s.name, dims, s.dtype, s.scale, s.zero_point)
        out.append(s)
    return out, notes


def _pins(specs, sample: dict) -> dict:
    """``{input: {axis: size}}`` for each dynamic dim but the batch (dim 0), sized as in the check sample: what a
    converter that cannot keep a dim dynamic pins it to (converters.rewrite.onnx_pin_dims)."""
    pins = {}
    for s in specs:
        x = sample.get(s.name) if sample else None
        if s.shape is None or x is None or np.ndim(x) != len(s.shape):
            continue
        dims = {i: int(np.shape(x)[i]) for i, d in enumerate(s.shape) if d is None and i > 0}
        if dims:
            pins[s.name] = dims
    return pins


def _generated(specs, n: int, seed: int = 0) -> tuple[dict, list[str]]:
    """``n`` generated samples (fixed batch dims are filled by stacking batches along the first axis)."""
    from .data import random_inputs

    if all(s.shape and s.shape[0] is None for s in specs):
        return random_inputs(specs, batch=n, seed=seed)
    parts = [random_inputs(specs, batch=1, seed=seed + i) for i in range(n)]
    notes = parts[0][1]
    try:
        return {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}, notes
    except ValueError:  # scalar inputs: one sample is all there is
        return parts[0]


def _count(sample: dict) -> int:
    from .batching import sample_count

    return sample_count(sample) if sample else 0


def _copy_source(src: _Source, stage: Path):
    """Copy the source's files (IR .bin, ONNX external data, a folder) into the stage."""
    from edgekit.converters.base import Artifact

    p = src.art.path
    dest = stage / p.name
    (shutil.copytree if p.is_dir() else shutil.copy2)(p, dest, **({"symlinks": True} if p.is_dir() else {}))
    if not p.is_dir():  # the model's other files (IR .bin, ONNX external data), at the same relative paths
        for f in src.files:
            if f != p and f.is_file():
                rel = f.relative_to(p.parent)
                (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, stage / rel)
    return Artifact(dest, src.art.format)
