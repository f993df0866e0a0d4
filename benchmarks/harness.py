"""The latency harness behind `edgekit bench` and `edgekit.benchmark`.

Per model: load time (session creation), first inference, warm-up, then timed calls with
`time.perf_counter_ns` around edgekit's call on inputs prepared before the loop. Several models are measured
interleaved, in blocks, with untimed calls after each switch (runtimes keep worker threads spinning: the first
calls after a switch run slow; DESIGN.md field notes), so drift and noise hit them alike. A run ends on whichever
of `runs` / `duration_s` comes first. Ctrl-C stops the timing and keeps what was measured.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .environment import environment, reset_peak_rss, rss_mb, throttle_state, throttled_between

BLOCK = 10  # timed calls per model per turn
SETTLE = 3  # untimed calls after switching to another model
PAUSE_S = 0.02  # after a switch: lets the previous runtime's spinning worker threads park


@dataclass
class _Entry:
    path: Path
    model: object = None
    feeds: dict = field(default_factory=dict)
    samples: list[int] = field(default_factory=list)
    row: dict = field(default_factory=dict)


def _inputs(model, input_path) -> dict:
    from edgekit.data import random_inputs, read_arrays

    if input_path is None:
        return random_inputs(model.inputs, batch=1)[0]
    feeds = read_arrays(input_path, model.inputs)
    out = {}
    for s in model.inputs:  # one sample, shaped as the model wants it
        x = feeds[s.name]
        if s.shape is not None and x.ndim == len(s.shape) and (s.shape[0] in (None, 1)):
            x = x[:1]
        elif s.shape is not None and x.ndim == len(s.shape) + 1:
            x = x[0]
        out[s.name] = x
    return out


def _profile_backend(path: Path, preferred: tuple[str, ...]) -> str | None:
    """The device class's preferred backend among those that can run this format and are installed."""
    from edgekit.formats import detect
    from edgekit.runtimes import PREFERENCE, runner_class

    can = PREFERENCE.get(detect(path).format, ())
    for name in preferred:
        if name in can and runner_class(name).available():
            return name
    return None


def _prepare(e: _Entry, backend, threads, input_path, load_kwargs, preferred=()) -> None:
    import edgekit

    if backend is None:
        backend = _profile_backend(e.path, preferred)
    reset_peak_rss()
    before, _ = rss_mb()
    t0 = time.perf_counter_ns()
    e.model = edgekit.load(e.path, backend=backend, threads=threads, **load_kwargs)
    load_ms = (time.perf_counter_ns() - t0) / 1e6
    e.feeds = _inputs(e.model, input_path)
    e.feeds = {k: np.ascontiguousarray(v) for k, v in e.model.feeds(e.feeds).items()}
    t0 = time.perf_counter_ns()
    e.model.predict(e.feeds)
    first_ms = (time.perf_counter_ns() - t0) / 1e6
    _, peak = rss_mb()
    e.row.update(format=e.model.format.value, backend=e.model.backend, precision=e.model.precision,
                 threads=threads, load_ms=load_ms, first_inference_ms=first_ms,
                 peak_rss_mb=(peak - before) if (peak is not None and before is not None) else None,
                 size_bytes=e.model.source.size_bytes,
                 input_shapes={k: list(v.shape) for k, v in e.feeds.items()})


def _timed_blocks(entries: list[_Entry], runs: int, duration_s: float | None, progress) -> bool:
    """Interleaved timing; returns True when interrupted by Ctrl-C."""
    deadline = None if duration_s is None else time.perf_counter() + duration_s * len(entries)
    clock = time.perf_counter_ns
    done = 0
    total = runs * len(entries)
    try:
        while True:
            active = [e for e in entries if len(e.samples) < runs]
            if not active or (deadline is not None and time.perf_counter() > deadline):
                return False
            for e in active:
                predict, feeds, out = e.model.predict, e.feeds, e.samples
                if len(entries) > 1:
                    time.sleep(PAUSE_S)
                    for _ in range(SETTLE):
                        predict(feeds)
                for _ in range(min(BLOCK, runs - len(out))):
                    t0 = clock()
                    predict(feeds)
                    out.append(clock() - t0)
                done += min(BLOCK, runs)
            if progress:
                progress(min(done, total), total)
    except KeyboardInterrupt:
        return True


def _async_throughput(e: _Entry, seconds: float = 1.0) -> float | None:
    """Inferences per second with the backend's own concurrency, where the backend has one."""
    measure = getattr(e.model.runner, "async_throughput", None)
    return measure(e.feeds, seconds) if measure is not None else None


