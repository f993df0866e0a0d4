"""`edgekit bench MODEL...`: latency, load time, throughput and memory, side by side, with reports
(`edgekit.benchmark`)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import typer

from edgekit.cli._common import command, console, json_flag_misuse, outcome, print_json
from edgekit.cli._progress import progress
from edgekit.cli._files import (TRUST_CODE_HELP, TRUST_HELP, check_output, model_files, refuse_overwrite,
                                report_failure, resolve_trust, write_outputs)
from edgekit.errors import MissingDependencyError


@command
def bench_cmd(
    models: list[Path] = typer.Argument(..., help="One or more model files or folders."),
    runs: int = typer.Option(200, "--runs", min=1, help="Timed calls per model."),
    warmup: int = typer.Option(20, "--warmup", min=0, help="Untimed calls per model before timing."),
    duration: float = typer.Option(None, "--duration", min=0.01, help="Stop after this many seconds of timing "
                                   "per model (whichever of --runs/--duration comes first)."),
    threads: int = typer.Option(None, "--threads", min=1, help="Intra-op threads (default: the device class's, "
                                "as in run, validate and convert)."),
    backend: str = typer.Option(None, "--backend", help="Runtime to use (default: the device class's preferred "
                                "installed one)."),
    device_class: str = typer.Option(None, "--device-class", help="Profile to use (default: detected)."),
    input: Path = typer.Option(None, "--input", help=".npz/.npy inputs (default: generated from the signature)."),
    input_shape: list[str] = typer.Option(None, "--input-shape", metavar="SHAPE", help="Shape to time generated "
                                          "inputs at, as benchmark_app's -shape: [1,3,224,224], or NAME[1,3,224,224] "
                                          "(repeat, or join with commas, for several inputs)."),
    batch: int = typer.Option(None, "--batch", min=1, help="Batch size of the timed calls (a dynamic first "
                              "dimension; with --input, its first N samples)."),
    precision_target: float = typer.Option(None, "--precision-target", min=0.001, max=0.5, help="Keep timing "
                                           "past --runs until the 95% CI of each median is within +-this fraction "
                                           "(0.02: +-2%), or --duration (default 30 s per model) runs out."),
    isolate: bool = typer.Option(True, "--isolate/--in-process", help="Measure each model in its own child "
                                 "process (default), or all in this one."),
    pin: bool = typer.Option(True, "--pin/--no-pin", help="Pin each model's process and the vendor tools to "
                             "--threads CPUs where the OS allows (default)."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON to stdout (no table)."),
    json_file: Path = typer.Option(None, "--json-out", help="Write the results as JSON to this file."),
    markdown: Path = typer.Option(None, "--markdown", help="Write a Markdown table to this file."),
    html: Path = typer.Option(None, "--html", help="Write a self-contained HTML report to this file."),
    plot: Path = typer.Option(None, "--plot", help="Write a PNG of the latency distributions to this file."),
    compare_native: bool = typer.Option(False, "--compare-native", help="Also run the vendor's benchmark tool."),
    overhead: bool = typer.Option(False, "--overhead", help="Time the raw runtime call against edgekit's call."),
    trust: list[Path] = typer.Option(None, "--trust", metavar="PATH", help=TRUST_HELP),
    trust_code: bool = typer.Option(False, "--trust-code", help=TRUST_CODE_HELP),
    device: str = typer.Option(None, "--device", help="Measure on registered devices over SSH instead of here: "
                               "NAME[,NAME...] (see `edgekit device`); the devices side by side in one report."),
):
    """Measure models' latency honestly: warm-up, percentiles, environment and throttling recorded.

    Exit codes: 0 all measured; 2 a user error (nothing measured, or a report could not be written: the others
    and the table are kept); 3 some models failed to load or run (the others were measured)."""
    from edgekit import bench

    json_flag_misuse(models, json_out)
    reports = {"--json-out": json_file, "--markdown": markdown, "--html": html, "--plot": plot}
    for flag, path in reports.items():  # every check before a minute of measuring, not after
        if path is not None:
            check_output(path, flag)
    refuse_overwrite(reports, [("a model's file", f) for m in models for f in model_files(m)]
                     + [("the --input file", input)])
    if plot is not None and importlib.util.find_spec("matplotlib") is None:
        raise MissingDependencyError("matplotlib", "report", "draw --plot")
    trust_code = resolve_trust(models, trust, trust_code)
    if device:
        from edgekit.cli.device import bench_remote

        return bench_remote(device, models, runs=runs, warmup=warmup, duration=duration, threads=threads,
                            backend=backend, device_class=device_class, input=input, json_file=json_file,
                            markdown=markdown, html=html, plot=plot, compare_native=compare_native,
                            overhead=overhead, trust_code=trust_code, json_out=json_out,
                            method_args=_method_args(precision_target, isolate, pin, input_shape, batch))
    with progress(console(stderr=True), "measuring", bar=True) as steps:
        steps.status(f"loading {len(models)} model(s); then {warmup} warm-up and "
                     f"{'at least' if precision_target else 'up to'} {runs} timed calls each")
        result = bench.benchmark(models, runs=runs, warmup=warmup, duration_s=duration, threads=threads,
                                 backend=backend, device_class=device_class, input_path=input,
                                 compare_native=compare_native, overhead=overhead, trust_code=trust_code,
                                 precision_target=precision_target, isolate=isolate, pin=pin,
                                 input_shape=input_shape or None, batch=batch,
                                 progress=lambda done, total: steps.count(done, total, "calls"),
                                 say=lambda m: steps.say(m, "failed: ", "red"))
    failed = write_reports(result, json_file, markdown, html, plot)
    out = console(stderr=json_out)
    if json_out:
        print_json(result.to_dict())
    else:
        show_table(out, result)
    if result.interrupted:
        out.print("[yellow]interrupted[/]: the table and files hold what was measured before Ctrl-C")
    for flag, path in reports.items():
        if path is not None and not any(f.startswith(f"{flag} ") for f in failed):
            out.print(f"wrote {path}")
    report_failure(failed)
    raise typer.Exit(outcome(targets_failed=bool(result.failed)))


def _method_args(precision_target, isolate, pin, input_shape, batch) -> list[str]:
    """The method's flags as given, for a device's own `edgekit bench`."""
    out = [] if precision_target is None else ["--precision-target", str(precision_target)]
    out += ([] if isolate else ["--in-process"]) + ([] if pin else ["--no-pin"])
    for shape in input_shape or []:
        out += ["--input-shape", shape]
    return out + ([] if batch is None else ["--batch", str(batch)])


def show_table(out, result) -> None:
    """The terminal table, then the lines that say which rows compare with the vendor's tool on its own clock
    (its "×native" would otherwise read as wall clock against wall clock)."""
    from edgekit.benchmarks.report import clock_notes, rich_table

    out.print(rich_table(result, width=out.width))
    for line in clock_notes(result):
        out.print(line, highlight=False, markup=False)


def write_reports(result, json_file=None, markdown=None, html=None, plot=None) -> list[str]:
    """Write the reports asked for (``result``: a BenchReport); one that fails does not stop the others.
    Returns the failures."""
    import tempfile

    from edgekit.benchmarks import report

    png: dict = {}

    def plot_png() -> bytes:  # drawn once, for --plot and the HTML report
        if "png" not in png:
            with tempfile.TemporaryDirectory() as tmp:
                png["png"] = report.plot_latencies(result, Path(tmp) / "plot.png").read_bytes()
        return png["png"]

    def html_text() -> str:
        try:
            image = plot_png()
        except (MissingDependencyError, OSError):  # the HTML report goes without its plot then
            image = None
        return report.to_html(result, image)

    return write_outputs([("--json-out", json_file, lambda: json.dumps(result.to_dict(), indent=2, default=str)),
                          ("--markdown", markdown, lambda: report.to_markdown(result)),
                          ("--html", html, html_text),
                          ("--plot", plot, plot_png)])
