"""`edgekit bench` beside the bare runtime loop and the vendor's own tool, side by side, in one run (issue 17).

Three generated Keras models of different sizes (untrained, seeded; nothing downloaded) are converted by edgekit to
TFLite, ONNX and OpenVINO IR, and each runtime is timed three ways, every one in its own process pinned to the
same CPUs (the ones `edgekit bench` pins its child to):

- raw: a bare loop over the runtime's own API written here without edgekit (LiteRT ``Interpreter.set_tensor /
  invoke / get_tensor``, ONNX Runtime ``InferenceSession.run``, OpenVINO ``InferRequest.infer()`` on inputs
  bound once, outputs copied), the same threads, f32 for OpenVINO, per-call ``time.perf_counter_ns``;
- edgekit: ``edgekit bench MODEL --threads T --overhead --duration S --json-out F`` (the CLI, its default method);
  its own overhead figure (raw call alternating with edgekit's call inside the same blocks) is shown too;
- vendor: ``litert-benchmark`` / ``benchmark_app`` through `edgekit.benchmarks.native` (ONNX Runtime ships no
  perf tool in its wheel: n/a).

The three run one after another, ``--reps`` times (many short repetitions: on a shared host a whole process
sometimes runs ~10 % slower, and one such process among six moves a median of per-repetition ratios little), in
a rotated order (drift hits each alike). Printed per model and runtime: raw p50 and edgekit p50 (samples pooled
over the repetitions; edgekit's with the bootstrap 95% CI of its median), vendor p50 (median of its runs) with
the clock it reports; edgekit/raw pooled with the bootstrap CI of the ratio of medians (within-run noise only),
and per repetition (raw and edgekit run back to back: their median ratio and range, which also shows the
between-run drift of a shared machine); edgekit/vendor per repetition on the wall clock and on the vendor's own
clock; edgekit's own overhead ratio; and whether the per-repetition ratios' medians are within +-3 %.

Clocks: litert-benchmark times ``run_by_name`` with ``time.perf_counter`` (wall clock, as edgekit and the raw
loop do). benchmark_app's median is ``InferRequest.latency``, OpenVINO's timer inside its Python binding, which
leaves out the binding's GIL release/re-acquire and output dict that every wall-clock call from Python pays
(~3 us on a 0.12 ms IR, ~50 us on 1.6-16 ms ones). So for OpenVINO the vendor comparison is made on that timer,
which `edgekit bench` and the raw loop both read on their own calls ("raw loop/vendor on its clock" shows that a
bare Python loop on the same timer agrees with benchmark_app); the wall-clock ratio is printed beside it.

    .venv/bin/python tools/bench_agreement.py [--threads 1] [--reps 6] [--seconds 1] [--models DIR] [--json-out F]

A second table checks the method: the three runtimes of each model in one `edgekit bench` command (interleaved
between blocks), each in its own child process (the default) against all in one process (``--in-process``),
beside the raw loop.

``--models DIR`` keeps the converted models there (reused by a later run). Takes about 10 minutes on 2 cores
(6 s with ``--sizes small --runtimes openvino --reps 1 --seconds 0.3 --no-method-check``, to check that it runs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNTIMES = (("tflite", "litert", ".tflite"), ("onnx", "onnxruntime", ".onnx"), ("openvino", "openvino", ".xml"))
SIZES = ("small", "medium", "large")


# ------------------------------------------------------------------------------------------------- models

def _keras_model(size: str):
    import keras

    keras.utils.set_random_seed(0)
    if size == "small":  # ~11 M multiply-adds: ~0.1 ms at one thread
        i = keras.Input((64, 64, 3), name="image")
        x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(i)
        x = keras.layers.Conv2D(64, 3, strides=2, activation="relu")(x)
        x = keras.layers.Conv2D(64, 3, activation="relu")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(i, keras.layers.Dense(10, activation="softmax", name="probs")(x), name="small")
    # MobileNetV2 1.0 at 128 px (~100 M multiply-adds, ~2 ms) and 1.4 at 320 px (~1.2 G, ~20 ms)
    shape, alpha = ((128, 128, 3), 1.0) if size == "medium" else ((320, 320, 3), 1.4)
    base = keras.applications.MobileNetV2(input_shape=shape, alpha=alpha, weights=None, classes=10,
                                          classifier_activation="softmax")
    i = keras.Input(shape, name="image")
    return keras.Model(i, base(i), name=size)


def build_models(out: Path) -> dict[str, dict[str, Path]]:
    """{size: {target: path}}, converted by edgekit (checked against Keras); reused when already there."""
    import edgekit

    models = {}
    for size in SIZES:
        d = out / size
        files = {t: d / f"{size}{ext}" for t, _, ext in RUNTIMES}
        if not all(f.exists() for f in files.values()):
            rep = edgekit.convert(_keras_model(size), [t for t, _, _ in RUNTIMES], output_dir=d)
            for t, _, _ in RUNTIMES:
                if rep[t].path is None:
                    raise SystemExit(f"{size} -> {t} failed: {rep[t].error}")
                files[t] = Path(rep[t].path)
        models[size] = files
    return models


# ------------------------------------------------------------------------------------------- the raw loop

def _raw_main(runtime: str, model: str, threads: int, seconds: float) -> None:
    """Runs in its own process: the bare runtime loop; prints {"samples_ns": [...], "runtime_clock_ms": [...] or
    null} as JSON (OpenVINO's own timer of each call, read after its wall-clock stamp)."""
    rng = np.random.default_rng(0)
    inner = None
    if runtime == "litert":
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=model, num_threads=threads)
        it.allocate_tensors()
        ins = [(d["index"], rng.random(d["shape"], dtype=np.float32)) for d in it.get_input_details()]
        outs = [d["index"] for d in it.get_output_details()]

        def call():
            for idx, x in ins:
                it.set_tensor(idx, x)
            it.invoke()
            return [it.get_tensor(i) for i in outs]
    elif runtime == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        feeds = {a.name: rng.random([d if isinstance(d, int) else 1 for d in a.shape], dtype=np.float32)
                 for a in sess.get_inputs()}

        def call():
            return sess.run(None, feeds)
    else:
        import openvino as ov

        compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                          "INFERENCE_PRECISION_HINT": "f32"})
        req = compiled.create_infer_request()
        for i, p in enumerate(compiled.inputs):  # bound once, as benchmark_app does
            x = rng.random([d.get_length() if d.is_static else 1 for d in p.get_partial_shape()], dtype=np.float32)
            req.set_input_tensor(i, ov.Tensor(x))
        n_out = len(compiled.outputs)

        def call():
            req.infer()
            return [req.get_output_tensor(j).data.copy() for j in range(n_out)]
        inner = lambda: req.latency  # noqa: E731  OpenVINO's own timer of the call (benchmark_app's figure)
    t_end = time.perf_counter() + 0.5
    n = 0
    while n < 20 or time.perf_counter() < t_end:  # warm-up, as edgekit's (20 calls) and a settle
        call()
        n += 1
    clock, out, lat = time.perf_counter_ns, [], []
    t_end = clock() + int(seconds * 1e9)
    while clock() < t_end:
        t0 = clock()
        call()
        out.append(clock() - t0)
        if inner is not None:
            lat.append(inner())
    print(json.dumps({"samples_ns": out, "runtime_clock_ms": lat or None}))


