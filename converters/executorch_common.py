"""What the ExecuTorch edges share: re-export with named inputs, int8 through PT2E, lowering to XNNPACK, writing
the .pte and the smoke run after every export.

Names: a .pte keeps no input names, so the program is re-exported from a module whose ``forward`` takes the
source's inputs as keyword arguments; the input pytree spec stored in the program then holds them (read back by
sdk/formats/pte_fb.py). Names that are not Python identifiers stay positional (input_0, ...).

int8 (``--precision int8``): torchao's PT2E flow (prepare_pt2e with XNNPACK's quantizer, the user's calibration
samples run through the prepared module, convert_pt2e), then the same lowering; XNNPACK runs the quantized ops.

Smoke run: ExecuTorch's prebuilt runtime links only the core ATen kernels and the backends it was built with, so
a program can export and still miss a kernel at run time. Every written program is loaded and run once on the
example inputs through edgekit's ExecuTorch runner; a failure is a ConversionError saying so.
"""

from __future__ import annotations

import inspect as pyinspect
from pathlib import Path

from edgekit.errors import ConversionError
from edgekit.formats import Format

from ._sources import bounded_example, user_inputs
from .base import Artifact, ConvertOptions, fail

RANGE_MAX = 1024  # ExecuTorch plans memory for the upper bound of every dynamic dim


