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
    if rep.conversion:
        out.print(_conversion_table(rep.conversion))
    out.print(_backends_table(rep.results))
    if rep.validation:
        from edgekit.validation_report import rich_table as parity_table

        table = parity_table(rep.validation)
        table.title = "3. parity of every target against digits_cnn.keras (edgekit validate)"
        out.print(table)
    if rep.benchmark:
        from edgekit.benchmarks.report import rich_table

        table = rich_table(rep.benchmark)
        table.title = "4. latency of every converted target on this machine (one image per call)"
        out.print(table)
    if rep.int8:
        fp32_acc = next((r["accuracy"] for r in rep.results if r.get("accuracy") is not None), None)
        out.print(_int8_table(rep.int8, fp32_acc))


def _conversion_table(conversion: dict):
    from rich.table import Table

    t = Table(title="1. convert digits_cnn.keras (parity checked on the 360 test images)")
    for col in ("target", "status", "route", "size KB", "seconds", "max abs", "cosine", "error / note"):
        t.add_column(col)
    for r in conversion["targets"]:
        par = r["parity"] or {}
        note = r["error"] or next((n for n in r["notes"] if "macOS" in n), "")
        t.add_row(r["target"], r["status"], " > ".join(r["route"]),
                  f"{r['size_bytes'] / 1024:.1f}" if r["size_bytes"] else "-", f"{r['seconds']:.1f}",
                  f"{par['max_abs']:.1e}" if par.get("max_abs") is not None else "-",
                  f"{par['cosine']:.6f}" if par.get("cosine") is not None else "-", note)
    return t


def _backends_table(results: list[dict]):
    from rich.table import Table

    t = Table(title="2. digits test split through every backend")
    for col in ("target", "model", "backend", "precision", "accuracy", "agrees with keras", "max |diff|", "status"):
        t.add_column(col)
    for r in results:
        model = r["model"] + (" (bundled)" if r["origin"] == "bundled" else "")
        if r["status"] == "ok":
            t.add_row(r["target"], model, r["backend"], r["precision"], f"{r['accuracy']:.4f}",
                      f"{r['agreement']:.4f}", f"{r['max_abs_diff']:.1e}", "ok")
        else:
            t.add_row(r["target"], model, r["backend"], r.get("precision", ""), "", "", "",
                      f"{r['status']}: {r['error']}")
    return t


def _int8_table(rows: list[dict], fp32_acc: float | None):
    from rich.table import Table

    t = Table(title="5. fp32 vs int8 (calibrated on 180 test images, judged on all 360)")
    for col in ("target", "status", "accuracy fp32 -> int8", "agreement", "size fp32 -> int8", "p50 ms fp32 -> int8"):
        t.add_column(col)
    for r in rows:
        sp = r["speed"] or {}
        t.add_row(r["target"], r["status"] if not r["error"] else f"{r['status']}: {r['error']}",
                  f"{fp32_acc:.4f} -> {r['int8_accuracy']:.4f}" if r.get("int8_accuracy") is not None else "-",
                  f"{r['agreement']:.4f}" if r.get("agreement") is not None else "-",
                  f"{r['fp32_size'] / 1024:.0f} KB -> {r['int8_size'] / 1024:.0f} KB"
                  if r["fp32_size"] and r["int8_size"] else "-",
                  f"{sp['fp32_p50_ms']:.4f} -> {sp['p50_ms']:.4f}" + (" (slower)" if sp["slower"] else "") if sp else "-")
    return t
