"""ONNX Runtime backend (CPU execution provider).

Before ONNX Runtime opens a file, a pure-Python scan checks the protobuf and that every tensor stored as
external data lives inside the model's own folder (a crafted model could otherwise read any file).
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import BackendError, ModelFileError, first_line
from edgekit.formats import Format
from edgekit.runtimes.base import Runner
from edgekit.space import Knob, thread_choices
from edgekit.types import TensorSpec, dims

# edgekit tune's knobs for models run here (options a Runner takes: threads, graph_optimization_level)
GRAPH_LEVELS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC",
                "none": "ORT_DISABLE_ALL"}
KNOBS = (Knob("onnxruntime.threads", thread_choices(), targets=("onnx",), owner=__name__,
              help="intra-op threads"),
         Knob("onnxruntime.graph_optimization_level", ("all", "extended", "basic"), targets=("onnx",),
              owner=__name__, help="ONNX Runtime's graph optimizations (fusions, layout changes)"))

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(bfloat16)": "bfloat16", "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16",
    "tensor(uint16)": "uint16", "tensor(int32)": "int32", "tensor(uint32)": "uint32", "tensor(int64)": "int64",
    "tensor(uint64)": "uint64", "tensor(bool)": "bool", "tensor(string)": "str",
}


def check_onnx_file(path):
    """Scan an ONNX file and refuse it when it is damaged or its external data leaves its folder."""
    from edgekit.formats.onnx_scan import ExternalDataError, OnnxScanError, check_external_data, scan_onnx

    try:
        info = scan_onnx(path)
        check_external_data(info, path)
    except ExternalDataError as e:
        raise ModelFileError(f"unsafe ONNX model {path.name}: {e}",
                             "external data files must sit inside the model's folder; move them there and fix "
                             "the locations, or re-save the model with onnx.save_model(...)") from e
    except OnnxScanError as e:
        raise ModelFileError(f"{path.name}: {e}") from e
    return info



_INT8_OPS = ("QuantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger",
             "DynamicQuantizeLinear")


def onnx_precision(info) -> str:
    """Read from the file, not assumed: 4-bit MatMulNBits, int8 quantization ops, else the weights' stored type
    (an fp16 model with fp32 I/O keeps float16 initializers behind Cast nodes)."""
    from edgekit.precision import from_weights, lowest

    ops = info.op_histogram
    if any(k.endswith("MatMulNBits") for k in ops):
        return "int4"
    if any(k in ops for k in _INT8_OPS):
        return "int8"
    io = "fp16" if any(v.dtype == "float16" for v in info.inputs + info.outputs) else None
    return lowest(from_weights(info.weight_dtypes), io)


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"
    formats = (Format.ONNX,)
    requires = (("onnxruntime", "onnxruntime", "onnx"),)

    def _load(self) -> None:
        path = self.source.path
        self.info = check_onnx_file(path)
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        if self.threads:
            so.intra_op_num_threads = int(self.threads)
            so.inter_op_num_threads = 1
        level = self.options.get("graph_optimization_level")
        if level is not None:
            so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_LEVELS[level])
        try:
            if self.options.get("intermediates"):
                self.session = self._session_with_intermediates(ort, so)
            else:
                self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            raise ModelFileError(f"ONNX Runtime could not load {path.name}: {first_line(e)}",
                                 "check the model with `python -m onnx.checker`, or try --backend openvino") from e
        self.inputs = [self._spec(a) for a in self.session.get_inputs()]
        self.outputs = [self._spec(a) for a in self.session.get_outputs()]
        self._out_names = [s.name for s in self.outputs]
        self.precision = onnx_precision(self.info)

    def _session_with_intermediates(self, ort, so):
        """A session on a private copy of the model where every node output is also a graph output (typed from
        shape inference where it knows the type; ONNX Runtime accepts an untyped one), optimizations off."""
        import tempfile
        from pathlib import Path

        import onnx
        from onnx import helper

        model = onnx.load(str(self.source.path), load_external_data=True)
        types = {}
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
            for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
                if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
                    types[vi.name] = vi.type.tensor_type.elem_type
        except Exception:  # noqa: BLE001 - shape inference is a nicety (custom ops, > 2 GB); untyped outputs run
            pass
        have = {o.name for o in model.graph.output}
        for node in model.graph.node:
            for name in node.output:
                if name and name not in have:
                    have.add(name)
                    model.graph.output.append(helper.make_tensor_value_info(name, types[name], None)
                                              if name in types else onnx.ValueInfoProto(name=name))
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        with tempfile.TemporaryDirectory(prefix="edgekit-intermediates-") as tmp:  # read at session creation
            copy = Path(tmp) / "model.onnx"
            onnx.save_model(model, str(copy), save_as_external_data=True, all_tensors_to_one_file=True,
                            location="model.onnx.data")
            return ort.InferenceSession(str(copy), so, providers=["CPUExecutionProvider"])

    @staticmethod
    def _spec(arg) -> TensorSpec:
        shape = None if arg.shape is None else dims(arg.shape)
        return TensorSpec(name=arg.name, shape=shape, dtype=_ORT_TYPES.get(arg.type, arg.type))

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            res = self.session.run(self._out_names, feeds)
        except Exception as e:
            raise BackendError(f"ONNX Runtime inference failed: {first_line(e)}") from e
        return dict(zip(self._out_names, res))

    def raw_call(self, feeds):
        feeds = self._check(feeds)
        run, names = self.session.run, self._out_names
        return lambda: run(names, feeds)

    def _close(self) -> None:
        self.session = None

    def describe(self) -> dict:
        return {"parameters": self.info.parameter_count, "ops": dict(self.info.op_histogram),
                "opsets": dict(self.info.opsets), "producer": self.info.producer}
