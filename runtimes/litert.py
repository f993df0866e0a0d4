"""LiteRT (TFLite) backend: ai-edge-litert, else tflite-runtime, else TensorFlow's interpreter.

The flatbuffer is validated in pure Python before the native interpreter sees it, because a corrupt or
truncated file can crash the interpreter; a file the validator cannot vouch for is first run in a child process
(runtimes/_probe.py). LiteRT's own errors, at load or run time, become ModelFileError / BackendError naming the
failing op. A LiteRT interpreter is not thread-safe: calls are serialized.
Quantized int8/uint8 inputs and outputs take and return floats (quantized with the tensor's own scale and
zero point) unless ``raw_quantized_io=True``.
"""

from __future__ import annotations

import importlib
import re
import warnings

import numpy as np

from edgekit.errors import BackendError, ModelFileError
from edgekit.formats import Format
from edgekit.runtimes.base import Runner
from edgekit.space import Knob, thread_choices
from edgekit.formats.tflite_io import precision, quantizers, tensor_specs

_NODE = re.compile(r"Node number (\d+) \(([^)]*)\) failed to (\w+)")
_NOISE = "Restored original execution plan after delegate application failure."
CUSTOM_HINT = ("the model uses an operator this LiteRT build does not provide; register the custom op or convert "
               "without it")

# edgekit tune's knob for models run here (the interpreter's num_threads)
KNOBS = (Knob("litert.threads", thread_choices(), targets=("tflite",), owner=__name__, help="interpreter threads"),)


def explain(e: BaseException) -> tuple[str, str | None, bool]:
    """(message, failing op, is-an-unresolved-custom-op) from a LiteRT exception. LiteRT glues its messages
    together: "tflite/kernels/reshape.cc:92 num_input_elements != ... (4 != 8)Node number 4 (RESHAPE) failed to
    prepare." becomes ("num_input_elements != ... (4 != 8)", "RESHAPE (node 4)", False)."""
    text = " ".join(str(e).replace(_NOISE, " ").split())
    custom = "custom op" in text.lower() or "unresolved" in text.lower()
    m = _NODE.search(text)
    op = None
    if m:
        name = m.group(2) or "?"
        op = f"{'the XNNPACK delegate' if 'XNNPack' in name else name} (node {m.group(1)})"
        text = (text[:m.start()] + " " + text[m.end():].lstrip(". ")).strip()
    text = re.sub(r"^\S+\.(cc|h)(:\d+)?\s+", "", text).split(". See instructions")[0].strip() or type(e).__name__
    return text[:300], op, custom


