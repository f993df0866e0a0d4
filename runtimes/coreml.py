"""Core ML backend (.mlpackage folder or .mlmodel spec).

Inspection works everywhere coremltools installs; prediction needs macOS (Core ML's framework). Elsewhere
``infer`` raises a PlatformError, and parity checks must report ``unverified``, never ``pass``. What can be checked
without Core ML is in ``static_checks`` (I/O against the source's, MIL ops against the deployment target), which
convert runs on Core ML targets off macOS.
"""

from __future__ import annotations

import platform

import numpy as np

from edgekit.errors import ModelFileError, PlatformError
from edgekit.formats import Format
from edgekit.runtimes.base import Runner
from edgekit.types import TensorSpec

# Core ML ArrayFeatureType.ArrayDataType values
_ARRAY_TYPES = {65568: "float32", 65600: "float64", 65552: "float16", 131104: "int32", 131080: "int8"}


def can_predict() -> bool:
    return platform.system() == "Darwin"


def _feature_spec(f) -> TensorSpec:
    kind = f.type.WhichOneof("Type")
    if kind == "multiArrayType":
        t = f.type.multiArrayType
        shape: tuple | None = tuple(int(d) for d in t.shape) or None
        rng = t.WhichOneof("ShapeFlexibility")
        if rng == "shapeRange" and shape is not None:
            shape = tuple(None if (r.upperBound < 0 or r.upperBound != r.lowerBound) else int(r.lowerBound)
                          for r in t.shapeRange.sizeRanges)
        elif rng == "enumeratedShapes" and shape is not None:
            options = [tuple(s.shape) for s in t.enumeratedShapes.shapes]
            shape = tuple(d if all(o[i] == d for o in options) else None for i, d in enumerate(shape))
        return TensorSpec(f.name, shape, _ARRAY_TYPES.get(int(t.dataType), "unknown"))
    if kind == "imageType":
        t = f.type.imageType
        channels = 1 if t.colorSpace == 10 else 3
        return TensorSpec(f.name, (1, channels, int(t.height), int(t.width)), "uint8", extra={"image": True})
    if kind in ("int64Type", "doubleType"):
        return TensorSpec(f.name, (), "int64" if kind == "int64Type" else "float64")
    return TensorSpec(f.name, None, kind or "unknown")


def _ops_in_block(block, hist: dict) -> None:
    for op in block.operations:
        hist[op.type] = hist.get(op.type, 0) + 1
        for inner in op.blocks:
            _ops_in_block(inner, hist)


class CoreMLRunner(Runner):
    name = "coreml"
    formats = (Format.COREML,)
    requires = (("coremltools", "coremltools", "coreml"),)

    def _load(self) -> None:
        import logging

        from edgekit._quiet import quiet_native

        logging.getLogger("coremltools").setLevel(logging.ERROR)
        with quiet_native():  # coremltools imports TensorFlow and torch when present: hide their start-up logs
            import coremltools as ct

        path = self.source.path
        try:
            self.mlmodel = ct.models.MLModel(str(path), skip_model_load=not can_predict())
            self.spec = self.mlmodel.get_spec()
        except Exception as e:  # coremltools raises plain Exceptions for damaged packages
            raise ModelFileError(f"coremltools could not read {path.name}: {str(e).strip().splitlines()[0][:300]}") \
                from e
        desc = self.spec.description
        self.inputs = [_feature_spec(f) for f in desc.input]
        self.outputs = [_feature_spec(f) for f in desc.output]
        self.precision = "fp16" if any(s.dtype == "float16" for s in self.inputs + self.outputs) else "fp32"

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not can_predict():
            raise PlatformError(f"Core ML runs predictions only on macOS; this machine runs {platform.system()}",
                                "inspect works here; run predictions on a Mac (parity is reported 'unverified')")
        res = self.mlmodel.predict(feeds)
        return {s.name: np.asarray(res[s.name]) for s in self.outputs}

    def _close(self) -> None:
        self.mlmodel = None

    def describe(self) -> dict:
        spec = self.spec
        kind = spec.WhichOneof("Type")
        hist: dict[str, int] = {}
        if kind == "mlProgram":
            for fn in spec.mlProgram.functions.values():
                for block in fn.block_specializations.values():
                    _ops_in_block(block, hist)
        elif kind == "neuralNetwork":
            for layer in spec.neuralNetwork.layers:
                t = layer.WhichOneof("layer")
                hist[t] = hist.get(t, 0) + 1
        return {"model_type": kind, "spec_version": int(spec.specificationVersion), "ops": hist,
                "can_predict_here": can_predict()}


# ------------------------------------------------------------------ static checks (what can be checked off macOS)
_MIL_DTYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "FLOAT64": "float64", "INT32": "int32", "INT64": "int64",
               "INT8": "int8", "UINT8": "uint8", "BOOL": "bool", "INT16": "int16", "UINT16": "uint16"}


def _compatible_dtype(source: str, coreml: str) -> bool:
    """Core ML has no int64 (integers are int32) and may keep fp16 I/O for an fp16 program."""
    if source == coreml:
        return True
    if np.dtype(source).kind in "iub":
        return coreml == "int32"
    return source in ("float32", "float16", "float64") and coreml in ("float32", "float16")