def _overhead(e: _Entry, runs: int) -> dict | None:
    """The raw runtime call and edgekit's call on the same inputs, interleaved in blocks; medians and ratio."""
    raw = e.model.runner.raw_call(e.feeds)
    if raw is None:
        return None
    predict, feeds, clock = e.model.predict, e.feeds, time.perf_counter_ns
    a, b = [], []
    for _ in range(20):
        raw()
        predict(feeds)
    while len(a) < runs:
        for _ in range(BLOCK):
            t0 = clock()
            raw()
            a.append(clock() - t0)
        for _ in range(BLOCK):
            t0 = clock()
            predict(feeds)
            b.append(clock() - t0)
    ra, rb = float(np.median(a)) / 1e6, float(np.median(b)) / 1e6
    return {"raw_p50_ms": ra, "edgekit_p50_ms": rb, "ratio": rb / ra if ra else None,
            "added_us": (rb - ra) * 1000}


def benchmark(models, *, runs: int = 200, warmup: int = 20, duration_s: float | None = None,
              threads: int | None = None, backend: str | None = None, device_class: str | None = None,
              input_path=None, compare_native: bool = False, overhead: bool = False,
              trust_code: bool = False, progress: Callable[[int, int], None] | None = None,
              say: Callable[[str], None] | None = None) -> dict:
    """Measure one or more models; return the result dict that `edgekit bench --json` writes."""
    from edgekit.errors import EdgekitError, InputError

    from .device_classes import PROFILES, guess
    from .stats import latency_stats, stability, throughput_ips

    say = say or (lambda m: None)
    if runs < 1 or warmup < 0:
        raise InputError("runs must be >= 1 and warmup >= 0", "e.g. --runs 200 --warmup 20")
    env = environment()
    detected = guess(env["cpu"], env["board"], platform.system())
    if device_class is not None and device_class not in PROFILES:
        raise InputError(f"unknown device class '{device_class}'", f"choose one of: {', '.join(PROFILES)}")
    profile = PROFILES[device_class or detected]
    threads = threads if threads is not None else profile.threads
    env.update(device_class=profile.name, device_class_detected=detected, profile_threads=profile.threads,
               profile_backends=list(profile.backends))
    paths = [Path(m) for m in (models if isinstance(models, (list, tuple)) else [models])]
    entries = [_Entry(p, row={"model": p.name, "path": str(p)}) for p in paths]
    ok: list[_Entry] = []
    for e in entries:
        try:
            _prepare(e, backend, threads, input_path, {"trust_code": trust_code}, profile.backends)
            for _ in range(warmup):
                e.model.predict(e.feeds)
            ok.append(e)
        except EdgekitError as err:
            e.row = {"model": e.path.name, "path": str(e.path), "error": err.message}
            say(f"{e.path.name}: {err.message}")
    throttle_before = throttle_state()
    interrupted = _timed_blocks(ok, runs, duration_s, progress) if ok else False
    throttled = throttled_between(throttle_before, throttle_state())
    first_p50 = None
    for e in ok:
        if not e.samples:
            e.row.update(error="interrupted before any timed call")
            continue
        st = latency_stats(e.samples)
        stable, reason = stability(e.samples, throttled)
        first_p50 = first_p50 or st["p50"]
        e.row.update(runs=len(e.samples), latency_ms=st, throughput_ips=throughput_ips(e.samples),
                     stable=stable, unstable_reason=reason, ratio_to_first=st["p50"] / first_p50,
                     samples_ms=[s / 1e6 for s in e.samples])
        if not interrupted:
            try:
                e.row["throughput_async_ips"] = _async_throughput(e)
                if overhead:
                    e.row["overhead"] = _overhead(e, max(runs, 100))
            except KeyboardInterrupt:
                interrupted = True
        if compare_native and not interrupted:
            from .native import run_native

            nat = run_native(e.path, e.row["backend"], threads, input_shapes=e.row["input_shapes"], runs=max(runs, 100))
            e.row["native"] = {"tool": nat.tool, "p50_ms": nat.p50_ms, "statistic": nat.statistic,
                               "ratio": (st["p50"] / nat.p50_ms) if nat.p50_ms else None, "error": nat.error,
                               "command": " ".join(nat.command)}
    for e in ok:
        e.model.close()
    return {"environment": env,
            "settings": {"runs": runs, "warmup": warmup, "duration_s": duration_s, "threads": threads,
                         "interleaved": len(ok) > 1, "block": BLOCK, "settle_calls": SETTLE, "pause_s": PAUSE_S,
                         "timer": "time.perf_counter_ns around Model.predict"},
            "results": [e.row for e in entries], "interrupted": interrupted,
            "throttled": throttled}
