"""What the pre-load safety scan costs beside the runtime's own load, on the same files, in one run.

    .venv/bin/python tools/scan_cost.py MODEL.tflite MODEL.onnx ... [--runs 5]

Prints, per file, the median time of edgekit's pure-Python scan (TFLite flatbuffer check or ONNX wire scan) and
of a full `edgekit.load`, and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path


def _median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    import edgekit
    from edgekit.formats.onnx_scan import scan_onnx
    from edgekit.formats.tflite_fb import read_tflite

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    print(f"{'model':<32}{'size MB':>9}{'scan ms':>10}{'load ms':>10}{'scan/load':>11}")
    for path in args.models:
        fmt = edgekit.detect(path).format
        if fmt is edgekit.Format.TFLITE:
            scan = lambda: read_tflite(path.read_bytes())  # noqa: E731
        elif fmt is edgekit.Format.ONNX:
            scan = lambda: scan_onnx(path)  # noqa: E731
        else:
            print(f"{path.name:<32} (no pre-load scan for {fmt.value})")
            continue
        s = _median_ms(scan, args.runs)
        ld = _median_ms(lambda: edgekit.load(path).close(), args.runs)
        print(f"{path.name:<32}{path.stat().st_size / 1e6:>9.2f}{s:>10.2f}{ld:>10.1f}{s / ld:>11.3f}")


if __name__ == "__main__":
    main()
