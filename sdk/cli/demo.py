"""`edgekit demo`: the main job on the bundled digits CNN: run the test split through every backend here."""

from __future__ import annotations

import numpy as np
import typer

from edgekit.cli._common import command, console, print_json

# (file, backend) pairs: every runtime backend that can run one of the bundled artifacts
RUNS = (
    ("digits_cnn.keras", "keras"),
    ("digits_cnn.tflite", "litert"),
    ("digits_cnn.tflite", "openvino"),
    ("digits_cnn.onnx", "onnxruntime"),
    ("digits_cnn.onnx", "openvino"),
    ("digits_cnn.xml", "openvino"),
)


def run_demo() -> dict:
    import edgekit
    from edgekit.batching import predict_samples
    from edgekit.errors import EdgekitError
    from edgekit.examples import DIGITS_DIR
    from edgekit.runtimes import runner_class

    with np.load(DIGITS_DIR / "digits_test.npz") as z:
        images, labels = z["image"], z["labels"]
    rows, reference = [], None
    for fname, backend in RUNS:
        row = {"model": fname, "backend": backend}
        cls = runner_class(backend)
        if cls.available() is None:
            row.update(status="skipped", error=f"pip install 'edgekit[{cls.requires[0][2]}]'")
            rows.append(row)
            continue
        try:
            with edgekit.load(DIGITS_DIR / fname, backend=backend) as m:
                probs = next(iter(predict_samples(m, {m.inputs[0].name: images}).values()))
                row.update(format=m.format.value, precision=m.precision)
        except EdgekitError as e:
            row.update(status="error", error=e.message)
            rows.append(row)
            continue
        pred = probs.argmax(-1)
        if reference is None:
            reference = probs
        row.update(status="ok", samples=int(len(labels)), accuracy=float(np.mean(pred == labels)),
                   agreement=float(np.mean(pred == reference.argmax(-1))),
                   max_abs_diff=float(np.max(np.abs(probs - reference))))
        rows.append(row)
    return {"example": "digits_cnn (scikit-learn digits, 8x8 grayscale, 10 classes)",
            "reference": f"{RUNS[0][0]} on {RUNS[0][1]}", "results": rows}


@command
def demo_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """Run the bundled digits CNN's test split through every runtime backend installed here."""
    rep = run_demo()
    if json_out:
        print_json(rep)
        return
    from rich.table import Table

    out = console()
    t = Table(title=f"{rep['example']}: test split through every backend")
    for col in ("model", "backend", "precision", "accuracy", "agrees with reference", "max |diff|", "status"):
        t.add_column(col)
    for r in rep["results"]:
        if r["status"] == "ok":
            t.add_row(r["model"], r["backend"], r["precision"], f"{r['accuracy']:.4f}", f"{r['agreement']:.4f}",
                      f"{r['max_abs_diff']:.2e}", "ok")
        else:
            t.add_row(r["model"], r["backend"], "", "", "", "", f"{r['status']}: {r['error']}")
    out.print(t)
    out.print(f"reference: {rep['reference']}; accuracy = share of the {rep['results'][0].get('samples', '?')} "
              "test images classified correctly")
