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


def _one_sample(model, input_path) -> dict:
    """Inputs for one call: read from ``input_path`` (its first sample, shaped as the model wants it) or generated
    from the model's signature."""
    from .data import random_inputs, read_arrays

    if input_path is None:
        return random_inputs(model.inputs, batch=1)[0]
    feeds = read_arrays(input_path, model.inputs)
    out = {}
    for s in model.inputs:
        x = feeds[s.name]
        if s.shape is not None and x.ndim == len(s.shape) and (s.shape[0] in (None, 1)):
            x = x[:1]
        elif s.shape is not None and x.ndim == len(s.shape) + 1:
            x = x[0]
        out[s.name] = x
    return out


def benchmark(models: str | os.PathLike | Sequence[str | os.PathLike], *, runs: int = 200, warmup: int = 20,
              duration_s: float | None = None, threads: int | None = None, backend: str | None = None,
              device_class: str | None = None, input_path: str | os.PathLike | None = None,
              compare_native: bool = False, overhead: bool = False, trust_code: bool = False,
              progress: Callable[[int, int], None] | None = None,
              say: Callable[[str], None] | None = None) -> BenchReport:
    """Measure one or more models, interleaved, and return a BenchReport (``.to_dict()``: the JSON
    `edgekit bench --json` writes).

    ``runs`` timed calls per model after ``warmup`` untimed ones, or fewer if ``duration_s`` (seconds per model)
    runs out first. ``device_class``: the profile to measure as (default: detected); it names the threads and
    the backend preference. ``threads``: intra-op threads (None: the device class's default, the same rule as
    `edgekit.load`). ``backend``: the runtime for every model (None: the profile's preferred one that runs the
    format). ``input_path``: an .npz/.npy whose first sample is fed (None: generated from the signature).
    ``compare_native``: also run the vendor's benchmark tool; ``overhead``: time the raw runtime call against
    edgekit's. ``progress(done, total)`` is called as calls are timed; ``say(message)`` for each model that
    could not be measured (it becomes an error row; the others are measured). Ctrl-C during timing keeps what
    was measured (``interrupted``)."""
    from edgekit.benchmarks import harness
    from edgekit.benchmarks.environment import environment

    from . import device_classes
    from .data import check_array_file
    from .formats import detect
    from .model import load

    say = say or (lambda m: None)
    if runs < 1 or warmup < 0:
        raise InputError("runs must be >= 1 and warmup >= 0", "e.g. --runs 200 --warmup 20")
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
    ok: list[harness.Subject] = []
    for path in paths:
        try:
            chosen = backend if backend is not None else device_classes.preferred_backend(detect(path).format,
                                                                                          profile.name)
            e = harness.open_subject(
                path, lambda: load(path, backend=chosen, threads=threads, trust_code=trust_code,
                                   device_class=profile.name),
                lambda m: _one_sample(m, input_path), threads)
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
    try:
        interrupted, throttled = harness.measure(ok, runs=runs, duration_s=duration_s, threads=threads,
                                                 overhead=overhead, compare_native=compare_native,
                                                 progress=progress)
    finally:
        for e in ok:
            e.model.close()
    return BenchReport(environment=env, results=rows, interrupted=interrupted, throttled=throttled,
                       settings=harness.settings(runs=runs, warmup=warmup, duration_s=duration_s, threads=threads,
                                                 interleaved=len(ok) > 1))
