"""The remote side: the device's own edgekit (``ROOT/venv``) run with JSON output. The workstation builds every
argument list itself; model files are only copied and named, never read for commands (docs/TRUST.md).

`check` reports the device; `doctor` is its ``edgekit doctor --json``; `bench_on` measures models one remote
process per model (what was measured stays when the connection drops); `outputs_on` runs candidates over data for
`edgekit validate --device`.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from pathlib import Path
from typing import Callable

from edgekit.errors import EdgekitError

from .registry import DeviceError
from .ssh import DeviceLost


def edgekit(conn, *args: str) -> list[str]:
    return [f"{conn.root}/venv/bin/python", "-m", "edgekit.cli.main", *args]


def _error_lines(text: str) -> tuple[str | None, str | None]:
    err = hint = None
    for line in text.splitlines():
        if line.startswith("error: "):
            err = line[7:].strip()
        elif line.startswith("hint: "):
            hint = line[6:].strip()
    return err, hint


def need_venv(conn) -> None:
    if not conn.exists(f"{conn.root}/venv/bin/python"):
        raise DeviceError(f"device '{conn.device.name}' has no edgekit environment yet ({conn.root}/venv)",
                          f"run `edgekit device setup {conn.device.name}` first")


def doctor(conn) -> dict:
    need_venv(conn)
    r = conn.run(edgekit(conn, "doctor", "--json"), doing="running edgekit doctor", timeout=120)
    if r.rc != 0:
        err, _ = _error_lines(r.stderr)
        raise DeviceError(f"device '{conn.device.name}': edgekit doctor failed ({err or _last(r.stderr, r.rc)})",
                          f"rebuild the environment with `edgekit device setup {conn.device.name} --recreate`")
    return json.loads(r.stdout)


def check(conn) -> dict:
    """OS, architecture, Python, the device's doctor report (or why there is none), device class, free disk."""
    from .setup import probe

    info = probe(conn)
    out = {"device": conn.device.name, "target": conn.device.target, "port": conn.device.port,
           "os": info["system"], "machine": info["machine"], "python": info["python"], "root": conn.root,
           "free_disk_bytes": conn.free_bytes(conn.root if conn.exists(conn.root) else "."),
           "doctor": None, "device_class": None, "runtimes": [], "problem": None, "hint": None}
    try:
        doc = doctor(conn)
    except DeviceError as e:
        out["problem"], out["hint"] = e.message, e.hint
        return out
    out["doctor"] = doc
    out["device_class"] = doc.get("device_class")
    out["runtimes"] = [n for n, b in (doc.get("backends") or {}).items() if b.get("available")]
    return out


def _last(text: str, rc: int) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit {rc}"


def _missing_runtime_hint(message: str, device: str) -> str | None:
    """A row error saying a runtime package is missing -> how to add it to the device's venv."""
    from edgekit.benchmarks.environment import PACKAGES

    if "is needed" not in message and "no installed backend" not in message and "not installed" not in message:
        return None
    for dist, (module, extra, _role) in PACKAGES.items():
        if f"'{dist}'" in message or f"'{module}'" in message:
            return f"edgekit device setup {device} --extras {extra} (adds the runtime to the device)"
    return f"edgekit device setup {device} --extras litert,onnx,openvino (the runtime is missing on the device)"


class _RunDir:
    """A fresh ``ROOT/runs/<id>`` for one command's outputs, removed afterwards."""

    def __init__(self, conn):
        self.conn = conn
        self.path = f"{conn.root}/runs/{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> str:
        self.conn.makedirs(self.path)
        return self.path

    def __exit__(self, *exc) -> None:
        if self.conn._conn is not None:
            try:
                self.conn.remove_tree(self.path)
            except DeviceError:
                pass