def _backend_error(e: BaseException, what: str) -> BackendError:
    msg, op, custom = explain(e)
    where = f" in {op}" if op else ""
    hint = CUSTOM_HINT if custom else ("the model does not fit these inputs, or the file is inconsistent; check it "
                                       "with `edgekit inspect`, or try another --backend")
    return BackendError(f"LiteRT failed {what}{where}: {msg}", hint)


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
        from edgekit.formats.tflite_fb import FlatbufferError, read_tflite

        path = self.source.path
        try:
            self.info = read_tflite(path.read_bytes())
        except FlatbufferError as e:
            raise ModelFileError(f"{path.name} is not a valid TFLite model: {e}") from e
        from edgekit._quiet import quiet_native
        from edgekit.runtimes._probe import probe_tflite

        module = self.require()
        self.module = module
        # a file the validator cannot vouch for is run once in a child process first (a crash there is an error)
        self.probe_ms = probe_tflite(path, self.info, "litert", module)
        extra = {}
        if self.options.get("intermediates"):  # keep every tensor; no delegate fuses ops (and hides tensors) away
            resolver = getattr(importlib.import_module(module + ".interpreter"), "OpResolverType", None) \
                if module != "tensorflow" else importlib.import_module("tensorflow").lite.experimental.OpResolverType
            extra = {"experimental_preserve_all_tensors": True,
                     "experimental_op_resolver_type": resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
        try:
            with quiet_native(), warnings.catch_warnings():  # "preserve_all_tensors is for debugging": it is
                warnings.simplefilter("ignore")
                Interpreter = _interpreter_class(module)
                it = Interpreter(model_path=str(path), num_threads=self.threads, **extra)
                it.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            msg, op, custom = explain(e)
            where = f" ({op})" if op else ""
            if custom:
                raise BackendError(f"LiteRT cannot run {path.name}{where}: {msg}", CUSTOM_HINT) from e
            raise ModelFileError(f"LiteRT could not load {path.name}{where}: {msg}") from e
        self._it = it
        self.inputs, self.outputs = tensor_specs(self.info)
        self.inputs_ordered = len(self.inputs) < 2  # signature inputs are keyed by name (see _tflite_io)
        index = {d["name"]: d["index"] for d in it.get_input_details() + it.get_output_details()}
        self._in_index = {s.name: index[s.extra["tensor_name"]] for s in self.inputs}
        self._in_shape = {d["index"]: tuple(int(x) for x in d["shape"]) for d in it.get_input_details()}
        self._in_quant = quantizers(self.inputs, self.raw_quantized_io)
        outq = quantizers(self.outputs, self.raw_quantized_io)
        self._out = [(s.name, index[s.extra["tensor_name"]], outq.get(s.name)) for s in self.outputs]
        self.precision = precision(self.info)
        # intermediates: every operator's outputs, in operator order ((op type, [tensor names]) for localize)
        self.op_order: list[tuple[str, list[str]]] = []
        self._extra: list[tuple[str, int, float, int]] = []
        if extra:
            details = {d["index"]: d for d in it.get_tensor_details()}
            for op in it._get_ops_details():
                outs = [details[i] for i in op["outputs"] if i >= 0 and i in details]
                self.op_order.append((op["op_name"], [d["name"] for d in outs]))
                for d in outs:
                    scale, zp = d.get("quantization", (0.0, 0))
                    self._extra.append((d["name"], d["index"], scale, zp))

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        it = self._it
        resized = False
        for name, x in feeds.items():
            idx = self._in_index[name]
            q = self._in_quant.get(name)
            if q is not None:
                x = q.quantize(x)
            if x.shape != self._in_shape[idx]:
                try:
                    it.resize_tensor_input(idx, x.shape, strict=True)
                except (RuntimeError, ValueError) as e:
                    raise _backend_error(e, f"resizing input '{name}' to {list(x.shape)}") from e
                self._in_shape[idx] = x.shape
                resized = True
            feeds[name] = x
        if resized:
            try:
                it.allocate_tensors()
            except (RuntimeError, ValueError) as e:
                msg, op, _custom = explain(e)
                raise BackendError(f"LiteRT could not resize the model's inputs{f' ({op})' if op else ''}: {msg}",
                                   "this model does not support that input shape") from e
        try:
            set_tensor = it.set_tensor
            for name, x in feeds.items():
                set_tensor(self._in_index[name], x)
            it.invoke()
            get = it.get_tensor
            out = {}
            for name, idx, q in self._out:
                y = get(idx)
                out[name] = y if q is None else q.dequantize(y)
            for name, idx, scale, zp in self._extra:
                try:
                    y = np.array(get(idx))
                except ValueError:  # a tensor LiteRT did not keep (e.g. an unused scratch buffer)
                    continue
                out.setdefault(name, (y.astype(np.float32) - zp) * scale if y.dtype.kind in "iu" and scale else y)
        except (RuntimeError, ValueError) as e:
            raise _backend_error(e, f"running {self.source.path.name}") from e
        return out

    def raw_call(self, feeds):
        self.infer(feeds)  # sizes the tensors for these inputs
        feeds = self._check(feeds)
        it = self._it
        pairs = [(self._in_index[k], self._in_quant[k].quantize(v) if k in self._in_quant else v)
                 for k, v in feeds.items()]
        outs = [idx for _name, idx, _q in self._out]
        set_tensor, invoke, get = it.set_tensor, it.invoke, it.get_tensor

        def call():
            for idx, x in pairs:
                set_tensor(idx, x)
            invoke()
            return [get(i) for i in outs]

        return call

    def _close(self) -> None:
        self._it = None

    def describe(self) -> dict:
        facts = {
            "parameters": self.info.parameter_count(),
            "ops": self.info.op_histogram(),
            "runtime": self.module,
        }
        if self.probe_ms is not None:  # the validator could not vouch for every op: a child process ran it first
            facts["child_probe_ms"] = round(self.probe_ms, 1)
        return facts
