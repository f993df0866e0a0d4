"""`edgekit` entry point. Imports of runtimes and frameworks happen inside commands, never here."""

from __future__ import annotations

import typer

from edgekit import __version__
from edgekit.cli import _common

app = typer.Typer(
    name="edgekit",
    help="Convert, compress, run, measure and validate models for edge and mobile devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's help: wraps at any width and never cuts an option name (rich's panels did)
)


def _version(value: bool):
    if value:
        typer.echo(f"edgekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the underlying tools' own logs."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    _common.STATE["debug"] = debug
    _common.STATE["verbose"] = verbose
    from edgekit import _quiet

    _quiet.VERBOSE = verbose or _quiet.VERBOSE


def _register():
    from edgekit.cli import bench, convert, demo, device, doctor, inspect, monitor, run, tune, validate

    app.command("inspect")(inspect.inspect_cmd)
    app.command("run")(run.run_cmd)
    app.command("doctor")(doctor.doctor_cmd)
    app.command("convert")(convert.convert_cmd)
    app.command("bench")(bench.bench_cmd)
    app.command("validate")(validate.validate_cmd)
    app.command("demo")(demo.demo_cmd)
    app.command("tune")(tune.tune_cmd)
    app.add_typer(device.app, name="device")
    app.add_typer(monitor.app, name="monitor")


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
