"""Does TPE find the fastest feasible deployment without trying every configuration? Exhaustive grid vs TPE on the
same space, for two models, printed side by side in one run.

    .venv/bin/python tools/tune_search.py [--models mobilenet,digits] [--input-size 96] [--targets tflite,onnx,openvino]
        [--fraction 0.3] [--seeds 0,1,2] [--space KNOB=v1,v2 ...] [--max-accuracy-drop 2] [--eval-samples 64]
        [--work DIR] [--quick]

Models: `mobilenet`, a MobileNetV2-sized CNN built here (Keras, inverted residual blocks, ~2.4 M parameters, input
SIZExSIZEx3, random weights; its accuracy is agreement with the fp32 model's top-1 on seeded random images), and
`digits`, the bundled CNN trained on scikit-learn's digits (sdk/examples/digits, real labels). For each: the grid
over the whole declared space (>= 60 configurations asked), then TPE with at most FRACTION of the grid's trial count,
once per seed. Every run shares the model's output folder, so a configuration converted once is a cache hit after
(conversion is paid once; each trial still measures).

Printed per model and run: trials, wall time, the best feasible latency as that run measured it, and, to take
re-measurement noise out of the comparison, the grid's own measurement of the configuration TPE picked ("TPE's
pick, grid-timed"); the ratio TPE/grid on both. Then each run's pick is loaded once and re-timed side by side in
interleaved rounds (--retime-rounds), which is the comparison a shared, noisy machine can still make: a trial's
own timing is short (--bench-s) and one load spike can move it several-fold. Target: TPE within 3 % of the grid's best with <= 30 % of its trials.
--quick shrinks everything (smaller input, fewer evaluation samples, one seed) to check the tool itself.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = Path(__file__).resolve().parent.parent
# the default space (60 configurations over tflite,onnx,openvino): every precision, both thread counts, two ONNX
# Runtime graph levels, OpenVINO f32/bf16 inference where the CPU has bf16, and the ONNX static-int8 calibration
# method and format; the knobs whose search is slow by itself (keep_float ranks layers one at a time) stay fixed
DEFAULT_SPACE = ["precision=fp32,fp16,int8,int8-dynamic", "onnxruntime.graph_optimization_level=all,basic",
                 "onnx.calibrate_method=minmax,entropy,percentile", "onnx.quant_format=qdq,qoperator",
                 "onnx.activation_type=s8", "per_channel=true", "keep_float=0", "calibration_samples=100",
                 "openvino.performance_hint=LATENCY",
                 "openvino.preset=performance", "openvino.smooth_quant=false"]
# MobileNetV2's inverted residual stages: expansion t, output channels c, repeats n, first stride s
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenet_like(size: int, classes: int = 100, width: float = 1.0):
    """A MobileNetV2-shaped Keras CNN: stem, 17 inverted residual blocks (expand 1x1, depthwise 3x3, project 1x1,
    residual where shapes allow), 1x1 to 1280, pooling, logits."""
    import keras
    from keras import layers as L

    def ch(c):
        return max(8, int(c * width + 4) // 8 * 8)

    def block(x, t, c, s):
        cin = x.shape[-1]
        h = x
        if t != 1:
            h = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(cin * t, 1, use_bias=False)(h)))
        h = L.ReLU(6.0)(L.BatchNormalization()(L.DepthwiseConv2D(3, s, padding="same", use_bias=False)(h)))
        h = L.BatchNormalization()(L.Conv2D(c, 1, use_bias=False)(h))
        return L.Add()([x, h]) if s == 1 and cin == c else h

    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 3), name="image")
    x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(ch(32), 3, 2, padding="same", use_bias=False)(inp)))
    for t, c, n, s in STAGES:
        for i in range(n):
            x = block(x, t, ch(c), s if i == 0 else 1)
    x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(1280, 1, use_bias=False)(x)))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(classes, name="logits")(x), name="mobilenet_like")


def prepare_mobilenet(work: Path, size: int, samples: int) -> tuple[Path, Path, str]:
    """The model file and an evaluation .npz whose labels are the fp32 model's own top-1 (agreement)."""
    import numpy as np

    from edgekit._quiet import captured

    model_path, data_path = work / f"mobilenet_like_{size}.keras", work / f"mobilenet_like_{size}_eval.npz"
    with captured():
        model = mobilenet_like(size)
        x = np.random.default_rng(0).uniform(0.0, 1.0, (samples, size, size, 3)).astype(np.float32)
        labels = np.argmax(np.asarray(model.predict(x, batch_size=16, verbose=0)), axis=1).astype(np.int64)
        if not model_path.exists():
            model.save(model_path)
    np.savez(data_path, image=x, labels=labels)
    desc = f"MobileNetV2-like CNN, {model.count_params() / 1e6:.2f} M params, {size}x{size}x3, agreement with fp32"
    return model_path, data_path, desc


