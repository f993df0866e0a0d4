"""`edgekit tune ... --device NAME[,NAME...]`: each trial's latency measured on a device by the device's own
`edgekit bench` (the trial's converted file and one input sample pushed into its cache), one worker per device.

Conversion and the accuracy check stay on the workstation (one trial at a time); only the timing moves. A device
times a trial with the options `edgekit bench` takes there (threads); runtime knobs it cannot set are held at
the runtime's default for the search (`fixed_space`), and a trial asking for another value fails with the reason.
"""

from __future__ import annotations

import io
import json
import queue
import threading
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError

from .registry import Device, DeviceError

# runtime knobs a device run leaves at the runtime's default: the value tune must hold them at
DEFAULTS = {"graph_optimization_level": "all", "performance_hint": "LATENCY", "inference_precision": "f32"}
KNOB_TARGET = {"onnxruntime.graph_optimization_level": "onnx", "openvino.performance_hint": "openvino",
               "openvino.inference_precision": "openvino"}


def fixed_space(space: dict | None, targets: list[str]) -> tuple[dict, list[str]]:
    """The search space with the knobs a device cannot set held at their defaults (unless the user restricted them
    already); and a note per knob held."""
    space = dict(space or {})
    notes = []
    for knob, target in KNOB_TARGET.items():
        if target in targets and knob not in space:
            value = DEFAULTS[knob.split(".", 1)[1]]
            space[knob] = (value,)
            notes.append(f"{knob} held at {value} (a device run uses the runtime's default)")
    return space, notes


class DeviceMeasure:
    """``Setup.measure`` for `tune --device`: bench's signature; a trial takes a free device, times its file there
    and gives the device back, so ``workers`` = one per device run at once."""

    def __init__(self, devices: list[Device], *, accept_new_host_key: bool = False, confirm=None,
                 timeout: float = 600):
        self.devices = devices
        self.workers = len(devices)
        self._free: queue.Queue = queue.Queue()
        for d in devices:
            self._free.put(d)
        self._conns: dict[str, object] = {}
        self._lock = threading.Lock()
        self._accept, self._confirm, self._timeout = accept_new_host_key, confirm, timeout

    def _conn(self, d: Device):
        from .ssh import Connection

        c = self._conns.get(d.name)
        if c is None or c._conn is None:  # first use, or the connection was lost: connect again
            if c is not None:
                c.close()
            c = Connection(d, accept_new_host_key=self._accept, confirm=self._confirm).open()
            self._conns[d.name] = c
        return c

    def close(self) -> None:
        for c in self._conns.values():
            c.close()
        self._conns.clear()

    def __call__(self, setup, src, path, target: str, runtime: dict, batch: int) -> dict:
        from edgekit.formats import detect

        from .push import push
        from .remote import _RunDir, _error_lines, _last, _missing_runtime_hint, edgekit, need_venv

        if batch != 1:
            raise EdgekitError(f"batch {batch}: a device times one sample per call", "restrict space batch=1")
        threads = runtime.get("threads")
        for k, v in runtime.items():
            if k != "threads" and DEFAULTS.get(k) != v:
                raise EdgekitError(f"{k}={v} cannot be set for a device run (it uses {DEFAULTS.get(k, 'the default')})",
                                   f"restrict --space to {k}={DEFAULTS.get(k)}")
        d = self._free.get()
        try:
            conn = self._conn(d)
            need_venv(conn)
            model = push(conn, Path(path))
            sample = _sample(setup, src, path, target, runtime)
            inp = push(conn, sample)
            with _RunDir(conn) as run_dir:
                out = f"{run_dir}/bench.json"
                args = ["bench", model.remote, "--runs", "100000", "--duration", str(setup.bench_s), "--warmup", "5",
                        "--input", inp.remote, "--json-out", out]
                if threads:
                    args += ["--threads", str(threads)]
                r = conn.run(edgekit(conn, *args), doing=f"timing trial file {Path(path).name}", timeout=self._timeout)
                if r.rc not in (0, 3) or not conn.exists(out):
                    err, hint = _error_lines(r.stderr)
                    msg = err or _last(r.stderr, r.rc)
                    raise EdgekitError(f"on device '{d.name}': {msg}", _missing_runtime_hint(msg, d.name) or hint)
                row = json.loads(conn.read_bytes(out))["results"][0]
            if "error" in row:
                raise EdgekitError(f"on device '{d.name}': {row['error']}",
                                   _missing_runtime_hint(row["error"], d.name) or "see `edgekit device check`")
            return {"latency_ms": row["latency_ms"]["p50"], "baseline_latency_ms": None, "ratio_to_baseline": None,
                    "timed_calls": row["runs"], "peak_memory_mb": row.get("peak_rss_mb"),
                    "size_mb": detect(path).size_bytes / 2**20, "batch": batch, "device": d.name}
        except DeviceError as e:
            raise EdgekitError(e.message, e.hint) from None
        finally:
            self._free.put(d)


_SAMPLES: dict = {}
_SAMPLES_LOCK = threading.Lock()


def _sample(setup, src, path, target: str, runtime: dict) -> Path:
    """The first evaluation sample keyed by the trial file's input names, as an .npz named by its content."""
    import hashlib
    import tempfile

    from edgekit.batching import align_inputs
    from edgekit.tuning.folds import take
    from edgekit.tuning.objective import open_model

    with setup.local_lock:
        with open_model(path, target, runtime) as m:
            feeds = align_inputs(m, take(setup.X, np.arange(1)), src.names)
    buf = io.BytesIO()
    np.savez(buf, **feeds)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:20]
    with _SAMPLES_LOCK:
        if "dir" not in _SAMPLES:
            _SAMPLES["dir"] = tempfile.TemporaryDirectory(prefix="edgekit-tune-device-")
        f = Path(_SAMPLES["dir"].name) / f"sample-{digest}.npz"
        if not f.exists():
            f.write_bytes(data)
    return f
