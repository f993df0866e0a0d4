"""`edgekit bench MODEL...`: latency, load time, throughput and memory, side by side, with reports."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edgekit.cli._common import command, console


@command
def bench_cmd(
    models: list[Path] = typer.Argument(..., help="One or more model files or folders."),
    runs: int = typer.Option(200, "--runs", min=1, help="Timed calls per model."),
    warmup: int = typer.Option(20, "--warmup", min=0, help="Untimed calls per model before timing."),
    duration: float = typer.Option(None, "--duration", min=0.01, help="Stop after this many seconds per model "
                                   "(whichever of --runs/--duration comes first)."),
    threads: int = typer.Option(None, "--threads", min=1, help="Intra-op threads (default: the device class's)."),
    backend: str = typer.Option(None, "--backend", help="Runtime to use (default: the best installed)."),
    device_class: str = typer.Option(None, "--device-class", help="Profile to use (default: detected)."),
    input: Path = typer.Option(None, "--input", help=".npz/.npy inputs (default: generated from the signature)."),
    json_file: Path = typer.Option(None, "--json", help="Write the results as JSON to this file."),
    markdown: Path = typer.Option(None, "--markdown", help="Write a Markdown table to this file."),
    html: Path = typer.Option(None, "--html", help="Write a self-contained HTML report to this file."),
    plot: Path = typer.Option(None, "--plot", help="Write a PNG of the latency distributions to this file."),
    compare_native: bool = typer.Option(False, "--compare-native", help="Also run the vendor's benchmark tool."),
    overhead: bool = typer.Option(False, "--overhead", help="Time the raw runtime call against edgekit's call."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Allow formats whose loading can run code."),
):
    """Measure models' latency honestly: warm-up, percentiles, environment and throttling recorded."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from edgekit.benchmarks.harness import benchmark
    from edgekit.benchmarks.report import rich_table

    err = console(stderr=True)
    with Progress(TextColumn("measuring"), BarColumn(), TextColumn("{task.completed}/{task.total} calls"),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("bench", total=runs * len(models))
        result = benchmark(models, runs=runs, warmup=warmup, duration_s=duration, threads=threads, backend=backend,
                           device_class=device_class, input_path=input, compare_native=compare_native,
                           overhead=overhead, trust_code=trust_code,
                           progress=lambda done, total: bar.update(task, completed=done, total=total),
                           say=lambda m: err.print(f"[red]error[/]: {m}"))
    write_reports(result, json_file, markdown, html, plot)
    out = console()
    out.print(rich_table(result))
    if result["interrupted"]:
        out.print("[yellow]interrupted[/]: the table and files hold what was measured before Ctrl-C")
    for path in (json_file, markdown, html, plot):
        if path is not None:
            out.print(f"wrote {path}")
    if any("error" in r for r in result["results"]):
        raise typer.Exit(3)


def write_reports(result: dict, json_file=None, markdown=None, html=None, plot=None) -> None:
    from edgekit.benchmarks import report

    from edgekit.errors import MissingDependencyError

    png = None
    if plot is not None:  # asked for explicitly: a missing matplotlib is an error
        png = report.plot_latencies(result, Path(plot)).read_bytes()
    elif html is not None:  # the HTML report goes without its plot where matplotlib is not installed
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            try:
                png = report.plot_latencies(result, Path(tmp) / "plot.png").read_bytes()
            except MissingDependencyError:
                png = None
    for path, text in ((json_file, lambda: json.dumps(result, indent=2, default=str)),
                       (markdown, lambda: report.to_markdown(result)),
                       (html, lambda: report.to_html(result, png))):
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text())
