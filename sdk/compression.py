"""Compression inside `edgekit convert`: calibration data, the per-target compression step (the registered passes
of converters/compress_base.py) and the speed check against the fp32 counterpart. Compressed targets are judged by
the one compare function in edgekit.checks.verdict, as every other check is."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ConversionError, InputError

MIN_CALIBRATION = 100  # fewer samples than this gives a warning (TFLite, ORT and NNCF all advise hundreds)


def load_calibration(spec, ref_inputs, n: int | None, shapes: dict) -> tuple[list[dict], list[str]]:
    """Calibration samples (feed dicts of one sample each) from a path, dict or iterable, or 'random'.
    Empty data, wrong input names, wrong shapes and NaN/Inf values are refused before any long work starts."""
    from .data import check_memory, random_inputs
    from .datasets import open_dataset

    notes: list[str] = []
    names = [s.name for s in ref_inputs]
    if isinstance(spec, str) and spec == "random":
        count = n or MIN_CALIBRATION
        fixed = [s if s.name not in shapes else type(s)(s.name, shapes[s.name], s.dtype) for s in ref_inputs]
        first = random_inputs(fixed, batch=1, seed=0)[0]  # checks one sample's size before it is made
        check_memory(count * sum(x.nbytes for x in first.values()), f"{count} random calibration samples")
        samples = [first] + [random_inputs(fixed, batch=1, seed=i)[0] for i in range(1, count)]
        notes.append(f"WARNING: calibrated on {count} random inputs, not real data: int8 ranges may not fit real "
                     "inputs")
        return samples, notes
    ds = open_dataset(spec, names, batch=64)
    samples: list[dict] = []
    for batch in ds.batches:
        missing = [k for k in names if k not in batch]
        if missing:
            raise InputError(f"calibration data has no input {', '.join(repr(m) for m in missing)}",
                             f"key the arrays by the model's input names: {', '.join(names)}")
        for i in range(len(next(iter(batch.values())))):
            samples.append({k: np.asarray(batch[k][i:i + 1]) for k in names})
            if n is not None and len(samples) >= n:
                break
        if n is not None and len(samples) >= n:
            break
    if not samples:
        raise InputError("the calibration data is empty", "pass a file with at least one sample per input")
    for s in ref_inputs:
        x = samples[0][s.name]
        want = shapes.get(s.name, s.shape)
        if want is not None and (x.ndim != len(want) or any(d is not None and d != g for d, g in
                                                             zip(want[1:], x.shape[1:]))):
            raise InputError(f"calibration input '{s.name}' has shape {list(x.shape[1:])} per sample; the model "
                             f"takes {list(want[1:])}", "give calibration samples shaped like the model's inputs")
        if np.asarray(x).dtype.kind == "f":
            bad = sum(int(not np.isfinite(c[s.name]).all()) for c in samples)
            if bad:
                raise InputError(f"calibration input '{s.name}' holds NaN or Inf in {bad} samples",
                                 "clean the calibration data: int8 ranges cannot be computed from NaN/Inf")
    if len(samples) < MIN_CALIBRATION:
        notes.append(f"WARNING: only {len(samples)} calibration samples (at least {MIN_CALIBRATION} advised)")
    return samples, notes


def for_model(calibration: list[dict], model_path: Path, source_names: list[str]) -> list[dict]:
    """The calibration samples keyed by the converted model's own input names (mapped by position if renamed)."""
    from .batching import align_inputs
    from .model import load

    with load(model_path) as m:
        return [align_inputs(m, c, source_names) for c in calibration]


