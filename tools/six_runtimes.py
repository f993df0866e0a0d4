"""MobileNetV2-sized CNN latency on every runtime edgekit targets, side by side, and edgekit/raw overhead.

One Keras MobileNetV2 (random weights, nothing downloaded) is converted to TFLite (LiteRT), ONNX (ONNX Runtime),
OpenVINO IR, Core ML, ExecuTorch (XNNPACK) and NCNN, each checked against the source by convert's parity gate.
Then, per thread count, every converted file is timed in one interleaved run of the edgekit.benchmarks harness
(``edgekit.benchmark(..., overhead=True)``): median latency (batch 1) and the ratio of edgekit's call to the bare
runtime call on the same inputs (the goal for the ExecuTorch and NCNN runners: <= 1.03). Core ML predicts only on
macOS; elsewhere its row says so.

    .venv/bin/python tools/six_runtimes.py [--size 224] [--runs 300] [--warmup 30] [--threads 1,2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

TARGETS = ("tflite", "onnx", "openvino", "coreml", "executorch", "ncnn")
NEW = ("executorch", "ncnn")  # the runners whose overhead the goal is about


def build(path: Path, size: int) -> int:
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3), classes=1000)
    model.save(path)
    return model.count_params()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=224, help="input height and width (224: MobileNetV2's own)")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--keep", type=Path, help="write the models here instead of a temporary folder")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",") if t.strip()]

    import edgekit
    from edgekit.benchmarks.environment import environment

    with tempfile.TemporaryDirectory(prefix="edgekit-six-") as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        src = out / "mobilenet_v2.keras"
        params = build(src, args.size)
        sample = {"input_layer": np.random.default_rng(0).random((1, args.size, args.size, 3), dtype=np.float32)}
        print(f"MobileNetV2 (Keras, {params / 1e6:.2f} M parameters, random weights, input {args.size}x{args.size}x3)")
        cpu = environment()["cpu"]
        print(f"CPU: {cpu.get('model', '?')}, {cpu.get('usable_cores')} usable cores, "
              f"ISA {', '.join(cpu.get('isa', []))}")
        rep = edgekit.convert(src, TARGETS, sample=_sample_for(src, sample), output_dir=out / "converted")
        files, rows = {}, {}
        for t in rep.targets:
            rows[t.target] = {"status": t.status, "route": " -> ".join(t.route), "error": t.error}
            if t.path is not None and t.status == "pass":
                files[t.target] = t.path
        if platform.system() != "Darwin" and "coreml" in rows:
            rows["coreml"]["error"] = "Core ML predicts only on macOS: not timed here"
        for n in threads:
            res = edgekit.benchmark([files[t] for t in TARGETS if t in files], runs=args.runs, warmup=args.warmup,
                                    threads=n, overhead=True)
            for t, r in zip([t for t in TARGETS if t in files], res.results):
                if "error" in r:
                    rows[t]["error"] = r["error"]
                    continue
                rows[t][f"p50_{n}"] = r["latency_ms"]["p50"]
                rows[t][f"ovh_{n}"] = (r.get("overhead") or {}).get("ratio")
                rows[t]["backend"] = r.get("backend", "")
        _table(rows, threads)


def _sample_for(src: Path, sample: dict) -> dict:
    """The sample keyed by the Keras model's own input name."""
    import edgekit

    with edgekit.load(src) as m:
        return {m.inputs[0].name: next(iter(sample.values()))}


def _table(rows: dict, threads: list[int]) -> None:
    head = ["target", "backend"] + [f"p50 ms @{n}t" for n in threads] + [f"edgekit/raw @{n}t" for n in threads]
    print()
    print(" | ".join(f"{h:>16}" for h in head))
    for t in TARGETS:
        r = rows.get(t)
        if r is None:
            continue
        if r.get("error") and not any(f"p50_{n}" in r for n in threads):
            print(f"{t:>16} | {r['error']}")
            continue
        cells = [t, r.get("backend", "")] + [_fmt(r.get(f"p50_{n}"), ".3f") for n in threads]
        cells += [_fmt(r.get(f"ovh_{n}"), ".3f") + (" (goal <= 1.03)" if t in NEW else "") for n in threads]
        print(" | ".join(f"{c:>16}" for c in cells))
    print("\nmedians of one interleaved run per thread count; overhead = edgekit call p50 / bare runtime call p50")


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


if __name__ == "__main__":
    sys.exit(main())
