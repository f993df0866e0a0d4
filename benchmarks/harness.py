"""The latency harness behind `edgekit.benchmark` (and so `edgekit bench`): timing only.

It measures models that the caller loads (the sdk layer: `edgekit.bench`), on feeds the caller prepares; it
imports nothing from the layer above. Per model: load time (the caller's loader, timed here), first inference,
warm-up, then timed calls with `time.perf_counter_ns` around the model's ``predict`` on inputs prepared before
the loop. Several models are measured interleaved, in blocks, with untimed calls after each switch (runtimes
keep worker threads spinning: the first calls after a switch run slow; DESIGN.md field notes), so drift and
noise hit them alike. A run ends on whichever of `runs` / `duration_s` comes first. Ctrl-C stops the timing and
keeps what was measured.

A model here is anything with ``predict(feeds)``, ``feeds(x)``, ``format``, ``backend``, ``precision``,
``source.size_bytes`` and ``runner`` (an `edgekit.Model`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .environment import reset_peak_rss, rss_mb, throttle_state, throttled_between

BLOCK = 10  # timed calls per model per turn
SETTLE = 3  # untimed calls after switching to another model
PAUSE_S = 0.02  # after a switch: lets the previous runtime's spinning worker threads park
TIMER = "time.perf_counter_ns around Model.predict"


@dataclass
class Subject:
    """One model under measurement: the loaded model, its prepared feeds, its timed samples (ns) and the result
    row that `edgekit bench --json` writes for it."""
    path: Path
    model: Any = None
    feeds: dict = field(default_factory=dict)
    samples: list[int] = field(default_factory=list)
    row: dict = field(default_factory=dict)


def open_subject(path: Path, load: Callable[[], Any], make_feeds: Callable[[Any], dict],
                 threads: int | None) -> Subject:
    """Load a model with ``load()`` (timed: load_ms, and the peak memory of loading and the first call), prepare
    its feeds with ``make_feeds(model)`` (not timed) and time its first inference. The caller's errors
    propagate; a model that loaded is closed again if a later step fails."""
    e = Subject(path, row={"model": path.name, "path": str(path)})
    reset_peak_rss()
    before, _ = rss_mb()
    t0 = time.perf_counter_ns()
    e.model = load()
    load_ms = (time.perf_counter_ns() - t0) / 1e6
    try:
        e.feeds = {k: np.ascontiguousarray(v) for k, v in e.model.feeds(make_feeds(e.model)).items()}
        t0 = time.perf_counter_ns()
        e.model.predict(e.feeds)
        first_ms = (time.perf_counter_ns() - t0) / 1e6
    except BaseException:
        e.model.close()
        raise
    _, peak = rss_mb()
    e.row.update(format=e.model.format.value, backend=e.model.backend, precision=e.model.precision,
                 threads=threads, load_ms=load_ms, first_inference_ms=first_ms,
                 peak_rss_mb=(peak - before) if (peak is not None and before is not None) else None,
                 size_bytes=e.model.source.size_bytes,
                 input_shapes={k: list(v.shape) for k, v in e.feeds.items()})
    return e


def warm_up(e: Subject, calls: int) -> None:
    """Untimed calls before timing (caches, lazy allocations, JIT paths)."""
    for _ in range(calls):
        e.model.predict(e.feeds)


def _timed_blocks(entries: list[Subject], runs: int, duration_s: float | None, progress) -> bool:
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


def _async_throughput(e: Subject, seconds: float = 1.0) -> float | None:
    """Inferences per second with the backend's own concurrency, where the backend has one."""
    measure = getattr(e.model.runner, "async_throughput", None)
    return measure(e.feeds, seconds) if measure is not None else None


def _overhead(e: Subject, runs: int) -> dict | None:
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


def _native(e: Subject, threads: int | None, runs: int, p50: float) -> dict:
    from .native import run_native

    nat = run_native(e.path, e.row["backend"], threads, input_shapes=e.row["input_shapes"], runs=max(runs, 100))
    return {"tool": nat.tool, "p50_ms": nat.p50_ms, "statistic": nat.statistic,
            "ratio": (p50 / nat.p50_ms) if nat.p50_ms else None, "error": nat.error,
            "command": " ".join(nat.command)}


def measure(subjects: list[Subject], *, runs: int, duration_s: float | None = None, threads: int | None = None,
            overhead: bool = False, compare_native: bool = False,
            progress: Callable[[int, int], None] | None = None) -> tuple[bool, bool]:
    """Time opened, warmed-up subjects interleaved and fill each one's row: latency statistics, throughput,
    stability, ratio to the first; then (unless interrupted) async throughput, ``overhead`` (raw runtime call
    against edgekit's) and ``compare_native`` (the vendor's own tool, with ``threads``). Returns
    (interrupted, throttled). The caller closes the models."""
    from .stats import latency_stats, stability, throughput_ips

    throttle_before = throttle_state()
    interrupted = _timed_blocks(subjects, runs, duration_s, progress) if subjects else False
    throttled = throttled_between(throttle_before, throttle_state())
    first_p50 = None
    for e in subjects:
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
            e.row["native"] = _native(e, threads, runs, st["p50"])
    return interrupted, throttled


def settings(*, runs: int, warmup: int, duration_s: float | None, threads: int | None, interleaved: bool) -> dict:
    """How a run was timed, as `edgekit bench --json` records it."""
    return {"runs": runs, "warmup": warmup, "duration_s": duration_s, "threads": threads,
            "interleaved": interleaved, "block": BLOCK, "settle_calls": SETTLE, "pause_s": PAUSE_S, "timer": TIMER}
