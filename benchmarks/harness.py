"""The latency harness behind `edgekit.benchmark` (and so `edgekit bench`): timing only.

It measures models that the caller loads (the sdk layer: `edgekit.bench`), on feeds the caller prepares; it
imports nothing from the layer above. Per model: load time (the caller's loader, timed here), first inference,
warm-up, then timed calls with `time.perf_counter_ns` around the model's ``predict`` on inputs prepared before
the loop.

The method (why: docs/ARCHITECTURE.md "Bench method"): `measure_isolated` gives each model its own child process
(`worker`), pinned to ``threads`` CPUs where the OS allows; the children are timed round-robin in blocks of about
BLOCK_S seconds, each block after untimed settle calls, so models interleave only between blocks and slow drift
hits them alike. A model is done after ``runs`` calls, and with a ``precision_target`` only once the bootstrap 95%
confidence interval of its median is within +-target (or its time budget is spent). With ``overhead`` the bare
runtime call and edgekit's call alternate inside the same blocks: the overhead figure and the main figure are
the same samples. Outliers are counted, never removed. `measure` is the same loop in this process. Ctrl-C
stops the timing and keeps what was measured.

A model here is anything with ``predict(feeds)``, ``feeds(x)``, ``format``, ``backend``, ``precision``,
``source.size_bytes`` and ``runner`` (an `edgekit.Model`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import worker
from .environment import reset_peak_rss, rss_mb, throttle_state, throttled_between

BLOCK_S = 0.25  # a timed block lasts about this long (after its settle calls): long enough for steady state
MIN_BLOCK = 10  # and holds at least this many calls
DEFAULT_BUDGET_S = 30.0  # timing seconds per model when a precision target is set without --duration
PAUSE_S = 0.02  # before another model's block: lets the previous runtime's spinning worker threads park
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
    call_s: float | None = None  # the mean warm-up call: sizes the timed blocks


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
    """Untimed calls before timing (caches, lazy allocations, JIT paths); their mean duration sizes the blocks."""
    t0 = time.perf_counter()
    for _ in range(calls):
        e.model.predict(e.feeds)
    if calls:
        e.call_s = (time.perf_counter() - t0) / calls


def _timed_blocks(entries: list[Subject], runs: int, duration_s: float | None, progress) -> bool:
    """Time opened subjects in this process, round-robin in blocks (`run_blocks`), into each one's ``samples``;
    `edgekit tune` times a candidate against its source this way. Returns True when interrupted by Ctrl-C."""
    tracks = _local_tracks(entries)
    interrupted = run_blocks(tracks, runs=runs, duration_s=duration_s, precision_target=None, overhead=False,
                             progress=progress) if tracks else False
    for t, e in zip(tracks, entries):
        e.samples = t.samples().tolist()
    return interrupted


def _local_tracks(subjects: list[Subject]) -> list[_Track]:
    out = []
    for e in subjects:  # blocks sized by the warm-up's mean call (else the first call, else 1 ms)
        call_s = e.call_s or e.row.get("first_inference_ms", 1.0) / 1e3
        out.append(_Track(_Local(e, call_s), e.row, call_s))
    return out


class _Local:
    """The in-process counterpart of `worker.Worker` (``isolate=False``, and `edgekit tune`): the same protocol,
    answered at once by an opened Subject in this process. Ctrl-C inside a block keeps that block's calls."""

    def __init__(self, e: Subject, call_s: float):
        self.e, self.name, self.call_s, self.raw = e, e.path.name, call_s, None
        self.inner = worker.runtime_clock(e)
        self.reply: tuple = ()
        self.interrupted = False

    def send(self, *msg) -> None:
        e = self.e
        if msg[0] == "block":
            _, calls, max_s, with_raw = msg
            if with_raw and self.raw is None:
                self.raw = e.model.runner.raw_call(e.feeds)
            raw = self.raw if with_raw else None
            try:
                ed, rw, rt = worker.timed_block(e.model.predict, e.feeds, raw, calls, max_s, self.call_s, self.inner)
            except worker.BlockInterrupted as stop:
                ed, rw, rt = stop.partial
                self.interrupted = True
            self.reply = ("block", ed, rw if raw is not None else None, rt)
        elif msg[0] == "finish":
            measure = getattr(e.model.runner, "async_throughput", None) if msg[1] else None
            self.reply = ("done", {"throughput_async_ips": measure(e.feeds, 1.0) if measure is not None else None})

    def recv(self) -> tuple:
        return self.reply

    def close(self) -> None:  # the caller closes its models
        pass


