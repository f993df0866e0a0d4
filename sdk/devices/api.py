"""`bench` and `validate` on registered devices: one worker thread (and SSH connection) per device, results merged
into one report with the devices side by side (rows named ``model @ device``, each device's environment kept).

A device that fails (unreachable, connection lost, full disk, missing runtime, timeout) becomes error rows and a
fault naming the device; the other devices and what was measured before the fault are kept.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.errors import EdgekitError

from .registry import Device, DeviceError
from .ssh import Connection

Confirm = Callable[[str], bool]


def _each(devices: list[Device], work: Callable[[Device], object]) -> dict[str, object]:
    """Run ``work(device)`` in one thread per device; {name: result or the DeviceError raised}."""
    out: dict[str, object] = {}

    def one(d: Device) -> None:
        try:
            out[d.name] = work(d)
        except DeviceError as e:
            out[d.name] = e
        except EdgekitError as e:
            out[d.name] = DeviceError(f"device '{d.name}': {e.message}", e.hint)
        except Exception as e:  # a bug: raised again in the caller's thread, with its traceback
            out[d.name] = e

    if len(devices) == 1:
        one(devices[0])
    else:
        threads = [threading.Thread(target=one, args=(d,), name=f"device-{d.name}") for d in devices]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for got in out.values():
        if isinstance(got, Exception) and not isinstance(got, EdgekitError):
            raise got
    return out


def label(model: str, device: str) -> str:
    return f"{model} @ {device}"


def benchmark_on(devices: list[Device], models: list[Path], *, runs: int = 200, warmup: int = 20,
                 duration_s: float | None = None, threads: int | None = None, backend: str | None = None,
                 device_class: str | None = None, input_path: Path | None = None, timeout: float = 1800,
                 accept_new_host_key: bool = False, confirm: Confirm | None = None,
                 push_progress: Callable[[str, int, int], None] | None = None,
                 model_done: Callable[[str, dict], None] | None = None, extra_args: list[str] = ()):
    """Measure ``models`` on each device. Returns (BenchReport, faults): the report's rows are ``model @ device``
    with the device's name in ``row['device']``; ``environment['devices']`` holds each device's environment
    (CPU, governor, temperatures, packages, throttled). ``faults``: one DeviceError per device that stopped."""
    from edgekit.bench import BenchReport
    from edgekit.benchmarks.harness import settings

    from .remote import bench_on

    models = [Path(m) for m in models]

    def work(d: Device):
        with Connection(d, accept_new_host_key=accept_new_host_key, confirm=confirm) as conn:
            return bench_on(conn, models, runs=runs, warmup=warmup, duration_s=duration_s, threads=threads,
                            backend=backend, device_class=device_class, input_path=input_path, timeout=timeout,
                            push_progress=(lambda done, total: push_progress(d.name, done, total))
                            if push_progress else None,
                            model_done=(lambda row: model_done(d.name, row)) if model_done else None,
                            extra_args=list(extra_args))

    results = _each(devices, work)
    rows: list[dict] = []
    envs: dict[str, dict] = {}
    faults: list[DeviceError] = []
    for d in devices:
        got = results[d.name]
        if isinstance(got, DeviceError):
            faults.append(got)
            got = (None, [{"model": m.name, "path": str(m), "device": d.name, "error": f"not measured: {got.message}",
                           "hint": got.hint} for m in models], got)
        env, device_rows, fault = got
        if fault is not None and fault not in faults:
            faults.append(fault)
        if env is not None:
            envs[d.name] = dict(env, host=d.target, port=d.port)
        for r in device_rows:
            rows.append(dict(r, model=label(r["model"], d.name)))
    first = next(iter(envs.values()), {})
    env = dict(first, devices=envs, device=devices[0].name if len(devices) == 1 else None)
    env.setdefault("device_class", first.get("device_class") if len(envs) <= 1 else "several")
    if len({e.get("device_class") for e in envs.values()}) > 1:
        env["device_class"] = ", ".join(f"{n}: {e.get('device_class')}" for n, e in envs.items())
    s = settings(runs=runs, warmup=warmup, duration_s=duration_s, threads=threads, interleaved=False)
    s["devices"] = [d.name for d in devices]
    report = BenchReport(environment=env, settings=s, results=rows,
                         throttled=any(e.get("throttled") for e in envs.values()))
    return report, faults


class Replay:
    """A candidate whose outputs the device computed: serves them to `edgekit.validate` batch by batch, in the
    order validate streams the data (the same order they were computed in)."""

    def __init__(self, path: str, info: dict, outputs: dict[str, np.ndarray]):
        from edgekit.types import TensorSpec

        self.path = Path(path)
        self.inputs = [TensorSpec(i["name"], None, i["dtype"]) for i in info["inputs"]]  # shapes: see predict
        self.outputs = [TensorSpec(o["name"], None, o["dtype"]) for o in info["outputs"]]
        self.precision = info["precision"]
        self.backend = info["backend"]
        self._out = outputs
        self._at = 0

    def feeds(self, x) -> dict:
        return dict(x)

    def predict(self, feeds: dict) -> dict[str, np.ndarray]:
        n = len(next(iter(feeds.values())))
        got = {k: v[self._at:self._at + n] for k, v in self._out.items()}
        self._at += n
        return got

    def close(self) -> None:
        self._out = {}


def _all_samples(reference, data, labels, batch_size: int, preprocess, trust_code: bool, device_class) -> dict:
    """The data as arrays keyed by the reference's input names (the whole set: the device gets one file)."""
    from edgekit.datasets import open_dataset
    from edgekit.model import load

    with load(reference, trust_code=trust_code, device_class=device_class) as ref:
        names = [s.name for s in ref.inputs]
    ds = open_dataset(data, names, labels=labels, batch=batch_size, preprocess=preprocess)
    parts = list(ds.batches)
    if not parts:
        return {n: np.zeros((0,)) for n in names}
    return {n: np.concatenate([p[n] for p in parts]) for n in names}


