"""`edgekit monitor report LOG [--html FILE]`: what a monitor log says; `edgekit monitor serve MODEL`: a monitored
model over HTTP (see edgekit.monitoring)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgekit.cli._common import command, console, outcome, print_json

app = typer.Typer(help="Serve a monitored model; read what edgekit.monitor recorded.", no_args_is_help=True)


@app.command("report")
@command
def report_cmd(
    log: Path = typer.Argument(..., help="The monitor's log folder (log_dir=...)."),
    html: Path = typer.Option(None, "--html", help="Write a self-contained HTML report (plots and alerts)."),
    json_out: bool = typer.Option(False, "--json", help="Print the window records as JSON to stdout (no table)."),
    json_file: Path = typer.Option(None, "--json-out", help="Write the window records as one JSON list."),
):
    """Latency over time, drift per feature, task metrics per window and the alerts of a monitor log.

    Exit codes: 0 no window raised an alert; 1 some window did; 2 a user error (not a monitor log, an output that
    cannot be written)."""
    import json

    from edgekit.cli._files import check_output, report_failure, write_outputs
    from edgekit.monitoring.report import read_windows, rich_table, to_html

    for flag, path in (("--html", html), ("--json-out", json_file)):
        if path is not None:
            check_output(path, flag)
    windows = read_windows(log)
    failed = write_outputs([("--html", html, lambda: to_html(windows, log)),
                            ("--json-out", json_file, lambda: json.dumps(windows, indent=2))])
    if json_out:
        print_json(windows)
    else:
        console().print(rich_table(windows, log))
    report_failure(failed)
    raise typer.Exit(outcome(checks_failed=any(w.get("alerts") for w in windows)))


# ------------------------------------------------------------------- what `edgekit validate` borrows from here


def validate_mode(candidates, data, replay, save_profile, data_options: dict | None = None) -> list:
    """Check validate's monitoring options against the rest of its line; returns the candidates (a list).
    ``data_options``: {flag: value or None} of the options about --data, which a replay does not take."""
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
        given = [flag for flag, v in (data_options or {}).items() if v is not None]
        if given:
            raise InputError(f"--replay compares the recorded outputs only: {given[0]} does not apply to it",
                             "drop that option, or validate model files on --data to use it")
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



@app.command("serve")
@command
def serve_cmd(
    model: Path = typer.Argument(..., help="The model to serve."),
    profile: Path = typer.Option(None, "--profile", help="Reference profile (edgekit validate --save-profile)."),
    port: int = typer.Option(9464, "--port", min=0, max=65535, help="Port (0: a free one, printed)."),
    addr: str = typer.Option("127.0.0.1", "--addr", help="Address to listen on (0.0.0.0: every interface)."),
    window: int = typer.Option(1000, "--window", min=2, help="Samples per drift test."),
    alpha: float = typer.Option(0.01, "--alpha", help="False-alarm rate per window."),
    log_dir: Path = typer.Option(None, "--log-dir", help="Write window records here (and samples, --sample-rate)."),
    sample_rate: float = typer.Option(None, "--sample-rate", help="Calls per second kept in the sample log."),
    sample_max_bytes: int = typer.Option(64 << 20, "--sample-max-bytes", help="Size cap of the sample log."),
    max_body: int = typer.Option(256 << 20, "--max-body", help="Largest request body accepted, in bytes."),
    threads: int = typer.Option(None, "--threads", min=1, help="Runtime threads (default: the device class's)."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Trust this model file to run code when loaded."),
):
    """Serve a monitored model over HTTP: POST /predict (.npz/.npy in, .npz out), POST /feedback?call_id=ID,
    GET /metrics for Prometheus. Runs until Ctrl-C, then closes the last window and the sample log."""
    import edgekit
    from edgekit.monitoring.server import serve_model

    if log_dir is not None:
        from edgekit.cli._files import check_output

        check_output(log_dir, "--log-dir", folder=True)
    with edgekit.load(model, threads=threads, trust_code=trust_code) as m:
        mon = edgekit.monitor(m, profile, window=window, thresholds={"alpha": alpha}, log_dir=log_dir,
                              sample_rate=sample_rate, sample_max_bytes=sample_max_bytes)
        try:
            server = serve_model(mon, port, addr, max_body)
        except OSError as e:
            from edgekit.errors import InputError

            raise InputError(f"cannot listen on {addr}:{port}: {e.strerror or e}",
                             "pick another --port (0 picks a free one)") from None
        import signal

        def _stop(*_):
            raise KeyboardInterrupt  # SIGTERM stops as Ctrl-C does: the last window and the sample log are kept

        signal.signal(signal.SIGTERM, _stop)
        host, bound = server.server_address[:2]
        typer.echo(f"serving {model} on http://{host}:{bound} (POST /predict, POST /feedback, GET /metrics)",
                   err=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
            mon.close()
            typer.echo(f"stopped after {mon.calls} calls, {mon.windows_closed} windows", err=True)
