"""Measure what `import edgekit` costs, beside its only heavy-ish dependency (numpy), in fresh interpreters.

    .venv/bin/python tools/import_cost.py [--runs 15]

Prints the median wall time of each import over fresh processes, side by side, and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

_CODE = "import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"


def measure(module: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _CODE.format(mod=module)], capture_output=True, text=True,
                             check=True)
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    numpy_s = measure("numpy", args.runs)
    edgekit_s = measure("edgekit", args.runs)
    cli_s = measure("edgekit.cli.main", args.runs)
    print(f"{'import':<20}{'median ms':>12}")
    for name, s in (("numpy", numpy_s), ("edgekit", edgekit_s), ("edgekit.cli.main", cli_s)):
        print(f"{name:<20}{s * 1000:>12.1f}")
    print(f"edgekit / numpy: {edgekit_s / numpy_s:.2f}x  (target: edgekit well under 200 ms)")


if __name__ == "__main__":
    main()