class _Track:
    """One model's samples and stopping state in a run."""

    def __init__(self, handle, row: dict, call_s: float):
        self.h, self.row, self.call_s = handle, row, max(call_s, 1e-7)
        self.ed: list[np.ndarray] = []
        self.rw: list[np.ndarray] = []
        self.rt: list[np.ndarray] = []  # the runtime's own timer (ms) of the same calls as ``ed``, where it has one
        self.n = 0
        self.spent_s = 0.0
        self.done = False
        self.half_width: float | None = None
        self.died: str | None = None

    def samples(self) -> np.ndarray:
        return np.concatenate(self.ed) if self.ed else np.empty(0, np.int64)

    def raw_samples(self) -> np.ndarray | None:
        return np.concatenate(self.rw) if self.rw else None

    def runtime_samples(self) -> np.ndarray | None:
        return np.concatenate(self.rt) if self.rt and len(self.rt) == len(self.ed) else None


def _next_block(t: _Track, runs: int, budget_s: float | None) -> tuple[int, float] | None:
    """(calls, max seconds) of the track's next block, or None when it is done."""
    left_s = None if budget_s is None else budget_s - t.spent_s
    if left_s is not None and left_s <= 0:
        return None
    per_block = max(MIN_BLOCK, int(np.ceil(BLOCK_S / t.call_s)))
    calls = min(per_block, runs - t.n) if t.n < runs else per_block
    return calls, (left_s if left_s is not None else max(BLOCK_S * 8, calls * t.call_s * 4))


def run_blocks(tracks: list[_Track], *, runs: int, duration_s: float | None, precision_target: float | None,
               overhead: bool, progress: Callable[[int, int], None] | None) -> bool:
    """Time the tracks round-robin, one block each per round, until every one is done: ``runs`` calls, and with
    a ``precision_target`` until the median's 95% CI half-width is within it; never past ``duration_s`` of
    timing per model. Returns True when Ctrl-C stopped it (the block in flight in a child is kept)."""
    from .stats import ci_half_width

    budget = duration_s if duration_s is not None else (DEFAULT_BUDGET_S if precision_target else None)
    total = runs * len(tracks)
    pending = None
    try:
        while True:
            active = [t for t in tracks if not t.done]
            if not active:
                return False
            for t in active:
                nxt = _next_block(t, runs, budget)
                if nxt is None:
                    t.done = True
                    continue
                if len(tracks) > 1:
                    time.sleep(PAUSE_S)  # the previous runtime's spinning threads park
                t0 = time.perf_counter()
                pending = t
                try:
                    t.h.send("block", nxt[0], nxt[1], overhead)
                    reply = t.h.recv()
                    pending = None
                except (worker.ChildDied, BrokenPipeError) as died:
                    t.done, t.died, pending = True, f"{died} during timing", None
                    continue
                if reply[0] == "error":  # the runtime failed mid-run (an EdgekitError in the child)
                    t.done, t.died = True, reply[1]
                    continue
                _take(t, reply, time.perf_counter() - t0)
                if getattr(t.h, "interrupted", False):
                    raise KeyboardInterrupt
                if t.n >= runs:
                    if precision_target is None:
                        t.done = True
                    else:
                        t.half_width = ci_half_width(t.samples())
                        t.done = t.half_width <= precision_target
                if progress:
                    progress(min(sum(x.n for x in tracks), total) if precision_target is None else
                             sum(min(x.n, runs) for x in tracks), total)
    except KeyboardInterrupt:
        if pending is not None and isinstance(pending.h, worker.Worker):
            try:  # the child ignores SIGINT and finishes its block: keep it
                if pending.h.conn.poll(nxt[1] + 30):
                    _take(pending, pending.h.recv(), 0.0)
            except (KeyboardInterrupt, worker.ChildDied):
                pass
        return True


def _take(t: _Track, reply: tuple, spent_s: float) -> None:
    _, ed, rw, rt = reply
    t.ed.append(ed)
    if rw is not None:
        t.rw.append(rw)
    if rt is not None:
        t.rt.append(rt)
    t.n += len(ed)
    t.spent_s += spent_s


