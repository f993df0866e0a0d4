"""`edgekit demo`: the main job on the bundled digits CNN (`edgekit.demo`), shown as one table per step."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from edgekit.cli._common import command, console, outcome, print_json


@command
def demo_cmd(
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    output_dir: Path = typer.Option(None, "--output-dir", "-o", help="Keep the converted models here "
                                    "(default: a temporary folder)."),
):
    """Convert the bundled digits CNN to every target, then run its test split through every backend here.

    Exit codes: 0 every step that can run here worked (skipped and unverified steps do not fail); 1 a check
    failed (parity, validation, int8 gate); 2 a user error; 3 a step that should work here failed."""
    from edgekit import demonstration
    from edgekit.cli._files import check_output

    if output_dir is not None:
        check_output(output_dir, "--output-dir", folder=True)
    err = console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="edgekit-demo-") as tmp:
        rep = demonstration.demo(output_dir or Path(tmp), progress=lambda m: err.print(f"[dim]>[/] {m}"))
        if json_out:
            print_json(rep.to_dict())
        else:
            _render(rep)
            if output_dir:
                console().print(f"converted models and manifest.json: {output_dir}")
    raise typer.Exit(demo_exit_code(rep))


def demo_exit_code(rep) -> int:
    """The exit-code contract over the demo's steps (a DemoReport, or its dict): a step that failed to run is
    TARGETS_FAILED, one that ran and failed its check is CHECK_FAILED; skipped (not installed) and unverified
    steps do not fail."""
    from edgekit.demonstration import demo_failures

    broken, checks = demo_failures(rep.to_dict() if hasattr(rep, "to_dict") else rep)
    return outcome(targets_failed=broken, checks_failed=checks)


def _render(rep) -> None:
    out = console()
    w = out.width
    if rep.conversion:
        from edgekit.conversion_report import rich_view

        out.print(rich_view(rep.conversion, width=w, title="1. convert digits_cnn.keras (parity checked on the 360 "
                                                           "test images)"))
    out.print(_backends_table(rep.results, w))
    if rep.validation:
        from edgekit.validation_report import rich_table as parity_table

        out.print(parity_table(rep.validation, width=w,
                               title="3. parity of every target against digits_cnn.keras (edgekit validate)"))
    if rep.benchmark:
        from edgekit.benchmarks.report import rich_table

        out.print(rich_table(rep.benchmark, width=w,
                             title="4. latency of every converted target on this machine (ms per image)"))
    if rep.int8:
        fp32_acc = next((r["accuracy"] for r in rep.results if r.get("accuracy") is not None), None)
        out.print(_int8_table(rep.int8, fp32_acc, w))


def _backends_table(results: list[dict], width: int):
    from edgekit.display import Column, fit_table

    cols = [Column("target", "target", False, 0), Column("model", "model", False, 3),
            Column("backend", "backend", False, 0), Column("precision", "precision", False, 2),
            Column("accuracy", "accuracy", True, 0), Column("agreement", "agrees with keras", True, 1),
            Column("diff", "max |diff|", True, 1)]
    rows, notes = [], []
    for r in results:
        model = r["model"] + (" (bundled)" if r["origin"] == "bundled" else "")
        row = {"target": r["target"], "model": model, "backend": r["backend"], "precision": r.get("precision", "")}
        if r["status"] == "ok":
            row.update(accuracy=f"{r['accuracy']:.4f}", agreement=f"{r['agreement']:.4f}",
                       diff=f"{r['max_abs_diff']:.1e}")
        else:
            row.update(accuracy=r["status"], **{"accuracy:style": "yellow" if r["status"] != "error" else "red"})
            notes.append(f"{r['target']} on {r['backend']}: {r['status']}: {r['error']}")
        rows.append(row)
    from rich.console import Group
    from rich.text import Text

    return Group(fit_table(cols, rows, width, title="2. digits test split through every backend", label="target"),
                 *[Text(n, style="dim") for n in notes])


def _int8_table(rows: list[dict], fp32_acc: float | None, width: int):
    from rich.console import Group
    from rich.text import Text

    from edgekit.display import VERDICT_STYLES, Column, fit_table

    cols = [Column("target", "target", False, 0), Column("status", "status", False, 0),
            Column("acc", "accuracy fp32 -> int8", True, 0), Column("agree", "agreement", True, 1),
            Column("size", "size fp32 -> int8", True, 1), Column("p50", "p50 ms fp32 -> int8", True, 2)]
    out, notes = [], []
    for r in rows:
        sp = r["speed"] or {}
        if r["error"]:
            notes.append(f"{r['target']}: {r['error']}")
        out.append({"target": r["target"], "status": r["status"], "status:style": VERDICT_STYLES.get(r["status"], ""),
                    "acc": f"{fp32_acc:.4f} -> {r['int8_accuracy']:.4f}" if r.get("int8_accuracy") is not None
                    and fp32_acc is not None else "-",
                    "agree": f"{r['agreement']:.4f}" if r.get("agreement") is not None else "-",
                    "size": f"{r['fp32_size'] / 1024:.0f} KB -> {r['int8_size'] / 1024:.0f} KB"
                    if r["fp32_size"] and r["int8_size"] else "-",
                    "p50": f"{sp['fp32_p50_ms']:.4f} -> {sp['p50_ms']:.4f}" + (" (slower)" if sp["slower"] else "")
                    if sp else "-"})
    title = "5. fp32 vs int8 (calibrated on 180 test images, judged on all 360)"
    return Group(fit_table(cols, out, width, title=title, label="target"), *[Text(n, style="red") for n in notes])