# ------------------------------------------------------------------------------------------------- runs

def _pinned(cpus):
    return (lambda: os.sched_setaffinity(0, set(cpus))) if cpus else None


def run_raw(runtime: str, model: Path, threads: int, seconds: float, cpus) -> tuple[np.ndarray, float | None]:
    """The raw loop's wall-clock samples (ns) and, for OpenVINO, the median of its own timer (ms)."""
    p = subprocess.run([sys.executable, __file__, "--raw", runtime, str(model), str(threads), str(seconds)],
                       capture_output=True, text=True, preexec_fn=_pinned(cpus), timeout=300)
    if p.returncode != 0:
        raise SystemExit(f"raw loop {runtime} {model.name} failed:\n{p.stderr[-3000:]}")
    got = json.loads(p.stdout.strip().splitlines()[-1])
    lat = got.get("runtime_clock_ms")
    return np.array(got["samples_ns"], np.int64), (float(np.median(lat)) if lat else None)


def run_edgekit(model: Path, threads: int, seconds: float, tmp: Path) -> dict:
    out = tmp / f"{model.stem}-{model.suffix[1:]}.json"
    cmd = [sys.executable, "-m", "edgekit.cli.main", "bench", str(model), "--threads", str(threads), "--overhead",
           "--runs", "100000000", "--duration", str(seconds), "--json-out", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise SystemExit(f"edgekit bench {model.name} failed ({p.returncode}):\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    data = json.loads(out.read_text())
    out.unlink()
    return data["results"][0] | {"settings": data["settings"]}


def run_together(models: list[Path], threads: int, seconds: float, tmp: Path, isolate: bool) -> list[float]:
    """The p50s of one `edgekit bench` over several models at once (interleaved between blocks), isolated
    or ``--in-process``."""
    out = tmp / "together.json"
    cmd = [sys.executable, "-m", "edgekit.cli.main", "bench", *map(str, models), "--threads", str(threads),
           "--runs", "100000000", "--duration", str(seconds), "--json-out", str(out)]
    p = subprocess.run(cmd + ([] if isolate else ["--in-process"]), capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise SystemExit(f"edgekit bench (together) failed ({p.returncode}):\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    rows = json.loads(out.read_text())["results"]
    return [r["latency_ms"]["p50"] for r in rows]


def run_vendor(backend: str, model: Path, threads: int, seconds: float, p50_ms: float, shapes, cpus):
    from edgekit.benchmarks.native import run_native

    if backend == "onnxruntime":
        return None
    runs = max(100, int(seconds * 1e3 / max(p50_ms, 1e-3)))
    r = run_native(model, backend, threads, input_shapes=shapes, runs=runs, warmup=20,
                   duration_s=seconds if backend == "openvino" else None, cpus=cpus)
    if r.error:
        raise SystemExit(f"{r.tool} on {model.name} failed: {r.error}\n{' '.join(r.command)}")
    return r.p50_ms, ("wall clock" if (r.clock or "").startswith("wall clock") else r.clock)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=6, help="repetitions: many short ones, so a process that runs "
                    "in a slow mode (seen on a shared host: ~10 %% for a whole process) is one of several")
    ap.add_argument("--seconds", type=float, default=1.0, help="timing seconds per run")
    ap.add_argument("--models", type=Path, default=None, help="keep (and reuse) the converted models here")
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--runtimes", default="litert,onnxruntime,openvino")
    ap.add_argument("--json-out", type=Path, default=None, help="also write every figure here, as JSON")
    ap.add_argument("--no-method-check", action="store_true",
                    help="skip the second table (all runtimes in one command: isolated vs --in-process)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from edgekit.benchmarks.stats import median_ci, ratio_ci
    from edgekit.benchmarks.worker import pin_cpus
    from edgekit.machine import cpu_info

    cpus = pin_cpus(args.threads)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        models = build_models(args.models or tmp / "models")
        print(f"models ready in {time.perf_counter() - t0:.0f} s; CPU {cpu_info().get('model', '?')}, "
              f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; threads {args.threads}, pinned to CPUs {cpus}; "
              f"{args.reps} reps x {args.seconds:g} s", flush=True)
        rows = []
        for size in args.sizes.split(","):
            for target, backend, _ in RUNTIMES:
                if backend not in args.runtimes.split(","):
                    continue
                model = models[size][target]
                raw, ed, vendor, own, ratios_v, ratios_r, ratios_c, raw_c = [], [], [], [], [], [], [], []
                shapes, est, clock = None, None, "wall clock"
                for rep in range(args.reps):
                    order = ["raw", "edgekit", "vendor"]
                    order = order[rep % 3:] + order[:rep % 3]  # rotated: each goes first once in three reps
                    got = {}
                    for kind in order:
                        if kind == "raw":
                            got["raw"], got["raw_clock"] = run_raw(backend, model, args.threads, args.seconds, cpus)
                            est = est or float(np.median(got["raw"])) / 1e6
                        elif kind == "edgekit":
                            got["edgekit"] = run_edgekit(model, args.threads, args.seconds, tmp)
                            shapes = got["edgekit"]["input_shapes"]
                            est = est or got["edgekit"]["latency_ms"]["p50"]
                        else:  # vendor: its run count from the first p50 seen (litert-benchmark has no time limit)
                            got["vendor"] = run_vendor(backend, model, args.threads, args.seconds, est or 1.0,
                                                       shapes, cpus)
                    raw.append(got["raw"])
                    e = got["edgekit"]
                    ed.append(np.round(np.array(e["samples_ms"]) * 1e6).astype(np.int64))
                    own.append((e.get("overhead") or {}).get("ratio"))
                    ratios_r.append(e["latency_ms"]["p50"] / (float(np.median(got["raw"])) / 1e6))
                    if got["vendor"]:
                        v_p50, clock = got["vendor"]
                        vendor.append(v_p50)
                        ratios_v.append(e["latency_ms"]["p50"] / v_p50)
                        # on the vendor's own clock: OpenVINO's timer read by edgekit on the same calls (and by
                        # the raw loop); a wall-clock tool is compared on the wall clock
                        same = (e.get("runtime_clock") or {}).get("p50_ms") if clock != "wall clock" else None
                        ratios_c.append((same if same else e["latency_ms"]["p50"]) / v_p50)
                        if got["raw_clock"] is not None and clock != "wall clock":
                            raw_c.append(got["raw_clock"] / v_p50)
                a, b = np.concatenate(raw), np.concatenate(ed)
                p_raw, p_ed = float(np.median(a)) / 1e6, float(np.median(b)) / 1e6
                row = {"model": size, "runtime": backend, "raw_p50_ms": p_raw, "edgekit_p50_ms": p_ed,
                       "edgekit_ci_ms": median_ci(b), "pooled_edgekit_over_raw": p_ed / p_raw,
                       "pooled_edgekit_over_raw_ci": ratio_ci(a, b),
                       "edgekit_over_raw": float(np.median(ratios_r)),
                       "edgekit_over_raw_range": [min(ratios_r), max(ratios_r)],
                       "vendor_p50_ms": float(np.median(vendor)) if vendor else None, "vendor_clock": clock,
                       "edgekit_over_vendor": float(np.median(ratios_v)) if ratios_v else None,
                       "edgekit_over_vendor_range": [min(ratios_v), max(ratios_v)] if ratios_v else None,
                       "edgekit_over_vendor_same_clock": float(np.median(ratios_c)) if ratios_c else None,
                       "edgekit_over_vendor_same_clock_range": [min(ratios_c), max(ratios_c)] if ratios_c else None,
                       "raw_over_vendor_same_clock": float(np.median(raw_c)) if raw_c else None,
                       "own_overhead_ratio": float(np.median([o for o in own if o])) if any(own) else None,
                       "raw_runs": len(a), "edgekit_runs": len(b), "reps": args.reps}
                rows.append(row)
                print(_line(row), flush=True)
        print()
        print(_table(rows))
        method = [] if args.no_method_check else method_check(models, args, tmp, rows)
        if method:
            print()
            print(_method_table(method))
        if args.json_out:
            args.json_out.write_text(json.dumps({"agreement": rows, "method_check": method}, indent=2))


def method_check(models: dict, args, tmp: Path, rows: list[dict]) -> list[dict]:
    """All runtimes of a model in one `edgekit bench` command, each in its own child (the default) against all
    in one process (``--in-process``), reps alternating which goes first: the p50s beside the raw loop's."""
    backends = [b for _, b, _ in RUNTIMES if b in args.runtimes.split(",")]
    out = []
    for size in args.sizes.split(","):
        files = [models[size][t] for t, b, _ in RUNTIMES if b in backends]
        iso, inp = [], []
        for rep in range(args.reps):
            for isolate in ((True, False) if rep % 2 == 0 else (False, True)):
                (iso if isolate else inp).append(run_together(files, args.threads, args.seconds, tmp, isolate))
        for j, b in enumerate(backends):
            raw = next(r["raw_p50_ms"] for r in rows if r["model"] == size and r["runtime"] == b)
            pi, pp = float(np.median([x[j] for x in iso])), float(np.median([x[j] for x in inp]))
            out.append({"model": size, "runtime": b, "raw_p50_ms": raw, "isolated_p50_ms": pi,
                        "in_process_p50_ms": pp, "isolated_over_raw": pi / raw, "in_process_over_raw": pp / raw})
            print(f"  method check {size:<6} {b:<11} isolated {pi:.4f} ms, in-process {pp:.4f} ms", flush=True)
    return out


def _method_table(rows: list[dict]) -> str:
    head = ("model", "runtime", "raw p50 ms", "together, isolated p50 ms", "together, in-process p50 ms",
            "isolated/raw", "in-process/raw")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['runtime']} | {r['raw_p50_ms']:.4f} | {r['isolated_p50_ms']:.4f} | "
                     f"{r['in_process_p50_ms']:.4f} | {r['isolated_over_raw']:.3f} | {r['in_process_over_raw']:.3f} |")
    return "\n".join(lines)


def _line(r: dict) -> str:
    return (f"  {r['model']:<6} {r['runtime']:<11} raw {r['raw_p50_ms']:.4f} ms, edgekit {r['edgekit_p50_ms']:.4f} ms, "
            f"vendor {r['vendor_p50_ms'] if r['vendor_p50_ms'] is None else round(r['vendor_p50_ms'], 4)} ms")


def _table(rows: list[dict]) -> str:
    head = ("model", "runtime", "raw p50 ms", "edgekit p50 ms [95% CI]", "vendor p50 ms (its clock)",
            "edgekit/raw pooled [95% CI]", "edgekit/raw per rep (range)", "edgekit/vendor, wall clock",
            "edgekit/vendor on the vendor's clock", "raw loop/vendor on its clock", "own overhead", "within 3%")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lo, hi = r["edgekit_ci_ms"]
        rl, rh = r["pooled_edgekit_over_raw_ci"]
        v = r["vendor_p50_ms"]
        ok_raw = abs(r["edgekit_over_raw"] - 1) <= 0.03
        ok_v = None if v is None else abs(r["edgekit_over_vendor_same_clock"] - 1) <= 0.03
        clock = "" if v is None else " (OpenVINO's timer)" if r["vendor_clock"] != "wall clock" else " (wall)"
        cells = [r["model"], r["runtime"], f"{r['raw_p50_ms']:.4f}", f"{r['edgekit_p50_ms']:.4f} [{lo:.4f}, {hi:.4f}]",
                 "n/a (no tool)" if v is None else f"{v:.4f}{clock}",
                 f"{r['pooled_edgekit_over_raw']:.3f} [{rl:.3f}, {rh:.3f}]", _ratio(r["edgekit_over_raw"],
                                                                                 r["edgekit_over_raw_range"]),
                 "n/a" if v is None else _ratio(r["edgekit_over_vendor"], r["edgekit_over_vendor_range"]),
                 "n/a" if v is None else _ratio(r["edgekit_over_vendor_same_clock"],
                                                r["edgekit_over_vendor_same_clock_range"]),
                 "same as wall" if v is not None and r["raw_over_vendor_same_clock"] is None else
                 "n/a" if v is None else f"{r['raw_over_vendor_same_clock']:.3f}",
                 "n/a" if r["own_overhead_ratio"] is None else f"{r['own_overhead_ratio']:.3f}",
                 ("raw yes" if ok_raw else "raw NO") + ("" if ok_v is None else ", vendor yes" if ok_v else ", vendor NO")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratio(median: float, rng: list[float]) -> str:
    return f"{median:.3f} ({rng[0]:.3f}-{rng[1]:.3f})"


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--raw":
        _raw_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    else:
        main()
