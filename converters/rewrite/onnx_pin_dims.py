"""ONNX pass: pin dynamic input dims to given sizes (onnx-ir), re-run shape inference and fold what became
constant (``Shape`` -> ``Gather`` -> ``Concat`` chains that compute a ``Reshape`` target, for instance), so a
converter that cannot keep a dynamic dim sees a static graph.

``pins`` is ``{input name: {axis: size}}``; an axis that is already static is left alone (a different size is an
error: it would change the model). Dims left out stay dynamic. Returns what was pinned, ``{name: {axis: size}}``.
"""

from __future__ import annotations

from pathlib import Path


def dynamic_axes(model) -> dict[str, list[int]]:
    """``{input name: [axes whose size is not fixed]}`` of an ``onnx_ir.Model`` (inputs with unknown rank: [])."""
    out = {}
    for v in model.graph.inputs:
        if v.shape is None:
            out[v.name] = []
            continue
        out[v.name] = [i for i, d in enumerate(v.shape) if not isinstance(d, int)]
    return out


def pin(model, pins: dict[str, dict[int, int]]) -> dict[str, dict[int, int]]:
    """Pin ``model``'s (an ``onnx_ir.Model``, changed in place) input dims; shape inference and constant folding
    then propagate the sizes. Returns what was pinned."""
    import onnx_ir as ir

    done: dict[str, dict[int, int]] = {}
    for v in model.graph.inputs:
        want = pins.get(v.name)
        if not want or v.shape is None:
            continue
        dims = list(v.shape)
        for axis, size in sorted(want.items()):
            if axis >= len(dims):
                raise ValueError(f"input {v.name} has {len(dims)} dims, cannot pin dim {axis}")
            if isinstance(dims[axis], int):
                if dims[axis] != size:
                    raise ValueError(f"input {v.name} dim {axis} is {dims[axis]}, not {size}")
                continue
            dims[axis] = int(size)
            done.setdefault(v.name, {})[axis] = int(size)
        v.shape = ir.Shape(dims)
    if done:
        _clear_inner_shapes(model)
        _fold(model)
    return done


def _clear_inner_shapes(model) -> None:
    """Forget the shapes recorded on intermediate values and outputs: they name the old symbols, and inference
    writes the pinned ones (a stale symbolic dim can block a fold)."""
    for node in model.graph:
        for out in node.outputs:
            if out.shape is not None and any(not isinstance(d, int) for d in out.shape):
                out.shape = None
    for out in model.graph.outputs:
        if out.shape is not None and any(not isinstance(d, int) for d in out.shape):
            out.shape = None


def _fold(model) -> None:
    import onnxscript.optimizer as opt

    opt.optimize(model, num_iterations=2, onnx_shape_inference=True, inline=True)


def pin_file(src: Path, dest: Path, pins: dict[str, dict[int, int]]) -> dict[str, dict[int, int]]:
    """``pin`` on a file: ``src`` read (with its external data), ``dest`` written with its weights inline, or in
    ``dest.name + ".data"`` beside it when they pass protobuf's 2 GB."""
    import onnx_ir as ir

    model = ir.load(str(src))
    done = pin(model, pins)
    size = sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)
    if size > 1_800_000_000:
        ir.save(model, str(dest), external_data=f"{dest.name}.data")
    else:
        ir.external_data.load_to_model(model)  # the source's external file stays where it is: read it in
        ir.save(model, str(dest))
    return done
