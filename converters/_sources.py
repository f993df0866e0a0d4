"""Loading source models for conversion (inside edges only: these import the frameworks)."""

from __future__ import annotations

from edgekit.errors import ModelFileError
from edgekit.formats import Format

from .base import Artifact, ConvertOptions


def keras_model(src: Artifact):
    """The Keras model of a .keras/.h5 artifact (safe mode on), cached on the artifact."""
    if src.obj is not None:
        return src.obj
    from edgekit.runtimes.keras import KerasRunner

    r = KerasRunner(_source(src))
    r.load()
    src.obj = r.model
    return src.obj


def saved_model_with_names(model, path) -> None:
    """Save a Keras model as a SavedModel whose serving signature takes the Keras inputs by name and returns
    the outputs keyed by the Keras output names, so TFLite and SavedModel-based targets keep the source's I/O
    names. Keras' own ExportArchive tracks the variables (a plain tf.Module + tf.function did not: TFLite then
    read them as NaN, which the parity gate caught)."""
    import keras
    import tensorflow as tf

    out_names = list(getattr(model, "output_names", None) or [])
    if len(out_names) != len(model.outputs):
        out_names = [f"output_{i}" for i in range(len(model.outputs))]
    specs = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs]

    def serve(*args):
        y = model(list(args) if len(args) > 1 else args[0], training=False)
        ys = y if isinstance(y, (list, tuple)) else [y]
        return dict(zip(out_names, ys))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve, input_signature=specs)
    archive.write_out(str(path), verbose=False)


def torch_program(src: Artifact, options: ConvertOptions):
    """The torch.export ExportedProgram of a .pt2 artifact (needs trust: loading unpickles)."""
    if src.obj is not None:
        return src.obj
    if src.format is not Format.TORCH_EXPORT:
        raise ModelFileError(f"{src.path.name} is {src.format.value}; this route needs a torch.export program (.pt2)",
                             "export the model with torch.export.save(torch.export.export(model, args), 'model.pt2')")
    from edgekit.runtimes.torch import load_torch  # the one PyTorch loader; Edge.convert required trust

    src.obj = load_torch(src.path, Format.TORCH_EXPORT)[1]
    return src.obj


def example_args(program, input_shapes: dict[str, tuple[int, ...]], notes: list[str]):
    """Example tensors for an ExportedProgram's user inputs, from its recorded shapes and dtypes."""
    import torch

    nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    args = []
    for name in program.graph_signature.user_inputs:
        val = nodes[name].meta["val"]
        given = input_shapes.get(name) or (None,) * len(val.shape)  # None in --input-shape: a dim kept dynamic
        shape = []
        for i, d in enumerate(val.shape):
            if given[i] is not None:
                shape.append(given[i])
            elif isinstance(d, int):
                shape.append(d)
            else:
                hint = 1 if i == 0 else 16
                shape.append(hint)
        if val.dtype.is_floating_point:
            args.append(torch.randn(*shape, dtype=val.dtype))
        else:
            args.append(torch.randint(0, 10, tuple(shape), dtype=val.dtype))
    return tuple(args)


def _source(src: Artifact):
    from edgekit.formats import ModelSource

    return ModelSource(src.path, src.format, [src.path])


def user_inputs(ep) -> list:
    """The fake tensors (shape with SymInts, dtype) of an ExportedProgram's user inputs, in order."""
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    return [nodes[n].meta["val"] for n in ep.graph_signature.user_inputs]


def bounded_example(ep, names: list[str], input_shapes: dict, cap: int):
    """Example tensors (dynamic dims at >= 2) and dynamic_shapes for re-exporting ``ep``: every symbolic dim keeps
    its range, capped at ``cap`` (converters that need bounded dims); a dim fixed by ``input_shapes``
    (--input-shape) stays fixed at that size. Dims sharing a symbol share one Dim."""
    import torch

    dims: dict[str, object] = {}
    args, dynamic = [], []
    for name, v in zip(names, user_inputs(ep)):
        given = input_shapes.get(name) or ()
        shape, spec = [], {}
        for j, d in enumerate(v.shape):
            if isinstance(d, int):
                shape.append(d)
                continue
            if j < len(given) and given[j] is not None and int(given[j]) > 0:
                shape.append(int(given[j]))
                continue
            key = str(d)
            if key not in dims:
                rc = ep.range_constraints.get(d.node.expr)
                lo = max(int(rc.lower), 1) if rc is not None else 1
                hi = int(rc.upper) if rc is not None and rc.upper.is_finite else cap
                dims[key] = torch.export.Dim(f"d{len(dims)}", min=lo, max=min(hi, cap))
            spec[j] = dims[key]
            shape.append(max(2, getattr(dims[key], "min", 2) or 2))
        make = torch.randn if v.dtype.is_floating_point else (lambda *s, dtype: torch.randint(0, 10, s, dtype=dtype))
        args.append(make(*shape, dtype=v.dtype))
        dynamic.append(spec or None)
    return args, dynamic