def _input_problems(f, x: np.ndarray, fixed_batch: list) -> list[str]:
    t = f.type.multiArrayType
    spec = _feature_spec(f)
    out = []
    if not _compatible_dtype(str(x.dtype), spec.dtype):
        out.append(f"input {f.name}: dtype {spec.dtype}, the source takes {x.dtype}")
    ranges = list(t.shapeRange.sizeRanges) if t.WhichOneof("ShapeFlexibility") == "shapeRange" else []
    dims = [int(d) for d in t.shape]
    if len(dims) != x.ndim:
        return out + [f"input {f.name}: rank {len(dims)}, the source takes rank {x.ndim}"]
    for j, n in enumerate(x.shape):
        lo, hi = (ranges[j].lowerBound, ranges[j].upperBound) if ranges else (dims[j], dims[j])
        if hi < 0:
            hi = n
        if j == 0 and lo == hi and n != lo:  # a fixed batch: the sample runs in chunks of it
            fixed_batch.append(lo)
        elif not lo <= n <= hi:
            out.append(f"input {f.name}: dim {j} is {lo}..{hi}, the source's sample has {n}")
    return out


def _output_types(spec) -> dict:
    """Output name -> (dtype, dims with None where unknown) from the ML program's main function."""
    fn = spec.mlProgram.functions["main"]
    block = fn.block_specializations[fn.opset]
    types = {}
    for op in block.operations:
        for o in op.outputs:
            if o.name in block.outputs:
                tt = o.type.tensorType
                from coremltools.proto.MIL_pb2 import DataType

                dims = [int(d.constant.size) if d.WhichOneof("dimension") == "constant" else None
                        for d in tt.dimensions]
                types[o.name] = (_MIL_DTYPES.get(DataType.Name(tt.dataType), "unknown"), dims)
    renamed = dict(zip(block.outputs, (o.name for o in spec.description.output)))
    return {renamed.get(k, k): v for k, v in types.items()}


def _output_problems(spec, expected: dict, batch: int | None) -> list[str]:
    types = _output_types(spec) if spec.WhichOneof("Type") == "mlProgram" else {}
    names = [o.name for o in spec.description.output]
    if len(names) != len(expected):
        return [f"{len(names)} outputs, the source has {len(expected)}"]
    out = []
    if set(names) != set(expected):
        out.append(f"output names {names}, the source's are {list(expected)}")
        pairs = zip(names, expected.values())  # compared in order
    else:
        pairs = ((n, expected[n]) for n in names)
    for name, ref in pairs:
        dtype, dims = types.get(name, (None, None))
        ref = np.asarray(ref)
        if dtype is not None and not _compatible_dtype(str(ref.dtype), dtype):
            out.append(f"output {name}: dtype {dtype}, the source gives {ref.dtype}")
        if dims is None:
            continue
        if len(dims) != ref.ndim:
            out.append(f"output {name}: rank {len(dims)}, the source gives rank {ref.ndim}")
            continue
        want = list(ref.shape)
        if batch is not None and want:
            want[0] = batch
        bad = [j for j, (d, w) in enumerate(zip(dims, want)) if d is not None and d != w]
        if bad:
            out.append(f"output {name}: shape {dims}, the source gives {want}")
    return out


def mil_ops(spec) -> tuple[dict, str, list[str]]:
    """The ML program's op histogram, its deployment target's name, and the ops coremltools' op registry does
    not list for that target (an op newer than the target, or one it does not know)."""
    import coremltools as ct
    from coremltools.converters.mil.mil.ops import defs  # noqa: F401  (fills the registry)
    from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

    hist: dict[str, int] = {}
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            _ops_in_block(block, hist)
    target = next((t for t in ct.target if t.value == spec.specificationVersion), None)
    name = target.name if target else f"spec {spec.specificationVersion}"
    missing = [op for op in hist if target is None or target not in SSAOpRegistry.core_ops.get(op, {})]
    return hist, name, missing


def static_checks(path, sample: dict, expected: dict | None, names: list[str]) -> tuple[str, list[str]]:
    """What can be checked without Core ML: the I/O names, shapes and dtypes against the source's (its input
    names, its sample and its outputs on it) and the MIL ops against the deployment target. Returns a summary
    line and the problems (none when every check passes). This is no prediction: parity stays unverified."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    desc = spec.description
    problems = []
    got = [f.name for f in desc.input]
    if set(got) != set(names):
        problems.append(f"input names {got}, the source's are {names}")
    fixed: list = []
    for f in desc.input:
        if f.name in sample and f.type.WhichOneof("Type") == "multiArrayType":
            problems += _input_problems(f, np.asarray(sample[f.name]), fixed)
    if expected is not None:
        problems += _output_problems(spec, expected, fixed[0] if fixed else None)
    if spec.WhichOneof("Type") != "mlProgram":
        return f"static checks: I/O {len(got)}->{len(desc.output)}, not an ML program (ops not checked)", problems
    hist, target, missing = mil_ops(spec)
    if missing:
        problems.append(f"MIL ops not available at {target}: {', '.join(missing)}")
    verdict = "fail" if problems else "pass"
    return (f"static checks {verdict}: I/O {len(got)}->{len(desc.output)} names/shapes/dtypes "
            f"{'match' if not [p for p in problems if 'MIL' not in p] else 'differ'}, {sum(hist.values())} MIL ops "
            f"({len(hist)} kinds) {'all in ' + target if not missing else 'checked against ' + target}"), problems
