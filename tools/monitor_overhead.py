"""What `edgekit.monitor` adds to predict, and its memory over 100k calls, side by side in one run.

    .venv/bin/python tools/monitor_overhead.py [--rounds 30] [--calls 200] [--memory-calls 100000] [--keep DIR]

Models: a MobileNetV2-sized Keras model (random weights, 224x224x3, converted once to TFLite and ONNX with
`edgekit.convert`; kept in --keep DIR for the next run) and the bundled tiny digits CNN (8x8x1; TFLite and ONNX).
Each is monitored with a reference profile (drift tested every `window` samples, feedback remembered, so the
amortized window tests are in the figure). Bare and monitored predict run interleaved in `--rounds` rounds of
`--calls` calls each (batch 1, the runtime's default threads); the table shows the median per-call time of each,
the difference in microseconds and in percent (targets: <= 5 % on MobileNetV2, a few microseconds on the tiny model).

Memory: tracemalloc's current and peak traced bytes of a monitored tiny model after 1k, 10k, 25k, 50k and 100k calls
(traced from call 2000 on; labels fed back for half the calls, the sample log on with a 4 MB cap). The fixed-size
parts fill up first (the 10000 calls remembered for feedback: full at 20k calls; the last 100 window records: full at
100k samples), then the figure stays flat: bounded.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np


def mobilenet(out: Path) -> dict[str, Path]:
    files = {"tflite": out / "mobilenet_v2.tflite", "onnx": out / "mobilenet_v2.onnx"}
    if all(p.exists() for p in files.values()):
        return files
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from edgekit._quiet import captured
    from edgekit.conversion import convert

    with captured():
        import keras

        keras.utils.set_random_seed(0)
        keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classes=1000).save(
            out / "mobilenet_v2.keras")
    rep = convert(out / "mobilenet_v2.keras", "tflite,onnx", output_dir=out)
    missing = [f"{t.target} ({t.status})" for t in rep.targets if not files[t.target].exists()]
    if missing:
        raise SystemExit(f"MobileNetV2 conversion failed: {', '.join(missing)}")
    return files


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def profile_for(model, x: np.ndarray) -> dict:
    from edgekit.monitoring import ProfileBuilder

    b = ProfileBuilder()
    for i in range(0, len(x), 16):
        feeds = model.feeds(x[i:i + 16])
        b.observe(feeds, model.predict(feeds))
    return b.profile()


def overhead(path: Path, data: np.ndarray, rounds: int, calls: int) -> tuple[float, float]:
    import edgekit

    with edgekit.load(path) as m:
        prof = profile_for(m, data)
        mon = edgekit.monitor(m, prof, window=1000)
        n = len(data)
        for i in range(50):
            m.predict(data[i % n:i % n + 1])
        for i in range(1001):  # past the first window: scipy imported, every buffer allocated
            mon.predict(data[i % n:i % n + 1])
        bare, watched = [], []
        for r in range(rounds):
            for fn, acc in ((m.predict, bare), (mon.predict, watched)) if r % 2 else \
                    ((mon.predict, watched), (m.predict, bare)):
                t0 = time.perf_counter_ns()
                for i in range(calls):
                    j = (r * calls + i) % n
                    fn(data[j:j + 1])
                acc.append((time.perf_counter_ns() - t0) / calls / 1e3)
        assert mon.calls >= rounds * calls
        return statistics.median(bare), statistics.median(watched), min(bare), min(watched)


def memory(path: Path, data: np.ndarray, total: int) -> list[tuple[int, int, int]]:
    import edgekit

    marks = sorted({m for m in (1_000, 10_000, 25_000, 50_000, 100_000, 200_000, total) if m <= total})
    out = []
    with edgekit.load(path) as m, tempfile.TemporaryDirectory() as tmp:
        prof = profile_for(m, data)
        labels = np.load(Path(path).with_name("digits_test.npz"))["labels"]
        mon = edgekit.monitor(m, prof, window=1000, log_dir=tmp, sample_rate=50, sample_max_bytes=4 << 20)
        n = len(data)
        for i in range(2000):  # two windows first: lazy imports (scipy, scikit-learn) and buffers are done
            mon.predict(data[i % n:i % n + 1])
            if i % 2:
                mon.feedback(mon.last_call_id, labels[i % n])
        tracemalloc.start()
        for i in range(1, total + 1):
            mon.predict(data[i % n:i % n + 1])
            if i % 2:
                mon.feedback(mon.last_call_id, labels[i % n])
            if i in marks:
                cur, peak = tracemalloc.get_traced_memory()
                out.append((i, cur, peak))
        tracemalloc.stop()
        mon.close()
    return sorted(set(out))


def main() -> None:
    from edgekit.examples import DIGITS_DIR

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--calls", type=int, default=200, help="calls per round for the tiny model (MobileNetV2: /10)")
    ap.add_argument("--memory-calls", type=int, default=100_000)
    ap.add_argument("--keep", type=Path, default=None, help="folder for the MobileNetV2 files (reused next time)")
    args = ap.parse_args()
    logging.getLogger("edgekit.monitor").setLevel(logging.ERROR)  # the cost is measured here, not drift
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        mnv2 = mobilenet(out)
        rng = np.random.default_rng(0)
        images = rng.random((64, 224, 224, 3), dtype=np.float32)
        digits = np.load(DIGITS_DIR / "digits_test.npz")["image"]
        rows = []
        for name, path, data, calls in (
                ("MobileNetV2 TFLite", mnv2["tflite"], images, max(1, args.calls // 10)),
                ("MobileNetV2 ONNX", mnv2["onnx"], images, max(1, args.calls // 10)),
                ("digits CNN TFLite (tiny)", DIGITS_DIR / "digits_cnn.tflite", digits, args.calls),
                ("digits CNN ONNX (tiny)", DIGITS_DIR / "digits_cnn.onnx", digits, args.calls)):
            rows.append((name, *overhead(path, data, args.rounds, calls)))
        mem = memory(DIGITS_DIR / "digits_cnn.tflite", digits, args.memory_calls)
    print(f"edgekit.monitor overhead on {cpu_name()} ({os.cpu_count()} CPUs); batch 1, median of {args.rounds} "
          "interleaved rounds; window 1000 samples, profile loaded, feedback on")
    print(f"{'model':<28}{'bare us/call':>14}{'monitored':>12}{'added us':>10}{'added %':>9}"
          f"{'best bare':>11}{'best mon.':>11}{'added us':>10}")
    for name, b, w, bb, bw in rows:
        print(f"{name:<28}{b:>14.1f}{w:>12.1f}{w - b:>10.1f}{100 * (w - b) / b:>8.1f}%{bb:>11.1f}{bw:>11.1f}"
              f"{bw - bb:>10.1f}")
    print("(median of the rounds; 'best': the fastest round of each, less sensitive to a busy machine)")
    print("targets: <= 5 % on MobileNetV2; a few microseconds on the tiny model")
    print("\nmemory of a monitored tiny model (tracemalloc from call 2000 on; labels for half the calls, sample log "
          "on with a 4 MB cap; feedback remembers 10000 calls, the window history 100 windows)")
    print(f"{'calls':>8}{'current KB':>12}{'peak KB':>10}")
    for i, cur, peak in mem:
        print(f"{i:>8}{cur / 1024:>12.1f}{peak / 1024:>10.1f}")


if __name__ == "__main__":
    main()
