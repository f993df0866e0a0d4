"""Helpers for the CLI tests: invoke `edgekit` in-process and check results by their numbers and exit codes."""

from __future__ import annotations

import json
import traceback

import numpy as np
from typer.testing import CliRunner

from edgekit.cli.main import app

# typer's CliRunner keeps stderr separate (result.stderr) and also mixes both streams into result.output
RUNNER = CliRunner()


def invoke(*args):
    return RUNNER.invoke(app, [str(a) for a in args])


def describe(result) -> str:
    """Everything needed to understand a failed CLI call in an assertion message."""
    exc = ""
    if result.exc_info is not None and not isinstance(result.exception, SystemExit):
        exc = "".join(traceback.format_exception(*result.exc_info))
    return (f"exit code {result.exit_code}\n--- stdout ---\n{result.stdout[-3000:]}\n"
            f"--- stderr ---\n{result.stderr[-3000:]}\n--- exception ---\n{exc}")


def ok(*args):
    """Invoke and require exit code 0 with no leaked exception."""
    result = invoke(*args)
    assert result.exit_code == 0 and result.exception is None, describe(result)
    return result


def ok_json(*args):
    result = ok(*args)
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as e:  # stdout must hold the JSON document and nothing else
        raise AssertionError(f"stdout is not JSON ({e})\n{describe(result)}") from None


def user_error(result, *fragments: str) -> str:
    """Check the CLI's error contract and return the error line (without 'error: ').

    Exit code 2, exactly one `error: ...` and one `hint: ...` line on stderr, no traceback, no leaked exception;
    every fragment (case-insensitive) appears in the error line.
    """
    info = describe(result)
    assert result.exit_code == 2, info
    assert isinstance(result.exception, SystemExit), info  # an internal exception would give exit 1
    lines = result.stderr.splitlines()
    errors = [ln for ln in lines if ln.startswith("error: ")]
    hints = [ln for ln in lines if ln.startswith("hint: ")]
    assert len(errors) == 1, info
    assert len(hints) == 1 and len(hints[0]) > len("hint: ") + 3, info
    assert "Traceback" not in result.output, info
    assert "error: " not in result.stdout, info
    msg = errors[0][len("error: "):]
    for frag in fragments:
        assert frag.lower() in msg.lower(), f"{frag!r} not in error line {msg!r}\n{info}"
    return msg


def hint_of(result) -> str:
    return next(ln for ln in result.stderr.splitlines() if ln.startswith("hint: "))[len("hint: "):]


def assert_close(got, ref, rel: float = 1e-5, what: str = "") -> None:
    """`got` equals `ref` within `rel` times the reference's range (absolute tolerance)."""
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != reference {ref.shape}"
    span = float(ref.max() - ref.min()) if ref.size else 0.0
    if span == 0.0:
        span = max(float(np.abs(ref).max()) if ref.size else 0.0, 1.0)
    err = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
    assert err <= rel * span, f"{what}: max |diff| {err:.3g} > {rel:g} x range {span:.3g}"


def rejected(result) -> None:
    """A refusal by the CLI itself (a typer usage error or an edgekit error): exit code 2, no leaked exception,
    no traceback."""
    info = describe(result)
    assert result.exit_code == 2, info
    assert isinstance(result.exception, SystemExit), info
    assert "Traceback" not in result.output, info
