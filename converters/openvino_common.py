"""Shared by the edges that end in OpenVINO IR: convert, fix input shapes, save with the asked precision."""

from __future__ import annotations

from pathlib import Path

from edgekit.formats import Format

from .base import Artifact, ConvertOptions, fail


def save_ir(make, src: Artifact, options: ConvertOptions, out: Path, names: dict[str, str] | None = None) -> Artifact:
    """``make(ov)`` returns an ov.Model. ``names`` renames input/output tensors (tool name -> public name).
    fp32 is saved with compress_to_fp16=False: openvino.save_model would otherwise store fp16 weights."""
    import openvino as ov

    try:
        model = make(ov)
    except Exception as e:  # OpenVINO frontends raise OpConversionFailure, RuntimeError, ...
        raise fail("openvino.convert_model failed", e, _failing_op(e)) from e
    if names:
        for port in list(model.inputs) + list(model.outputs):
            hit = next((names[n] for n in port.get_names() if n in names), None)
            if hit is not None:
                port.get_tensor().set_names({hit})
    model = _in_source_order(ov, model, options.input_order)
    if options.input_shapes:
        shapes = {}
        for port in model.inputs:
            for n in port.get_names():
                if n in options.input_shapes:
                    shapes[port] = ov.PartialShape([-1 if d is None else d for d in options.input_shapes[n]])
        if shapes:
            model.reshape(shapes)
    path = out / f"{src.path.stem}.xml"
    ov.save_model(model, str(path), compress_to_fp16=options.precision == "fp16")
    return Artifact(path, Format.OPENVINO_IR, options.precision)


def _in_source_order(ov, model, order: list[str]):
    """Rebuild ``model`` with its parameters in the source's input order (through a SavedModel, inputs arrive
    sorted by name), so positional feeding of the IR matches the source."""
    params = list(model.get_parameters())
    if len(params) < 2 or not order or model.get_sinks():
        return model
    pos = {}
    for i, p in enumerate(params):
        for n in p.output(0).get_names():
            if n in order:
                pos[i] = order.index(n)
    if len(pos) != len(params) or sorted(pos.values()) != list(range(len(params))):
        return model  # names differ from the source's: leave the tool's order
    ranked = sorted(range(len(params)), key=pos.__getitem__)
    if ranked == list(range(len(params))):
        return model
    return ov.Model(model.get_results(), [params[i] for i in ranked], model.get_friendly_name())


def _failing_op(err: Exception) -> str | None:
    import re

    s = str(err)
    m = re.search(r"No conversion rule found for operations: ([\w.:/-]+)", s) or \
        re.search(r"No translator found for ([\w.:/-]+) node", s) or \
        re.search(r"(?:operation|Op|op)[ :]+['\"]?([A-Za-z_][\w.:/-]*)['\"]?", s)
    return m.group(1) if m else None
