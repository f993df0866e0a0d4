"""`edgekit.demo`: the main job on the bundled digits CNN, end to end.

1. convert the Keras model to TFLite, ONNX, OpenVINO IR, Core ML, ExecuTorch and NCNN, each checked against the source on the
   real digits test split (the parity gate);
2. run the test split through every runtime backend that can run a converted model here, and score accuracy;
3. validate every target against the Keras model on the test split (`edgekit.validate`);
4. benchmark every converted target that runs here (`edgekit.benchmark`);
5. convert to static int8 too (TFLite, ONNX, OpenVINO, ExecuTorch) and put fp32 and int8 side by side (accuracy,
   agreement, size, latency).
Where a conversion cannot run here (e.g. a runtime-only install without TensorFlow), the pre-converted copy
shipped with the example is evaluated instead and marked `bundled`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

TARGETS = ("tflite", "onnx", "openvino", "coreml", "executorch", "ncnn")
RUNNABLE = ("tflite", "onnx", "openvino", "executorch", "ncnn")  # the targets that predict on any OS
BACKENDS = {"keras": ("keras",), "tflite": ("litert", "openvino"), "onnx": ("onnxruntime", "openvino"),
            "openvino": ("openvino",), "coreml": ("coreml",), "executorch": ("executorch",), "ncnn": ("ncnn",)}
BUNDLED = {"keras": "digits_cnn.keras", "tflite": "digits_cnn.tflite", "onnx": "digits_cnn.onnx",
           "openvino": "digits_cnn.xml"}
EXAMPLE = "digits_cnn (scikit-learn digits, 8x8 grayscale, 10 classes)"


def _as_dict(obj):
    return obj.to_dict() if hasattr(obj, "to_dict") else obj


@dataclass
class DemoReport:
    """What the demo did, step by step. ``conversion``: the manifest of step 1 (None where nothing could convert);
    ``results``: one row per (target, backend) of step 2 (status ok / skipped / unverified / error);
    ``validation``: step 3's report; ``benchmark``: step 4's BenchReport; ``int8``: step 5's rows.
    ``to_dict()`` is the JSON `edgekit demo --json` prints."""
    output_dir: str
    conversion: dict | None = None
    results: list[dict] = field(default_factory=list)
    validation: object = None
    benchmark: object = None  # a BenchReport
    int8: list[dict] | None = None
    example: str = EXAMPLE
    reference: str = f"{BUNDLED['keras']} on keras"

    @property
    def targets_failed(self) -> bool:
        return demo_failures(self.to_dict())[0]

    @property
    def checks_failed(self) -> bool:
        return demo_failures(self.to_dict())[1]

    def to_dict(self) -> dict:
        return {"example": self.example, "reference": self.reference, "conversion": self.conversion,
                "results": self.results, "validation": _as_dict(self.validation),
                "benchmark": _as_dict(self.benchmark), "int8": self.int8, "output_dir": self.output_dir}


def demo_failures(rep: dict) -> tuple[bool, bool]:
    """(a step that should work here failed to run, a step ran and failed its check), from a demo report's dict.
    Skipped (not installed) and unverified steps fail neither."""
    conv = (rep.get("conversion") or {}).get("targets", [])
    broken = ([t for t in conv if t["status"] == "fail" and t["parity"] is None]
              + [r for r in rep["results"] if r["status"] == "error"]
              + [r for r in (rep.get("benchmark") or {}).get("results", []) if "error" in r]
              + [r for r in rep.get("int8") or [] if r["status"] == "fail"])  # its rows keep no parity
    checks = ([t for t in conv if t["status"] == "fail"]
              + [c for c in (rep.get("validation") or {}).get("candidates", []) if c["verdict"] == "fail"])
    return bool(broken), bool(checks)


def demo(output_dir: str | os.PathLike, progress: Callable[[str], None] | None = None) -> DemoReport:
    """Run the demo, writing converted models and their manifest.json to ``output_dir``; ``progress(message)``
    is told what each step is doing."""
    from .errors import EdgekitError
    from .examples import DIGITS_DIR

    output_dir = Path(output_dir)
    say = progress or (lambda m: None)
    with np.load(DIGITS_DIR / "digits_test.npz") as z:
        images, labels = z["image"], z["labels"]
    source = DIGITS_DIR / BUNDLED["keras"]
    rep = DemoReport(output_dir=str(output_dir))
    conversion = None
    files: dict[str, tuple[Path, str]] = {}
    try:
        from .conversion import convert

        conversion = convert(source, TARGETS, sample={"image": images}, output_dir=output_dir, progress=progress)
        files = {t.target: (t.path, "converted") for t in conversion.targets if t.path is not None}
    except EdgekitError as e:  # no converter here at all: evaluate what the example ships
        say(f"conversion unavailable here ({e.message}); using the bundled copies")
    for target, name in BUNDLED.items():
        if target not in files:
            files[target] = (DIGITS_DIR / name, "bundled")
    rep.conversion = conversion.manifest() if conversion is not None else None
    rep.results = _every_backend(files, images, labels)
    rep.validation = _validate(files, DIGITS_DIR / "digits_test.npz", say)
    runnable = [files[t][0] for t in RUNNABLE if t in files]
    if runnable:
        from .bench import benchmark

        say(f"benchmarking {', '.join(p.name for p in runnable)}")
        rep.benchmark = benchmark(runnable, runs=200, warmup=20)
    if conversion is not None:
        rep.int8 = _int8_side_by_side(source, images, labels, output_dir, say)
    return rep


def _every_backend(files: dict[str, tuple[Path, str]], images, labels) -> list[dict]:
    """Step 2: the test split through every backend that runs each target; the first result is the reference."""
    from edgekit.runtimes import runner_class

    from .batching import predict_samples
    from .errors import EdgekitError
    from .model import load

    rows, reference = [], None
    for target in ("keras", *TARGETS):
        if target not in files:
            continue
        path, origin = files[target]
        for backend in BACKENDS[target]:
            row = {"target": target, "model": path.name, "origin": origin, "backend": backend}
            rows.append(row)
            cls = runner_class(backend)
            if cls.available() is None:
                row.update(status="skipped", error=f"pip install 'edgekit[{cls.requires[0][2]}]'")
                continue
            try:
                with load(path, backend=backend) as m:
                    row.update(precision=m.precision)
                    probs = next(iter(predict_samples(m, {m.inputs[0].name: images}).values()))
            except EdgekitError as e:
                row.update(status="unverified" if target == "coreml" else "error", error=e.message)
                continue
            pred = probs.argmax(-1)
            if reference is None:
                reference = probs
            row.update(status="ok", samples=int(len(labels)), accuracy=float(np.mean(pred == labels)),
                       agreement=float(np.mean(pred == reference.argmax(-1))),
                       max_abs_diff=float(np.max(np.abs(probs - reference))))
    return rows


def _validate(files: dict[str, tuple[Path, str]], data: Path, say):
    """Step 3: every target against the Keras model, where the Keras backend and a runnable target exist."""
    from edgekit.runtimes import runner_class

    runnable = [t for t in RUNNABLE if t in files]
    if not runnable or "keras" not in files or not runner_class("keras").available():
        return None
    from .validation import validate

    say("validating every target against the Keras model on the test split")
    return validate(files["keras"][0], [files[t][0] for t in TARGETS if t in files], data)


def _int8_side_by_side(source: Path, images, labels, output_dir: Path, say) -> list[dict]:
    """fp32 and static int8 for each target: accuracy, agreement, size and latency (one interleaved run each).
    Calibrated on the first 180 test images (the example ships no training split); judged on all 360."""
    from .conversion import convert
    from .model import load

    say("int8: calibrating on 180 images, judging on 360, timing against fp32")
    rep = convert(source, ("tflite", "onnx", "openvino", "executorch"), precision="int8",
                  calibration={"image": images[:180]},
                  sample={"image": images}, output_dir=output_dir / "int8", check_speed=True)
    rows = []
    for t in rep.targets:
        row = {"target": t.target, "status": t.status, "error": t.error, "fp32_size": t.fp32_size_bytes,
               "int8_size": t.size_bytes, "speed": t.speed}
        if t.path is not None and t.status == "pass":
            with load(t.path) as m:
                pred = next(iter(m.predict(images).values())).argmax(-1)
            row.update(int8_accuracy=float(np.mean(pred == labels)),
                       agreement=(t.parity or {}).get("agreement_top1"))
        rows.append(row)
    return rows
