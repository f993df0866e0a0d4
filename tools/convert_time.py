"""Wall time of converting a MobileNetV2-sized Keras model (random weights) to every target, in one run.

    .venv/bin/python tools/convert_time.py [--targets tflite,onnx,openvino,coreml] [--keep DIR]

Prints per-target seconds, status and size, and the total wall time of the whole `edgekit.convert` call
(parity checks included). Target: under 60 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def build(path: Path) -> int:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    keras.utils.set_random_seed(0)
    # logits, not softmax: random weights saturate a softmax to one-hot, which would make parity trivial
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classes=1000,
                                           classifier_activation=None)
    model.save(path)
    return model.count_params()


def main() -> None:
    from edgekit._quiet import captured
    from edgekit.conversion import convert

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--targets", default="tflite,onnx,openvino,coreml")
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        src = out / "mobilenet_v2.keras"
        with captured():
            params = build(src)
        t0 = time.perf_counter()
        rep = convert(src, args.targets, output_dir=out)
        wall = time.perf_counter() - t0
    print(f"MobileNetV2 (Keras, {params / 1e6:.2f} M parameters, random weights) -> {args.targets}")
    print(f"{'target':<10}{'status':<12}{'seconds':>9}{'size MB':>9}{'max abs':>10}")
    for t in rep.targets:
        mx = t.parity["max_abs"] if t.parity else None
        print(f"{t.target:<10}{t.status:<12}{t.seconds:>9.1f}{(t.size_bytes or 0) / 1e6:>9.2f}"
              f"{(f'{mx:.1e}' if mx is not None else '-'):>10}")
    print(f"total wall time (conversions + parity checks): {wall:.1f} s  (target: < 60 s)")


if __name__ == "__main__":
    main()
