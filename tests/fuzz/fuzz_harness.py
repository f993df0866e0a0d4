"""Write the mutants of every seed to disk and run them through the CLI in child processes (fuzz_driver.py).

``write_mutants`` returns the jobs (backend, path) for every backend that reads each format; ``run_jobs`` runs
them in a few child processes at once and restarts a child after a crash with the jobs after the culprit.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fuzz_mutants import byte_flips, ir_structural, onnx_structural, tflite_structural, truncations

DRIVER = Path(__file__).with_name("fuzz_driver.py")
BACKENDS = {"tflite": ("litert", "openvino"), "onnx": ("onnxruntime", "openvino"), "ir": ("openvino",)}


def write_mutants(seeds: dict[str, Path], out: Path, counts: dict[str, int], seed: int = 0) -> list[tuple[str, str]]:
    """Mutants of each seed in ``out``; ``counts``: {"trunc", "flip", "struct"} per seed. Returns the jobs."""
    out.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, str]] = []
    for name, path in sorted(seeds.items()):
        rng = random.Random(f"{seed}-{name}")
        fmt = "tflite" if name.startswith("tflite") else name
        if fmt == "ir":
            xml, bin_data = path.read_bytes(), path.with_suffix(".bin").read_bytes()
            pairs = ([(x, bin_data) for x in truncations(xml, counts["trunc"], rng)]
                     + [(xml, b) for b in truncations(bin_data, counts["trunc"], rng)]
                     + [(x, bin_data) for x in byte_flips(xml, counts["flip"], rng)]
                     + ir_structural(xml, bin_data, counts["struct"], rng))
            files = []
            for i, (x, b) in enumerate(pairs):
                p = out / f"{name}_{i:04d}.xml"
                p.write_bytes(x)
                p.with_suffix(".bin").write_bytes(b)
                files.append(p)
        else:
            data = path.read_bytes()
            structural = tflite_structural if fmt == "tflite" else onnx_structural
            blobs = (truncations(data, counts["trunc"], rng) + byte_flips(data, counts["flip"], rng)
                     + structural(data, counts["struct"], rng))
            files = []
            for i, blob in enumerate(blobs):
                p = out / f"{name}_{i:04d}{path.suffix}"
                p.write_bytes(blob)
                files.append(p)
        jobs += [(backend, str(p)) for p in files for backend in BACKENDS[fmt]]
    return jobs


@dataclass
class Outcome:
    rcs: dict[int, tuple[int, int]] = field(default_factory=dict)  # job -> (inspect rc, run rc)
    ms: dict[int, float] = field(default_factory=dict)  # job -> milliseconds both commands took
    crashes: dict[int, int] = field(default_factory=dict)  # job -> the child's return code (negative: signal)
    problems: dict[int, list[dict]] = field(default_factory=dict)  # job -> leaked tracebacks / odd exit codes
    stderr: str = ""


def _run_chunk(jobs: list[tuple[str, str]], first: int, workdir: Path, timeout: float) -> Outcome:
    result = Outcome()
    todo = list(range(len(jobs)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONFAULTHANDLER="")
    while todo:
        listing = workdir / f"jobs_{first + todo[0]}.txt"
        listing.write_text("".join(f"{jobs[i][0]}\t{jobs[i][1]}\n" for i in todo))
        problems = listing.with_name(listing.name + ".problems")
        problems.unlink(missing_ok=True)
        proc = subprocess.run([sys.executable, str(DRIVER), str(listing)], capture_output=True, text=True,
                              env=env, timeout=timeout)
        result.stderr += proc.stderr
        for line in (problems.read_text().splitlines() if problems.exists() else ()):
            p = json.loads(line)
            result.problems.setdefault(first + todo[p["job"]], []).append(p)
        started = None
        for line in proc.stdout.splitlines():
            parts = line.split()
            if parts[:1] == ["start"]:
                started = todo[int(parts[1])]
            elif parts[:1] == ["done"]:
                result.rcs[first + todo[int(parts[1])]] = (int(parts[2]), int(parts[3]))
                result.ms[first + todo[int(parts[1])]] = float(parts[4])
                started = None
        if proc.returncode == 0 or started is None:
            if proc.returncode != 0:
                result.crashes[first + todo[0]] = proc.returncode  # died before its first job
            break
        result.crashes[first + started] = proc.returncode
        todo = todo[todo.index(started) + 1:]
    return result


def run_jobs(jobs: list[tuple[str, str]], workdir: Path, workers: int = 2, timeout: float = 600) -> Outcome:
    """Every job through the driver; the work is split into ``workers`` interleaved child processes."""
    workdir.mkdir(parents=True, exist_ok=True)
    # interleave so each child gets a share of every format (a TFLite probe costs more than a truncated ONNX)
    order = [i for w in range(workers) for i in range(w, len(jobs), workers)]
    chunks, start = [], 0
    for w in range(workers):
        size = len(range(w, len(jobs), workers))
        chunks.append((start, [jobs[i] for i in order[start:start + size]]))
        start += size
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda c: _run_chunk(c[1], c[0], workdir, timeout), chunks))
    total = Outcome()
    for part in parts:
        for k, v in part.rcs.items():
            total.rcs[order[k]] = v
        for k, v in part.ms.items():
            total.ms[order[k]] = v
        for k, v in part.problems.items():
            total.problems[order[k]] = v
        for k, v in part.crashes.items():
            total.crashes[order[k]] = v
        total.stderr += part.stderr
    return total