def prepare_digits(work: Path) -> tuple[Path, Path, str]:
    src = ROOT / "sdk" / "examples" / "digits"
    for name in ("digits_cnn.keras", "digits_test.npz"):
        if not (work / name).exists():
            shutil.copy(src / name, work / name)
    return work / "digits_cnn.keras", work / "digits_test.npz", "digits CNN (scikit-learn digits, real labels)"


def run(model, data, sampler, trials, seed, study, out, args) -> dict:
    import edgekit

    t0 = time.perf_counter()
    r = edgekit.tune(model, data, targets=tuple(args.targets.split(",")), sampler=sampler, trials=trials, seed=seed,
                     max_accuracy_drop=args.max_accuracy_drop, storage=f"sqlite:///{out}/bench.db", study=study,
                     output_dir=out, space=args.space_dict, bench_s=args.bench_s)
    wall = time.perf_counter() - t0
    return {"result": r, "wall": wall, "trials": len(r.trials), "best": r.best,
            "feasible": sum(t.feasible for t in r.trials)}


def _key(params: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def bench_model(name: str, model: Path, data: Path, desc: str, out: Path, args) -> list[str]:
    from edgekit.tuning.space import build_space

    space = build_space(tuple(args.targets.split(",")), args.space_dict)
    grid_n, tag = len(space.configs()), space.digest()  # a changed space is a new study (Optuna's grid needs it)
    budget = max(1, math.floor(args.fraction * grid_n))
    print(f"\n== {name}: {desc}; grid {grid_n} configurations, TPE {budget} trials "
          f"({budget / grid_n:.0%}) x {len(args.seeds)} seed(s)", flush=True)
    if grid_n < 60:
        print(f"   note: the space has {grid_n} < 60 configurations (widen --space or --targets)")
    grid = run(model, data, "grid", None, 0, f"{name}-grid-{tag}", out, args)
    by_config = {_key(t.params): t for t in grid["result"].trials}
    rows, picks = [_row("grid", grid, grid, None)], {"grid": grid["best"]}
    for s in args.seeds:
        tpe = run(model, data, "tpe", budget, s, f"{name}-tpe-s{s}-{tag}", out, args)
        grid_timed = by_config.get(_key(tpe["best"].params)) if tpe["best"] else None
        rows.append(_row(f"tpe seed {s}", tpe, grid, grid_timed))
        picks[f"tpe seed {s}"] = tpe["best"]
    lines = [f"{name:<10}{r}" for r in rows]
    if args.retime_rounds:
        lines.append(retime(name, picks, data, args.retime_rounds))
    return lines


def retime(name: str, picks: dict, data: Path, rounds: int, calls: int = 10) -> str:
    """Each run's best configuration timed again, side by side in one session: the models are loaded once with
    their runtime knobs and called in interleaved rounds (each model ``calls`` times per round), so a load spike
    on this machine hits all of them alike. Returns one line: the median ms per configuration and the ratio of
    each TPE pick to the grid's pick."""
    import numpy as np

    from edgekit.batching import align_inputs
    from edgekit.tuning.objective import open_model, split_params

    x = {k: v[:1] for k, v in np.load(data).items() if k != "labels"}
    configs = {}  # one model per distinct configuration, the runs that picked it
    for label, t in picks.items():
        if t is not None and t.artifact:
            configs.setdefault(_key(t.params), (t, []))[1].append(label)
    models, feeds, samples = {}, {}, {}
    for key, (t, _) in configs.items():
        target, _, rt, _ = split_params(t.params)
        models[key] = open_model(t.artifact, target, rt)
        feeds[key] = align_inputs(models[key], x, list(x))
        for _ in range(5):
            models[key].predict(feeds[key])
        samples[key] = []
    try:
        for _ in range(rounds):
            for key, m in models.items():
                for _ in range(calls):
                    t0 = time.perf_counter()
                    m.predict(feeds[key])
                    samples[key].append((time.perf_counter() - t0) * 1e3)
    finally:
        for m in models.values():
            m.close()
    med = {label: float(np.median(samples[key])) for key, (_, labels) in configs.items() for label in labels}
    g = med.get("grid")
    parts = [f"{label} {ms:.3f} ms" + (f" ({ms / g:.3f})" if g and label != "grid" else "")
             for label, ms in med.items()]
    return f"{name:<10}re-timed side by side ({rounds}x{calls} calls each, median): " + "; ".join(parts)


def _ms(v) -> str:
    return f"{v:.3f}" if v is not None else "-"


def _row(label, r, grid, grid_timed) -> str:
    b, gb = r["best"], grid["best"]
    lat = b.latency_ms if b else None
    ratio = f"{lat / gb.latency_ms:.3f}" if b and gb else "-"
    gt = grid_timed.latency_ms if grid_timed is not None and grid_timed.feasible else None
    gt_ratio = f"{gt / gb.latency_ms:.3f}" if gt is not None and gb else ("-" if label == "grid" else "n/a")
    pick = f"{b.target} {' '.join(f'{k}={v}' for k, v in sorted(b.params.items()) if k != 'target')}" if b else "none"
    return (f"{label:<13}{r['trials']:>7}{r['feasible']:>9}{r['wall']:>9.1f}{_ms(lat):>11}{ratio:>8}"
            f"{_ms(gt) if label != 'grid' else '-':>12}{gt_ratio:>8}  {pick}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mobilenet,digits")
    ap.add_argument("--input-size", type=int, default=96)
    ap.add_argument("--targets", default="tflite,onnx,openvino")
    ap.add_argument("--fraction", type=float, default=0.3, help="TPE trials as a fraction of the grid's")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--space", action="append", default=None, help="restrict a knob: NAME=v1,v2 (repeatable; "
                    "replaces the default space, see DEFAULT_SPACE)")
    ap.add_argument("--max-accuracy-drop", type=float, default=2.0)
    ap.add_argument("--eval-samples", type=int, default=64)
    ap.add_argument("--bench-s", type=float, default=0.3, help="seconds of interleaved timing per trial")
    ap.add_argument("--retime-rounds", type=int, default=20, help="rounds re-timing each run's pick side by side "
                    "(0: off)")
    ap.add_argument("--work", type=Path, default=None, help="keep models, cache and studies here (default: temp)")
    ap.add_argument("--quick", action="store_true", help="input 64, 32 samples, one seed: checks the tool itself")
    args = ap.parse_args(argv)
    if args.quick:
        args.input_size, args.eval_samples, args.seeds = 64, 32, "0"
    from edgekit.cli.tune import parse_space

    args.space_dict = parse_space(args.space if args.space is not None else DEFAULT_SPACE)
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    import tempfile

    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="edgekit-tune-search-")
    work = (args.work or Path(tmp.name)).resolve()
    work.mkdir(parents=True, exist_ok=True)
    lines = []
    t0 = time.perf_counter()
    try:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            model, data, desc = (prepare_mobilenet(work, args.input_size, args.eval_samples) if name == "mobilenet"
                                 else prepare_digits(work))
            lines += bench_model(name, model, data, desc, work / name, args)
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(f"\nCPU: {_cpu()}, {os.cpu_count()} cores; Python {platform.python_version()}; "
          f"budget {args.max_accuracy_drop} points; total {time.perf_counter() - t0:.0f} s")
    print(f"{'model':<10}{'run':<13}{'trials':>7}{'feasible':>9}{'wall s':>9}{'best ms':>11}{'ratio':>8}"
          f"{'grid-timed':>12}{'ratio':>8}  best configuration")
    for ln in lines:
        print(ln)
    return 0


def _cpu() -> str:
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