def _fill(t: _Track, throttled: bool, first_p50: float | None) -> float | None:
    """The track's row: latency statistics, the median's CI, outliers, stability, overhead from the same blocks."""
    from .stats import coefficient_of_variation, latency_stats, median_summary, ratio_ci, stability, throughput_ips

    s = t.samples()
    if t.died:
        t.row.update(error=t.died)
        return first_p50
    if not len(s):
        t.row.update(error="interrupted before any timed call")
        return first_p50
    st = latency_stats(s)
    stable, reason = stability(s, throttled)
    first_p50 = first_p50 or st["p50"]
    med = median_summary(s)
    t.row.update(runs=len(s), latency_ms=st, throughput_ips=throughput_ips(s), stable=stable,
                 unstable_reason=reason, ratio_to_first=st["p50"] / first_p50, p50_ci_ms=med["ci_ms"],
                 p50_half_width=med["half_width"], cv=coefficient_of_variation(s), outliers=med["outliers"],
                 timed_s=t.spent_s, samples_ms=(s / 1e6).tolist())
    rt = t.runtime_samples()
    if rt is not None and len(rt):
        t.row["runtime_clock"] = _runtime_clock(t.row.get("runtime_clock") or {}, rt, s)
    raw = t.raw_samples()
    if raw is not None and len(raw):
        ra, rb = float(np.median(raw)) / 1e6, st["p50"]
        lo, hi = ratio_ci(raw, s)
        t.row["overhead"] = {"raw_p50_ms": ra, "edgekit_p50_ms": rb, "ratio": rb / ra if ra else None,
                             "ratio_ci": [lo, hi], "added_us": (rb - ra) * 1000, "raw_runs": len(raw),
                             "method": "raw and edgekit calls alternating in the same timed blocks; edgekit_p50_ms "
                                       "is latency_ms.p50"}
    return first_p50


def _runtime_clock(info: dict, rt_ms: np.ndarray, wall_ns: np.ndarray) -> dict:
    """The same timed calls on the runtime's own clock: its median with a CI, and how much more each call took
    on the wall clock (the median of the per-call differences)."""
    from .stats import median_summary

    med = median_summary(np.round(rt_ms * 1e6).astype(np.int64))
    return info | {"p50_ms": float(np.median(rt_ms)), "p50_ci_ms": med["ci_ms"],
                   "wall_minus_clock_us": float(np.median(wall_ns / 1e3 - rt_ms * 1e3)), "runs": len(rt_ms)}


def _native(row: dict, threads: int | None, cpus: list[int] | None) -> dict:
    """The vendor tool's median beside ours. ``ratio`` compares edgekit's wall-clock p50 with it; where the tool
    reports the runtime's own timer (benchmark_app: ``InferRequest.latency``) and edgekit read that timer on
    the same calls, ``same_clock_ratio`` compares like with like (the wall clock adds the binding's own cost)."""
    from .native import run_native

    nat = run_native(Path(row["path"]), row["backend"], threads, input_shapes=row["input_shapes"],
                     runs=max(row.get("runs", 0), 100), cpus=cpus)
    p50 = row["latency_ms"]["p50"]
    rc = row.get("runtime_clock") or {}
    same = rc.get("p50_ms") if nat.clock is not None and rc.get("clock") == nat.clock else None
    return {"tool": nat.tool, "p50_ms": nat.p50_ms, "statistic": nat.statistic, "clock": nat.clock,
            "ratio": (p50 / nat.p50_ms) if nat.p50_ms else None,
            "same_clock_ratio": (same / nat.p50_ms) if same and nat.p50_ms else None, "error": nat.error,
            "command": " ".join(nat.command), "cpus": cpus}


def _finish(tracks: list[_Track], *, throttled: bool, interrupted: bool, overhead: bool, compare_native: bool,
            threads: int | None, cpus: list[int] | None) -> bool:
    """Fill every row; ask each handle for its async throughput and memory and close it; run the vendor tools
    (after every child has exited: nothing else of ours runs while they measure). Returns interrupted."""
    first = None
    for t in tracks:
        first = _fill(t, throttled, first)
    for t in tracks:
        if t.died:
            t.h.close()
            continue
        try:
            t.h.send("finish", not interrupted and "error" not in t.row)
            kind, info = t.h.recv()
            if kind == "done":
                t.row.update({k: v for k, v in info.items() if v is not None or k == "throughput_async_ips"})
            else:  # its async throughput failed: the timing stands, the reason is kept
                t.row["throughput_async_error"] = info
        except KeyboardInterrupt:
            interrupted = True
        except (worker.ChildDied, BrokenPipeError) as died:
            t.row["memory_error"] = f"{died} after timing: no peak memory or async throughput"
        finally:
            t.h.close()
    if overhead:
        for t in tracks:
            if "error" not in t.row and "overhead" not in t.row:
                t.row["overhead"] = None  # the backend has no separate raw call
    if compare_native and not interrupted:
        for t in tracks:
            if "error" not in t.row:
                try:
                    t.row["native"] = _native(t.row, threads, cpus)
                except KeyboardInterrupt:
                    return True
    return interrupted


