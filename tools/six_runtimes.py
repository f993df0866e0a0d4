"""MobileNetV2-sized CNN latency on every runtime edgekit targets, side by side, and edgekit/raw overhead.

One PyTorch MobileNetV2 (torchvision's architecture, rebuilt here; random weights, nothing downloaded; exported with
torch.export) is converted to TFLite (LiteRT, through ONNX and onnx2tf), ONNX (ONNX Runtime), OpenVINO IR, Core ML,
ExecuTorch (XNNPACK) and NCNN (pnnx), each checked against the source by convert's parity gate.
Then, per thread count, every converted file is timed in one run of the edgekit.benchmarks harness
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


# MobileNetV2's inverted residual stages (Sandler et al. 2018, torchvision's table): expansion t, channels c,
# repeats n, first stride s
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenet_v2(classes: int = 1000):
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, stride, groups=1, relu=True):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return layers + ([nn.ReLU6(inplace=True)] if relu else [])

    class Inverted(nn.Module):
        def __init__(self, cin, cout, stride, t):
            super().__init__()
            hidden = cin * t
            layers = (conv_bn(cin, hidden, 1, 1) if t != 1 else []) + conv_bn(hidden, hidden, 3, stride, hidden)
            self.body = nn.Sequential(*layers, *conv_bn(hidden, cout, 1, 1, relu=False))
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    layers, cin = conv_bn(3, 32, 3, 2), 32
    for t, c, n, s in STAGES:
        for i in range(n):
            layers.append(Inverted(cin, c, s if i == 0 else 1, t))
            cin = c
    layers += conv_bn(cin, 1280, 1, 1)

    class MobileNetV2(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Linear(1280, classes)

        def forward(self, image):
            return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(image), 1), 1))

    return MobileNetV2()


def build(path: Path, size: int) -> tuple[int, dict]:
    """Write the torch.export program; return (parameters, the sample it is checked on)."""
    import torch

    torch.manual_seed(0)
    model = mobilenet_v2().eval()
    for m in model.modules():  # random but non-trivial batch norm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    torch.export.save(torch.export.export(model, (torch.from_numpy(x),)), path)
    return sum(p.numel() for p in model.parameters()), {"image": x}


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
        src = out / "mobilenet_v2.pt2"
        params, sample = build(src, args.size)
        print(f"MobileNetV2 (PyTorch, {params / 1e6:.2f} M parameters, random weights, input 3x{args.size}x{args.size})")
        cpu = environment()["cpu"]
        print(f"CPU: {cpu.get('model', '?')}, {cpu.get('usable_cores')} usable cores, "
              f"ISA {', '.join(cpu.get('isa', []))}")
        rep = edgekit.convert(src, TARGETS, sample=sample, output_dir=out / "converted", trust_code=True)
        files, rows = {}, {}
        for t in rep.targets:  # the program is this script's own file: trusted
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
                rows[t][f"add_{n}"] = (r.get("overhead") or {}).get("added_us")
                rows[t]["backend"] = r.get("backend", "")
        _table(rows, threads)


def _table(rows: dict, threads: list[int]) -> None:
    head = (["target", "backend"] + [f"p50 ms @{n}t" for n in threads] + [f"edgekit/raw @{n}t" for n in threads]
            + [f"added us @{n}t" for n in threads])
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
        cells += [_fmt(r.get(f"add_{n}"), ".1f") for n in threads]
        print(" | ".join(f"{c:>16}" for c in cells))
    print("\nmedians of one bench run per thread count (each model in its own process); edgekit/raw = edgekit call "
          "p50 / bare runtime call p50, alternating in the same timed blocks; added us = their difference")


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


if __name__ == "__main__":
    sys.exit(main())