def _named_module(inner, names: list[str]):
    """A module whose forward takes ``names`` as keyword-only arguments and calls ``inner`` positionally."""
    import torch

    class Named(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, *args, **kw):
            return self.inner(*args, *[kw[n] for n in names[len(args):]])

    params = [pyinspect.Parameter("self", pyinspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [pyinspect.Parameter(n, pyinspect.Parameter.KEYWORD_ONLY) for n in names]
    Named.forward.__signature__ = pyinspect.Signature(params)
    return Named()


def named_program(ep, names: list[str], options: ConvertOptions):
    """``ep`` re-exported with its inputs as keyword arguments named ``names`` (when they are identifiers) and its
    dynamic dims bounded; returns (program, example kwargs or args)."""
    import torch

    args, dynamic = bounded_example(ep, names, options.input_shapes, RANGE_MAX)
    module = _linear_from_matmul(_constants_direct(ep.module()))
    if all(n.isidentifier() for n in names) and len(set(names)) == len(names):
        kwargs = dict(zip(names, args))
        shapes = dict(zip(names, dynamic)) if any(dynamic) else None
        return torch.export.export(_named_module(module, names), (), kwargs=kwargs, dynamic_shapes=shapes), kwargs
    return torch.export.export(module, tuple(args),
                               dynamic_shapes=tuple(dynamic) if any(dynamic) else None), tuple(args)


def _calibrate(program, example, options: ConvertOptions, names: list[str], notes: list[str]):
    """PT2E static int8 with XNNPACK's quantizer over the user's calibration samples; the converted module is
    exported again (same inputs, same dynamic dims)."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    calib = options.compress.calibration or []
    quantizer = XNNPACKQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=options.compress.per_channel))
    prepared = prepare_pt2e(program.module(), quantizer)
    order = options.input_order or names
    for sample in calib:
        arrays = [sample[n] for n in order] if all(n in sample for n in order) else list(sample.values())
        tensors = [torch.from_numpy(a) for a in arrays]
        if isinstance(example, dict):
            prepared(**dict(zip(example, tensors)))
        else:
            prepared(*tensors)
    converted = _drop_unread(convert_pt2e(prepared))
    q = sum(1 for n in converted.graph.nodes if "quantize_per" in str(n.target))
    if q == 0:
        raise ConversionError("executorch int8 had no effect: XNNPACK's quantizer annotated no operator",
                              "the model has no convolution or linear layer XNNPACK quantizes")
    notes.append(f"int8 (PT2E, XNNPACKQuantizer, {'per-channel' if options.compress.per_channel else 'per-tensor'} "
                 f"weights), calibrated on {len(calib)} samples: {q} quantize ops")
    shapes = program.example_inputs  # keep the program's signature: re-export the converted graph module
    kw = shapes[1] if shapes[1] else None
    return torch.export.export(converted, tuple(shapes[0]), kwargs=kw,
                               dynamic_shapes=_same_dynamism(program))


def _constants_direct(module):
    """Drop ``lift_fresh_copy`` of constant tensors (the lowering's small initializers, e.g. a conv bias, become
    lifted constants copied in the graph). XNNPACK takes a conv only when its bias reaches it directly: else the
    conv ran on the portable kernel in fp32, and in int8 the conv and its per-channel dequantize stayed outside the
    delegate, where the runtime has no kernel for the dequantize. A copy of a constant nothing mutates is the
    constant."""
    import torch

    g = module.graph
    for n in list(g.nodes):
        if n.op == "call_function" and n.target == torch.ops.aten.lift_fresh_copy.default \
                and getattr(n.args[0], "op", None) == "get_attr":
            n.replace_all_uses_with(n.args[0])
            g.erase_node(n)
    module.recompile()
    return module


def _attr(module, target: str):
    obj = module
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _linear_from_matmul(module):
    """``x @ W (+ b)`` with constant 2-D ``W`` (and 1-D ``b``): ONNX's Gemm/MatMul as the lowering writes them,
    rewritten as ``aten.linear(x, W.T, b)``. XNNPACK's quantizer and partitioner know linear layers, not a matmul
    by a constant: without this an ONNX source's dense layers stayed fp32 in an int8 program (larger than the fp32
    one)."""
    import torch

    aten = torch.ops.aten
    g = module.graph
    for i, n in enumerate(list(g.nodes)):
        if n.op != "call_function" or n.target != aten.matmul.default or len(n.args) != 2:
            continue
        x, w = n.args
        if getattr(w, "op", None) != "get_attr":
            continue
        weight = _attr(module, w.target)
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
            continue
        name = f"_edgekit_linear_w{i}"
        module.register_buffer(name, weight.t().contiguous())
        users = list(n.users)
        add = users[0] if len(users) == 1 and users[0].target == aten.add.Tensor else None
        other = None if add is None else next((a for a in add.args if a is not n), None)
        bias = None
        if getattr(other, "op", None) == "get_attr":
            b = _attr(module, other.target)
            bias = other if isinstance(b, torch.Tensor) and tuple(b.shape) == (weight.shape[1],) else None
        at = add if bias is not None else n
        with g.inserting_before(at):
            lin = g.call_function(aten.linear.default, (x, g.get_attr(name), bias))
        at.replace_all_uses_with(lin)
        g.erase_node(at)
        if at is add:
            g.erase_node(n)
        if not w.users:
            g.erase_node(w)
    g.lint()
    module.recompile()
    return _drop_unread(module)


def _drop_unread(module):
    """Delete the parameters and buffers no node reads (a rewritten weight's original, the float weights
    convert_pt2e replaced by int8 ones): torch.export stores every one, read or not."""
    read = {n.target for n in module.graph.nodes if n.op == "get_attr"}
    for name, _ in [*module.named_parameters(), *module.named_buffers()]:
        if name not in read:
            owner, _, leaf = name.rpartition(".")
            delattr(_attr(module, owner) if owner else module, leaf)
    return module


def _same_dynamism(program):
    """The dynamic_shapes that reproduce ``program``'s symbolic input dims (kwargs-keyed when it takes kwargs)."""
    import torch

    args, kwargs = program.example_inputs
    specs, dims = [], {}
    for v in user_inputs(program):
        spec = {}
        for j, d in enumerate(v.shape):
            if not isinstance(d, int):
                key = str(d)
                if key not in dims:
                    rc = program.range_constraints.get(d.node.expr)
                    dims[key] = torch.export.Dim(f"q{len(dims)}", min=max(int(rc.lower), 1),
                                                 max=int(rc.upper))
                spec[j] = dims[key]
        specs.append(spec or None)
    if not any(specs):
        return None
    if kwargs:
        return dict(zip(kwargs, specs))
    return tuple(specs)


def write_pte(ep, names: list[str], src: Artifact, options: ConvertOptions, out: Path, notes: list[str]) -> Artifact:
    """Name, (quantize,) lower to XNNPACK, write ``<stem>.pte`` and run it once."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    if options.float_precision == "fp16":  # check_compression refuses it first; this guards direct edge use
        raise ConversionError("executorch has no fp16 conversion here", "convert in fp32, or use int8")
    try:
        program, example = named_program(ep, names, options)
    except Exception as e:
        raise fail("torch.export with named inputs failed", e) from e
    precision = "fp32"
    if options.compress is not None and options.compress.precision == "int8":
        try:
            program = _calibrate(program, example, options, names, notes)
        except ConversionError:
            raise
        except Exception as e:
            raise fail("ExecuTorch int8 (PT2E) quantization failed", e) from e
        precision = "int8"
    if precision == "int8":  # out variants of the quantize/dequantize ops XNNPACK leaves outside its graphs
        import executorch.kernels.quantized  # noqa: F401
    try:
        from edgekit.formats.pte_fb import DYNAMIC_DIMS

        flags = [int(not isinstance(d, int)) for v in user_inputs(program) for d in v.shape]
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()],
                                              constant_methods={DYNAMIC_DIMS: flags} if flags else None).to_executorch()
    except Exception as e:
        raise fail("lowering to ExecuTorch (XNNPACK) failed", e) from e
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{src.path.stem}.pte"
    path.write_bytes(lowered.buffer)
    smoke_run(path, example)
    return Artifact(path, Format.EXECUTORCH, precision=precision, notes=notes)


_CHILD = """
import sys, numpy as np
from edgekit.formats import detect
from edgekit.runtimes.executorch import ExecuTorchRunner
from edgekit.errors import EdgekitError
r = ExecuTorchRunner(detect(sys.argv[1]), threads=1)
try:
    r.load()
    with np.load(sys.argv[2]) as z:
        r.infer({s.name: z[f"a{i}"] for i, s in enumerate(r.inputs)})
except EdgekitError as e:
    print(e.message, file=sys.stderr)
    sys.exit(3)
"""


def smoke_run(path: Path, example) -> None:
    """Load and run the program once through the ExecuTorch runner (a missing kernel shows only here). When this
    process has loaded ExecuTorch's quantized-ops library for the export (it registers runtime kernels too), the
    run happens in a fresh child process, as on a device, so a kernel the export loaded cannot hide a missing one."""
    import sys

    import numpy as np

    from edgekit.errors import EdgekitError
    from edgekit.formats import ModelSource
    from edgekit.runtimes.executorch import ExecuTorchRunner

    values = [np.ascontiguousarray(v.numpy()) for v in (example.values() if isinstance(example, dict) else example)]
    if "executorch.kernels.quantized" in sys.modules:
        import subprocess

        feeds = path.parent / f".{path.stem}-smoke.npz"
        np.savez(feeds, **{f"a{i}": v for i, v in enumerate(values)})
        try:
            done = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(feeds)], capture_output=True,
                                  text=True, timeout=600)
        finally:
            feeds.unlink(missing_ok=True)
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
            raise ConversionError(f"the ExecuTorch program was written but does not run: "
                                  f"{lines[-1] if lines else f'exit {done.returncode}'}", _SMOKE_HINT)
        return
    r = ExecuTorchRunner(ModelSource(path, Format.EXECUTORCH, [path]), threads=1)
    try:
        r.load()
        r.infer({s.name: v for s, v in zip(r.inputs, values)})
    except EdgekitError as e:
        raise ConversionError(f"the ExecuTorch program was written but does not run: {e.message}", _SMOKE_HINT) from e
    finally:
        r.close()


_SMOKE_HINT = ("the runtime lacks a kernel or backend the program needs (ops outside the XNNPACK delegate); "
               "see the ops with `edgekit inspect`, or convert in fp32")