def compress(art, options, out: Path, source_names: list[str], ref=None):
    """Apply the compression ``options`` ask for to a converted target with the registered passes
    (edgekit.converters.compress_base): requires, run, ensures (an effect, and files written only under ``out``).
    TFLite is quantized inside its converter: its passes' ``ensures`` are checked again on the produced file, and
    its repair re-quantizes the calibrated model the edge kept (compress_tflite.Requantizer, on ``art.obj``).
    With ``max_accuracy_drop`` or a ``keep_float`` count, the layers are ranked by sensitivity on ``ref``'s
    evaluation data and the most sensitive kept float (``repair``); ``art.repair`` then says what was kept."""
    from dataclasses import replace

    from edgekit.converters.compress_base import compress_options, select
    from edgekit.converters.compress_run import check_data, run_passes, verify_file

    copts = compress_options(options)
    if copts is None or not copts.active:
        return art
    passes = select(art.format, options)  # refuses, naming the target and the option, before any work
    if not passes:
        raise ConversionError(f"no compression for {art.format.value}")
    if passes[0].in_converter:  # TFLite: quantized by its edge; re-quantized here by the repair
        if _wants_repair(copts):
            from .compression_repair import repair

            copts = repair(art, options, copts, passes, out, ref)
            if "keep_float" in passes[-1].honours:
                art.path = passes[-1].requantize(art, copts, art.path.parent)
        verify_file(art.format, art.path, _with_float(options, copts))
        return art
    check_data(passes, copts)
    if copts.calibration and any(p.needs_calibration for p in passes):
        copts = replace(copts, calibration=for_model(copts.calibration, art.path, source_names))
    if _wants_repair(copts):
        from .compression_repair import repair

        copts = repair(art, options, copts, passes, out, ref)
    path, notes = run_passes(art.format, art.path, _with_float(options, copts), out)
    art.path, art.precision = path, options.precision
    art.notes = [*art.notes, *notes]
    return art


def apply_knobs(options, knobs: dict, max_accuracy_drop: float | None) -> None:
    """Put convert()'s static int8 knobs and accuracy budget on ``options.compress`` (refused, by name, later
    where a target cannot honour them; an unknown keyword is a TypeError as for any function)."""
    from dataclasses import fields, replace

    from edgekit.converters.compress_base import MODIFIERS, CompressOptions

    allowed = {f.name for f in fields(CompressOptions)} & (set(MODIFIERS) - {"per_channel", "int8_io"})
    unknown = sorted(set(knobs) - allowed)
    if unknown:
        raise TypeError(f"convert() got unexpected keyword argument(s) {', '.join(unknown)}")
    asked = {k: v for k, v in knobs.items() if v is not None and v != MODIFIERS[k]}
    if max_accuracy_drop is not None:
        asked["max_accuracy_drop"] = max_accuracy_drop
    if asked:
        options.compress = replace(options.compress, **asked) if options.compress else CompressOptions(**asked)


def _wants_repair(copts) -> bool:
    return copts.max_accuracy_drop is not None or isinstance(copts.keep_float, int) and copts.keep_float > 0


def check_compression(targets, options, *, source=None) -> dict:
    """Before any conversion starts: every target can honour every compression option (else an InputError
    naming the target and the option). Returns target -> the passes that will run, in order."""
    from edgekit.converters.compress_base import check_compression as check

    return check(targets, options, source=source)


def _with_float(options, copts):
    """``copts`` with the conversion's float precision still readable by the passes' checks."""
    from dataclasses import replace

    return replace(options, compress=copts) if hasattr(options, "float_precision") else copts


def check_speed(res, path: Path, fp32_path: Path) -> None:
    """Benchmark the compressed model against its fp32 counterpart in one interleaved run."""
    from .bench import benchmark

    r = benchmark([path, fp32_path], runs=100, warmup=10)
    rows = r.results
    if any("error" in x for x in rows):
        res.notes.append("speed check failed: " + "; ".join(x.get("error", "") for x in rows if "error" in x))
        return
    p, f = rows[0]["latency_ms"]["p50"], rows[1]["latency_ms"]["p50"]
    res.speed = {"p50_ms": p, "fp32_p50_ms": f, "speedup": f / p, "slower": p >= f}
    if p >= f:
        res.notes.append(f"slower: compressed p50 {p:.4g} ms >= fp32 p50 {f:.4g} ms on this machine")
