"""Compress an ONNX model with ONNX Runtime's quantization tools: static int8 (QDQ), dynamic int8, 4-bit weights.

Three registered passes (compress_base.py): each declares what it honours, refuses the rest before any conversion
starts, and ``ensures`` the graph gained quantized nodes or low-bit weights: never a silent no-op.

Static int8 uses unsigned 8-bit activations and signed 8-bit weights (QDQ): on this project's machines ONNX
Runtime ran U8 activations ~2.2x faster than fp32 where S8 activations ran 1.3x (see DESIGN.md field notes).
ORT QDQ models keep float inputs and outputs, so ``int8_io`` cannot be honoured here.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from edgekit.errors import ConversionError
from edgekit.formats import Format

from edgekit.space import Knob

from .compress_base import (
    INT4_WEIGHTS,
    INT8,
    INT8_WEIGHTS,
    CompressionPass,
    compress_options,
    refusal,
    register,
)
from .compress_repair import KEEP_FLOAT_KNOB, PER_CHANNEL_KNOB

TARGET = "onnx"
QUANT_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
             "MatMulNBits", "QLinearConv", "QLinearMatMul")

refusal(Format.ONNX, "palettize_bits", "ONNX Runtime has no weight palettization (lookup-table weights)")
refusal(Format.ONNX, "prune_sparsity", "ONNX Runtime stores dense weights; pruning would not shrink or speed the model")
refusal(Format.ONNX, "int8_io", "ONNX Runtime QDQ models keep float inputs and outputs")
refusal(Format.ONNX, "per_channel", "4-bit MatMulNBits weights are quantized in blocks of 32; only the int8 "
                                   "quantizations have a per-tensor choice")


_STATIC = {"precision": ("int8",)}
KNOBS = (
    Knob("onnx.calibrate_method", ("minmax", "entropy", "percentile"), targets=("onnx",), when=_STATIC,
         owner=__name__, help="how ORT computes activation ranges from the calibration data (calibrate_method)"),
    Knob("onnx.activation_type", ("u8", "s8"), targets=("onnx",), when=_STATIC, owner=__name__,
         help="uint8 or int8 activations (activation_type)"),
    Knob("onnx.quant_format", ("qdq", "qoperator"), targets=("onnx",), when=_STATIC, owner=__name__,
         help="QuantizeLinear/DequantizeLinear pairs or QLinear* operators (quant_format)"),
    PER_CHANNEL_KNOB,
    KEEP_FLOAT_KNOB,
)


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
    summary = ("static int8 (ORT quantize_static): QDQ or QOperator, MinMax/Entropy/Percentile ranges, uint8 or "
               "int8 activations, int8 weights; named layers kept float (nodes_to_exclude)")
    honours = frozenset({"per_channel", "calibrate_method", "activation_type", "quant_format", "keep_float"})
    needs_calibration = runs_model = True
    ops = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul")

    def what(self, options) -> str:
        return "static int8 quantization"

    def layers(self, src, options, scratch) -> list[str]:
        return quantizable_layers(src, Path(tempfile.mkdtemp(dir=scratch)))

    def run(self, src, options, out):
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        import onnx

        from .compress_repair import named_layers

        named_layers(options)  # a count was resolved to names by the sensitivity ranking, else refused
        dest = out / f"{src.stem}.onnx"
        model_src, notes = _preprocess(src, Path(tempfile.mkdtemp()))  # the runner confines temp files
        keep = tuple(options.keep_float or ())
        if keep:
            known = set(layer_names(model_src))
            unknown = [k for k in keep if k not in known]
            if unknown:
                raise ConversionError(f"keep_float names no layer {', '.join(unknown[:3])} in the model",
                                      f"layer names: {', '.join(sorted(known)[:8])}, ...")
        reader = _FeedReader(options.calibration, _graph_inputs(onnx.load(str(src))))
        method = options.calibrate_method or "minmax"
        fmt, act = options.quant_format or "qdq", options.activation_type or "u8"
        try:
            with _entropy_bins():
                quantize_static(str(model_src), str(dest), reader,
                                quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                                activation_type=QuantType.QUInt8 if act == "u8" else QuantType.QInt8,
                                weight_type=QuantType.QInt8, per_channel=options.per_channel,
                                calibrate_method={"minmax": CalibrationMethod.MinMax,
                                                  "entropy": CalibrationMethod.Entropy,
                                                  "percentile": CalibrationMethod.Percentile}[method],
                                nodes_to_exclude=list(keep))
        except Exception as err:
            from .base import fail

            raise fail("static int8 quantization failed", err) from err
        notes.append(f"static int8 {fmt.upper()}, {'per-channel' if options.per_channel else 'per-tensor'} weights, "
                     f"{'uint8' if act == 'u8' else 'int8'} activations, calibrated on {len(reader._items)} samples "
                     f"({method})" + (f"; kept float: {', '.join(keep)}" if keep else ""))
        return dest, notes

    @staticmethod
    def inspect(path: Path) -> dict:
        import onnx

        model = onnx.load(str(path))
        counts = quant_summary(model)
        counts["bytes"] = _size(Path(path))
        counts["float_nodes"] = _float_nodes(model)
        counts["s8_activations"] = _s8_activations(model)
        return counts

    def ensures(self, before, after, options) -> None:
        super().ensures(before, after, options)
        lost = [k for k in (options.keep_float or ()) if k not in after["float_nodes"]]
        if isinstance(options.keep_float, tuple) and lost:
            raise ConversionError(f"keep_float had no effect on {', '.join(lost[:3])}: quantized anyway",
                                  "this is an edgekit bug in the ONNX pass; please report it")
        if options.quant_format == "qoperator" and not any(after.get(k, 0) for k in ("QLinearConv",
                                                                                     "QLinearMatMul")):
            raise ConversionError("--quant-format qoperator had no effect: no QLinearConv/QLinearMatMul operator",
                                  "the model may have no Conv/MatMul with constant weights")
        if options.activation_type == "s8" and not after["s8_activations"]:
            raise ConversionError("--activation-type s8 had no effect: no activation quantized to int8",
                                  "this is an edgekit bug in the ONNX pass; please report it")


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


@contextlib.contextmanager
def _entropy_bins():
    """ORT's Entropy calibration through quantize_static histograms into 128 bins and searches thresholds over
    128 quantized bins: one candidate, the full range, so it equals MinMax. While quantizing, the calibrator is
    built with 512 bins instead (TensorRT uses 2048; 512 keeps the threshold search short), so Entropy clips."""
    import importlib

    from onnxruntime.quantization import CalibrationMethod

    q = importlib.import_module("onnxruntime.quantization.quantize")  # the package's `quantize` is a function

    made = q.create_calibrator

    def create(*args, **kw):
        if kw.get("calibrate_method") == CalibrationMethod.Entropy:
            kw["extra_options"] = {"num_bins": 512, "num_quantized_bins": 128, **(kw.get("extra_options") or {})}
        return made(*args, **kw)

    q.create_calibrator = create
    try:
        yield
    finally:
        q.create_calibrator = made


def _preprocess(src: Path, folder: Path) -> tuple[Path, list[str]]:
    """ORT's quantization pre-processing (shape inference, graph optimisation) into ``folder``; the model as it is
    when that fails (an optimisation, not a requirement)."""
    pre = folder / "pre.onnx"
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(str(src), str(pre))
        return pre, []
    except Exception as err:  # noqa: BLE001
        first = str(err).splitlines()[0][:160] if str(err) else ""
        return src, [f"quantization pre-processing skipped ({type(err).__name__}: {first})"]


def layer_names(path: Path) -> list[str]:
    """The nodes of ``path`` that ORT's static int8 quantizes (op types of its QDQ and QOperator registries), in
    graph order: what ``keep_float`` can name. Nodes without a name are not listed."""
    import onnx
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    types = set(QDQRegistry) | set(QLinearOpsRegistry)
    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type in types and n.name]


def quantizable_layers(src: Path, folder: Path) -> list[str]:
    """The layers ``keep_float`` can name for the model at ``src``: those of its pre-processed form."""
    pre, _ = _preprocess(Path(src), Path(folder))
    return layer_names(pre)


def _float_nodes(model) -> list[str]:
    """Names of the nodes left in float: not a quantized op, and no constant input fed through DequantizeLinear."""
    consts = {t.name for t in model.graph.initializer}
    deq_const = {o for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in consts
                 for o in n.output}
    return [n.name for n in model.graph.node if n.op_type not in QUANT_OPS and not n.op_type.startswith("QLinear")
            and n.op_type not in ("QGemm", "QAttention") and not any(i in deq_const for i in n.input)]


def _s8_activations(model) -> int:
    """QuantizeLinear nodes on activations whose zero point is int8."""
    from onnx import TensorProto

    int8 = {t.name for t in model.graph.initializer if t.data_type == TensorProto.INT8}
    return sum(1 for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2
               and n.input[2] in int8)


def _graph_inputs(model) -> list[str]:
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def _size(path: Path) -> int:
    """The model file plus its external data files beside it."""
    extra = sum(p.stat().st_size for p in path.parent.glob(f"{path.name}.data"))
    return path.stat().st_size + extra
