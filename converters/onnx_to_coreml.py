"""ONNX -> Core ML (ML program) through edgekit's own lowering: ONNX graph -> torch.nn.Module
(onnx_torch_lowering, one torch call per node) -> torch.export -> coremltools' torch.export frontend.

Dynamic dims are exported as ranges 1..RANGE_MAX (dims sharing an ONNX dim_param share one range); where
torch.export cannot keep them dynamic, they are pinned from the sample (batch 1) or ``--input-shape``, with a
note. The inputs and outputs keep the ONNX names. TFLite sources reach this edge through tflite_to_onnx. The
older route (onnx2tf -> SavedModel -> keras_to_coreml) stays as the alternative the planner lists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.formats import Format

from .base import Artifact, ConvertOptions, Edge, fail, register
from .coreml_common import compute_precision, deployment_target, quiet_import, save

RANGE_MAX = 4096  # ML programs need bounded ranges (as keras_to_coreml)


def _onnx_inputs(model) -> list[tuple[str, int, list]]:
    """(name, elem_type, dims) of the graph inputs that are not initializers; a dim is an int or a name/None."""
    inits = {t.name for t in model.graph.initializer}
    out = []
    for i in model.graph.input:
        if i.name in inits:
            continue
        t = i.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None)
                for d in t.shape.dim]
        out.append((i.name, t.elem_type, dims))
    return out


def _given(options: ConvertOptions, name: str, rank: int) -> dict[int, int]:
    """The dims --input-shape fixes for ``name`` (None or -1 there keeps a dim dynamic)."""
    shape = options.input_shapes.get(name) or ()
    return {j: int(d) for j, d in enumerate(shape) if d is not None and int(d) > 0 and j < rank}


def _examples(inputs, options: ConvertOptions, pinned: bool) -> list[np.ndarray]:
    """Example arrays: the sample (tiled so a dynamic dim is >= 2 when it stays dynamic), cut to the pinned
    shape when pinning (dynamic dims: --input-shape, else the sample's, batch 1)."""
    from .onnx_torch_shape_ops import DTYPES

    sample = options.sample or {}
    arrays = []
    for name, elem, dims in inputs:
        dtype = np.dtype(DTYPES.get(elem, "float32"))
        given = _given(options, name, len(dims))
        x = sample.get(name)
        if x is None:
            shape = [d if isinstance(d, int) else (1 if j == 0 else 16) for j, d in enumerate(dims)]
            x = np.zeros(shape, dtype)
        x = np.asarray(x, dtype)
        for j, d in enumerate(dims[:x.ndim]):  # a fixed dim (e.g. batch 1) takes that many of the sample's
            if isinstance(d, int) and x.shape[j] != d:
                x = np.take(x, np.arange(d) % x.shape[j], axis=j)
        if given:
            x = np.resize(x, [given.get(j, n) for j, n in enumerate(x.shape)])
        if pinned and dims and not isinstance(dims[0], int) and 0 not in given:
            x = x[:1]
        for j, d in enumerate(dims):
            if not pinned and not isinstance(d, int) and j not in given and x.shape[j] < 2:
                x = np.concatenate([x] * 2, axis=j)
        arrays.append(np.ascontiguousarray(x))
    return arrays


def _dynamic(inputs, options: ConvertOptions):
    import torch

    named: dict[str, object] = {}
    specs = []
    for i, (name, _, dims) in enumerate(inputs):
        spec, given = {}, _given(options, name, len(dims))
        for j, d in enumerate(dims):
            if isinstance(d, int) or j in given:
                continue
            key = d or f"{name}_{j}"
            if key not in named:
                named[key] = torch.export.Dim(f"d{len(named)}", min=1, max=RANGE_MAX)
            spec[j] = named[key]
        specs.append(spec or None)
    return tuple(specs), bool(named)


def export(module, inputs, options: ConvertOptions, notes: list[str]):
    """torch.export of the lowered module. Dynamic dims stay ranges where the graph allows; where it fixes one
    (a shape baked into a Reshape), torch.export's Dim.AUTO finds which, and those take the sample's size; if
    that fails too, every dynamic dim is pinned (batch 1)."""
    import torch

    specs, dynamic = _dynamic(inputs, options)
    if not dynamic:
        return torch.export.export(module, tuple(torch.from_numpy(a) for a in _examples(inputs, options, False)))
    args = tuple(torch.from_numpy(a) for a in _examples(inputs, options, pinned=False))
    try:
        return torch.export.export(module, args, dynamic_shapes=(specs,))
    except Exception as e:  # a constraint violation: the graph fixes some dims
        why = str(e).strip().splitlines()[0][:160]
    try:
        auto = tuple({j: torch.export.Dim.AUTO for j in s} if s else None for s in specs)
        probe = torch.export.export(module, args, dynamic_shapes=(auto,))
        kept = _symbolic_dims(probe)
        narrowed = tuple({j: d for j, d in (s or {}).items() if (i, j) in kept} or None for i, s in enumerate(specs))
        program = torch.export.export(module, args, dynamic_shapes=(narrowed,))
        fixed = [f"{n} dim {j} = {a.shape[j]}" for i, ((n, _, _), a) in enumerate(zip(inputs, args))
                 for j in (specs[i] or {}) if (i, j) not in kept]
        notes.append(f"the graph fixes dynamic dims ({', '.join(fixed)}): pinned to the sample's sizes")
        return program
    except Exception:
        pass
    args = tuple(torch.from_numpy(a) for a in _examples(inputs, options, pinned=True))
    shapes = ", ".join(f"{n} {tuple(a.shape)}" for (n, _, _), a in zip(inputs, args))
    notes.append(f"dynamic dims pinned to {shapes} (torch.export could not keep them dynamic: {why}); "
                 "fix them with --input-shape")
    return torch.export.export(module, args)


def lowered_program(src: Artifact, options: ConvertOptions, notes: list[str]):
    """(the ONNX model, the torch.export program of its lowering, its inputs as (name, elem_type, dims)): the
    first steps of every edge that goes through edgekit's ONNX -> torch lowering (Core ML, ExecuTorch)."""
    import onnx

    from .onnx_torch_lowering import lower

    model = onnx.load(str(src.path))
    try:
        module = lower(model).eval()
    except NotImplementedError as e:
        raise fail("the ONNX -> torch lowering cannot convert this graph", e, getattr(e, "op", None)) from e
    except Exception as e:  # folding a constant subgraph failed: a malformed graph
        raise fail("the ONNX -> torch lowering failed", e) from e
    inputs = _onnx_inputs(model)
    try:
        program = export(module, inputs, options, notes)
    except Exception as e:
        raise fail("torch.export of the lowered ONNX graph failed", e, getattr(e, "op", None)) from e
    return model, program, inputs


def _symbolic_dims(program) -> set[tuple[int, int]]:
    """(input index, dim) of the program's user inputs whose size stayed symbolic."""
    nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    kept = set()
    for i, name in enumerate(program.graph_signature.user_inputs):
        for j, d in enumerate(nodes[name].meta["val"].shape):
            rc = None if isinstance(d, int) else program.range_constraints.get(d.node.expr)
            if rc is not None and rc.lower != rc.upper:  # a range refined to one value is fixed
                kept.add((i, j))
    return kept


@register
class OnnxToCoreML(Edge):
    name = "onnx_to_coreml"
    source = (Format.ONNX,)
    target = Format.COREML
    requires = (("onnx", "onnx"), ("torch", "torch"), ("coremltools", "coremltools"))
    extra = "coreml"
    install_hint = "pip install 'edgekit[coreml,torch]'"  # the lowering runs on torch: one extra is not enough
    tools = ("onnx", "torch", "coremltools")
    priority = 2

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        ct = quiet_import()
        notes: list[str] = []
        model, program, inputs = lowered_program(src, options, notes)

        def make():
            return ct.convert(program.run_decompositions(), convert_to="mlprogram",
                              compute_precision=compute_precision(ct, options),
                              minimum_deployment_target=deployment_target(ct, options))

        art = save(ct, make, src, options, out, [o.name for o in model.graph.output], [n for n, _, _ in inputs])
        art.notes += notes
        return art
