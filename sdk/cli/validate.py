"""`edgekit validate REFERENCE CANDIDATE... --data DATA`: accuracy parity with task metrics and statistics."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edgekit.cli._common import command, console, json_flag_misuse, outcome, print_json
from edgekit.cli._progress import validate_progress
from edgekit.cli._files import (TRUST_CODE_HELP, TRUST_HELP, check_output, model_files, refuse_overwrite,
                                report_failure, resolve_trust, write_outputs)


@command
def validate_cmd(
    reference: Path = typer.Argument(..., help="The original model."),
    candidates: list[Path] = typer.Argument(None, help="Converted models to check against it."),
    data: Path = typer.Option(None, "--data", help=".npz (input names; optional 'labels'), .npy, or an image folder."),
    labels: Path = typer.Option(None, "--labels", help=".npy of labels (first axis = samples)."),
    task: str = typer.Option(None, "--task", help="classification, binary, regression, embedding or raw "
                             "(default: guessed from the outputs)."),
    device_class: str = typer.Option(None, "--device-class", help="Tolerance profile's device class."),
    atol: float = typer.Option(None, "--atol", help="Elementwise absolute tolerance (all elements must be within)."),
    rtol: float = typer.Option(None, "--rtol", help="Elementwise relative tolerance."),
    output_tol: list[str] = typer.Option(None, "--output-tol", help="Per-output override: NAME:atol=1e-4,cosine=0.999"),
    preprocess: Path = typer.Option(None, "--preprocess", help="JSON/YAML image preprocessing spec for folders."),
    localize: bool = typer.Option(False, "--localize", help="For a failing candidate, find the first op that departs."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Samples per batch (memory stays bounded)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON to stdout (no table)."),
    json_file: Path = typer.Option(None, "--json-out", help="Write the report as JSON to this file."),
    markdown: Path = typer.Option(None, "--markdown", help="Write a Markdown table."),
    html: Path = typer.Option(None, "--html", help="Write a self-contained HTML report."),
    trust: list[Path] = typer.Option(None, "--trust", metavar="PATH", help=TRUST_HELP),
    trust_code: bool = typer.Option(False, "--trust-code", help=TRUST_CODE_HELP),
    device: str = typer.Option(None, "--device", help="Run the candidates on registered devices over SSH "
                               "(NAME[,NAME...], see `edgekit device`); the reference runs here."),
    save_profile: Path = typer.Option(None, "--save-profile", help="Write the reference's input/output profile on "
                                      "the data, for edgekit.monitor's drift checks."),
    replay: Path = typer.Option(None, "--replay", help="A monitor log with a sample log: compare the outputs "
                                "recorded on the device with the reference's on the same inputs (no --data)."),
):
    """Check that converted models match the original on real data.

    Exit codes: 0 every candidate passed (or is unverified here); 1 a candidate failed its check; 2 a user error
    (nothing validated, or a report could not be written: the others and the table are kept); 3 a candidate
    could not be loaded or run (takes precedence over 1)."""
    from edgekit.data import array_headers
    from edgekit.datasets import Preprocess
    from edgekit.errors import InputError
    from edgekit.options import parse_output_tolerances
    from edgekit.validation import validate
    from edgekit.validation_report import rich_table, to_html, to_markdown
    from edgekit.cli.monitor import profile_text, validate_mode
    from edgekit.monitoring.replay import replay as replay_log

    json_flag_misuse(candidates, json_out)
    candidates = validate_mode(candidates, data, replay, save_profile,
                               {"--labels": labels, "--localize": localize or None, "--preprocess": preprocess})
    reports = {"--json-out": json_file, "--markdown": markdown, "--html": html, "--save-profile": save_profile}
    for flag, path in reports.items():  # every check before the data streams through, not after
        if path is not None:
            check_output(path, flag)
    refuse_overwrite(reports, [("a model's file", f) for m in (reference, *candidates) for f in model_files(m)]
                     + [("the --data file", data), ("the --labels file", labels), ("the --preprocess file", preprocess)])
    if replay is None and not data.exists():
        raise InputError(f"no such data file or folder: {data}", "pass an .npz, .npy or a folder of images")
    for path in (data, labels):  # headers only: no objects, not truncated (sizes are checked when loading)
        if path is not None and not path.is_dir():
            array_headers(path)
    tols = parse_output_tolerances(output_tol, "--output-tol")
    pre = Preprocess.load(preprocess) if preprocess else None
    trust_code = resolve_trust([reference, *candidates], trust, trust_code)
    if device:
        if save_profile is not None or replay is not None:
            raise InputError("--save-profile and --replay run here, not on a device",
                             "run them without --device (the profile is the reference's, which runs here)")
        if localize:
            raise InputError("--localize needs the candidate here, not on a device",
                             "drop --localize, or run it without --device")
        from edgekit.cli.device import validate_remote

        return validate_remote(device, reference, candidates, data, labels=labels, task=task,
                               device_class=device_class, atol=atol, rtol=rtol, tols=tols, batch_size=batch_size,
                               pre=pre, trust_code=trust_code, json_file=json_file, markdown=markdown, html=html,
                               json_out=json_out)
    profiler = None
    if save_profile is not None:
        from edgekit.monitoring import ProfileBuilder

        profiler = ProfileBuilder(task)
    with validate_progress(console(stderr=True), reference, candidates, replay if replay is not None else data) \
            as progress:
        if replay is not None:
            rep = replay_log(reference, replay, task=task, device_class=device_class, atol=atol, rtol=rtol,
                             output_tolerances=tols, trust_code=trust_code, progress=progress)
        else:
            rep = validate(reference, candidates, data, labels=labels, task=task, device_class=device_class,
                           atol=atol, rtol=rtol, output_tolerances=tols, localize=localize, batch_size=batch_size,
                           preprocess=pre, trust_code=trust_code, observe=profiler and profiler.observe,
                           progress=progress, status=progress.status)
    failed = write_outputs([("--save-profile", save_profile, lambda: profile_text(profiler, rep, reference)),
                            ("--json-out", json_file, lambda: json.dumps(rep, indent=2, default=float)),
                            ("--markdown", markdown, lambda: to_markdown(rep)), ("--html", html, lambda: to_html(rep))])
    if json_out:
        print_json(rep)
    else:
        out = console()
        out.print(rich_table(rep, width=out.width))
    report_failure(failed)
    raise typer.Exit(outcome(targets_failed=any(_not_run(c) for c in rep["candidates"]),
                             checks_failed=any(c["verdict"] == "fail" for c in rep["candidates"])))


def _not_run(c: dict) -> bool:
    """A candidate that could not be loaded or run: failed with no precision and no output compared."""
    if "error" in c:
        return bool(c["error"])
    return c["verdict"] == "fail" and c.get("precision") is None and not c.get("outputs")
