"""`edgekit.benchmark`: load models the way the device class says and time them with the harness.

The sdk layer decides what runs (device class, threads, backend, inputs, trust) and loads the models; the
timing itself is `edgekit.benchmarks.harness`, which imports nothing from here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import EdgekitError, InputError


@dataclass
class BenchReport:
    """What one `edgekit.benchmark` call measured. ``results`` holds one row per model, in the order given: a
    measured row (format, backend, precision, threads, load_ms, first_inference_ms, peak_rss_mb, size_bytes,
    input_shapes, runs, latency_ms {min, mean, std, p50, p90, p95, p99, max}, throughput_ips, stable,
    unstable_reason, ratio_to_first, samples_ms, and where measured throughput_async_ips, overhead, native)
    or an error row ({model, path, error}). ``to_dict()`` is the JSON `edgekit bench --json` writes."""
    environment: dict
    settings: dict
    results: list[dict] = field(default_factory=list)
    interrupted: bool = False
    throttled: bool = False

    @property
    def device_class(self) -> str:
        return self.environment["device_class"]

    @property
    def threads(self) -> int | None:
        """The intra-op threads every model ran with (None: each runtime's own default)."""
        return self.settings["threads"]

    @property
    def failed(self) -> list[dict]:
        """Rows of models that could not be loaded, run or timed."""
        return [r for r in self.results if "error" in r]

    def row(self, model: str | os.PathLike) -> dict:
        """The row of a model, by file name or path."""
        name = Path(model).name
        for r in self.results:
            if r["model"] == name or r["path"] == str(model):
                return r
        raise KeyError(str(model))

    def to_dict(self) -> dict:
        return {"environment": self.environment, "settings": self.settings, "results": self.results,
                "interrupted": self.interrupted, "throttled": self.throttled}


def parse_shapes(text: str | Sequence[str] | None) -> dict[str | None, list[int]]:
    """Input shapes as benchmark_app's ``-shape`` writes them: ``[1,3,224,224]`` (the one input),
    ``image[1,3,224,224]``, several joined with commas (``a[1,4],b[1,3]``), or a list of such strings.
    Returns {name or None: dims}."""
    import re

    parts = [text] if isinstance(text, str) else list(text or [])
    out: dict[str | None, list[int]] = {}
    for part in parts:
        rest = part.strip()
        while rest:
            m = re.match(r"^\s*([^\[\],]*?)\s*\[([0-9,\s]*)\]\s*(?:,|$)", rest)
            if not m or not m.group(2).strip():
                raise InputError(f"cannot read the input shape {part!r}",
                                 "write it as [1,3,224,224] or NAME[1,3,224,224], several joined with commas")
            out[m.group(1) or None] = [int(d) for d in m.group(2).split(",") if d.strip()]
            rest = rest[m.end():]
    if None in out and len(out) > 1:
        raise InputError("an unnamed input shape can only be given alone", "name each input: a[1,4],b[1,3]")
    return out


def _timed_specs(model, shapes: dict[str | None, list[int]], batch: int | None) -> list:
    """The model's input specs with the shapes to time at: an explicit shape, else the declared one with the
    batch (first) dimension set to ``batch`` where it is dynamic."""
    from dataclasses import replace

    specs = list(model.inputs)
    names = [s.name for s in specs]
    if None in shapes:
        if len(specs) != 1:
            raise InputError(f"the model has {len(specs)} inputs ({', '.join(names)}): an unnamed shape is ambiguous",
                             "name each input: " + ",".join(f"{n}[...]" for n in names))
        shapes = {names[0]: shapes[None]}
    unknown = [k for k in shapes if k not in names]
    if unknown:
        raise InputError(f"the model has no input {', '.join(map(repr, unknown))}", f"its inputs: {', '.join(names)}")
    out = []
    for s in specs:
        want = shapes.get(s.name)
        if want is not None:
            if s.shape is not None and (len(want) != len(s.shape) or
                                        any(d is not None and d != w for d, w in zip(s.shape, want))):
                raise InputError(f"input '{s.name}' is declared {_dims(s.shape)}; it cannot run at {want}",
                                 "give a shape of the same rank that keeps its fixed dimensions")
            s = replace(s, shape=tuple(want))
        elif batch is not None and s.shape:
            if s.shape[0] is not None and s.shape[0] != batch:
                raise InputError(f"input '{s.name}' has a fixed batch of {s.shape[0]}; --batch {batch} cannot apply",
                                 "bench a model exported with a dynamic batch, or leave --batch out")
            s = replace(s, shape=(batch, *s.shape[1:]))
        out.append(s)
    return out


def _dims(shape) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def _one_sample(model, input_path, shapes=None, batch: int | None = None) -> dict:
    """Inputs for the timed calls: read from ``input_path`` (its first sample, or first ``batch`` samples,
    shaped as the model wants them) or generated at the shapes asked for (``shapes`` from `parse_shapes`,
    ``batch``; dynamic dimensions otherwise as `edgekit.data.random_inputs` sets them)."""
    from .data import random_inputs, read_arrays

    if input_path is None:
        return random_inputs(_timed_specs(model, shapes or {}, batch), batch=batch or 1)[0]
    feeds = read_arrays(input_path, model.inputs)
    n = batch or 1
    out = {}
    for s in model.inputs:
        x = feeds[s.name]
        if s.shape is not None and x.ndim == len(s.shape) and (s.shape[0] in (None, n)):
            if len(x) < n:
                raise InputError(f"{Path(input_path).name} holds {len(x)} samples of '{s.name}', fewer than --batch {n}",
                                 "give more samples or a smaller --batch")
            x = x[:n]
        elif s.shape is not None and x.ndim == len(s.shape) + 1:
            x = x[0]
        out[s.name] = x
    return out


def _open(path: Path, backend: str | None, threads: int | None, trust_code: bool, device_class: str, input_path,
          shapes: dict, batch: int | None):
    """Load one model for the harness, in whichever process measures it (a child: `edgekit.benchmarks.worker`):
    the runtime's import timed apart from the model's load, the timed shapes stated for dynamic inputs."""
    import importlib
    import time

    from edgekit.benchmarks import harness
    from edgekit.runtimes import runner_class

    from .model import load

    import_ms = None
    if backend is not None:  # None: no installed runtime runs the format; load says which package to install
        t0 = time.perf_counter()
        importlib.import_module(runner_class(backend).require())
        import_ms = (time.perf_counter() - t0) * 1e3
    e = harness.open_subject(path, lambda: load(path, backend=backend, threads=threads, trust_code=trust_code,
                                                device_class=device_class),
                             lambda m: _one_sample(m, input_path, shapes, batch), threads)
    declared = {s.name: None if s.shape is None else list(s.shape) for s in e.model.inputs}
    e.row.update(runtime_import_ms=import_ms, declared_shapes=declared, batch=batch,
                 dynamic_inputs=sorted(k for k, v in declared.items() if v is None or None in v))
    return e


def benchmark(models: str | os.PathLike | Sequence[str | os.PathLike], *, runs: int = 200, warmup: int = 20,
              duration_s: float | None = None, threads: int | None = None, backend: str | None = None,
              device_class: str | None = None, input_path: str | os.PathLike | None = None,
              compare_native: bool = False, overhead: bool = False, trust_code: bool = False,
              precision_target: float | None = None, isolate: bool = True, pin: bool = True,
              input_shape: str | Sequence[str] | dict | None = None, batch: int | None = None,
              progress: Callable[[int, int], None] | None = None,
              say: Callable[[str], None] | None = None) -> BenchReport:
    """Measure one or more models and return a BenchReport (``.to_dict()``: the JSON `edgekit bench --json`
    writes).

    Each model is measured in its own child process (``isolate``, on POSIX systems; False: all in this process,
    as `edgekit tune` does), pinned to ``threads`` CPUs where the OS allows (``pin``), the models interleaved between blocks of
    timed calls (docs/ARCHITECTURE.md "Bench method"). ``runs`` timed calls per model after ``warmup`` untimed
    ones; with ``precision_target`` (e.g. 0.02) more until the 95% confidence interval of the median is within
    +-2 %; ``duration_s`` (seconds of timing per model) ends it first if it runs out (default budget with a
    precision target: 30 s). ``device_class``: the profile to measure as (default: detected); it names the
    threads and the backend preference. ``threads``: intra-op threads (None: the device class's default, the
    same rule as `edgekit.load`). ``backend``: the runtime for every model (None: the profile's preferred one
    that runs the format). ``input_path``: an .npz/.npy whose first sample (first ``batch`` samples) is fed
    (None: generated from the signature at ``input_shape``, e.g. ``"[1,3,224,224]"`` or
    ``"a[1,4],b[1,3]"``, and ``batch``; each row states the shapes it was timed at). ``compare_native``: also
    run the vendor's benchmark tool, on the same CPUs; ``overhead``: the raw runtime call alternates with
    edgekit's in the same timed blocks. ``progress(done, total)`` is called as blocks complete; ``say(message)``
    for each model that could not be measured (it becomes an error row; the others are measured). Ctrl-C during
    timing keeps what was measured (``interrupted``)."""
    from functools import partial

    from edgekit.benchmarks import harness, worker
    from edgekit.benchmarks.environment import environment

    from . import device_classes
    from .data import check_array_file
    from .formats import detect

    say = say or (lambda m: None)
    if runs < 1 or warmup < 0:
        raise InputError("runs must be >= 1 and warmup >= 0", "e.g. --runs 200 --warmup 20")
    if precision_target is not None and not 0 < precision_target < 1:
        raise InputError(f"precision target {precision_target:g} is not a fraction between 0 and 1",
                         "e.g. --precision-target 0.02 for +-2 %")
    if batch is not None and batch < 1:
        raise InputError(f"batch {batch} is not a positive count", "e.g. --batch 8")
    shapes = input_shape if isinstance(input_shape, dict) else parse_shapes(input_shape)
    if shapes and input_path is not None:
        raise InputError("--input-shape applies to generated inputs, not to an --input file",
                         "leave one of them out (the file's arrays have their own shapes)")
    profile = device_classes.profile(device_class)  # an unknown class is refused before anything runs
    if input_path is not None:
        check_array_file(input_path, exclude=("labels",))  # readable, no objects, fits in memory
    env = environment()
    detected = device_classes.detect()
    threads = threads if threads is not None else profile.threads
    env.update(device_class=profile.name, device_class_detected=detected, profile_threads=profile.threads,
               profile_backends=list(profile.backends))
    paths = [Path(m) for m in (models if isinstance(models, (list, tuple)) else [models])]
    rows: list[dict] = []
    openers = []
    for path in paths:
        try:
            chosen = backend if backend is not None else device_classes.preferred_backend(detect(path).format,
                                                                                          profile.name)
        except EdgekitError as err:
            rows.append({"model": path.name, "path": str(path), "error": err.message})
            say(f"{path.name}: {err.message}")
            continue
        openers.append((path, partial(_open, path, chosen, threads, trust_code, profile.name, input_path, shapes,
                                      batch)))
    isolate = isolate and os.name == "posix"  # children get their pipes as inherited fds (not on Windows)
    order = [str(p) for p in paths]
    timing = dict(runs=runs, duration_s=duration_s, threads=threads, overhead=overhead,
                  compare_native=compare_native, precision_target=precision_target, progress=progress)
    if isolate:
        measured, interrupted, throttled = harness.measure_isolated(openers, warmup=warmup, pin=pin, say=say,
                                                                    **timing)
        cpus = worker.pin_cpus(threads) if pin else None
    else:
        measured, interrupted, throttled = _in_process(openers, warmup, say, timing)
        cpus = None
    rows += measured
    rows.sort(key=lambda r: order.index(r["path"]) if r["path"] in order else len(order))
    return BenchReport(environment=env, results=rows, interrupted=interrupted, throttled=throttled,
                       settings=harness.settings(runs=runs, warmup=warmup, duration_s=duration_s, threads=threads,
                                                 interleaved=len(openers) > 1, isolated=isolate,
                                                 precision_target=precision_target, cpus=cpus))


def _in_process(openers, warmup: int, say, timing: dict) -> tuple[list[dict], bool, bool]:
    """Every model loaded and timed in this process (``isolate=False``)."""
    from edgekit.benchmarks import harness

    rows: list[dict] = []
    ok: list = []
    try:
        for path, opener in openers:
            try:
                e = opener()
            except EdgekitError as err:
                rows.append({"model": path.name, "path": str(path), "error": err.message})
                say(f"{path.name}: {err.message}")
                continue
            try:
                harness.warm_up(e, warmup)
            except EdgekitError as err:
                e.model.close()
                rows.append({"model": path.name, "path": str(path), "error": err.message})
                say(f"{path.name}: {err.message}")
                continue
            rows.append(e.row)
            ok.append(e)
        interrupted, throttled = harness.measure(ok, **timing)
    finally:
        for e in ok:
            e.model.close()
    return rows, interrupted, throttled
