"""Runs the ONNX graph passes (onnx-ir, onnxscript's optimizer) before a vendor converter reads an ``.onnx`` file.

``rewrite_onnx(path, out_dir, pins=...)`` returns a ``Rewritten``: the file to convert (the original path, untouched,
when no pass applies; else a rewritten copy in ``out_dir``), what was pinned and notes in the user's words. The
passes, one module each:

- ``onnx_pin_dims``: dynamic input dims pinned to given sizes, shapes re-inferred, shape subgraphs folded
- ``onnx_flatten_transpose``: a channels-first flatten then transpose (detection heads) in the order onnx2tf keeps

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
                 why: str = "", layout: bool = False) -> Rewritten:
    """Apply the passes that have work to do. ``pins``: ``{input: {axis: size}}`` for dynamic dims; ``why``
    ends the note (e.g. "onnx2tf cannot keep them dynamic"); ``layout``: the passes for a converter that works
    channels-last inside (onnx2tf)."""
    path = Path(path)
    done = Rewritten(path)
    if any((pins or {}).values()):
        from .onnx_pin_dims import pin_file

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        dest = Path(out_dir) / path.name
        pinned = pin_file(path, dest, pins)
        if pinned:
            done = Rewritten(dest, pinned, [pinned_note(pinned, why)])
        else:
            dest.unlink(missing_ok=True)
    if layout:
        _flatten_transpose(done, Path(out_dir))
    return done


def _flatten_transpose(done: Rewritten, out_dir: Path) -> None:
    import onnx

    from . import onnx_flatten_transpose

    model = onnx.load(str(done.path))
    n = onnx_flatten_transpose.run(model)
    if not n:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / done.path.name
    big = model.ByteSize() > 1_800_000_000  # protobuf's 2 GB limit: weights beside the graph
    onnx.save(model, str(dest), save_as_external_data=big, location=f"{dest.name}.data" if big else None)
    done.path = dest
    done.notes.append(f"rewrote {n} channels-first flatten + transpose as transpose + reshape (the same numbers, "
                      "in the layout onnx2tf keeps)")


def pinned_note(pinned: dict[str, dict[int, int]], why: str = "") -> str:
    """'pinned dynamic dims: tokens dim 1 = 7, ... (why)'."""
    parts = [f"{name} dim {axis} = {size}" for name, dims in pinned.items() for axis, size in sorted(dims.items())]
    return "pinned dynamic dims: " + ", ".join(parts) + (f" ({why})" if why else "")
