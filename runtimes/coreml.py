"""Core ML backend (.mlpackage folder or .mlmodel spec).

Inspection works everywhere coremltools installs; prediction needs macOS (Core ML's framework). Elsewhere
``infer`` raises a PlatformError, and parity checks must report ``unverified``, never ``pass``.
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
