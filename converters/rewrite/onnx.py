"""Runs the ONNX graph passes (onnx-ir, onnxscript's optimizer) before a vendor converter reads an ``.onnx`` file.

``rewrite_onnx(path, out_dir, pins=...)`` returns a ``Rewritten``: the file to convert (the original path, untouched,
when no pass applies; else a rewritten copy in ``out_dir``), what was pinned and notes in the user's words. The
passes, one module each:

- ``onnx_pin_dims``: dynamic input dims pinned to given sizes, shapes re-inferred, shape subgraphs folded

Dims are named to the user by input name and axis ("tokens dim 1"), never by the exporter's symbols
(``unk__214``, ``s43``): those are internal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Rewritten:
    path: Path
    pinned: dict[str, dict[int, int]] = field(default_factory=dict)  # input -> {axis: size}
    notes: list[str] = field(default_factory=list)


def dynamic_axes(path: Path) -> dict[str, list[int]]:
    """``{input name: [dynamic axes]}`` of an ONNX file (its weights are not read)."""
    import onnx_ir as ir

    from .onnx_pin_dims import dynamic_axes as axes

    return axes(ir.load(str(path)))


def rewrite_onnx(path: Path, out_dir: Path, *, pins: dict[str, dict[int, int]] | None = None,
                 why: str = "") -> Rewritten:
    """Apply the passes that have work to do. ``pins``: ``{input: {axis: size}}`` for dynamic dims; ``why``
    ends the note (e.g. "onnx2tf cannot keep them dynamic")."""
    path = Path(path)
    if not any((pins or {}).values()):
        return Rewritten(path)
    from .onnx_pin_dims import pin_file

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    dest = Path(out_dir) / path.name
    pinned = pin_file(path, dest, pins)
    if not pinned:
        dest.unlink(missing_ok=True)
        return Rewritten(path)
    return Rewritten(dest, pinned, [pinned_note(pinned, why)])


def pinned_note(pinned: dict[str, dict[int, int]], why: str = "") -> str:
    """'pinned dynamic dims: tokens dim 1 = 7, ... (why)'."""
    parts = [f"{name} dim {axis} = {size}" for name, dims in pinned.items() for axis, size in sorted(dims.items())]
    return "pinned dynamic dims: " + ", ".join(parts) + (f" ({why})" if why else "")
