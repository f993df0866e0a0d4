"""`edgekit bench --device` against the same bench run directly on the device, side by side.

For each model: the p50 latency the device's own edgekit measures when started directly on the device, and the
p50 of `edgekit bench MODEL --device NAME` from the workstation (both the device runtime's numbers; the goal is
agreement within 3 %), alternated over ``--rounds``; then the wall time of a first remote run (files pushed) and
of a second one (cached: nothing copied) beyond the device's own bench command (connecting, hashing, the cache
check, copying, reading the results back): the set-up cost of a second run (goal: under 2 s).

    .venv/bin/python tools/remote_overhead.py [--rounds 5] [--runs 300]          # a throwaway "device" here
    .venv/bin/python tools/remote_overhead.py --device pi5 [--rounds 5]          # a registered device

Without ``--device``, the "device" is a runtime-only venv (`edgekit device setup --offline`) behind a private
OpenSSH server on 127.0.0.1 (tests/services_sshd.py), both in a temporary folder, and the direct run is that
venv's edgekit started as a plain local process. With ``--device``, the direct run is the device's edgekit started
over SSH on the file already in its cache. The models: the bundled digits CNN (tens of microseconds) and a
generated 4-layer 1024-wide MLP in ONNX (about a millisecond).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _mlp(path: Path, width: int = 1024, layers: int = 4) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}"]))
        nodes.append(helper.make_node("Relu", [f"h{i}"], [f"r{i}"]))
        prev = f"r{i}"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _throwaway_device(tmp: Path):
    """Register a device `overhead` behind a private sshd and set it up offline; returns (sshd, device root)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from services_sshd import start_sshd

    from edgekit.devices.registry import Device, add
    from edgekit.devices.setup import setup
    from edgekit.devices.ssh import Connection

    s = start_sshd()
    root = str(tmp / "device-root")
    python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    d = Device("overhead", "127.0.0.1", s.user, s.port, python, str(s.user_key), root, str(tmp / "known_hosts"))
    add(d, replace=True)
    t = time.perf_counter()
    with Connection(d, accept_new_host_key=True) as conn:
        setup(conn, ["onnx"], offline=True)
    print(f"device set up in {time.perf_counter() - t:.1f} s (runtime-only venv, onnx)", file=sys.stderr)
    return s, root


def _direct(device, root: str, remote_model: str, runs: int, warmup: int, local: bool) -> tuple[float, float]:
    """(p50 ms, wall s) of the device's edgekit run directly on the device."""
    out = f"{root}/direct-{os.getpid()}-{time.time_ns()}.json"
    args = [f"{root}/venv/bin/python", "-m", "edgekit.cli.main", "bench", remote_model, "--runs", str(runs),
            "--warmup", str(warmup), "--json-out", out]
    t = time.perf_counter()
    if local:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        subprocess.run(args, check=True, capture_output=True, env=env, cwd="/")
        wall = time.perf_counter() - t
        data = json.loads(Path(out).read_text())
        Path(out).unlink()
    else:
        from edgekit.devices.ssh import Connection

        with Connection(device) as conn:
            t = time.perf_counter()
            r = conn.run(args)
            wall = time.perf_counter() - t
            assert r.rc == 0, r.stderr
            data = json.loads(conn.read_bytes(out))
            conn.run(["rm", "-f", out])
    return data["results"][0]["latency_ms"]["p50"], wall


def _remote(device, model: Path, runs: int, warmup: int) -> tuple[float, float, int, str]:
    """(p50 ms, set-up s, bytes pushed, the file's path on the device) of `edgekit bench MODEL --device NAME` from
    here; set-up: its wall time beyond the device's own bench command (connect, hash, cache check, copy, results)."""
    from edgekit.devices.api import benchmark_on

    t = time.perf_counter()
    rep, faults = benchmark_on([device], [model], runs=runs, warmup=warmup)
    wall = time.perf_counter() - t
    if faults:
        raise SystemExit(f"error: {faults[0].message}\nhint: {faults[0].hint}")
    row = rep.results[0]
    if "error" in row:
        raise SystemExit(f"error: {row['error']}")
    return row["latency_ms"]["p50"], wall - row["remote_command_s"], row["pushed_bytes"], row["remote_path"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", help="a registered device (default: a throwaway one on 127.0.0.1)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="edgekit-overhead-") as tmp_s:
        tmp = Path(tmp_s)
        sshd = None
        if a.device is None:  # the throwaway device's registry and caches stay in the temporary folder
            os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")
            os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
            sshd, root = _throwaway_device(tmp)
            name = "overhead"
        else:
            name = a.device
        from edgekit.devices.registry import get
        from edgekit.devices.ssh import Connection

        device = get(name)
        if a.device is not None:
            with Connection(device) as conn:
                root = conn.root
        models = [ROOT / "sdk" / "examples" / "digits" / "digits_cnn.onnx", _mlp(tmp / "mlp1024x4.onnx")]
        try:
            rows = []
            for m in models:
                # a fresh copy under a new name: its first remote run pushes it (the cold cost)
                cold_copy = tmp / f"cold-{m.name}"
                cold_copy.write_bytes(m.read_bytes())
                p_cold, setup_cold, pushed_cold, _ = _remote(device, cold_copy, a.runs, a.warmup)
                direct, remote, setup_costs, pushed = [], [], [], []
                for _ in range(a.rounds):  # alternated, so drift hits both columns alike
                    p_r, setup_r, pushed_r, remote_path = _remote(device, m, a.runs, a.warmup)
                    p_d, _ = _direct(device, root, remote_path, a.runs, a.warmup, local=a.device is None)
                    direct.append(p_d)
                    remote.append(p_r)
                    pushed.append(pushed_r)
                    setup_costs.append(setup_r)
                pd, pr = statistics.median(direct), statistics.median(remote)
                rows.append((m.name, pd, pr, 100.0 * (pr - pd) / pd, setup_cold, pushed_cold,
                             statistics.median(setup_costs[1:] or setup_costs), max(pushed[1:] or pushed)))
        finally:
            if sshd is not None:
                sshd.stop()
    from edgekit.machine import cpu_info

    print(f"CPU: {cpu_info().get('model')} ({platform.machine()}); device: {name}; {a.rounds} rounds of {a.runs} "
          f"runs, medians")
    head = ("model", "direct p50 ms", "--device p50 ms", "diff %", "1st set-up s", "1st pushed B",
            "2nd+ set-up s", "2nd+ pushed B")
    print("  ".join(f"{h:>16}" for h in head))
    for r in rows:
        print("  ".join(f"{v:>16}" if isinstance(v, str) else f"{v:>16.4g}" if isinstance(v, float) else f"{v:>16}"
                        for v in r))
    print("goals: |diff %| <= 3; 2nd+ set-up s < 2; 2nd+ pushed B == 0")


if __name__ == "__main__":
    main()
