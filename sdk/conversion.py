"""`edgekit.convert`: every target converted independently along the best installed route, then checked
against the source on the same inputs (the parity gate), with a manifest of what happened."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import EdgekitError, InputError
from .formats import Format

STATUSES = ("ok", "failed", "unverified")


@dataclass
class TargetResult:
    target: str
    path: Path | None = None
    route: list[str] = field(default_factory=list)
    precision: str = "fp32"
    status: str = "failed"
    parity: dict | None = None
    size_bytes: int | None = None
    seconds: float = 0.0
    tool_versions: dict = field(default_factory=dict)
    error: str | None = None
    op: str | None = None
    notes: list[str] = field(default_factory=list)
    traceback: str | None = None
    fp32_size_bytes: int | None = None
    speed: dict | None = None

    def to_dict(self) -> dict:
        return {"target": self.target, "path": str(self.path) if self.path else None, "route": self.route,
                "precision": self.precision, "status": self.status, "parity": self.parity,
                "size_bytes": self.size_bytes, "seconds": round(self.seconds, 3), "tool_versions": self.tool_versions,
                "error": self.error, "failing_op": self.op, "notes": self.notes,
                "fp32_size_bytes": self.fp32_size_bytes,
                "size_ratio_fp32": (self.size_bytes / self.fp32_size_bytes
                                    if self.size_bytes and self.fp32_size_bytes else None),
                "speed": self.speed}


@dataclass
class ConvertReport:
    source: dict
    targets: list[TargetResult]
    output_dir: Path
    plans: dict[str, list[str]] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 3 if any(t.status == "failed" for t in self.targets) else 0

    def manifest(self) -> dict:
        return {"source": self.source, "targets": [t.to_dict() for t in self.targets]}

    def __getitem__(self, target: str) -> TargetResult:
        return next(t for t in self.targets if t.target == target)


def parse_targets(targets) -> list[str]:
    from edgekit.converters.planner import TARGETS

    if isinstance(targets, str):
        targets = [t for t in targets.split(",")]
    names = [t.strip().lower() for t in targets if t and t.strip()]
    bad = [t for t in names if t not in TARGETS]
    if bad or not names:
        raise InputError(f"unknown target {', '.join(repr(b) for b in bad)}" if bad else "no target given",
                         f"choose from: {', '.join(TARGETS)} (comma-separated)")
    return list(dict.fromkeys(names))


def _sha256(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _size(path: Path) -> int:
    from .formats import detect

    try:
        return detect(path).size_bytes
    except EdgekitError:
        return path.stat().st_size if path.is_file() else 0


def _in_memory_source(model, example_inputs, out: Path):
    """Save an in-memory keras.Model or torch.nn.Module into out/_source, so every route starts from a file."""
    from edgekit.converters.base import Artifact

    mod = type(model).__module__
    src_dir = out / "_source"
    src_dir.mkdir(parents=True, exist_ok=True)
    if mod.startswith("keras") or mod.startswith("tf_keras"):
        path = src_dir / f"{getattr(model, 'name', 'model') or 'model'}.keras"
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
        path = src_dir / f"{type(model).__name__.lower()}.pt2"
        torch.export.save(ep, str(path))
        return Artifact(path, Format.TORCH_EXPORT, obj=ep)
    raise InputError(f"cannot convert an object of type {type(model).__name__}",
                     "pass a model file path, a keras.Model or a torch.nn.Module")


def _is_torch_module(obj) -> bool:
    return any(c.__module__.startswith("torch.nn") for c in type(obj).__mro__)


def convert(model, targets, *, precision: str = "fp32", input_shapes: dict | None = None, sample=None,
            output_dir: str | os.PathLike = "edgekit_out", trust_code: bool = False, verify: bool = True,
            example_inputs=None, verbose: bool = False, calibration=None, calibration_samples: int | None = None,
            per_channel: bool = True, int8_io: bool = False, palettize_bits: int | None = None,
            prune_sparsity: float | None = None, weights_only_bits: int | None = None, check_speed: bool = False,
            progress: Callable[[str], None] | None = None) -> ConvertReport:
    """Convert ``model`` (a path, a keras.Model, or a torch.nn.Module with ``example_inputs``) to each target.

    Targets are converted independently: one failure does not stop the others. Each result is checked against
    the source on ``sample`` (a dict name -> array or an .npz/.npy path; generated from the signature if None).
    Compression (``precision`` int8 / int8-dynamic, ``palettize_bits``, ``prune_sparsity``, ``weights_only_bits``)
    is judged on task level (top-1 agreement) on the sample or calibration data, against the fp32 source;
    ``calibration`` is a data path, dict, iterable, or "random" (with a warning in the manifest).
    """
    from edgekit.converters.base import Artifact, ConvertOptions
    from edgekit.converters.planner import TARGETS, plan
    from edgekit.data import random_inputs, read_arrays
    from edgekit.model import load

    from . import _quiet

    say = progress or (lambda msg: None)
    names = parse_targets(targets)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    shapes = {k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()}
    if isinstance(model, (str, os.PathLike)):
        from .formats import detect

        source = detect(model)
        src = Artifact(source.path, source.format)
        src_files, src_trust = source.files, trust_code
    else:
        src = _in_memory_source(model, example_inputs, out)
        src_files, src_trust = [src.path], True  # edgekit wrote this file itself
    if src.format in (Format.TORCH_EXPORT, Format.TORCHSCRIPT, Format.TORCH_PICKLE) and not src_trust:
        from .errors import TrustRequiredError

        raise TrustRequiredError(f"refusing to convert {src.path.name} without trust: loading a {src.format.value} "
                                 "file can run code", "pass --trust-code (trust_code=True) if you trust its origin")
    options = ConvertOptions(precision=precision, input_shapes=shapes, trust_code=src_trust, verbose=verbose,
                             per_channel=per_channel, int8_io=int8_io, palettize_bits=palettize_bits,
                             prune_sparsity=prune_sparsity, weights_only_bits=weights_only_bits)
    if precision == "int8" and calibration is None:
        raise InputError("static int8 needs calibration data", "pass --calibration DATA (same formats as validate "
                         "--data), or --calibration random to accept a model calibrated on noise")

    # the reference: the source model on the sample every target is checked with. A source this machine cannot
    # run (a custom operator, a missing runtime) is still converted; its targets are then 'unverified'.
    reference, ref_names, ref_dynamic, gen_notes, ref_problem = None, [], {}, [], None
    try:
        ref_model = load(src.path, trust_code=src_trust)
    except EdgekitError as e:
        if isinstance(e, (InputError,)) or type(e).__name__ in ("TrustRequiredError", "MissingDependencyError"):
            raise
        ref_problem = e.message
        ref_model = None
    if ref_model is not None:
        if sample is None:
            fixed = [s if s.name not in shapes else type(s)(s.name, shapes[s.name], s.dtype, s.scale, s.zero_point)
                     for s in ref_model.inputs]
            sample, gen_notes = random_inputs(fixed, batch=1)
        else:
            if isinstance(sample, (str, os.PathLike)):
                sample = read_arrays(sample, ref_model.inputs)
            sample = ref_model.feeds(sample)
        options.sample = sample
        user_sample = sample
        reference = ref_model.predict(sample) if verify else None
        ref_names = [s.name for s in ref_model.inputs]
        ref_dynamic = {s.name: s.shape is not None and None in s.shape[1:] for s in ref_model.inputs}
        cal_notes: list[str] = []
        if calibration is not None:
            from .compression import load_calibration

            options.calibration, cal_notes = load_calibration(calibration, ref_model.inputs, calibration_samples,
                                                              shapes)
            gen_notes = gen_notes + cal_notes
        gate_data = None
        if options.compressing:  # task-level gate: many samples, the user's or the calibration set
            if user_sample is not None and not any("generated inputs" in n for n in gen_notes):
                n = len(next(iter(user_sample.values())))
                gate_data = [{k: v[i:i + 1] for k, v in user_sample.items()} for i in range(n)]
            elif options.calibration:
                gate_data = options.calibration
            else:
                from .data import random_inputs as _ri

                gate_data = [_ri(ref_model.inputs, batch=1, seed=100 + i)[0] for i in range(32)]
                gen_notes = gen_notes + ["compressed targets judged on 32 generated inputs: pass --sample or "
                                         "--calibration with real data for a meaningful check"]
        ref_model.close()
    elif options.compressing:
        raise InputError(f"cannot compress: the source cannot run here to calibrate or check ({ref_problem})")

    report = ConvertReport({"path": str(src.path), "format": src.format.value, "sha256": _sha256(src_files)}, [], out)
    work = out / "_work"
    for name in names:
        target = TARGETS[name]
        res = TargetResult(name, precision=precision)
        report.targets.append(res)
        t0 = time.perf_counter()
        p = plan(src.format, target) if src.format is not target else None
        if p is not None:
            report.plans[name] = p.explain()
        try:
            if p is None:  # the source is already in this format: the target is the source itself
                dest = out / src.path.name
                if src.path.resolve() != dest.resolve():
                    (shutil.copytree if src.path.is_dir() else shutil.copy2)(src.path, dest)
                    for f in src_files[1:]:  # IR .bin, ONNX external data
                        if f.parent == src.path.parent and f.is_file():
                            shutil.copy2(f, out / f.name)
                res.path, res.notes = dest, [f"the source is already {target.value}: copied"]
                if options.compressing and target is not Format.TFLITE:
                    from .compression import compress, gate

                    res.fp32_size_bytes = _size(dest)
                    work.mkdir(parents=True, exist_ok=True)
                    with _quiet.captured(work / f"{name}_compress.log"):
                        art = compress(Artifact(dest, target), options, out, ref_names)
                    res.path = art.path
                    res.notes += art.notes
                    res.size_bytes = _size(art.path)
                    if verify and not (target is Format.COREML and platform.system() != "Darwin"):
                        gate(res, art.path, src.path, gate_data, src_trust)
                    else:
                        res.status = "unverified"
                    continue
                if options.compressing:
                    raise InputError("a .tflite source cannot be re-quantized by the TFLite converter",
                                     "compress from the Keras, SavedModel or ONNX source instead")
                res.size_bytes = _size(dest)
                _finish(res, dest, target, verify, ref_problem, reference, sample, ref_names, precision, ref_dynamic)
                continue
            route = p.chosen
            if route is None:
                if not p.routes:
                    raise EdgekitError(f"no conversion route from {src.format.value} to {target.value}",
                                       "convert to an intermediate format first (e.g. onnx) and convert that")
                best = p.routes[0]
                raise EdgekitError(f"no installed route from {src.format.value} to {target.value}; the best needs "
                                   f"{', '.join(best.missing)}", best.install())
            say(f"{name}: {route.describe(src.format)}")
            art = src
            for i, edge in enumerate(route.edges):
                last = i == len(route.edges) - 1
                dest = out if last else work / name
                dest.mkdir(parents=True, exist_ok=True)
                (work / name).mkdir(parents=True, exist_ok=True)
                with _quiet.captured(work / name / f"{edge.name}.log"):
                    art = edge.convert(art, options, dest)
            fp32_path = None
            if options.compressing:
                from dataclasses import replace as _replace

                from .compression import compress

                fp32_opts = _replace(options, precision="fp32", palettize_bits=None, prune_sparsity=None,
                                     weights_only_bits=None, int8_io=False, calibration=None)
                ref_art = src
                for edge in route.edges:  # the fp32 counterpart: size ratio and speed check
                    d = work / f"{name}_fp32"
                    d.mkdir(parents=True, exist_ok=True)
                    with _quiet.captured(d / f"{edge.name}.log"):
                        ref_art = edge.convert(ref_art, fp32_opts, d)
                fp32_path = ref_art.path
                res.fp32_size_bytes = _size(fp32_path)
                with _quiet.captured(work / name / "compress.log"):
                    art = compress(art, options, out, ref_names)
            res.path, res.route, res.tool_versions = art.path, art.route, art.tool_versions
            res.notes = list(dict.fromkeys(gen_notes + art.notes))
            res.size_bytes = _size(art.path)
            if options.compressing and verify and ref_problem is None and not (
                    art.format is Format.COREML and platform.system() != "Darwin"):
                from .compression import gate

                gate(res, art.path, src.path, gate_data, src_trust)
                if check_speed and res.status == "ok":
                    from .compression import check_speed as _speed

                    _speed(res, art.path, fp32_path)
            else:
                _finish(res, art.path, art.format, verify, ref_problem, reference, sample, ref_names, precision,
                        ref_dynamic)
        except EdgekitError as e:
            res.status, res.error = "failed", e.message
            res.op = getattr(e, "op", None)
        except Exception as e:  # a tool's own bug must not stop the other targets; keep its traceback
            res.status, res.error = "failed", f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
            res.traceback = traceback.format_exc()
        if res.seconds == 0.0:
            res.seconds = time.perf_counter() - t0
        say(f"{name}: {res.status}" + (f" ({res.error})" if res.error else "") + f" in {res.seconds:.1f} s")
    shutil.rmtree(work, ignore_errors=True)
    (out / "manifest.json").write_text(json.dumps(report.manifest(), indent=2))
    return report


def _finish(res: TargetResult, path: Path, fmt: Format, verify: bool, ref_problem: str | None, reference,
            sample, ref_names, precision: str, ref_dynamic) -> None:
    """Set the target's status: checked against the source when it can be, else 'unverified' with the reason."""
    if not verify:
        res.status = "unverified"
        res.notes.append("parity not checked (--no-verify)")
    elif ref_problem is not None:
        res.status = "unverified"
        res.notes.append(f"the source cannot run here, so parity was not checked: {ref_problem}")
    elif fmt is Format.COREML and platform.system() != "Darwin":
        res.status = "unverified"
        res.notes.append("Core ML predicts only on macOS: parity not checked here")
    else:
        _gate(res, path, reference, sample, ref_names, precision, ref_dynamic)


def _gate(res: TargetResult, path: Path, reference: dict, sample: dict, ref_names: list[str], precision: str,
          ref_dynamic: dict[str, bool]) -> None:
    """Run the converted model on the sample and compare with the source."""
    from edgekit.batching import align_inputs
    from edgekit.benchmarks.parity import compare
    from edgekit.model import load

    with load(path) as cand:
        feeds = align_inputs(cand, sample, ref_names, res.notes)
        got = cand.predict(feeds)
    par = compare(reference, got, precision)
    res.notes += par.notes
    res.parity = par.summary()
    if par.passed:
        res.status = "ok"
    else:
        res.status = "failed"
        res.error = f"parity outside the {precision} tolerance: {par.failure()}"
        dynamic = [k for k, v in sample.items() if k in ref_dynamic and ref_dynamic[k]]
        if dynamic:
            res.error += f" (the source has dynamic dims on {', '.join(dynamic)}: try --input-shape to fix them)"