def bench_on(conn, models: list[Path], *, runs: int, warmup: int, duration_s: float | None = None,
             threads: int | None = None, backend: str | None = None, device_class: str | None = None,
             input_path: Path | None = None, timeout: float = 1800, push_progress=None,
             model_done: Callable[[dict], None] | None = None,
             extra_args: list[str] = ()) -> tuple[dict | None, list[dict], DeviceError | None]:
    """Measure ``models`` on the device: (the device's environment, one row per model, the fault that stopped the
    run or None). Rows of models not reached after a fault are error rows saying so."""
    from .push import push

    name = conn.device.name
    env: dict | None = None
    rows: list[dict] = []
    fault: DeviceError | None = None
    try:
        need_venv(conn)
        remote_input = push(conn, input_path, push_progress).remote if input_path is not None else None
        for model in models:
            try:
                pushed = push(conn, model, push_progress)
            except DeviceLost:
                raise
            except EdgekitError as e:
                rows.append(_error_row(model, name, e.message, e.hint))
                continue
            args = ["bench", pushed.remote, "--runs", str(runs), "--warmup", str(warmup), *extra_args]
            for flag, v in (("--duration", duration_s), ("--threads", threads), ("--backend", backend),
                            ("--device-class", device_class), ("--input", remote_input)):
                if v is not None:
                    args += [flag, str(v)]
            with _RunDir(conn) as run_dir:
                out = f"{run_dir}/bench.json"
                t0 = time.perf_counter()
                r = conn.run(edgekit(conn, *args, "--json-out", out), doing=f"measuring {model.name}", timeout=timeout)
                command_s = time.perf_counter() - t0  # the device's own bench, as seen from here
                if r.rc in (0, 3) and conn.exists(out):
                    data = json.loads(conn.read_bytes(out))
                    env = env or dict(data["environment"], throttled=data.get("throttled", False))
                    env["throttled"] = env.get("throttled", False) or data.get("throttled", False)
                    row = data["results"][0]
                    row.update(model=model.name, path=str(model), device=name, remote_path=pushed.remote,
                               pushed_bytes=pushed.copied, remote_command_s=command_s)
                    if "error" in row:
                        row["hint"] = _missing_runtime_hint(row["error"], name)
                    rows.append(row)
                else:
                    err, hint = _error_lines(r.stderr)
                    msg = err or _last(r.stderr, r.rc)
                    rows.append(_error_row(model, name, msg, _missing_runtime_hint(msg, name) or hint))
            if model_done is not None:
                model_done(rows[-1])
    except DeviceError as e:
        fault = e
    except KeyboardInterrupt:  # as a local bench does: Ctrl-C keeps what was measured
        fault = DeviceError(f"device '{name}': interrupted (Ctrl-C)", "the rows measured before are kept")
    for model in models[len(rows):]:
        rows.append(_error_row(model, name, f"not measured: {fault.message if fault else 'stopped'}",
                               fault.hint if fault else None))
    return env, rows, fault


def _error_row(model: Path, device: str, message: str, hint: str | None) -> dict:
    return {"model": model.name, "path": str(model), "device": device, "error": message, "hint": hint}


def _trust(trust_code: bool) -> list[str]:
    return ["--trust-code"] if trust_code else []


def inspect_on(conn, remote_model: str, trust_code: bool = False) -> dict:
    r = conn.run(edgekit(conn, "inspect", remote_model, "--json", *_trust(trust_code)),
                 doing="inspecting a candidate", timeout=300)
    if r.rc != 0:
        err, hint = _error_lines(r.stderr)
        msg = err or _last(r.stderr, r.rc)
        raise EdgekitError(f"on device '{conn.device.name}': {msg}",
                           _missing_runtime_hint(msg, conn.device.name) or hint or "see `edgekit device check`")
    return json.loads(r.stdout)


def outputs_on(conn, remote_model: str, feeds: dict, timeout: float = 1800, trust_code: bool = False) -> dict:
    """Run ``feeds`` (arrays keyed by the candidate's input names, first axis = samples) through the candidate on
    the device (`edgekit run --output`); the outputs as arrays."""
    import numpy as np

    from .push import push

    import hashlib

    with _RunDir(conn) as run_dir:
        buf = io.BytesIO()
        np.savez(buf, **feeds)
        data = buf.getvalue()
        local = Path(_local_tmp()) / f"inputs-{hashlib.sha256(data).hexdigest()[:20]}.npz"  # named by content
        local.write_bytes(data)
        pushed = push(conn, local)
        out = f"{run_dir}/outputs.npz"
        r = conn.run(edgekit(conn, "run", remote_model, "--input", pushed.remote, "--output", out,
                             *_trust(trust_code)),
                     doing=f"running {Path(remote_model).name}", timeout=timeout)
        if r.rc != 0:
            err, hint = _error_lines(r.stderr)
            msg = err or _last(r.stderr, r.rc)
            raise EdgekitError(f"on device '{conn.device.name}': {msg}",
                               _missing_runtime_hint(msg, conn.device.name) or hint or "see `edgekit device check`")
        with np.load(io.BytesIO(conn.read_bytes(out))) as z:
            return {k: z[k] for k in z.files}


_TMP: list = []


def _local_tmp() -> str:
    import tempfile

    if not _TMP:
        _TMP.append(tempfile.TemporaryDirectory(prefix="edgekit-device-"))
    return _TMP[0].name