def measure(subjects: list[Subject], *, runs: int, duration_s: float | None = None, threads: int | None = None,
            overhead: bool = False, compare_native: bool = False, precision_target: float | None = None,
            progress: Callable[[int, int], None] | None = None) -> tuple[bool, bool]:
    """Time opened, warmed-up subjects in this process (round-robin blocks) and fill each one's row; then async
    throughput and, with ``compare_native``, the vendor's tool. Returns (interrupted, throttled). The caller
    closes the models. `measure_isolated` is the same run with one child process per model."""
    for e in subjects:
        e.row["memory_scope"] = "shared process: the growth of this process's peak while the model loaded"
    before = throttle_state()
    tracks = _local_tracks(subjects)
    interrupted = run_blocks(tracks, runs=runs, duration_s=duration_s, precision_target=precision_target,
                             overhead=overhead, progress=progress) if tracks else False
    throttled = throttled_between(before, throttle_state())
    for t, e in zip(tracks, subjects):
        e.samples = t.samples().tolist()
    interrupted = _finish(tracks, throttled=throttled, interrupted=interrupted, overhead=overhead,
                          compare_native=compare_native, threads=threads, cpus=None)
    return interrupted, throttled


def measure_isolated(openers: list[tuple[Path, Callable[[], Subject]]], *, runs: int, warmup: int,
                     duration_s: float | None = None, threads: int | None = None, overhead: bool = False,
                     compare_native: bool = False, precision_target: float | None = None, pin: bool = True,
                     progress: Callable[[int, int], None] | None = None,
                     say: Callable[[str], None] | None = None) -> tuple[list[dict], bool, bool]:
    """Measure each model in its own child process (`worker`): ``opener()`` runs in the child and returns the
    opened Subject. Children start one after another (load time and memory measured on a quiet process), then
    are timed round-robin in blocks. Returns (rows in the order given, interrupted, throttled); a model that
    could not be opened is an error row (and ``say`` is told)."""
    cpus = worker.pin_cpus(threads) if pin else None
    say = say or (lambda m: None)
    rows: list[dict] = []
    tracks: list[_Track] = []
    interrupted = False
    w = None
    try:
        for path, opener in openers:
            w = worker.Worker(opener, cpus, warmup, path.name)
            try:
                msg = w.recv()
            except worker.ChildDied as died:
                msg = ("error", str(died) + " while loading it")
            if msg[0] == "error":
                w.close()
                rows.append({"model": path.name, "path": str(path), "error": msg[1]})
                say(f"{path.name}: {msg[1]}")
                continue
            _, row, call_s = msg
            row.update(memory_scope="own child process: its peak RSS over its RSS before loading the runtime "
                                    "and the model", process_pid=w.pid)
            rows.append(row)
            tracks.append(_Track(w, row, call_s))
            w = None
    except KeyboardInterrupt:
        interrupted = True
        if w is not None:  # the child being started when Ctrl-C came
            w.kill()
            w.close()
    except BaseException:
        for h in [t.h for t in tracks] + ([w] if w is not None else []):
            h.kill()
        raise
    before = throttle_state()
    if not interrupted and tracks:
        interrupted = run_blocks(tracks, runs=runs, duration_s=duration_s, precision_target=precision_target,
                                 overhead=overhead, progress=progress)
    throttled = throttled_between(before, throttle_state())
    interrupted = _finish(tracks, throttled=throttled, interrupted=interrupted, overhead=overhead,
                          compare_native=compare_native, threads=threads, cpus=cpus)
    for t in tracks:
        t.row["cpus"] = cpus
    return rows, interrupted, throttled


def settings(*, runs: int, warmup: int, duration_s: float | None, threads: int | None, interleaved: bool,
             isolated: bool = False, precision_target: float | None = None, cpus: list[int] | None = None) -> dict:
    """How a run was timed, as `edgekit bench --json` records it."""
    return {"runs": runs, "warmup": warmup, "duration_s": duration_s, "threads": threads,
            "interleaved": interleaved, "isolation": "child process per model" if isolated else "one process",
            "cpus": cpus, "precision_target": precision_target,
            "budget_s": duration_s if duration_s is not None else (DEFAULT_BUDGET_S if precision_target else None),
            "block_s": BLOCK_S, "min_block": MIN_BLOCK, "settle_calls": worker.SETTLE_CALLS,
            "settle_s": worker.SETTLE_S, "pause_s": PAUSE_S, "confidence": 0.95,
            "ci_method": "bootstrap percentile interval of the median", "timer": TIMER}
