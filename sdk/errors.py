"""Errors that say what went wrong and how to fix it.

Every user-facing failure is an ``EdgekitError`` with a one-line message and a one-line hint; the CLI prints
them as ``error: ...`` / ``hint: ...`` and exits with code 2. Anything else is an internal bug and keeps its
traceback.
"""

from __future__ import annotations


def first_line(err: BaseException, limit: int = 300) -> str:
    """The line of a tool's exception that says what went wrong: skips blank lines and native source-location
    lines ("Exception from src/...cpp:84:", "Check 'false' failed at ..."), falls back to the type's name."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Check '", "Check ", "Exception from ")) and not ln.endswith(":")]
    return ((useful or lines or [type(err).__name__])[0])[:limit]


class EdgekitError(Exception):
    """Base class for errors a user can act on."""

    exit_code = 2
    default_hint = "run with --debug for the full traceback"

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint

    def __str__(self) -> str:  # keep str(err) to the message; the hint is separate
        return self.message


class UnsupportedFormatError(EdgekitError):
    default_hint = (
        "edgekit reads .tflite, .onnx, OpenVINO IR (.xml + .bin), .mlpackage/.mlmodel, .keras/.h5, "
        "SavedModel folders, .pt2 and TorchScript .pt files"
    )


class ModelFileError(EdgekitError):
    """The file claims a known format but is corrupt, truncated or unsafe to load."""

    default_hint = "re-export or re-download the model; the file on disk is not a complete model"


class MissingDependencyError(EdgekitError):
    def __init__(self, package: str, extra: str, purpose: str = ""):
        what = f" to {purpose}" if purpose else ""
        super().__init__(
            f"the package '{package}' is needed{what} but is not installed",
            f"pip install 'edgekit[{extra}]'",
        )
        self.package = package
        self.extra = extra


class TrustRequiredError(EdgekitError):
    default_hint = "pass trust_code=True (CLI: --trust-code) only if you trust where this file came from"


class InputError(EdgekitError):
    default_hint = "check the model's inputs with `edgekit inspect MODEL`"


class PlatformError(EdgekitError):
    """The operation cannot run on this operating system or hardware (e.g. Core ML off macOS)."""

    default_hint = "inspect still works here; run predictions on a machine that supports this runtime"


class BackendError(EdgekitError):
    """The runtime refused the model or failed while running it."""

    default_hint = "try another backend with --backend, or run with --debug for the runtime's message"


class ConversionError(EdgekitError):
    default_hint = "run with --explain to see the route and --debug for the converter's own message"


class ParityError(EdgekitError):
    default_hint = "the converted model's outputs differ from the source; see the parity report"
