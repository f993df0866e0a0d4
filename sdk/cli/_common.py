"""Shared CLI plumbing: the error boundary and the console."""

from __future__ import annotations

import functools
import json
import sys
import traceback

import typer

from edgekit.errors import EdgekitError

STATE = {"debug": False, "verbose": False}


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 160  # tables piped to files or CI logs stay readable
    return Console(stderr=stderr, highlight=False, width=width)


def report_error(err: EdgekitError) -> None:
    if STATE["debug"]:
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    typer.echo(f"error: {err.message}", err=True)
    typer.echo(f"hint: {err.hint}", err=True)


def command(fn):
    """Wrap a command: an EdgekitError becomes `error:` + `hint:` lines and exit code 2 (or the error's own)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgekitError as e:
            report_error(e)
            raise typer.Exit(e.exit_code) from None

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
