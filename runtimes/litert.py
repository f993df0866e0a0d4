"""LiteRT (TFLite) backend: ai-edge-litert, else tflite-runtime, else TensorFlow's interpreter.

The flatbuffer is validated in pure Python before the native interpreter sees it, because a corrupt or
truncated file can crash the interpreter. A LiteRT interpreter is not thread-safe: calls are serialized.
Quantized int8/uint8 inputs and outputs take and return floats (quantized with the tensor's own scale and
zero point) unless ``raw_quantized_io=True``.
"""

from __future__ import annotations

import importlib

import numpy as np

from edgekit.errors import BackendError, ModelFileError
from edgekit.formats import Format
from edgekit.runtimes.base import Runner
from edgekit.types import TensorSpec, dims


def _interpreter_class(module: str):
    if module == "tensorflow":
        return importlib.import_module("tensorflow").lite.Interpreter
    return importlib.import_module(module + ".interpreter").Interpreter


class LiteRTRunner(Runner):
    name = "litert"
    formats = (Format.TFLITE,)
    requires = (
        ("ai_edge_litert", "ai-edge-litert", "litert"),
        ("tflite_runtime", "tflite-runtime", "litert"),
        ("tensorflow", "tensorflow", "tensorflow"),
    )
    thread_safe = False

    def _load(self) -> None:
        from edgekit.runtimes._tflite_fb import FlatbufferError, read_tflite

        path = self.source.path
        try:
            self.info = read_tflite(path.read_bytes())
        except FlatbufferError as e:
            raise ModelFileError(f"{path.name} is not a valid TFLite model: {e}") from e
        from edgekit._quiet import quiet_native

        module = self.require()
        self.module = module
        try:
            with quiet_native():
                Interpreter = _interpreter_class(module)
                it = Interpreter(model_path=str(path), num_threads=self.threads)
                it.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if "custom op" in msg.lower() or "unresolved" in msg.lower():
                raise BackendError(f"LiteRT cannot run {path.name}: {msg}",
                                   "the model uses an operator this LiteRT build does not provide; "
                                   "register the custom op or convert without it") from e
            raise ModelFileError(f"LiteRT could not load {path.name}: {msg}") from e
        self._it = it
        names_in, names_out = self._signature_names()
        in_det, out_det = it.get_input_details(), it.get_output_details()
        self.inputs = [self._spec(d, names_in.get(d["index"], d["name"])) for d in in_det]
        self.outputs = [self._spec(d, names_out.get(d["index"], d["name"])) for d in out_det]
        self._in_index = {s.name: d["index"] for s, d in zip(self.inputs, in_det)}
        self._in_shape = {d["index"]: tuple(int(x) for x in d["shape"]) for d in in_det}
        self._in_quant = {s.name: _qparams(s) for s in self.inputs if s.quantized and not self.raw_quantized_io}
        self._out = [(s.name, d["index"], _qparams(s) if s.quantized and not self.raw_quantized_io else None)
                     for s, d in zip(self.outputs, out_det)]
        self.precision = _precision(self.info)

    def _signature_names(self) -> tuple[dict[int, str], dict[int, str]]:
        """Use the signature's names (e.g. 'image') instead of tensor names ('serving_default_image:0')
        when a single signature covers exactly the main subgraph's inputs and outputs."""
        sigs = [s for s in self.info.signature_defs if s.get("subgraph", 0) == 0]
        sub = self.info.subgraphs[0]
        if len(self.info.signature_defs) != 1 or not sigs:
            return {}, {}
        s = sigs[0]
        if sorted(s["inputs"].values()) != sorted(sub.inputs) or sorted(s["outputs"].values()) != sorted(sub.outputs):
            return {}, {}
        return {i: n for n, i in s["inputs"].items()}, {i: n for n, i in s["outputs"].items()}

    @staticmethod
    def _spec(d: dict, name: str) -> TensorSpec:
        q = d.get("quantization_parameters") or {}
        scales = tuple(float(x) for x in q.get("scales", ()))
        zps = tuple(int(x) for x in q.get("zero_points", ()))
        sig = d.get("shape_signature")
        shape = dims(sig if sig is not None and len(sig) else d["shape"])
        return TensorSpec(name=name, shape=shape, dtype=np.dtype(d["dtype"]).name, scale=scales, zero_point=zps,
                          quantized_dimension=int(q.get("quantized_dimension", 0)),
                          extra={"tensor_name": d["name"], "index": d["index"]})

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        it = self._it
        resized = False
        for name, x in feeds.items():
            idx = self._in_index[name]
            q = self._in_quant.get(name)
            if q is not None:
                x = _quantize(x, *q)
            if x.shape != self._in_shape[idx]:
                it.resize_tensor_input(idx, x.shape, strict=True)
                self._in_shape[idx] = x.shape
                resized = True
            feeds[name] = x
        if resized:
            try:
                it.allocate_tensors()
            except (RuntimeError, ValueError) as e:
                raise BackendError(f"LiteRT could not resize the model's inputs: {str(e).strip()[:300]}",
                                   "this model does not support that input shape") from e
        set_tensor = it.set_tensor
        for name, x in feeds.items():
            set_tensor(self._in_index[name], x)
        it.invoke()
        get = it.get_tensor
        out = {}
        for name, idx, q in self._out:
            y = get(idx)
            out[name] = y if q is None else _dequantize(y, *q)
        return out

    def _close(self) -> None:
        self._it = None

    def describe(self) -> dict:
        return {
            "parameters": self.info.parameter_count(),
            "ops": self.info.op_histogram(),
            "runtime": self.module,
        }


def _precision(info) -> str:
    """int8 when weights are quantized integers, fp16 when float weights are stored as fp16, else fp32."""
    kinds = {t.dtype for g in info.subgraphs for t in g.tensors if t.buffer_size and t.scale}
    if kinds & {"int8", "uint8", "int16"}:
        return "int8"
    if any(t.dtype == "float16" and t.buffer_size for g in info.subgraphs for t in g.tensors):
        return "fp16"
    return "fp32"


def _qparams(spec: TensorSpec):
    scale = np.asarray(spec.scale, dtype=np.float32)
    zp = np.asarray(spec.zero_point, dtype=np.float32)
    if scale.size > 1 and spec.shape is not None:  # per-channel: broadcast along the quantized axis
        shape = [1] * len(spec.shape)
        shape[spec.quantized_dimension] = scale.size
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    elif scale.size == 1:
        scale, zp = scale.reshape(()), zp.reshape(())
    info = np.iinfo(spec.dtype)
    return scale, zp, np.dtype(spec.dtype), float(info.min), float(info.max)


def _quantize(x: np.ndarray, scale, zp, dtype, lo, hi) -> np.ndarray:
    return np.clip(np.round(x / scale + zp), lo, hi).astype(dtype)


def _dequantize(y: np.ndarray, scale, zp, dtype, lo, hi) -> np.ndarray:
    return ((y.astype(np.float32) - zp) * scale).astype(np.float32)