def validate_on(devices: list[Device], reference, candidates: list, data, *, labels=None, task=None,
                device_class: str | None = None, atol=None, rtol=None, output_tolerances=None, batch_size: int = 64,
                preprocess=None, trust_code: bool = False, timeout: float = 1800, accept_new_host_key: bool = False,
                confirm: Confirm | None = None, progress=None):
    """The reference runs here, the candidates on each device (its own edgekit computes their outputs over the
    data); verdicts come from the same `edgekit.validate` with the device's class profile (or ``device_class``).
    Returns (ValidateReport with candidates named ``cand @ device``, faults)."""
    from edgekit.validation import ValidateReport, validate

    from .push import push
    from .remote import doctor, inspect_on, outputs_on

    feeds = _all_samples(reference, data, labels, batch_size, preprocess, trust_code, device_class)
    ref_names = list(feeds)

    def work(d: Device):
        loaded: dict[str, object] = {}
        with Connection(d, accept_new_host_key=accept_new_host_key, confirm=confirm) as conn:
            cls = device_class or doctor(conn).get("device_class")
            for c in candidates:
                key = label(str(c), d.name)
                try:
                    pushed = push(conn, Path(c))
                    info = inspect_on(conn, pushed.remote, trust_code)
                    names = [i["name"] for i in info["inputs"]]
                    if set(names) == set(ref_names):
                        cand_feeds = feeds
                    elif len(names) == len(ref_names):  # a converter renamed them: by position, as validate does
                        cand_feeds = {n: feeds[r] for n, r in zip(names, ref_names)}
                    else:
                        raise EdgekitError(f"the candidate takes {len(names)} inputs where the reference takes "
                                           f"{len(ref_names)}", "check the candidate with `edgekit inspect`")
                    loaded[key] = Replay(key, info, outputs_on(conn, pushed.remote, cand_feeds, timeout, trust_code))
                except DeviceError:
                    raise
                except EdgekitError as e:
                    loaded[key] = e
        return cls, loaded

    results = _each(devices, work)
    faults: list[DeviceError] = []
    failed: list[tuple[str, DeviceError]] = []
    merged = None
    for d in devices:
        got = results[d.name]
        if isinstance(got, DeviceError):
            faults.append(got)
            failed.append((d.name, got))
            continue
        cls, loaded = got

        def load_candidate(path, trust_code=False, device_class=None, _loaded=loaded):
            r = _loaded[str(path)]
            if isinstance(r, EdgekitError):
                raise r
            return r

        rep = validate(reference, list(loaded), data, labels=labels, task=task, device_class=cls, atol=atol,
                       rtol=rtol, output_tolerances=output_tolerances, batch_size=batch_size, preprocess=preprocess,
                       trust_code=trust_code, progress=progress, load_candidate=load_candidate)
        for c in rep["candidates"]:
            c["device"] = d.name
            c["device_class"] = cls
            r = loaded[c["model"]]
            if isinstance(r, Replay):
                c["backend"] = r.backend
        if merged is None:
            merged = rep
            merged["devices"] = {d.name: cls}
        else:
            merged["candidates"] += rep["candidates"]
            merged["devices"][d.name] = cls
    if merged is None:
        merged = ValidateReport({"reference": str(reference), "data": {"path": str(data), "samples": len(
            next(iter(feeds.values()), []))}, "task": task, "device_class": device_class, "warnings": [],
            "candidates": [], "devices": {}})
    for name, f in failed:  # a device that could not run: its candidates are error rows
        for c in candidates:
            merged["candidates"].append({"model": label(str(c), name), "verdict": "fail", "precision": None,
                                         "outputs": {}, "metrics": None, "agreement_top1": None,
                                         "localization": None, "reasons": [f.message], "error": f.message,
                                         "device": name})
    return merged, faults
