"""`edgekit demo`: the main job on the bundled digits CNN.

1. convert the Keras model to TFLite, ONNX, OpenVINO IR and Core ML, each checked against the source on the
   real digits test split (the parity gate);
2. run the test split through every runtime backend that can run a converted model here, and print accuracy;
3. validate every target against the Keras model on the test split (edgekit validate) and print the parity table;
4. benchmark every converted target that runs here and print the latency table.
Where a conversion cannot run here (e.g. a runtime-only install without TensorFlow), the pre-converted copy
shipped with the example is evaluated instead and marked `bundled`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import typer

from edgekit.cli._common import command, console, outcome, print_json

TARGETS = ("tflite", "onnx", "openvino", "coreml")
BACKENDS = {"keras": ("keras",), "tflite": ("litert", "openvino"), "onnx": ("onnxruntime", "openvino"),
            "openvino": ("openvino",), "coreml": ("coreml",)}
BUNDLED = {"keras": "digits_cnn.keras", "tflite": "digits_cnn.tflite", "onnx": "digits_cnn.onnx",
           "openvino": "digits_cnn.xml"}


def run_demo(output_dir: Path, progress=None) -> dict:
    import edgekit
    from edgekit.batching import predict_samples
    from edgekit.conversion import convert
    from edgekit.errors import EdgekitError
    from edgekit.examples import DIGITS_DIR
    from edgekit.runtimes import runner_class

    with np.load(DIGITS_DIR / "digits_test.npz") as z:
        images, labels = z["image"], z["labels"]
    source = DIGITS_DIR / BUNDLED["keras"]
    conversion = None
    files: dict[str, tuple[Path, str]] = {}
    try:
        conversion = convert(source, TARGETS, sample={"image": images}, output_dir=output_dir, progress=progress)
        files = {t.target: (t.path, "converted") for t in conversion.targets if t.path is not None}
    except EdgekitError as e:  # no converter here at all: evaluate what the example ships
        if progress:
            progress(f"conversion unavailable here ({e.message}); using the bundled copies")
    for target, name in BUNDLED.items():
        if target not in files:
            files[target] = (DIGITS_DIR / name, "bundled")

    rows, reference = [], None
    for target in ("keras", *TARGETS):
        if target not in files:
            continue
        path, origin = files[target]
        for backend in BACKENDS[target]:
            row = {"target": target, "model": path.name, "origin": origin, "backend": backend}
            cls = runner_class(backend)
            if cls.available() is None:
                row.update(status="skipped", error=f"pip install 'edgekit[{cls.requires[0][2]}]'")
                rows.append(row)
                continue
            try:
                with edgekit.load(path, backend=backend) as m:
                    row.update(precision=m.precision)
                    probs = next(iter(predict_samples(m, {m.inputs[0].name: images}).values()))
            except EdgekitError as e:
                row.update(status="unverified" if target == "coreml" else "error", error=e.message)
                rows.append(row)
                continue
            pred = probs.argmax(-1)
            if reference is None:
                reference = probs
            row.update(status="ok", samples=int(len(labels)), accuracy=float(np.mean(pred == labels)),
                       agreement=float(np.mean(pred == reference.argmax(-1))),
                       max_abs_diff=float(np.max(np.abs(probs - reference))))
            rows.append(row)
    bench = parity = None
    runnable = [files[t][0] for t in ("tflite", "onnx", "openvino") if t in files]
    if runnable and "keras" in files and runner_class("keras").available():
        from edgekit.validation import validate

        if progress:
            progress("validating every target against the Keras model on the test split")
        parity = validate(files["keras"][0], [files[t][0] for t in TARGETS if t in files],
                          DIGITS_DIR / "digits_test.npz")
    if runnable:
        from edgekit.benchmarks.harness import benchmark

        if progress:
            progress(f"benchmarking {', '.join(p.name for p in runnable)}")
        bench = benchmark(runnable, runs=200, warmup=20)
    int8 = None
    if conversion is not None:
        int8 = _int8_side_by_side(source, images, labels, output_dir, progress)
    return {"example": "digits_cnn (scikit-learn digits, 8x8 grayscale, 10 classes)",
            "reference": f"{BUNDLED['keras']} on keras",
            "conversion": conversion.manifest() if conversion else None, "results": rows,
            "validation": parity, "benchmark": bench, "int8": int8, "output_dir": str(output_dir)}


def _int8_side_by_side(source: Path, images, labels, output_dir: Path, progress) -> list[dict]:
    """fp32 and static int8 for each target: accuracy, agreement, size and latency (one interleaved run each).
    Calibrated on the first 180 test images (the example ships no training split); judged on all 360."""
    import edgekit
    from edgekit.conversion import convert

    if progress:
        progress("int8: calibrating on 180 images, judging on 360, timing against fp32")
    rep = convert(source, ("tflite", "onnx", "openvino"), precision="int8", calibration={"image": images[:180]},
                  sample={"image": images}, output_dir=output_dir / "int8", check_speed=True)
    rows = []
    for t in rep.targets:
        row = {"target": t.target, "status": t.status, "error": t.error, "fp32_size": t.fp32_size_bytes,
               "int8_size": t.size_bytes, "speed": t.speed}
        if t.path is not None and t.status == "ok":
            with edgekit.load(t.path) as m:
                pred = next(iter(m.predict(images).values())).argmax(-1)
            row.update(int8_accuracy=float(np.mean(pred == labels)),
                       agreement=(t.parity or {}).get("agreement_top1"))
        rows.append(row)
    return rows


@command
def demo_cmd(
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    output_dir: Path = typer.Option(None, "--output-dir", "-o", help="Keep the converted models here "
                                    "(default: a temporary folder)."),
):
    """Convert the bundled digits CNN to every target, then run its test split through every backend here.

    Exit codes: 0 every step that can run here worked (skipped and unverified steps do not fail); 1 a check
    failed (parity, validation, int8 gate); 2 a user error; 3 a step that should work here failed."""
    from edgekit.cli._files import check_output

    if output_dir is not None:
        check_output(output_dir, "--output-dir", folder=True)
    err = console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="edgekit-demo-") as tmp:
        rep = run_demo(output_dir or Path(tmp), progress=lambda m: err.print(f"[dim]>[/] {m}"))
        if json_out:
            print_json(rep)
            raise typer.Exit(demo_exit_code(rep))
        from rich.table import Table

        out = console()
        if rep["conversion"]:
            t = Table(title="1. convert digits_cnn.keras (parity checked on the 360 test images)")
            for col in ("target", "status", "route", "size KB", "seconds", "max abs", "cosine", "error / note"):
                t.add_column(col)
            for r in rep["conversion"]["targets"]:
                par = r["parity"] or {}
                note = r["error"] or next((n for n in r["notes"] if "macOS" in n), "")
                t.add_row(r["target"], r["status"], " > ".join(r["route"]),
                          f"{r['size_bytes'] / 1024:.1f}" if r["size_bytes"] else "-", f"{r['seconds']:.1f}",
                          f"{par['max_abs']:.1e}" if par.get("max_abs") is not None else "-",
                          f"{par['cosine']:.6f}" if par.get("cosine") is not None else "-", note)
            out.print(t)
        t = Table(title="2. digits test split through every backend")
        for col in ("target", "model", "backend", "precision", "accuracy", "agrees with keras", "max |diff|",
                    "status"):
            t.add_column(col)
        for r in rep["results"]:
            model = r["model"] + (" (bundled)" if r["origin"] == "bundled" else "")
            if r["status"] == "ok":
                t.add_row(r["target"], model, r["backend"], r["precision"], f"{r['accuracy']:.4f}",
                          f"{r['agreement']:.4f}", f"{r['max_abs_diff']:.1e}", "ok")
            else:
                t.add_row(r["target"], model, r["backend"], r.get("precision", ""), "", "", "",
                          f"{r['status']}: {r['error']}")
        out.print(t)
        if rep["validation"]:
            from edgekit.validation_report import rich_table as parity_table

            table = parity_table(rep["validation"])
            table.title = "3. parity of every target against digits_cnn.keras (edgekit validate)"
            out.print(table)
        if rep["benchmark"]:
            from edgekit.benchmarks.report import rich_table

            table = rich_table(rep["benchmark"])
            table.title = "4. latency of every converted target on this machine (one image per call)"
            out.print(table)
        if rep.get("int8"):
            fp32_acc = next((r["accuracy"] for r in rep["results"] if r.get("accuracy") is not None), None)
            t = Table(title="5. fp32 vs int8 (calibrated on 180 test images, judged on all 360)")
            for col in ("target", "status", "accuracy fp32 -> int8", "agreement", "size fp32 -> int8",
                        "p50 ms fp32 -> int8"):
                t.add_column(col)
            for r in rep["int8"]:
                sp = r["speed"] or {}
                t.add_row(r["target"], r["status"] if not r["error"] else f"{r['status']}: {r['error']}",
                          f"{fp32_acc:.4f} -> {r['int8_accuracy']:.4f}" if r.get("int8_accuracy") is not None
                          else "-", f"{r['agreement']:.4f}" if r.get("agreement") is not None else "-",
                          f"{r['fp32_size'] / 1024:.0f} KB -> {r['int8_size'] / 1024:.0f} KB"
                          if r["fp32_size"] and r["int8_size"] else "-",
                          f"{sp['fp32_p50_ms']:.4f} -> {sp['p50_ms']:.4f}" + (" (slower)" if sp["slower"] else "")
                          if sp else "-")
            out.print(t)
        if output_dir:
            out.print(f"converted models and manifest.json: {output_dir}")
    raise typer.Exit(demo_exit_code(rep))


def demo_exit_code(rep: dict) -> int:
    """The exit-code contract over the demo's steps: a step that failed to run is TARGETS_FAILED, one that ran
    and failed its check is CHECK_FAILED; skipped (not installed) and unverified steps do not fail."""
    conv = (rep.get("conversion") or {}).get("targets", [])
    broken = ([t for t in conv if t["status"] == "failed" and t["parity"] is None]
              + [r for r in rep["results"] if r["status"] == "error"]
              + [r for r in (rep.get("benchmark") or {}).get("results", []) if "error" in r]
              + [r for r in rep.get("int8") or [] if r["status"] == "failed"])  # its rows keep no parity
    checks = ([t for t in conv if t["status"] == "failed"]
              + [c for c in (rep.get("validation") or {}).get("candidates", []) if c["verdict"] == "fail"])
    return outcome(targets_failed=bool(broken), checks_failed=bool(checks))
