"""`edgekit monitor report LOG [--html FILE]`: what a monitor log says (see edgekit.monitoring)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgekit.cli._common import command, console, outcome

app = typer.Typer(help="Read what edgekit.monitor recorded on a device.", no_args_is_help=True)


@app.command("report")
@command
def report_cmd(
    log: Path = typer.Argument(..., help="The monitor's log folder (log_dir=...)."),
    html: Path = typer.Option(None, "--html", help="Write a self-contained HTML report (plots and alerts)."),
    json_file: Path = typer.Option(None, "--json", help="Write the window records as one JSON list."),
):
    """Latency over time, drift per feature, task metrics per window and the alerts of a monitor log.

    Exit codes: 0 no window raised an alert; 1 some window did; 2 a user error (not a monitor log, an output that
    cannot be written)."""
    import json

    from edgekit.cli._files import check_output, report_failure, write_outputs
    from edgekit.monitoring.report import read_windows, rich_table, to_html

    for flag, path in (("--html", html), ("--json", json_file)):
        if path is not None:
            check_output(path, flag)
    windows = read_windows(log)
    failed = write_outputs([("--html", html, lambda: to_html(windows, log)),
                            ("--json", json_file, lambda: json.dumps(windows, indent=2))])
    console().print(rich_table(windows, log))
    report_failure(failed)
    raise typer.Exit(outcome(checks_failed=any(w.get("alerts") for w in windows)))


# ------------------------------------------------------------------- what `edgekit validate` borrows from here


def validate_mode(candidates, data, replay, save_profile) -> list:
    """Check validate's monitoring options against the rest of its line; returns the candidates (a list)."""
    from edgekit.errors import InputError

    candidates = list(candidates or [])
    if replay is not None:
        if data is not None or candidates:
            raise InputError("--replay compares the reference with the outputs recorded in the log, on the logged "
                             "inputs: it takes no --data and no candidate models",
                             "run `edgekit validate REFERENCE --replay LOG` alone")
        if save_profile is not None:
            raise InputError("--save-profile profiles the validation data, not a replayed log",
                             "save the profile from a run with --data")
        return candidates
    if data is None:
        raise InputError("no data given", "pass --data DATA (or --replay LOG to check a monitor's sample log)")
    if not candidates and save_profile is None:
        raise InputError("no candidate model to validate", "give converted models after the reference, or "
                         "--save-profile FILE to profile the reference alone")
    return candidates


def profile_text(builder, rep, reference) -> str:
    """The profile JSON `--save-profile` writes: the reference's features on the validation data."""
    import json

    from edgekit.cli._files import model_files
    from edgekit.conversion import _sha256

    task = rep["task"]
    if task == "raw" and builder.extractor is not None and builder.extractor.class_names:
        task = "classification"
    builder.task = task
    files = [f for f in dict.fromkeys(model_files(reference)) if f.is_file()]
    return json.dumps(builder.profile({"path": str(reference), "sha256": _sha256(files), "role": "reference"}))

