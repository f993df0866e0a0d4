"""What a tune trial's conversion costs fresh and from the artifact cache, side by side, per target and precision.

    .venv/bin/python tools/tune_cache.py [--targets tflite,onnx,openvino] [--keep DIR]

A small Keras MLP is trained on scikit-learn's digits; one grid (fp32, fp16, int8-dynamic, int8 static per target)
runs twice in one output folder: the first study converts every configuration, the second finds each in the cache.
Printed: the fresh conversion, the cache hit, their ratio (the target is < 5 %), and each trial's total time (a hit
still evaluates and times the model). Figures only: no pass/fail, this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

SPACE = {"precision": ("fp32", "fp16", "int8-dynamic", "int8"), "onnxruntime.threads": (1,), "litert.threads": (1,),
         "openvino.threads": (1,), "onnxruntime.graph_optimization_level": ("all",),
         "openvino.performance_hint": ("LATENCY",), "openvino.inference_precision": ("f32",),
         "onnx.calibrate_method": ("minmax",), "onnx.activation_type": ("u8",), "onnx.quant_format": ("qdq",),
         "per_channel": (True,), "keep_float": (0,), "openvino.preset": ("performance",),
         "openvino.smooth_quant": (False,), "calibration_samples": (300,)}


def _model(root: Path) -> tuple[Path, Path, Path]:
    import keras
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    keras.utils.set_random_seed(0)
    i = keras.Input((64,), name="x")
    m = keras.Model(i, keras.layers.Dense(10, activation="softmax")(keras.layers.Dense(32, activation="relu")(i)))
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(X[:1000], y[:1000], epochs=10, verbose=0)
    m.save(root / "mlp.keras")
    np.savez(root / "test.npz", x=X[1400:], labels=y[1400:])
    np.savez(root / "cal.npz", x=X[1000:1400])
    return root / "mlp.keras", root / "test.npz", root / "cal.npz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="tflite,onnx,openvino")
    ap.add_argument("--keep", type=Path, default=None, help="work here and keep the files")
    a = ap.parse_args()
    root = a.keep or Path(tempfile.mkdtemp(prefix="edgekit-tune-cache-"))
    root.mkdir(parents=True, exist_ok=True)
    from edgekit.tuning import tune

    model, data, cal = _model(root)
    runs = [tune(model, data, targets=a.targets.split(","), space=SPACE, sampler="grid", calibration=cal,
                 output_dir=root / "out", study=f"cache-{i}", bench_s=0.3) for i in (1, 2)]
    fresh = {(t.params["target"], t.params["precision"]): t for t in runs[0].trials}
    print(f"{'target':9} {'precision':13} {'fresh conv s':>12} {'hit ms':>8} {'hit/fresh':>10} "
          f"{'trial fresh s':>13} {'trial hit s':>11}")
    ratios = []
    for t in sorted(runs[1].trials, key=lambda t: (t.params["target"], t.params["precision"])):
        f = fresh[(t.params["target"], t.params["precision"])]
        if f.state == "failed" or t.state == "failed":
            print(f"{t.params['target']:9} {t.params['precision']:13} failed: {f.reason or t.reason}")
            continue
        r = t.extra["convert_s"] / f.extra["convert_s"]
        ratios.append(r)
        print(f"{t.params['target']:9} {t.params['precision']:13} {f.extra['convert_s']:12.3f} "
              f"{t.extra['convert_s'] * 1000:8.2f} {100 * r:9.3f}% {f.extra['seconds']:13.2f} "
              f"{t.extra['seconds']:11.2f}{'' if t.extra['cache_hit'] else '  (MISS)'}")
    if ratios:
        print(f"hit / fresh conversion: max {100 * max(ratios):.3f} %, median {100 * float(np.median(ratios)):.3f} % "
              "(target < 5 %)")
    print(f"files: {root}")


if __name__ == "__main__":
    main()
