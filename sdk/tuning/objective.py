"""One tune trial: convert (through the artifact cache) one target with the trial's options, check the task
metric on the evaluation data with a paired bootstrap CI of the drop (per fold when folds=K), and time the
result interleaved with the source model (the benchmark harness), with its size and peak memory. Any failure is
the trial's recorded reason, never an exception out of the study."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError, InputError

from .cache import ArtifactCache, arrays_sha256, cache_key, file_sha256
from .folds import Split, summary, take
from .result import TrialResult
from .space import RUNTIME_OF

CALIBRATED = ("int8",)  # precisions whose conversion reads calibration data
N_BOOT = 1000


@dataclass
class Source:
    """The model every trial converts, with what it scored and how fast it ran here."""
    path: Path
    sha256: str
    trust: bool
    names: list[str]
    scores: np.ndarray  # its task output on every evaluation sample
    model: object = None  # loaded (edgekit.Model), kept open to time each trial against
    input_shapes: dict = field(default_factory=dict)

    def close(self):
        if self.model is not None:
            self.model.close()
            self.model = None


@dataclass
class Setup:
    """What every trial shares: the data, the splits, the budget and the harness settings."""
    X: dict
    labels: np.ndarray | None
    calibration: dict | None  # the separate calibration data, or None
    splits: list[Split]
    metric: object
    budget: float
    max_latency_ms: float | None
    max_size_mb: float | None
    cache: ArtifactCache
    bench_s: float = 0.3
    seed: int = 0
    calibration_note: str = ""  # where the calibration samples came from (the recipe says it)
    # where each trial is timed: None here (`bench`), or a callable with bench's signature (`tune --device`:
    # edgekit.devices.tuning.DeviceMeasure); ``workers`` trials at once, their local part (convert, evaluate)
    # one at a time under ``local_lock``
    measure: object = None
    workers: int = 1
    local_lock: object = field(default_factory=threading.Lock)


def source_from(model, out: Path, trust: bool, example_inputs=None) -> tuple[Path, bool]:
    """A model path, or an in-memory Keras / torch model saved under ``out`` (edgekit wrote it: trusted)."""
    import os

    if isinstance(model, (str, os.PathLike)):
        from edgekit.formats import detect

        return detect(model).path, trust
    if isinstance(model, tuple) and len(model) == 2:
        model, example_inputs = model
    if type(model).__module__.startswith("sklearn"):
        return _sklearn_source(model, out, example_inputs), True
    from edgekit.conversion_source import _in_memory_source

    art = _in_memory_source(model, example_inputs, out, set())
    return art.path, True


def _sklearn_source(est, out: Path, example) -> Path:
    import importlib.util

    if importlib.util.find_spec("skl2onnx") is None:
        raise InputError("converting a scikit-learn estimator needs skl2onnx, which is not installed",
                         "pip install skl2onnx, or return a Keras model or a (torch module, example input) pair")
    from skl2onnx import to_onnx  # pragma: no cover - not installed in edgekit's environment

    out.mkdir(parents=True, exist_ok=True)
    path = out / "estimator.onnx"
    path.write_bytes(to_onnx(est, np.asarray(example, dtype=np.float32)[:1]).SerializeToString())
    return path


def open_source(path: Path, trust: bool, data, labels_hint=None) -> tuple[Source, dict, np.ndarray | None]:
    """Load the source, read the evaluation data keyed by its inputs, and score it on every sample."""
    from edgekit.batching import predict_samples
    from edgekit.datasets import open_dataset
    from edgekit.formats import detect
    from edgekit.model import load

    m = load(path, trust_code=trust)
    try:
        names = [s.name for s in m.inputs]
        X, labels = read_all(open_dataset(data, names, batch=512)) if not isinstance(data, tuple) else data
        if len(names) == 1 and len(X) == 1 and names[0] not in X:  # one input, one array: whatever its key
            X = {names[0]: next(iter(X.values()))}
        X = {k: np.asarray(v) for k, v in m.feeds(X).items()}
        scores = np.asarray(next(iter(predict_samples(m, X).values())))
    except BaseException:
        m.close()
        raise
    src = Source(path, file_sha256(detect(path).files), trust, names, scores, m)
    return src, X, labels


def read_all(ds) -> tuple[dict, np.ndarray | None]:
    parts = list(ds.batches)
    if not parts:
        raise InputError("the evaluation data holds no samples", "pass a non-empty .npz, .npy or folder")
    X = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = len(next(iter(X.values())))
    return X, None if ds.labels is None else np.asarray(ds.labels)[:n]


def split_params(params: dict) -> tuple[str, dict, dict, int]:
    """(target, convert keywords, runtime options, batch) of a trial's parameters, by the owner of each knob: a
    runner's knob is a runtime option (``openvino.threads`` -> threads), a converter's or compression pass's a
    convert keyword (``onnx.calibrate_method`` -> calibrate_method; precision through precision_kwargs)."""
    from edgekit.converters.base import precision_kwargs

    from .space import knob_owners

    owners = knob_owners()
    conv = precision_kwargs(params.get("precision", "fp32"))
    rt = {}
    for k, v in params.items():
        owner = owners.get(k, "")
        if owner.startswith("edgekit.runtimes"):
            rt[k.split(".", 1)[1]] = v
        elif owner.startswith("edgekit.converters") and k != "precision":
            conv[k.rsplit(".", 1)[-1]] = v
    return params["target"], conv, rt, int(params.get("batch", 1))


def calibration_for(setup: Setup, split: Split, conv: dict) -> dict | None:
    if conv.get("precision") not in CALIBRATED:
        return None
    if split.calibration is not None:
        return take(setup.X, split.calibration)
    return setup.calibration if setup.calibration is not None else setup.X


def converted(setup: Setup, src: Source, target: str, conv: dict, cal: dict | None) -> tuple[dict, bool, float]:
    """(cache entry, hit, seconds): the artifact for this configuration, converted only when not cached."""
    import edgekit

    t0 = time.perf_counter()
    key = cache_key(src.sha256, target, {**conv, "input_shapes": src.input_shapes}, arrays_sha256(cal))
    hit = setup.cache.get(key)
    if hit is not None:
        return hit, True, time.perf_counter() - t0
    stage = setup.cache.staging()
    try:
        if cal is not None:  # kept with the artifact: a recipe replays with exactly these samples
            np.savez(stage / "calibration.npz", **cal)
        ranks = bool(conv.get("keep_float"))  # ranks layers on convert's check data: the calibration samples
        rep = edgekit.convert(src.path, [target], output_dir=stage / "out", verify=ranks, trust_code=src.trust,
                              calibration=cal, sample=cal if ranks else None, input_shapes=src.input_shapes or None,
                              **conv)
        res = rep[target]
        if res.status == "fail" or res.path is None:
            raise InputError(f"conversion failed: {res.error}", "see the trial's reason")
        entry = setup.cache.put(key, stage, res.path, {"target": target, "convert": conv, "route": res.route,
                                                       "seconds": res.seconds, "key": key})
    except BaseException:
        import shutil

        shutil.rmtree(stage, ignore_errors=True)
        raise
    return entry, False, time.perf_counter() - t0


def open_model(path, target: str, runtime: dict):
    """Load a converted file in its target's runtime with the trial's runtime options."""
    from edgekit.device_classes import default_threads
    from edgekit.formats import detect
    from edgekit.model import Model, _adopt_manifest
    from edgekit.runtimes import pick_backend

    source = detect(path)
    cls = pick_backend(source.format, RUNTIME_OF[target])
    opts = dict(runtime)
    threads = opts.pop("threads", None) or default_threads()
    runner = cls(source, threads=threads, device="CPU", **opts)
    runner.load()
    _adopt_manifest(runner, source.size_bytes)
    return Model(runner)


def evaluate(setup: Setup, src: Source, model, idx: np.ndarray) -> dict:
    """The candidate's metric on samples ``idx``, its drop below the source (points) and the drop's 95% CI."""
    from edgekit.batching import align_inputs, predict_samples
    from edgekit.checks.metrics import paired_bootstrap_ci

    feeds = align_inputs(model, take(setup.X, idx), src.names)
    cand = np.asarray(next(iter(predict_samples(model, feeds).values())))
    ref = src.scores[idx]
    truth = setup.labels[idx] if setup.labels is not None else ref.argmax(-1)
    ci = paired_bootstrap_ci(truth, ref, cand, metric=setup.metric, n_boot=N_BOOT, seed=setup.seed)
    acc = float(setup.metric(truth, cand))
    return {"accuracy": acc, "accuracy_drop": 0.0 - 100.0 * ci["delta"],  # 0.0 - : no -0.0 in reports
            "drop_ci": (0.0 - 100.0 * ci["high"], 0.0 - 100.0 * ci["low"]), "samples": int(len(idx))}


def bench(setup: Setup, src: Source, path, target: str, runtime: dict, batch: int) -> dict:
    """Median latency per sample of the candidate, timed interleaved with the source; size and peak memory."""
    from edgekit.benchmarks import harness
    from edgekit.benchmarks.stats import latency_stats
    from edgekit.formats import detect

    first = next(iter(setup.X.values()))
    if batch > len(first):
        raise InputError(f"batch {batch} is larger than the {len(first)} evaluation samples", "use a smaller batch")
    cand = harness.open_subject(Path(path), lambda: open_model(path, target, runtime),
                                lambda m: take(setup.X, np.arange(batch)), runtime.get("threads"))
    try:
        base = harness.Subject(src.path, src.model, src.model.feeds(take(setup.X, np.arange(1))))
        harness.warm_up(cand, 5)
        for s in (cand, base):
            s.samples = []
        harness._timed_blocks([base, cand], runs=100_000, duration_s=setup.bench_s / 2, progress=None)
        c, b = latency_stats(cand.samples)["p50"], latency_stats(base.samples)["p50"]
    finally:
        cand.model.close()
    return {"latency_ms": c / batch, "baseline_latency_ms": b, "ratio_to_baseline": (c / batch) / b if b else None,
            "timed_calls": len(cand.samples), "peak_memory_mb": cand.row.get("peak_rss_mb"),
            "size_mb": detect(path).size_bytes / 2**20, "batch": batch}


def run_trial(setup: Setup, src: Source, number: int, params: dict) -> TrialResult:
    """Convert, evaluate (each split), time: a TrialResult, 'failed' with the reason on any error."""
    tr = TrialResult(number, dict(params), "failed", target=params.get("target"))
    t0 = time.perf_counter()
    try:
        target, conv, runtime, batch = split_params(params)
        per_fold, first = [], None
        with setup.local_lock:
            for sp in setup.splits:
                cal = calibration_for(setup, sp, conv)
                entry, hit, conv_s = converted(setup, src, target, conv, cal)
                first = first or (entry, hit, conv_s, cal)
                with open_model(entry["artifact"], target, runtime) as m:
                    per_fold.append({"fold": sp.index, **evaluate(setup, src, m, sp.evaluation)})
        entry, hit, conv_s, cal = first
        tr.artifact = entry["artifact"]
        measured = (setup.measure or bench)(setup, src, entry["artifact"], target, runtime, batch)
        _fill(tr, setup, per_fold, measured)
        tr.extra.update(cache_hit=hit, convert_s=conv_s, convert_fresh_s=entry.get("seconds"),
                        cache_key=entry.get("key"), route=entry.get("route"))
        tr.recipe = _recipe(src, target, conv, runtime, batch, cal, setup, tr)
    except KeyboardInterrupt:
        raise
    except EdgekitError as e:
        tr.state, tr.reason = "failed", e.message
    except Exception as e:  # a tool's own error: recorded, the study goes on
        from edgekit.errors import first_line

        tr.state, tr.reason = "failed", f"{type(e).__name__}: {first_line(e)}"
    tr.extra["seconds"] = time.perf_counter() - t0
    return tr


def _fill(tr: TrialResult, setup: Setup, per_fold: list[dict], measured: dict) -> None:
    if len(per_fold) == 1:
        f = per_fold[0]
        tr.accuracy, tr.accuracy_drop, tr.drop_ci = f["accuracy"], f["accuracy_drop"], tuple(f["drop_ci"])
    else:  # the mean over folds; the CI spans every fold's, so feasibility holds on the worst fold
        tr.folds = summary([{**f, "drop_ci": list(f["drop_ci"])} for f in per_fold])
        tr.accuracy, tr.accuracy_drop = tr.folds["accuracy_mean"], tr.folds["accuracy_drop_mean"]
        tr.drop_ci = (min(f["drop_ci"][0] for f in per_fold), max(f["drop_ci"][1] for f in per_fold))
    tr.latency_ms, tr.size_mb, tr.peak_memory_mb = (measured["latency_ms"], measured["size_mb"],
                                                    measured["peak_memory_mb"])
    tr.extra.update({k: measured[k] for k in ("baseline_latency_ms", "ratio_to_baseline", "timed_calls", "batch",
                                              "device") if k in measured})
    reasons = []
    if tr.drop_ci[1] > setup.budget:
        reasons.append(f"the drop's CI reaches {tr.drop_ci[1]:.2f} points > the {setup.budget:g} budget")
    if setup.max_latency_ms is not None and tr.latency_ms > setup.max_latency_ms:
        reasons.append(f"latency {tr.latency_ms:.3f} ms > {setup.max_latency_ms:g} ms")
    if setup.max_size_mb is not None and tr.size_mb > setup.max_size_mb:
        reasons.append(f"size {tr.size_mb:.3f} MB > {setup.max_size_mb:g} MB")
    tr.feasible = not reasons
    tr.state = "complete" if tr.feasible else "infeasible"
    tr.reason = "; ".join(reasons) or None


def constraints(tr: TrialResult, setup: Setup) -> dict[str, float]:
    """Optuna's constraint values (<= 0 feasible): the CI's upper end over the budget, latency and size limits."""
    out = {"accuracy_drop_ci": tr.drop_ci[1] - setup.budget}
    if setup.max_latency_ms is not None:
        out["latency_ms"] = tr.latency_ms - setup.max_latency_ms
    if setup.max_size_mb is not None:
        out["size_mb"] = tr.size_mb - setup.max_size_mb
    return out


def _recipe(src: Source, target, conv, runtime, batch, cal, setup: Setup, tr: TrialResult) -> dict:
    from edgekit import __version__

    return {"edgekit_recipe": 1, "edgekit_version": __version__, "source_sha256": src.sha256,
            "source": str(src.path), "target": target,
            "convert": {**conv, **({"input_shapes": src.input_shapes} if src.input_shapes else {})},
            "runtime": {**runtime, "batch": batch},
            "calibration": None if cal is None else {"sha256": arrays_sha256(cal),
                                                     "samples": int(len(next(iter(cal.values())))),
                                                     "from": setup.calibration_note, "cache_key": tr.extra.get(
                                                         "cache_key")},
            "metrics": {"accuracy": tr.accuracy, "accuracy_drop": tr.accuracy_drop, "drop_ci": list(tr.drop_ci),
                        "latency_ms": tr.latency_ms, "size_mb": tr.size_mb, "peak_memory_mb": tr.peak_memory_mb,
                        "trial": tr.number}}
