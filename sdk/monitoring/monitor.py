"""`edgekit.monitor(model, reference=PROFILE)`: a Model with the same ``predict`` that watches itself.

Per call it records the latency, errors, and a strided copy of the inputs and outputs (`features.Plan.view`) into
fixed buffers; every `block` samples the block is reduced to per-sample features at once, and every `window` samples
the window is tested for drift against the reference profile (`drift.evaluate`). Labels that arrive later
(``feedback(call_id, label)``) are matched to the stored prediction and feed the task metrics (scikit-learn, through
`edgekit.checks.metrics`). Everything is held in fixed-size buffers: memory stays bounded however many calls run.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from pathlib import Path

import numpy as np

from edgekit.errors import InputError

from .drift import Thresholds, evaluate, prepared
from .features import Extractor
from .labels import Labels
from .profile import load_profile, model_info

log = logging.getLogger("edgekit.monitor")

LATENCY_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25,
                   0.5, 1.0, 2.5, 5.0, 10.0)
WINDOWS_LOG_BYTES = 8 << 20  # windows.jsonl is rotated to windows.1.jsonl past this size


class Monitor:
    """See `edgekit.monitor`."""

    def __init__(self, model, reference=None, *, window: int = 1000, thresholds: Thresholds | dict | None = None,
                 task: str | None = None, log_dir=None, sample_rate: float | None = None,
                 sample_max_bytes: int = 64 << 20, feedback_capacity: int = 10_000, metrics_window: int = 1000,
                 keep_windows: int = 100, block: int = 64, port: int | None = None, addr: str = "127.0.0.1"):
        if window < 2 or block < 1:
            raise InputError(f"window={window} and block={block}: need window >= 2 and block >= 1",
                             "give a window of at least the thresholds' min_samples (30 by default)")
        self.model = model
        self.profile = load_profile(reference) if reference is not None else None
        try:
            self.thresholds = Thresholds(**thresholds) if isinstance(thresholds, dict) else thresholds or Thresholds()
        except TypeError:
            raise InputError(f"unknown thresholds {sorted(thresholds)}", "use alpha, psi, js, wasserstein_std and "
                             "min_samples") from None
        self.task = task or (self.profile or {}).get("task")
        self.window, self.block = int(window), int(block)
        self.info = model_info(model)
        self._lock = threading.Lock()
        self._next_id = 0
        self.last_call_id: int | None = None
        # counters
        self.calls = self.samples = 0
        self.errors: Counter = Counter()
        self.alerts_total: Counter = Counter()
        self.windows_closed = 0
        # latency: a block of raw values, folded into bucket counts (and the window's values)
        self._lat = np.empty(256, np.int64)
        self._nlat = 0
        self._buckets = np.array(LATENCY_BUCKETS)
        self.latency_counts = np.zeros(len(LATENCY_BUCKETS) + 1, np.int64)
        self.latency_sum = 0.0
        self._win_lat = np.empty(self.window, np.float64)
        self._nwin_lat = 0
        # features
        self.extractor = None
        self._ref = prepared(self.profile["features"]) if self.profile else None
        if self.profile:
            self.extractor = Extractor.from_dicts(self.profile["plans"]).bind(
                self.profile.get("tensors") or {}, {"input": [s.name for s in model.inputs],
                                                    "output": [s.name for s in model.outputs]})
        self._bufs: dict[str, np.ndarray] = {}
        self._hot: list | None = None
        self._score_key = None
        self._infer = model.runner.infer  # Model.predict without normalising the feeds a second time
        self._bfill = 0
        self._win_vals: np.ndarray | None = None
        self._win_cls: np.ndarray | None = None
        self._wfill = 0
        self._win_start = time.time()
        self._win_errors = 0
        self.last_drift: dict[str, dict] = {}
        self.windows: deque = deque(maxlen=keep_windows)
        # labels
        self.labels = Labels(feedback_capacity, metrics_window)
        # logs
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.samples_log = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            (self.log_dir / "monitor.json").write_text(json.dumps({
                "model": self.info, "window": self.window, "thresholds": self.thresholds.to_dict(),
                "profile_samples": (self.profile or {}).get("samples"), "task": self.task}, indent=2))
            if sample_rate:
                from .samplelog import SampleLog

                self.samples_log = SampleLog(self.log_dir / "samples", rate=sample_rate, max_bytes=sample_max_bytes)
        elif sample_rate:
            raise InputError("sample_rate needs a log_dir to write the samples to", "pass log_dir=FOLDER")
        self.server = None
        self.port: int | None = None
        self._registry = None
        if port is not None:
            self.serve(port, addr)

    # ------------------------------------------------------------------------------------------------- calls

    @property
    def inputs(self):
        return self.model.inputs

    @property
    def outputs(self):
        return self.model.outputs

    def predict(self, x, call_id=None) -> dict[str, np.ndarray]:
        """The model's ``predict``, recorded. ``call_id``: your id for this call (e.g. a request id) to give
        ``feedback`` later; by default a counter, readable as ``last_call_id`` after the call (from several threads,
        use `predict_with_id` or your own ids: ``last_call_id`` is whichever call finished last)."""
        return self.predict_with_id(x, call_id)[1]

    __call__ = predict

    def predict_with_id(self, x, call_id=None) -> tuple[object, dict[str, np.ndarray]]:
        """(the call's id, the outputs): `predict` with the id it was recorded under."""
        t0 = time.perf_counter_ns()
        try:
            feeds = self.model.feeds(x)
            t0 = time.perf_counter_ns()
            out = self._infer(feeds)
        except Exception as e:  # counted (bad inputs too), then raised as it was
            with self._lock:
                self.calls += 1
                self.errors[type(e).__name__] += 1
                self._win_errors += 1
            raise
        dt = time.perf_counter_ns() - t0
        with self._lock:
            if call_id is None:
                call_id = self._next_id
                self._next_id += 1
            self._record(feeds, out, dt, call_id)
        self.last_call_id = call_id
        return call_id, out

    def _prepare(self, feeds, out) -> list:
        """The per-call plan, fixed at the first call: (from inputs?, key, strided slice, block buffer)."""
        if self.extractor is None:
            self.extractor = Extractor.from_batch(feeds, out, self.task)
        hot = []
        for p in self.extractor.plans:
            v = p.view(p.read(feeds, out))
            s = None
            if p.kind == "image" and p.stride > 1:
                s = (slice(None), slice(None, None, p.stride), slice(None, None, p.stride), slice(None)) \
                    if p.layout == "NHWC" else (slice(None), slice(None), slice(None, None, p.stride),
                                                slice(None, None, p.stride))
            elif p.kind == "flat" and p.stride > 1:
                s = p.view  # flattening first: a function, not a slice
            buf = self._bufs.setdefault(p.tensor + p.role, np.empty((self.block, *v.shape[1:]), v.dtype))
            hot.append((p.role == "input", p.key or p.tensor, s, buf, buf.shape[1:]))
        cls = [p for p in self.extractor.plans if p.kind == "classes"]
        self._score_key = (cls[0].key or cls[0].tensor) if cls else self.model.outputs[0].name
        return hot

    def _record(self, feeds, out, dt, call_id) -> None:
        self.calls += 1
        k = self._nlat
        self._lat[k] = dt
        self._nlat = k + 1
        if k + 1 == len(self._lat):
            self._fold_latency()
        hot = self._hot
        if hot is None:
            hot = self._hot = self._prepare(feeds, out)
        if hot:
            arrs = []
            fits = True
            for from_in, key, s, buf, shape in hot:
                a = (feeds if from_in else out)[key]
                if not isinstance(a, np.ndarray):
                    a = np.asarray(a)
                if s is not None:
                    a = s(a) if callable(s) else a[s]
                fits = fits and a.shape[1:] == shape
                arrs.append(a)
            n = len(arrs[0])
            self.samples += n
            fill = self._bfill
            if fits and n <= self.block:
                if fill + n > self.block:
                    self._fold_block()
                    fill = 0
                for a, h in zip(arrs, hot):
                    h[3][fill:fill + n] = a
                self._bfill = fill = fill + n
                if fill == self.block or self._wfill + fill >= self.window:
                    self._fold_block()  # a window closes at the call that fills it
            else:  # a dynamic shape or a batch larger than the block: reduce this call on its own
                self._fold_block()
                self._push(*self.extractor.features(feeds, out))
        if self.labels.capacity:
            self.labels.remember(call_id, out[self._score_key])
        if self.samples_log is not None:
            self.samples_log.offer(call_id, feeds, out)

    def _fold_latency(self) -> None:
        s = self._lat[:self._nlat] / 1e9
        self.latency_counts += np.bincount(np.searchsorted(self._buckets, s, side="left"),
                                           minlength=len(self.latency_counts))
        self.latency_sum += float(s.sum())
        k = min(len(s), len(self._win_lat) - self._nwin_lat)
        self._win_lat[self._nwin_lat:self._nwin_lat + k] = s[:k]
        self._nwin_lat += k
        self._nlat = 0

    def _fold_block(self) -> None:
        if self._bfill == 0:
            return
        from .features import reduce

        num, cls_ = [], []
        for p in self.extractor.plans:
            f, c = reduce(p, self._bufs[p.tensor + p.role][:self._bfill])
            num.append(f)
            if c is not None:
                cls_.append(c)
        n = self._bfill
        self._bfill = 0
        self._push(np.concatenate(num, axis=1),
                   np.stack(cls_, axis=1) if cls_ else np.empty((n, 0), np.int64))

    def _push(self, vals: np.ndarray, cls_: np.ndarray) -> None:
        if self._win_vals is None:
            self._win_vals = np.empty((self.window, vals.shape[1]))
            self._win_cls = np.empty((self.window, cls_.shape[1]), np.int64)
        i = 0
        while i < len(vals):
            k = min(len(vals) - i, self.window - self._wfill)
            self._win_vals[self._wfill:self._wfill + k] = vals[i:i + k]
            self._win_cls[self._wfill:self._wfill + k] = cls_[i:i + k]
            self._wfill += k
            i += k
            if self._wfill == self.window:
                self._close_window()

    # ------------------------------------------------------------------------------------------------ windows

    def flush(self) -> dict | None:
        """Close the current window now (e.g. before shutting down); returns its record (None when empty)."""
        with self._lock:
            self._fold_block()
            self._fold_latency()
            return self._close_window() if self._wfill or self._win_errors else None

    def _close_window(self) -> dict:
        self._fold_latency()
        n = self._wfill
        drift, drifted = {}, []
        if self.profile is not None and n:
            drift, drifted = evaluate(self._ref, self.extractor.names, self._win_vals[:n],
                                      self.extractor.class_names, self._win_cls[:n], self.thresholds)
        lat = self._win_lat[:self._nwin_lat]
        rec = {"window": self.windows_closed, "start": self._win_start, "end": time.time(), "samples": n,
               "calls": self.calls, "errors": self._win_errors,
               "latency_s": {q: float(np.quantile(lat, v)) for q, v in (("p50", .5), ("p95", .95), ("p99", .99))}
               if len(lat) else {},
               "drift": drift, "alerts": [f"drift in {f}: {drift[f]['why']}" for f in drifted]}
        if self.labels.new:
            rec["metrics"] = self.labels.metrics(self.task)
            rec["labels"] = self.labels.count
            self.labels.new = 0
        for f in drifted:
            self.alerts_total[f] += 1
            log.warning("edgekit monitor: drift in %s (window %d, %d samples): %s", f, self.windows_closed, n,
                        drift[f]["why"])
        self.last_drift = drift
        self.windows.append(rec)
        self.windows_closed += 1
        self._wfill = self._nwin_lat = self._win_errors = 0
        self._win_start = time.time()
        if self.log_dir is not None:
            self._write_window(rec)
        return rec

    def _write_window(self, rec: dict) -> None:
        path = self.log_dir / "windows.jsonl"
        if path.exists() and path.stat().st_size > WINDOWS_LOG_BYTES:
            path.replace(self.log_dir / "windows.1.jsonl")
        with open(path, "a") as f:
            f.write(json.dumps(rec, default=float) + "\n")

    # ------------------------------------------------------------------------------------------------- labels

    def feedback(self, call_id, label) -> bool:
        """The true label(s) of an earlier call (one per sample of its batch). Returns False when the call is
        unknown (never made, or older than the last ``feedback_capacity`` calls): counted, not raised."""
        with self._lock:
            return self.labels.add(call_id, label)

    def metrics(self) -> dict | None:
        """Task metrics over the last ``metrics_window`` labelled samples (None before any label)."""
        with self._lock:
            return self.labels.metrics(self.task, strict=True)

    # ---------------------------------------------------------------------------------------------- exposition

    def snapshot(self) -> dict:
        """Everything the exposition shows, taken under the lock."""
        with self._lock:
            self._fold_latency()
            return {"calls": self.calls, "samples": self.samples, "errors": dict(self.errors),
                    "latency_counts": self.latency_counts.tolist(), "latency_sum": self.latency_sum,
                    "windows": self.windows_closed, "alerts": dict(self.alerts_total),
                    "drift": {k: {"statistic": v["statistic"], "p_value": v["p_value"], "psi": v["psi"],
                                  "drift": v["drift"], "test": v["test"]} for k, v in self.last_drift.items()},
                    "metrics": self.labels.metrics(self.task),
                    "feedback": (self.labels.matched, self.labels.unmatched), "pending": len(self.labels.pending),
                    "samples_log": self.samples_log.stats() if self.samples_log is not None else None}

    @property
    def registry(self):
        """A prometheus_client CollectorRegistry holding this monitor's metrics (see `exposition.py`)."""
        if self._registry is None:
            from .exposition import registry_for

            self._registry = registry_for(self)
        return self._registry

    def serve(self, port: int, addr: str = "127.0.0.1"):
        """Serve /metrics for Prometheus on addr:port (a daemon thread); port 0 picks a free one (``self.port``)."""
        from .exposition import serve

        self.server, self.port = serve(self.registry, port, addr)
        return self.port

    def close(self) -> None:
        self.flush()
        if self.samples_log is not None:
            self.samples_log.close()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
