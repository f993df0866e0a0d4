"""`edgekit tune MODEL --data DATA --targets ... --max-accuracy-drop PTS`: search conversion settings for the
fastest (smallest) deployment within the accuracy budget; print each trial as it finishes, then the table, the
best feasible trial, and where the recipe, the Pareto PNG and the HTML report went."""

from __future__ import annotations

from pathlib import Path

import typer

from edgekit.cli._common import (INTERRUPTED, OK, STATE, TARGETS_FAILED, CHECK_FAILED, command, console,
                                 print_json)

SAMPLERS = ("grid", "random", "tpe", "gp", "nsga2")
OBJECTIVES = ("latency", "size", "memory")


@command
def tune_cmd(
    model: Path = typer.Argument(..., help="Source model: .keras, .h5, SavedModel folder, .pt2, .onnx, .tflite ..."),
    data: Path = typer.Option(..., "--data", help="Evaluation data: .npz with the inputs and a 'labels' array."),
    calibration: Path = typer.Option(None, "--calibration", help="Calibration data for int8 (default: taken from "
                                     "--data, with a warning, or per fold with --folds)."),
    targets: str = typer.Option("tflite,onnx,openvino", "--targets", help="Targets to search, comma-separated."),
    max_accuracy_drop: float = typer.Option(1.0, "--max-accuracy-drop", min=0.0, help="Budget in accuracy points: a "
                                            "trial is feasible when the upper end of its drop's 95% CI is within."),
    max_latency_ms: float = typer.Option(None, "--max-latency-ms", min=0.0, help="Latency budget (ms per call)."),
    max_size_mb: float = typer.Option(None, "--max-size-mb", min=0.0, help="Size budget (MB on disk)."),
    objective: list[str] = typer.Option(None, "--objective", help="latency, size or memory (repeatable: several "
                                        "give a Pareto front). Default: latency."),
    sampler: str = typer.Option("tpe", "--sampler", help="grid, random, tpe, gp or nsga2."),
    trials: int = typer.Option(None, "--trials", min=1, help="Number of trials (grid: default the whole grid)."),
    timeout: float = typer.Option(None, "--timeout", min=0.0, help="Stop starting trials after S seconds."),
    folds: int = typer.Option(None, "--folds", min=2, help="K-fold: calibrate on one fold, evaluate on the others."),
    storage: str = typer.Option(None, "--storage", help="Optuna storage URL (default sqlite:///OUTPUT_DIR/tune.db); "
                                "postgresql://user@host/db lets several workers share one study."),
    study: str = typer.Option(None, "--study", help="Study name (default: from the model's content hash); the same "
                              "--storage and --study resume a study."),
    space: list[str] = typer.Option(None, "--space", help="Restrict a knob's choices: NAME=v1,v2 (repeatable), e.g. "
                                    "precision=fp32,int8."),
    seed: int = typer.Option(0, "--seed", help="Sampler seed."),
    output_dir: Path = typer.Option(Path("tune_out"), "--output-dir", "-o", help="Artifacts, recipe.json, "
                                    "pareto.png, the default SQLite storage and report.html."),
    html: Path = typer.Option(None, "--html", help="Write the HTML report here (default OUTPUT_DIR/report.html)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON (trial rows go to stderr)."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Allow source formats whose loading can run code."),
    device: str = typer.Option(None, "--device", help="Time each trial on registered devices over SSH "
                               "(NAME[,NAME...], see `edgekit device`): one worker per device; several devices "
                               "should be of one kind, as their timings enter one study."),
):
    """Search conversion settings (target, precision, quantization knobs, threads...) within an accuracy budget.

    Exit codes: 0 a feasible trial was found; 1 the search ran but no trial met the budget; 2 a user error;
    3 every trial failed (none could be converted or run); 130 Ctrl-C (finished trials are kept in the storage:
    run the same command again to resume)."""
    from edgekit.cli._files import check_output, refuse_overwrite
    from edgekit.conversion import parse_targets
    from edgekit.tuning import tune

    opts = _parse(sampler, objective or ["latency"], space, storage)
    names = parse_targets(targets)
    check_output(output_dir, "--output-dir", folder=True)
    html = html or output_dir / "report.html"
    check_output(html, "--html")
    protected = [("the model", model), ("the --data file", data), ("the --calibration file", calibration)]
    refuse_overwrite({"--html": html}, protected)
    for flag, path in (("--data", data), ("--calibration", calibration)):
        if path is not None and not path.exists():
            from edgekit.errors import InputError

            raise InputError(f"{flag} {path}: no such file or folder", "pass an .npz with the inputs and 'labels'")
    err = console(stderr=True)
    done: list = []

    def progress(t) -> None:
        done.append(t)
        err.print(_progress_line(t))

    measure = None
    if device:
        from edgekit.cli.device import tune_measure

        measure, opts["space"] = tune_measure(device, opts["space"], names, err)
    try:
        result = tune(model, data, targets=tuple(names), calibration=calibration,
                      max_accuracy_drop=max_accuracy_drop, max_latency_ms=max_latency_ms, max_size_mb=max_size_mb,
                      objectives=opts["objectives"], sampler=opts["sampler"], trials=trials, timeout=timeout,
                      folds=folds, storage=opts["storage"], study=study, output_dir=output_dir, seed=seed,
                      trust_code=trust_code, space=opts["space"], progress=progress, measure=measure)
    except KeyboardInterrupt:
        _interrupted(err, done, opts["storage"] or f"sqlite:///{output_dir}/tune.db", study)
        raise typer.Exit(INTERRUPTED) from None
    finally:
        if measure is not None:
            measure.close()
    files = _write(result, output_dir, html, max_accuracy_drop, opts["objectives"])
    _render(result, files, json_out)
    if getattr(result, "interrupted", False):
        kept = [t for t in result.trials if not (t.state == "failed" and "interrupted" in (t.reason or ""))]
        _interrupted(err, kept, result.storage, result.study_name)
        raise typer.Exit(INTERRUPTED)
    raise typer.Exit(exit_code(result))


def exit_code(result) -> int:
    """0 a feasible best; 3 no trial could run at all; 1 the search ran and nothing met the budget."""
    if result.best is not None:
        return OK
    if result.trials and all(t.state == "failed" for t in result.trials):
        return TARGETS_FAILED
    return CHECK_FAILED


def _parse(sampler: str, objectives: list[str], space: list[str] | None, storage: str | None) -> dict:
    """Check the options given as words before any work starts."""
    from edgekit.errors import InputError

    s = sampler.strip().lower()
    if s not in SAMPLERS:
        raise InputError(f"unknown --sampler {sampler!r}", f"choose one of: {', '.join(SAMPLERS)}")
    objs = [o.strip().lower() for o in objectives]
    bad = [o for o in objs if o not in OBJECTIVES]
    if bad:
        raise InputError(f"unknown --objective {bad[0]!r}", f"choose from: {', '.join(OBJECTIVES)} (repeatable)")
    if len(set(objs)) != len(objs):
        raise InputError(f"--objective given twice: {', '.join(objs)}", "give each objective once")
    if storage is not None and "://" not in storage:
        raise InputError(f"--storage {storage!r} is not a database URL",
                         f"use sqlite:///{storage} for a local file, or postgresql://user@host:port/db")
    return {"sampler": s, "objectives": tuple(objs), "space": parse_space(space), "storage": storage}


def parse_space(items: list[str] | None) -> dict | None:
    """--space NAME=v1,v2 -> {NAME: (v1, v2)}, numbers and true/false/none as such, other words as strings."""
    from edgekit.errors import InputError

    if not items:
        return None
    out = {}
    for item in items:
        name, sep, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name.strip() or not vals:
            raise InputError(f"--space {item!r} is not NAME=v1,v2", "e.g. --space precision=fp32,int8 --space "
                             "threads=1,2")
        out[name.strip()] = tuple(_value(v) for v in vals)
    return out


def _value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _progress_line(t) -> str:
    from edgekit.tuning.report import fmt_drop, fmt_mb, fmt_ms, fmt_params

    mark = {"complete": "[green]ok[/]", "infeasible": "[yellow]infeasible[/]"}.get(t.state, "[red]failed[/]")
    line = (f"[dim]trial[/] {t.number:>3} {t.target or '-'} {fmt_params(t.params)}: latency {fmt_ms(t.latency_ms)} "
            f"ms, size {fmt_mb(t.size_mb)} MB, drop {fmt_drop(t)} {mark}")
    return line + (f" [dim]({t.reason})[/]" if t.reason else "")


def _write(result, output_dir: Path, html: Path, budget: float, objectives) -> dict:
    """The recipe (when a feasible trial exists, by TuneResult.write_recipe), the Pareto PNG and the HTML report;
    one that cannot be written is reported after the others and the table (the trials stay in the storage)."""
    from edgekit.cli._files import report_failure, write_outputs
    from edgekit.errors import EdgekitError
    from edgekit.tuning import report

    files = {"png": output_dir / "pareto.png", "html": html}
    failed = []
    if result.best is not None:
        files["recipe"] = output_dir / "recipe.json"
        try:
            files["recipe"] = Path(result.write_recipe(files["recipe"]))
        except (OSError, EdgekitError) as e:
            failed.append(f"recipe {files['recipe']} ({getattr(e, 'message', None) or getattr(e, 'strerror', e)})")
    failed += write_outputs([("pareto.png", files["png"], lambda: report.pareto_png(result, budget=budget)),
                             ("--html", html, lambda: report.to_html(result, budget=budget, objectives=objectives))])
    files = {k: v for k, v in files.items() if not any(f" {v} (" in f for f in failed)}
    try:
        report_failure(failed)
    except EdgekitError as e:  # raised after the table is printed
        files["error"] = e
    return files


def _render(result, files: dict, json_out: bool) -> None:
    from edgekit.tuning import report

    out = console()
    err = console(stderr=True)
    if json_out:
        doc = result.to_dict()
        doc["files"] = {k: str(v) for k, v in files.items() if k != "error"}
        print_json(doc)
    else:
        out.print(report.rich_table(result, width=out.width))
        if len(result.pareto) > 1:
            out.print(report.rich_table(result, pareto_only=True, width=out.width))
        out.print(report.best_summary(result))
    where = err if json_out else out
    for w in result.warnings:
        where.print(f"[yellow]warning:[/] {w}")
    names = {"recipe": "recipe (edgekit convert MODEL --recipe FILE replays it)", "png": "Pareto plot",
             "html": "HTML report"}
    for k, label in names.items():
        if k in files:
            where.print(f"{label}: {files[k]}")
    where.print(f"study {result.study_name!r} in {_redact(result.storage)}")
    if "error" in files:
        raise files["error"]


def _redact(url) -> str:
    from edgekit.tuning.report import _redact as redact

    return redact(url)


def _interrupted(err, done, storage: str, study: str | None) -> None:
    err.print(f"interrupted: {len(done)} finished trial(s) kept in {_redact(storage)}"
              + (f" (study {study!r})" if study else ""))
    err.print("to resume, run the same command again (same --storage and --study, or the same --output-dir)")
    if STATE["debug"]:
        err.print("(--debug) the trial running at Ctrl-C was recorded as failed")
