"""Shared CLI plumbing: the exit-code contract, the error boundary and the console."""

from __future__ import annotations

import errno
import os
import functools
import json
import sys
import traceback

import typer

from edgekit.errors import EdgekitError

STATE = {"debug": False, "verbose": False}

# The exit-code contract of every command (docs/EXIT_CODES.md). When several apply, the first in this order
# wins: USER_ERROR, TARGETS_FAILED, CHECK_FAILED, OK.
OK = 0  # everything asked was done; every check that ran passed ('unverified' results do not fail)
CHECK_FAILED = 1  # the work was done and a check failed (a validate verdict, a convert parity or int8 gate)
USER_ERROR = 2  # nothing or not all was done because of the input: `error:` and `hint:` lines on stderr
TARGETS_FAILED = 3  # some targets failed (a model that would not load or run, a conversion that failed)
INTERNAL_ERROR = 4  # a bug in edgekit or in a tool it called: the traceback is printed, please report it
INTERRUPTED = 130  # Ctrl-C outside a measurement (bench keeps what it measured and exits as usual)


def outcome(targets_failed: bool = False, checks_failed: bool = False) -> int:
    """The exit code of a command whose work ran: TARGETS_FAILED over CHECK_FAILED over OK."""
    return TARGETS_FAILED if targets_failed else CHECK_FAILED if checks_failed else OK


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # a terminal's own width, or COLUMNS; piped to a file or a CI log without COLUMNS: 160 (tables fit it)
    width = None if stream.isatty() or os.environ.get("COLUMNS", "").isdigit() else 160
    return Console(stderr=stderr, highlight=False, width=width)


def json_flag_misuse(paths, json_flag: bool) -> None:
    """`--json` prints JSON to stdout in every command; `--json-out PATH` writes a file. A `--json r.json` of
    the old spelling leaves a .json path among the models: refuse it with the new spelling."""
    if json_flag:
        for p in paths or []:
            if str(p).lower().endswith(".json"):
                raise EdgekitError(f"--json takes no path: {p} was read as a model",
                                   f"--json prints JSON to stdout; write a file with --json-out {p}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def report_error(err: EdgekitError) -> None:
    if STATE["debug"]:
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    typer.echo(f"error: {_one_line(err.message)}", err=True)
    typer.echo(f"hint: {_one_line(err.hint)}", err=True)


def command(fn):
    """Wrap a command: an EdgekitError becomes `error:` + `hint:` lines and USER_ERROR (or the error's own code);
    Ctrl-C gives INTERRUPTED; any other exception is a bug: its traceback and INTERNAL_ERROR, never exit 1
    (which means a check failed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgekitError as e:
            report_error(e)
            raise typer.Exit(getattr(e, "exit_code", USER_ERROR)) from None
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
            raise  # typer.Exit, usage errors (BadParameter...): typer's own handling
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(INTERRUPTED) from None
        except MemoryError as e:  # what the checks before allocation could not foresee (memory taken meanwhile)
            report_error(EdgekitError(f"out of memory{': ' + str(e) if str(e) else ''}",
                                      "use fewer samples, smaller shapes or a smaller --batch-size"))
            raise typer.Exit(USER_ERROR) from None
        except BrokenPipeError:
            raise  # `edgekit ... | head`: click handles a closed pipe
        except Exception as e:
            if isinstance(e, OSError) and e.errno == errno.EPIPE:
                raise
            traceback.print_exc(file=sys.stderr)
            typer.echo(f"internal error: {type(e).__name__} (a bug in edgekit or a tool it called; please report "
                       "it with the traceback above)", err=True)
            raise typer.Exit(INTERNAL_ERROR) from None

    return wrapper


def print_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, default=_json_default))


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
