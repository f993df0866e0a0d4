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
from pathlib import Path
from typing import Callable

from .conversion_result import STATUSES, ConvertReport, TargetResult  # noqa: F401  (edgekit.conversion's API)
from .conversion_source import _copy_source, _prepare_source, _Reference, _reference, _Source
from .errors import EdgekitError, InputError, first_line
from .formats import Format

ALIASES = {"litert": "tflite", "ov": "openvino", "openvino-ir": "openvino", "ir": "openvino", "mlpackage": "coreml"}


def parse_targets(targets) -> list[str]:
    from edgekit.converters.planner import TARGETS

    if isinstance(targets, str):
        targets = [t for t in targets.split(",")]
    names = [ALIASES.get(t.strip().lower(), t.strip().lower()) for t in targets if t and t.strip()]
    bad = [t for t in names if t not in TARGETS]
    if bad or not names:
        raise InputError(f"unknown target {', '.join(repr(b) for b in bad)}" if bad else "no target given",
                         f"choose from: {', '.join(TARGETS)} (comma-separated; litert = tflite, ov = openvino)")
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


def convert(model, targets=None, *, precision: str = "fp32", input_shapes: dict | None = None, sample=None,
            output_dir: str | os.PathLike = "edgekit_out", trust_code: bool = False, verify: bool = True,
            example_inputs=None, verbose: bool = False, calibration=None, calibration_samples: int | None = None,
            per_channel: bool = True, int8_io: bool = False, palettize_bits: int | None = None,
            prune_sparsity: float | None = None, weights_only_bits: int | None = None, check_speed: bool = False,
            progress: Callable[[str], None] | None = None, recipe: str | os.PathLike | None = None,
            steps: Callable[[int, int, str, str], None] | None = None,
            max_accuracy_drop: float | None = None, **knobs) -> ConvertReport:
    """Convert ``model`` (a path, a keras.Model, or a torch.nn.Module with ``example_inputs``) to each target.

    Steps: prepare the source -> run the reference -> per target: plan, run the route, compress, check, place
    the files -> record the manifest. Targets are converted independently: one failure does not stop the
    others. Each result is checked against the source on ``sample`` (a dict name -> array or an .npz/.npy path,
    samples on the first axis, run in chunks where the batch is fixed; generated from the signature if None).
    Compression (``precision`` int8 / int8-dynamic, ``palettize_bits``, ``prune_sparsity``, ``weights_only_bits``)
    is judged on task level (top-1 agreement) on the sample or calibration data, against the fp32 source;
    ``calibration`` is a data path, dict, iterable, or "random" (with a warning in the manifest).
    ``max_accuracy_drop`` (top-1 points vs the fp32 source) replaces the int8 profile's agreement limit; where it
    is missed, the layers most sensitive to int8 are kept float until it holds (a result says which, or "not met"
    with the best found). ``knobs``: the static int8 options of CompressOptions (calibrate_method,
    activation_type, quant_format, keep_float, preset, smooth_quant), refused by name where a target cannot
    honour them.
    ``progress(message)``: a line per finished target; ``steps(k, n, target, stage)``: target k of n starts a
    stage ("convert 1/2 (torch_to_onnx)", "compress", "check parity", ...).
    ``recipe``: a file written by `edgekit tune` (TuneResult.write_recipe); its target and options replace
    ``targets`` and the compression keywords, and its calibration samples are used unless ``calibration`` is given.

    Files: every tool works in a fresh private folder; a target reaches ``output_dir`` only when it did not
    fail, and never over the source or a file edgekit did not write (it is renamed instead, with a note).
    """
    from edgekit.converters.base import ConvertOptions

    from ._outputs import owned_names, work_folder

    from .compression import apply_knobs, check_compression

    if recipe is not None:  # a tuned configuration: the recipe's target and options, then a plain convert
        from .tuning.recipe import replay

        targets, kw = replay(recipe, model, targets, calibration, dict(
            precision=precision, input_shapes=input_shapes, per_channel=per_channel, int8_io=int8_io,
            palettize_bits=palettize_bits, prune_sparsity=prune_sparsity, weights_only_bits=weights_only_bits,
            calibration_samples=calibration_samples, sample=sample, verify=verify))
        return convert(model, targets, output_dir=output_dir, trust_code=trust_code, example_inputs=example_inputs,
                       verbose=verbose, check_speed=check_speed, progress=progress, steps=steps, **kw)
    say = progress or (lambda msg: None)
    steps = steps or (lambda k, n, target, stage: None)
    names = parse_targets(targets)
    out = Path(output_dir)
    from .options import input_shapes as _shapes

    shapes = _shapes(input_shapes)  # None or -1: a dim kept dynamic
    options = ConvertOptions(precision=precision, input_shapes=shapes, verbose=verbose, per_channel=per_channel,
                             int8_io=int8_io, palettize_bits=palettize_bits, prune_sparsity=prune_sparsity,
                             weights_only_bits=weights_only_bits)
    apply_knobs(options, knobs, max_accuracy_drop)
    check_compression(names, options)  # an option a target cannot honour: an error before any work
    if precision == "int8" and calibration is None:
        raise InputError("static int8 needs calibration data", "pass --calibration DATA (same formats as validate "
                         "--data), or --calibration random to accept a model calibrated on noise")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the output folder {out}: {e.strerror or e}",
                         "pass a writable --output-dir") from e
    owned = owned_names(out)  # refuses a foreign manifest.json before any work
    steps(0, len(names), "source", "loading and checking the source")
    src = _prepare_source(model, example_inputs, trust_code, out, owned)
    check_compression(names, options, source=src.art.format)  # e.g. a .tflite source cannot be re-quantized
    options.trust_code = src.trust
    steps(0, len(names), "source", "running the source on the check sample")
    ref = _reference(src, sample, options, calibration, calibration_samples, verify)
    options.sample, options.input_order, options.pin_dims = ref.sample, ref.names, ref.pins
    report = ConvertReport({"path": str(src.art.path), "format": src.art.format.value, "sha256": _sha256(src.files),
                            "inputs": ref.names}, [], out)
    protected = {f.resolve() for f in src.files} | {src.art.path.resolve()}
    work = work_folder(out.resolve())  # absolute: tools run with their own folder as the current directory
    try:
        for k, name in enumerate(names, 1):
            stage = lambda what, k=k, name=name: steps(k, len(names), name, what)  # noqa: E731
            res = _target(name, src, ref, options, out.resolve(), work, protected, owned, verify, check_speed, report,
                          say, stage)
            report.targets.append(res)
            say(f"{name}: {res.status}" + (f" ({res.error})" if res.error else "") + f" in {res.seconds:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)  # this run's own folder, never a path it was given
    (out / "manifest.json").write_text(json.dumps(report.manifest(), indent=2))
    return report


def check(source, candidate, sample=None, *, precision: str = "fp32", trust_code: bool = False) -> TargetResult:
    """Judge an existing ``candidate`` file against ``source`` exactly as convert's gate does (the same compare
    function and tolerance table as `edgekit validate`): ``precision`` int8/int8-dynamic/int4 judges on task level
    over every sample, anything else elementwise. Returns a TargetResult (status ok/failed, parity, warnings)."""
    from edgekit.converters.base import Artifact, ConvertOptions

    from .formats import detect
    from .precision import normalize

    src = _prepare_source(source, None, trust_code, Path("."), set())
    task_level = normalize(precision) in ("int8", "int4")
    options = ConvertOptions(precision="int8-dynamic" if task_level else precision)
    ref = _reference(src, sample, options, None, None, True)
    cand = detect(candidate)
    res = TargetResult(cand.format.value, path=cand.path, precision=precision)
    _check(res, Artifact(cand.path, cand.format), src, ref, options, True)
    return res


def _target(name, src: _Source, ref: _Reference, options, out, work, protected, owned, verify, check_speed,
            report: ConvertReport, say, stage=None) -> TargetResult:
    """One target: route, compress, check, place. Any failure is recorded, never raised."""
    from edgekit.converters.planner import TARGETS, plan

    from ._outputs import place

    target = TARGETS[name]
    stage = stage or (lambda what: None)
    res = TargetResult(name, precision=options.precision)
    t0 = time.perf_counter()
    staged = work / name / "out"
    staged.mkdir(parents=True)
    art = None
    try:
        if src.art.format is target:  # the source is already in this format: the target is a copy of it
            if options.compressing and target is Format.TFLITE:
                raise InputError("a .tflite source cannot be re-quantized by the TFLite converter",
                                 "compress from the Keras, SavedModel or ONNX source instead")
            art = _copy_source(src, work / name / "out")
            res.notes.append(f"the source is already {target.value}: copied")
            fp32_path = src.art.path
        else:
            p = plan(src.art.format, target)
            report.plans[name] = p.explain()
            route = _route(p, src.art.format, target)
            art = _run_route(route.edges, src.art, options, staged, work / name, stage)
            res.route, res.tool_versions, res.pinned = art.route, art.tool_versions, art.pinned
            fp32_path = None
            if options.compressing:  # the fp32 counterpart (no compression): size ratio and speed check
                fp32 = work / f"{name}_fp32"
                fp32_path = _run_route(route.edges, src.art, options.uncompressed(), fp32 / "out", fp32,
                                       lambda what: stage(f"fp32 counterpart: {what}")).path
        if options.compressing:
            from ._outputs import working_in
            from .compression import compress

            res.fp32_size_bytes = _size(fp32_path)
            stage(f"compress ({options.precision})")
            with _quiet_tool(work / name / "compress.log"), working_in(work / name):
                art = compress(art, options, staged, ref.names, ref=ref)
            rep = getattr(art, "repair", None)
            res.repair = rep.to_dict() if rep is not None else None
        res.notes = list(dict.fromkeys(ref.notes + res.notes + art.notes))
        res.size_bytes = _size(art.path)
        stage("check against the source" if verify else "read the signature")
        _check(res, art, src, ref, options, verify)
        if res.signature is None:
            res.signature = _signature(art.path)
        if check_speed and options.compressing and res.status == "pass":
            from .compression import check_speed as _speed

            stage("speed check against fp32")
            _speed(res, art.path, fp32_path)
        if res.status != "fail":
            res.path, res.files, notes = place(staged, art.path, out, protected, owned, options.precision)
            res.notes += notes
    except EdgekitError as e:
        res.status, res.error = "fail", e.message
        res.op = getattr(e, "op", None)
    except Exception as e:  # a tool's own bug must not stop the other targets; keep its traceback
        res.status, res.error = "fail", f"{type(e).__name__}: {first_line(e)}"
        res.traceback = traceback.format_exc()
    if res.status == "fail" and res.path is None and art is not None:
        res.notes.append("the failed output was deleted so that it cannot be shipped by mistake")
    res.seconds = time.perf_counter() - t0
    return res


def _route(p, src_fmt: Format, target: Format):
    if p.chosen is not None:
        return p.chosen
    if not p.routes:
        raise EdgekitError(f"no conversion route from {src_fmt.value} to {target.value}",
                           "convert to an intermediate format first (e.g. onnx) and convert that")
    best = p.routes[0]
    raise EdgekitError(f"no installed route from {src_fmt.value} to {target.value}; the best needs "
                       f"{', '.join(best.missing)}", best.install())


def _quiet_tool(log: Path):
    from . import _quiet

    return _quiet.captured(log)


_FRAMEWORKS = ("keras", "keras-h5", "savedmodel", "torch-export", "torchscript", "torch-pickle")


def _run_route(edges, art, options, final: Path, inter: Path, stage=None):
    """Chain the edges; intermediate files stay in ``inter``, the last edge writes to ``final``. Tools run with
    ``inter`` as their current directory (some write beside the caller)."""
    from ._outputs import working_in

    final.mkdir(parents=True, exist_ok=True)
    for i, edge in enumerate(edges):
        if stage is not None:
            verb = "export" if i == 0 and len(edges) > 1 and art.format.value in _FRAMEWORKS else "convert"
            stage(f"{verb} {i + 1}/{len(edges)} ({edge.name})")
        dest = final if i == len(edges) - 1 else inter
        with _quiet_tool(inter / f"{edge.name}.log"), working_in(inter):
            art = edge.convert(art, options, dest)
    return art


def _check(res: TargetResult, art, src: _Source, ref: _Reference, options, verify: bool) -> None:
    """Set the target's status: checked against the source when it can be, else 'unverified' with the reason."""
    if not verify:
        res.status = "unverified"
        res.notes.append("parity not checked (--no-verify)")
    elif ref.problem is not None:
        res.status = "unverified"
        res.notes.append(f"the source cannot run here, so parity was not checked: {ref.problem}")
    elif art.format is Format.COREML and platform.system() != "Darwin":
        res.status = "unverified"
        res.notes.append("Core ML predicts only on macOS: parity not checked here")
        _coreml_static(res, art.path, ref)
    elif options.compressing:  # task level, on many samples, against the fp32 source
        _gate(res, art.path, ref, ref.gate_sample, ref.gate_outputs, options.precision, summary=True,
              budget=options.compress.max_accuracy_drop, repaired=getattr(art, "repair", None))
        res.warnings += ref.gate_warnings
    else:
        _gate(res, art.path, ref, ref.sample, ref.outputs, options.precision)
        res.warnings += ref.warnings



def _coreml_static(res: TargetResult, path: Path, ref: _Reference) -> None:
    """Off macOS: Core ML's I/O against the source's and its MIL ops against its deployment target (no
    prediction: the status stays unverified unless a check finds a mismatch, which fails the target)."""
    if ref.sample is None:
        return
    from edgekit.runtimes.coreml import static_checks

    summary, problems = static_checks(path, ref.sample, ref.outputs, ref.names)
    res.notes.append(summary)
    if problems:
        res.status, res.error = "fail", "Core ML static checks: " + "; ".join(problems)
        res.parity = {"max_abs": None, "mean_abs": None, "cosine": None, "static_checks": problems}


def _gate(res: TargetResult, path: Path, ref: _Reference, sample: dict, expected: dict, asked: str,
          summary: bool = False, budget: float | None = None, repaired=None) -> None:
    """Run the converted model on ``sample`` (in chunks where its batch is fixed) and judge it against the
    source's outputs with the one compare function `edgekit validate` uses (edgekit.checks.verdict), under the
    profile of the lower of the asked precision and what the file holds."""
    from edgekit.checks.verdict import FAIL, compare_outputs

    from .batching import align_inputs, predict_samples
    from .model import load
    from .precision import lowest

    with load(path) as cand:
        feeds = align_inputs(cand, sample, ref.names, res.notes)
        got = predict_samples(cand, feeds)
        res.inputs = _source_order(cand, ref.names)
        res.signature = {"inputs": [s.to_dict() for s in cand.inputs], "outputs": [s.to_dict() for s in cand.outputs]}
        precision = lowest(asked, cand.precision)
    if budget is None:
        j, errors = compare_outputs(expected, got, precision, _device_class())
    else:  # the user's top-1 budget replaces the profile's agreement limit (compression_repair.judge_budget)
        from .compression_repair import judge_budget, task_of

        j, errors = compare_outputs(expected, got, precision, _device_class(), task=task_of(expected),
                                    min_agreement=1.0 - budget / 100.0)
        judge_budget(j, budget, repaired)
    res.notes += j.notes
    done = [e for e in errors.values() if e.get("max_abs") is not None]
    res.parity = {"max_abs": max((e["max_abs"] for e in done), default=None),
                  "mean_abs": max((e["mean_abs"] for e in done), default=None),
                  "cosine": min((e["cosine"] for e in done), default=None)}
    if summary:  # compressed targets: what the task-level judgement saw
        res.parity.update(samples=_samples(sample), agreement_top1=j.agreement_top1)
    res.status = j.verdict  # pass / fail: the same words as validate
    if j.verdict == FAIL:
        what = "the compression check" if summary else "parity"
        res.error = f"{what} outside the {precision} profile: {'; '.join(j.reasons)}"
        dynamic = [k for k, v in ref.dynamic.items() if v]
        if dynamic and not summary:
            res.error += f" (the source has dynamic dims on {', '.join(dynamic)}: try --input-shape to fix them)"


def _signature(path: Path) -> dict | None:
    """The written file's I/O signature, read without running it (Core ML off macOS, --no-verify)."""
    from .model import load

    try:
        with load(path) as m:
            return {"inputs": [s.to_dict() for s in m.inputs], "outputs": [s.to_dict() for s in m.outputs]}
    except EdgekitError:
        return None


def _samples(sample: dict) -> int:
    from .batching import sample_count

    return sample_count(sample)


def _device_class() -> str | None:
    """This machine's device class, as validate guesses it (the profile's factor depends on it)."""
    from .device_classes import detect

    return detect()


def _source_order(cand, source_names: list[str]) -> list[str]:
    """The candidate's input names in the source's order (by name, else by position as the gate fed them)."""
    names = [s.name for s in cand.inputs]
    if set(names) == set(source_names):
        return list(source_names)
    return names
