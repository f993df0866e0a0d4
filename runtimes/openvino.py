"""OpenVINO backend for IR (.xml + .bin), and for .onnx / .tflite files that OpenVINO reads directly.

fp32 models run at f32 inference precision unless asked otherwise: on CPUs with AVX512_BF16 or AMX, OpenVINO's
default would silently compute in bf16 (see DESIGN.md field notes). Pass ``inference_precision="bf16"`` to choose
it explicitly; on a CPU without bf16 OpenVINO silently runs f32, and the model reports what really ran.

An ``InferRequest`` is not safe to share between threads (one call's outputs were returned to another), so
each thread gets its own request, created on its first call and reused after that.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np

from edgekit.errors import BackendError, InputError, ModelFileError, first_line
from edgekit.formats import Format
from edgekit.runtimes.base import Runner
from edgekit.space import Knob, thread_choices
from edgekit.types import TensorSpec

_NOT_WEIGHTS = {"i32", "i64", "u64", "boolean", "string"}
_PRECISIONS = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


def _bf16_here() -> bool:
    """The CPU computes bf16 natively (AVX512-BF16 / AMX-BF16, Arm BF16): only then is bf16 inference a knob."""
    from edgekit.machine import cpu_info

    return bool({"avx512_bf16", "amx_bf16", "bf16"} & set(cpu_info()["isa"]))


# edgekit tune's knobs for models run here (options a Runner takes: threads, performance_hint,
# inference_precision); bf16 arithmetic only where this CPU has it
KNOBS = (Knob("openvino.threads", thread_choices(), targets=("openvino",), owner=__name__, help="inference threads"),
         Knob("openvino.performance_hint", ("LATENCY", "THROUGHPUT"), targets=("openvino",), owner=__name__,
              help="OpenVINO's streams/threads policy"),
         Knob("openvino.inference_precision", ("f32", "bf16") if _bf16_here() else ("f32",), targets=("openvino",),
              owner=__name__, help="the arithmetic OpenVINO computes in"))
_core = None


def core():
    """One shared ov.Core per process (creating one costs tens of milliseconds)."""
    global _core
    if _core is None:
        from edgekit._offline import vendor_telemetry_off

        with vendor_telemetry_off():  # importing openvino sends a usage event unless stopped
            import openvino as ov

            _core = ov.Core()
    return _core


def _first_line(e: Exception) -> str:
    """The cause in an OpenVINO exception, with a plain reading of its truncated-weights message."""
    msg = first_line(e)
    if "Incorrect weights in bin file" in msg:
        msg += " (the .bin is shorter than the .xml expects: truncated or from another model)"
    return msg


def port_name(port, i: int, kind: str) -> str:
    try:
        return port.get_any_name()
    except RuntimeError:  # an unnamed port
        return f"{kind}_{i}"


def port_spec(port, name: str) -> TensorSpec:
    ps = port.get_partial_shape()
    shape = None if ps.rank.is_dynamic else tuple(d.get_length() if d.is_static else None for d in ps)
    try:
        dtype = np.dtype(port.get_element_type().to_dtype()).name
    except (RuntimeError, TypeError):
        dtype = str(port.get_element_type())
    return TensorSpec(name=name, shape=shape, dtype=dtype)


def ir_weights_precision(model) -> str:
    """The precision of an OpenVINO model's weights: FakeQuantize means int8 (NNCF); otherwise the element type
    holding most weight elements (f16 for a compressed IR, u8/u4 for weight compression)."""
    from edgekit.precision import from_weights

    counts: dict[str, int] = {}
    for op in model.get_ordered_ops():
        t = op.get_type_name()
        if t == "FakeQuantize":
            return "int8"
        if t == "Constant":
            et = op.get_output_element_type(0).get_type_name()
            if et in _NOT_WEIGHTS:
                continue
            n = 1
            for d in op.get_output_shape(0):
                n *= int(d)
            counts[et] = counts.get(et, 0) + n
    return from_weights(counts)


def _device_has(c, device: str, precision: str) -> bool:
    """Whether ``device`` lists ``precision`` (bf16, fp16) among its optimization capabilities."""
    try:
        caps = c.get_property(device, "OPTIMIZATION_CAPABILITIES")
    except RuntimeError:
        return True  # the device cannot say: trust the compiled model's own report
    return precision.upper() in {str(x).upper() for x in caps}


class OpenVINORunner(Runner):
    name = "openvino"
    formats = (Format.OPENVINO_IR, Format.ONNX, Format.TFLITE, Format.SAVEDMODEL)
    requires = (("openvino", "openvino", "openvino"),)

    def _load(self) -> None:
        precision = self.options.get("inference_precision", "f32")
        if precision not in _PRECISIONS:
            raise InputError(f"unknown OpenVINO inference precision '{precision}'",
                             f"choose one of: {', '.join(_PRECISIONS)}")
        if self.source.format in (Format.ONNX,):
            from edgekit.runtimes.onnxruntime import check_onnx_file

            check_onnx_file(self.source.path)
        tfl = None
        if self.source.format is Format.TFLITE:
            from edgekit.formats.tflite_fb import FlatbufferError, read_tflite

            try:
                tfl = read_tflite(self.source.path.read_bytes())
            except FlatbufferError as e:
                raise ModelFileError(f"{self.source.path.name} is not a valid TFLite model: {e}") from e
            from edgekit.runtimes._probe import probe_tflite  # unvouched files run in a child process first

            probe_tflite(self.source.path, tfl, "openvino")
        c = core()
        path = self.source.path
        try:
            self.model = c.read_model(str(path))
        except (RuntimeError, UnicodeDecodeError) as e:  # a name of invalid UTF-8 cannot decode OpenVINO's message
            raise ModelFileError(f"OpenVINO could not read {path.name}: {_first_line(e)}") from e
        if self.options.get("intermediates"):  # every named op output becomes a model output
            names = [n for op in self.model.get_ordered_ops() if op.get_type_name() not in ("Parameter", "Constant",
                                                                                            "Result")
                     for o in op.outputs() for n in list(o.get_names())[:1]]
            have = {n for o in self.model.outputs for n in o.get_names()}
            if [n for n in names if n not in have]:
                self.model.add_outputs([n for n in names if n not in have])
        config = {"INFERENCE_PRECISION_HINT": precision}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        if self.options.get("performance_hint"):
            config["PERFORMANCE_HINT"] = str(self.options["performance_hint"])
        try:
            self.compiled = c.compile_model(self.model, self.device, config)
        except RuntimeError as e:
            raise BackendError(f"OpenVINO could not compile {path.name} for {self.device}: {_first_line(e)}") from e
        self._local = threading.local()
        self.request = self._request()  # the loading thread's own request
        ins, outs = self.compiled.inputs, self.compiled.outputs
        self.inputs = [port_spec(p, port_name(p, i, "input")) for i, p in enumerate(ins)]
        self.outputs = [port_spec(p, port_name(p, i, "output")) for i, p in enumerate(outs)]
        self._in_index = {s.name: i for i, s in enumerate(self.inputs)}
        self._out_order = list(range(len(self.outputs)))
        self._in_quant = self._out_quant = {}
        if tfl is not None or self.source.format is Format.SAVEDMODEL:
            self.inputs_ordered = len(self.inputs) < 2  # keyed by name in the file
        if tfl is not None:
            self._adopt_tflite_io(tfl, ins, outs)
        elif self.source.format is Format.SAVEDMODEL:  # keyword signature: order by name, as the keras backend does
            from edgekit.formats.tflite_io import natural_key

            self.inputs.sort(key=lambda s: natural_key(s.name))
            perm = sorted(range(len(self.outputs)), key=lambda i: natural_key(self.outputs[i].name))
            self.outputs = [self.outputs[i] for i in perm]
            self._out_order = perm
        self._out_names = [s.name for s in self.outputs]
        self._n_out = len(self.compiled.outputs)
        self._out_range = range(self._n_out)
        self._out_in_order = self._out_order == list(self._out_range)
        import openvino as ov

        self._Tensor = ov.Tensor
        # intermediates: each output also under its other tensor names (a reference may know it by any of them)
        self._aliases = [(i, n) for i, p in enumerate(self.compiled.outputs) for n in p.get_names()
                         if n != self._out_names[i]] if self.options.get("intermediates") else []
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        actual = hint.to_string() if hasattr(hint, "to_string") else str(hint)
        self.precision = next((v for k, v in _PRECISIONS.items() if k in actual), actual)
        if self.precision in ("bf16", "fp16") and not _device_has(c, self.device, self.precision):
            # OpenVINO accepts the hint and silently computes in f32 where the CPU has no such arithmetic
            self.notes.append(f"{precision} inference was asked but {self.device} has no {self.precision.upper()} "
                              "capability here: it runs in fp32")
            self.precision = "fp32"
        if tfl is not None:
            from edgekit.formats.tflite_io import precision as tflite_precision

            stored = tflite_precision(tfl)
        else:
            stored = ir_weights_precision(self.model)
        from edgekit.precision import lowest

        self.precision = lowest(stored, self.precision)  # fp16-stored weights carry fp16 error even in f32

    def _adopt_tflite_io(self, info, ins, outs) -> None:
        """Give a .tflite run by OpenVINO the same names, order and float I/O as under LiteRT."""
        from edgekit.formats.tflite_io import quantizers, tensor_specs

        t_in, t_out = tensor_specs(info)

        def match(specs, ports):
            where = {n: i for i, p in enumerate(ports) for n in p.get_names()}
            return [where.get(s.extra["tensor_name"]) for s in specs]

        pin, pout = match(t_in, ins), match(t_out, outs)
        if None in pin or None in pout:
            return  # OpenVINO renamed something: keep its own names
        self.inputs = [replace(t, shape=self.inputs[i].shape) for t, i in zip(t_in, pin)]
        self.outputs = [replace(t, shape=self.outputs[i].shape) for t, i in zip(t_out, pout)]
        self._in_index = {s.name: i for s, i in zip(self.inputs, pin)}
        self._out_order = pout
        self._in_quant = quantizers(self.inputs, self.raw_quantized_io)
        self._out_quant = quantizers(self.outputs, self.raw_quantized_io)

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        idx, inq = self._in_index, self._in_quant
        if inq:
            feeds = {k: (inq[k].quantize(v) if k in inq else v) for k, v in feeds.items()}
        try:
            ys = self._run(self._request(), feeds)
        except RuntimeError as e:
            raise BackendError(f"OpenVINO inference failed: {_first_line(e)}") from e
        out = dict(zip(self._out_names, ys)) if self._out_in_order else \
            {name: ys[i] for name, i in zip(self._out_names, self._out_order)}
        for k, q in self._out_quant.items():
            out[k] = q.dequantize(out[k])
        for i, n in self._aliases:
            out.setdefault(n, ys[i])
        return out

    def _run(self, req, feeds: dict) -> list:
        """One synchronous inference; the outputs, copied. An input array already bound to the request as a
        shared-memory tensor (the same array object, shape and dtype as last time: a timed loop, a stream of
        frames written into one buffer) is not bound again: `InferRequest.infer(dict)` re-wraps every input on
        every call, ~10 us from Python, 8 % of a 0.12 ms model beside benchmark_app."""
        bound, idx = self._bound(), self._in_index
        for k, v in feeds.items():
            b = bound.get(k)
            if b is None or b[0] is not v or b[1] != v.shape or b[2] != v.dtype:
                if v.dtype.kind not in "biuf":  # strings etc.: OpenVINO's own path
                    bound.clear()
                    return list(req.infer({idx[n]: x for n, x in feeds.items()}, share_inputs=True,
                                          share_outputs=False).to_tuple())
                arr = v if v.flags.c_contiguous else np.ascontiguousarray(v)
                req.set_input_tensor(idx[k], self._Tensor(arr, shared_memory=True))
                bound[k] = (v, v.shape, v.dtype, arr)
        req.infer()
        get = req.get_output_tensor
        return [get(j).data.copy() for j in self._out_range]

    def _bound(self) -> dict:
        try:
            return self._local.bound
        except AttributeError:
            b = self._local.bound = {}
            return b

    def raw_call(self, feeds):
        """The leanest synchronous loop (benchmark_app's): inputs bound once as shared tensors, ``infer()``,
        outputs copied out."""
        feeds = self._check(feeds)
        inq = self._in_quant
        req = self._request()
        for k, v in feeds.items():
            v = inq[k].quantize(v) if k in inq else v
            req.set_input_tensor(self._in_index[k], self._Tensor(np.ascontiguousarray(v), shared_memory=True))
        self._bound().clear()  # edgekit's next call binds its own tensors again
        infer, get, n = req.infer, req.get_output_tensor, self._n_out

        def call():
            infer()
            return [get(j).data.copy() for j in range(n)]

        return call

    def runtime_clock(self):
        """OpenVINO's own timer around the plugin's infer, inside the Python binding (``InferRequest.latency``,
        ms): what benchmark_app's median reports. It leaves out the binding's GIL release and re-acquire and the
        output dict, which a wall-clock call from Python pays."""
        req = self._request()
        return "openvino InferRequest.latency", lambda: req.latency

    def async_throughput(self, feeds, seconds: float = 1.0) -> float:
        """Inferences per second through an AsyncInferQueue with the device's optimal number of requests."""
        import time

        import openvino as ov

        queue = ov.AsyncInferQueue(self.compiled, 0)
        inq = self._in_quant
        by_index = {self._in_index[k]: (inq[k].quantize(v) if k in inq else v) for k, v in self._check(feeds).items()}
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(len(queue)):
                queue.start_async(by_index)
                n += 1
            queue.wait_all()
        return n / (time.perf_counter() - t0)

    def _request(self):
        """This thread's own infer request (requests must not be shared between threads)."""
        try:
            return self._local.request
        except AttributeError:
            req = self._local.request = self.compiled.create_infer_request()
            return req

    def _close(self) -> None:
        self._local = threading.local()  # drops every thread's request with the compiled model
        self.request = self.compiled = self.model = None

    def describe(self) -> dict:
        ops: dict[str, int] = {}
        params = 0
        for op in self.model.get_ordered_ops():
            t = op.get_type_name()
            if t in ("Parameter", "Result"):
                continue
            ops[t] = ops.get(t, 0) + 1
            # weights are float or low-bit integer constants; i32/i64/boolean constants are shapes and axes
            if t == "Constant" and op.get_output_element_type(0).get_type_name() not in _NOT_WEIGHTS:
                n = 1
                for d in op.get_output_shape(0):
                    n *= int(d)
                params += n
        return {"parameters": params, "ops": ops, "inference_precision": self.precision}
