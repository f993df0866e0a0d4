"""Runs the TFLite flatbuffer passes before a vendor converter reads a ``.tflite`` file.

``rewrite_tflite(path, out_dir)`` returns the file to convert and notes saying which pass ran: the original path,
untouched, when no pass applies; else a rewritten copy in ``out_dir`` that edgekit's own reader
(formats.tflite_fb) has read back and checked. The passes, one module each:

- ``tflite_transpose_conv_bias``: MediaPipe's Convolution2DTransposeBias custom operator -> TRANSPOSE_CONV
- ``tflite_densify``: sparse constant weights (DENSIFY, or read directly) -> dense constants

``refuse_custom`` names a custom operator no pass knows, with what to do about it.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import ConversionError, EdgekitError

# (module name, the op name in the reader's histogram that makes it worth opening the object tree)
PASSES = (("tflite_transpose_conv_bias", "CUSTOM:Convolution2DTransposeBias"), ("tflite_densify", "DENSIFY"))
KNOWN_CUSTOM = ("Convolution2DTransposeBias",)


def rewrite_tflite(path: Path, out_dir: Path) -> tuple[Path, list[str]]:
    """Apply every pass that matches; (the file to convert, notes)."""
    import importlib

    from edgekit.formats.tflite_fb import FlatbufferError, read_tflite

    from .tflite_model import read_model, write_model

    path = Path(path)
    data = path.read_bytes()
    info = read_tflite(data)
    ops = info.op_histogram()
    # a sparse constant read directly (1x4 block-sparse FULLY_CONNECTED) leaves its operator unchecked
    triggered = any(trigger in ops for _, trigger in PASSES)
    if not triggered and info.vouched:
        return path, []
    try:
        model = read_model(data)
    except EdgekitError:  # the object tree cannot carry this file, or no schema is installed (MissingDependency)
        if triggered:
            raise
        return path, []  # only looking for sparse constants read directly: leave the file to the converter
    notes: list[str] = []
    for name, _ in PASSES:
        notes += importlib.import_module(f"{__package__}.{name}").run(model)
    if not notes:
        return path, []
    out = write_model(model)
    try:
        read_tflite(out)
    except FlatbufferError as e:  # a pass's bug: never hand a converter a file edgekit's reader refuses
        raise ConversionError(f"the rewritten TFLite file fails edgekit's own check: {e}",
                              "report this with the model file; converting without the rewrite is not possible") from e
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    dest = Path(out_dir) / f"{path.stem}.rewritten.tflite"
    dest.write_bytes(out)
    return dest, notes


def custom_ops(info) -> list[str]:
    """The custom operators (``CUSTOM:<code>``) left in a file the reader read."""
    return [op for op in info.op_histogram() if op.startswith("CUSTOM:")]


def refuse_custom(ops: list[str], tool: str) -> ConversionError:
    """The error for custom operators no pass rewrites: named, with what to do."""
    names = ", ".join(op.split(":", 1)[1] for op in ops)
    err = ConversionError(
        f"{tool} cannot convert the custom TFLite operator(s) {names}, and edgekit has no rewrite for them",
        f"edgekit rewrites {', '.join(KNOWN_CUSTOM)} only: export the model without custom operators (or with "
        "their builtin equivalents), or convert it from its source framework")
    err.op = ops[0]
    return err
