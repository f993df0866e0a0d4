"""Compress an ONNX model with ONNX Runtime's quantization tools: static int8 (QDQ), dynamic int8, 4-bit weights.

Three registered passes (compress_base.py): each declares what it honours, refuses the rest before any conversion
starts, and ``ensures`` the graph gained quantized nodes or low-bit weights: never a silent no-op.

Static int8 uses unsigned 8-bit activations and signed 8-bit weights (QDQ): on this project's machines ONNX
Runtime ran U8 activations ~2.2x faster than fp32 where S8 activations ran 1.3x (see DESIGN.md field notes).
ORT QDQ models keep float inputs and outputs, so ``int8_io`` cannot be honoured here.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from edgekit.errors import ConversionError
from edgekit.formats import Format

from .compress_base import INT4_WEIGHTS, INT8, INT8_WEIGHTS, CompressionPass, compress_options, refusal, register

TARGET = "onnx"
QUANT_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
             "MatMulNBits", "QLinearConv", "QLinearMatMul")

refusal(Format.ONNX, "palettize_bits", "ONNX Runtime has no weight palettization (lookup-table weights)")
refusal(Format.ONNX, "prune_sparsity", "ONNX Runtime stores dense weights; pruning would not shrink or speed the model")
refusal(Format.ONNX, "int8_io", "ONNX Runtime QDQ models keep float inputs and outputs")
refusal(Format.ONNX, "per_channel", "4-bit MatMulNBits weights are quantized in blocks of 32; only the int8 "
                                   "quantizations have a per-tensor choice")


def compress_onnx(path: Path, options, out: Path) -> tuple[Path, list[str]]:
    """Write ``path`` compressed as ``options`` asks to ``out / f"{path.stem}.onnx"``; return (new path, notes)."""
    from .compress_run import run_passes

    path, out = Path(path), Path(out)
    copts = compress_options(options)
    if copts is None or not copts.active:  # nothing to compress here; fp16 is the export's job
        out.mkdir(parents=True, exist_ok=True)
        dest = out / f"{path.stem}.onnx"
        if dest.resolve() != path.resolve():
            shutil.copyfile(path, dest)
        return dest, []
    return run_passes(Format.ONNX, path, options, out)


def quant_summary(model) -> dict[str, int]:
    """Counts of quantization nodes by op type, plus ``int8_initializers`` (int8/uint8/int4/uint4 tensors)."""
    from onnx import TensorProto

    counts: dict[str, int] = {}
    graphs = [model.graph]
    low = {TensorProto.INT8, TensorProto.UINT8}
    for name in ("INT4", "UINT4"):
        if hasattr(TensorProto, name):
            low.add(getattr(TensorProto, name))
    n_low = 0
    while graphs:
        g = graphs.pop()
        for node in g.node:
            if node.op_type in QUANT_OPS:
                counts[node.op_type] = counts.get(node.op_type, 0) + 1
            for a in node.attribute:
                if a.g is not None and a.HasField("g"):
                    graphs.append(a.g)
                graphs.extend(a.graphs)
        n_low += sum(1 for t in g.initializer if t.data_type in low)
    counts["int8_initializers"] = n_low
    return counts


class _OnnxPass(CompressionPass):
    target = Format.ONNX
    needs = (("onnxruntime", "onnxruntime"), ("onnx", "onnx"))
    extra = "onnx"
    ops: tuple[str, ...] = ()  # quantized op types this pass adds
    hint = "the model may have no Conv/MatMul/Gemm with constant weights to quantize"

    @staticmethod
    def inspect(path: Path) -> dict:
        import onnx

        counts = quant_summary(onnx.load(str(path)))
        counts["bytes"] = _size(Path(path))
        return counts

    def what(self, options) -> str:
        return options.label(options.field_of(self.technique)).split(" (")[0]

    def ensures(self, before, after, options) -> None:
        def low(c):
            return sum(c.get(k, 0) for k in self.ops) + c["int8_initializers"]

        if low(after) <= low(before):
            raise ConversionError(f"{self.what(options)} had no effect: the model has no new quantized node or "
                                  "int8 weight", self.hint)

    def report(self, before, after) -> list[str]:
        b, a = before["bytes"], after["bytes"]
        return [f"size {b / 1024:.1f} KiB -> {a / 1024:.1f} KiB ({a / b:.2f}x)"]


@register
class OnnxStaticInt8(_OnnxPass):
    technique = INT8
    summary = "static int8 QDQ (ORT quantize_static, MinMax): uint8 activations, int8 weights"
    honours = frozenset({"per_channel"})
    needs_calibration = runs_model = True
    ops = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul")

    def what(self, options) -> str:
        return "static int8 quantization"

    def run(self, src, options, out):
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        import onnx

        notes: list[str] = []
        # pre-processing output goes to a temporary folder: the runner confines those to its own folder
        dest, pre, model_src = out / f"{src.stem}.onnx", Path(tempfile.mkdtemp()) / "pre.onnx", src
        try:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(str(src), str(pre))
            model_src = pre
        except Exception as err:  # noqa: BLE001 - pre-processing is an optimisation; quantize the model as it is
            first = str(err).splitlines()[0][:160] if str(err) else ""
            notes.append(f"quantization pre-processing skipped ({type(err).__name__}: {first})")
        reader = _FeedReader(options.calibration, _graph_inputs(onnx.load(str(src))))
        try:
            quantize_static(str(model_src), str(dest), reader, quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            per_channel=options.per_channel, calibrate_method=CalibrationMethod.MinMax)
        except Exception as err:
            from .base import fail

            raise fail("static int8 quantization failed", err) from err
        notes.append(f"static int8 QDQ, {'per-channel' if options.per_channel else 'per-tensor'} weights, uint8 "
                     f"activations, calibrated on {len(reader._items)} samples (MinMax)")
        return dest, notes


@register
class OnnxDynamicInt8(_OnnxPass):
    technique = INT8_WEIGHTS
    summary = "dynamic int8 (ORT quantize_dynamic): int8 weights, activations quantized at run time"
    honours = frozenset({"per_channel"})
    ops = ("DynamicQuantizeLinear", "MatMulInteger", "ConvInteger")

    def what(self, options) -> str:
        return "dynamic int8 quantization" if options.precision else "--weights-only-bits 8"

    def run(self, src, options, out):
        from onnxruntime.quantization import QuantType, quantize_dynamic

        dest = out / f"{src.stem}.onnx"
        try:
            quantize_dynamic(str(src), str(dest), weight_type=QuantType.QInt8, per_channel=options.per_channel)
        except Exception as err:
            from .base import fail

            raise fail("dynamic int8 quantization failed", err) from err
        return dest, [f"dynamic int8: int8 {'per-channel' if options.per_channel else 'per-tensor'} weights, "
                      "activations quantized at run time"]


@register
class OnnxWeights4(_OnnxPass):
    technique = INT4_WEIGHTS
    summary = "4-bit weights (MatMulNBits, block 32, symmetric) on MatMul layers"
    ops = ("MatMulNBits",)
    hint = "4-bit weights apply to MatMul layers only; try --weights-only-bits 8 or int8"

    def run(self, src, options, out):
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        try:
            q = MatMulNBitsQuantizer(onnx.load(str(src)), bits=4, block_size=32, is_symmetric=True)
            q.process()
            qmodel = q.model.model
        except Exception as err:
            from .base import fail

            raise fail("4-bit weight quantization failed", err) from err
        dest = out / f"{src.stem}.onnx"
        onnx.save(qmodel, str(dest))
        n = sum(1 for node in qmodel.graph.node if node.op_type == "MatMulNBits")
        return dest, [f"4-bit weights (MatMulNBits, block 32, symmetric) on {n} MatMul layer(s); other layers "
                      "unchanged"]

    def ensures(self, before, after, options) -> None:
        if after.get("MatMulNBits", 0) <= before.get("MatMulNBits", 0):
            raise ConversionError("--weights-only-bits 4 had no effect: no MatMul with constant weights to quantize",
                                  self.hint)


class _FeedReader:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over a list of one-sample feed dicts."""

    def __init__(self, samples, input_names):
        import numpy as np

        self._items = []
        for s in samples:
            missing = [n for n in input_names if n not in s]
            if missing:
                raise ConversionError(f"calibration sample lacks input(s) {missing}",
                                      f"each calibration sample must be a dict keyed by {list(input_names)}")
            self._items.append({n: np.asarray(s[n]) for n in input_names})
        self._it = iter(self._items)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self._items)


def _graph_inputs(model) -> list[str]:
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def _size(path: Path) -> int:
    """The model file plus its external data files beside it."""
    extra = sum(p.stat().st_size for p in path.parent.glob(f"{path.name}.data"))
    return path.stat().st_size + extra
