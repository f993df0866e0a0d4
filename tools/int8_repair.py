"""fp32 vs plain static int8 vs repaired int8 (``max_accuracy_drop``), per target, side by side.

The model is tests/model_factory.build_outlier_attention (a transformer block on the digits whose FFN activations
have outlier channels, built and trained here, nothing downloaded). For each target: top-1 agreement with the fp32
source and accuracy on the held-out split, median latency (the three files timed interleaved by the
edgekit.benchmarks harness, batch 1), file size, and the layers the repair kept float.

    .venv/bin/python tools/int8_repair.py [--width 384] [--targets onnx,openvino,tflite] [--budget 1.0] [--runs 300]

TFLite goes ONNX -> SavedModel (onnx2tf) -> TFLite; its repair re-quantizes through TensorFlow's quantization
debugger (denylisted_nodes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _predict(path: Path, tokens: np.ndarray) -> np.ndarray:
    import edgekit

    with edgekit.load(path) as m:
        return next(iter(m.predict({"tokens": tokens}).values()))


def _variants(files: dict, target: str, budget: float, out: Path) -> dict:
    """The three files for ``target``: fp32, plain int8 (placed unchecked: the gate would delete it), repaired."""
    from edgekit.conversion import convert

    common = dict(sample=files["data"], trust_code=False)
    fp32 = convert(files["onnx"], [target], output_dir=out / "fp32", **common)[target]
    plain = convert(files["onnx"], [target], precision="int8", calibration=files["calib"], verify=False,
                    output_dir=out / "plain", **common)[target]
    fixed = convert(files["onnx"], [target], precision="int8", calibration=files["calib"],
                    max_accuracy_drop=budget, output_dir=out / "repaired", **common)[target]
    if fixed.path is None:  # budget not met: the gate kept the file out; say why and time the best found anyway
        print(f"{target}: repaired int8 {fixed.status}: {fixed.error}")
    return {"fp32": fp32, "int8": plain, "repaired": fixed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=384, help="model width (d_model); the FFN is 4x")
    ap.add_argument("--targets", default="onnx,openvino,tflite")
    ap.add_argument("--budget", type=float, default=1.0, help="max top-1 drop in points")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--keep", type=Path, default=None, help="keep the models in this folder")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.model_factory import build_outlier_attention

    import edgekit
    from edgekit.machine import cpu_info

    out = args.keep or Path(tempfile.mkdtemp(prefix="int8-repair-"))
    files = build_outlier_attention(out / "src", width=args.width)
    with np.load(files["data"]) as z:
        tokens, labels = z["tokens"], z["labels"]
    ref = _predict(files["onnx"], tokens)
    cpu = cpu_info()
    print(f"CPU: {cpu.get('model') or cpu}  |  width {args.width}, {len(tokens)} held-out samples, budget "
          f"{args.budget:g} pts, fp32 accuracy {np.mean(ref.argmax(-1) == labels):.4f}")
    if np.mean(ref.argmax(-1) == labels) < 0.5:
        print("WARNING: the fp32 model did not learn the digits (accuracy < 0.5): agreement figures mean little")
    print(f"{'target':9} {'variant':9} {'agreement':>9} {'accuracy':>8} {'p50 ms':>8} {'vs fp32':>8} "
          f"{'size KiB':>9}  kept float")
    for target in args.targets.split(","):
        v = _variants(files, target, args.budget, out / target)
        paths = {k: r.path for k, r in v.items() if r.path is not None}
        bench = edgekit.benchmark(list(paths.values()), runs=args.runs, warmup=30)
        p50 = {k: row["latency_ms"]["p50"] for k, row in zip(paths, bench.results) if "latency_ms" in row}
        for k, r in v.items():
            if k not in paths:
                print(f"{target:9} {k:9} {'-':>9} {'-':>8} {'-':>8} {'-':>8} {'-':>9}  ({r.error})")
                continue
            y = _predict(paths[k], tokens)
            kept = (r.repair or {}).get("kept_float", [])
            speed = f"{p50['fp32'] / p50[k]:.2f}x" if k in p50 and "fp32" in p50 else "-"
            print(f"{target:9} {k:9} {np.mean(y.argmax(-1) == ref.argmax(-1)):9.4f} "
                  f"{np.mean(y.argmax(-1) == labels):8.4f} {p50.get(k, float('nan')):8.4f} {speed:>8} "
                  f"{r.size_bytes / 1024:9.1f}  {', '.join(kept) if k == 'repaired' else ''}")
        if "repaired" in p50 and p50["repaired"] >= p50["fp32"]:
            print(f"{target}: the repaired int8 is not faster than fp32 here (p50 {p50['repaired']:.4f} ms >= "
                  f"{p50['fp32']:.4f} ms): the float layers it keeps, and the Q/DQ around them, cost more than "
                  "its int8 layers save at this size")
    print(f"models in {out}")


if __name__ == "__main__":
    main()
