"""NCNN backend (CPU): a .param/.bin pair run by the ``ncnn`` Python package.

NCNN stores and computes in fp16 by default on CPUs that have it. An fp32 model runs fp32 end to end here: fp16
storage, packing and arithmetic (and bf16 storage) are off unless the .bin holds fp16 weights (pnnx's default,
edgekit's fp16 target) or ``inference_precision="f16"`` is asked; the runner's ``precision`` says which ran.

NCNN tensors have no batch dimension. edgekit feeds and returns arrays with a leading batch of 1 (pnnx's
convention); larger batches are run sample by sample by the caller (the batch dim is fixed at 1). The .param is
read by edgekit first (sdk/formats/ncnn_param.py): the I/O names, the shapes the Input layers declare, the ops.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import BackendError, InputError, ModelFileError, first_line
from edgekit.formats import Format
from edgekit.runtimes.base import Runner
from edgekit.space import Knob, thread_choices
from edgekit.types import TensorSpec

KNOBS = (Knob("ncnn.threads", thread_choices(), targets=("ncnn",), owner=__name__, help="NCNN worker threads"),)
_FP16 = ("f16", "fp16", "float16")


def _fp16(runner, weights) -> bool:
    """fp16 storage and arithmetic: asked (inference_precision), else when the .bin holds fp16 weights."""
    asked = runner.options.get("inference_precision")
    if asked is not None:
        if str(asked).lower() not in (*_FP16, "f32", "fp32", "float32"):
            raise InputError(f"NCNN runs f32 or f16, not '{asked}'", "pass inference_precision='f32' or 'f16'")
        return str(asked).lower() in _FP16
    from edgekit.formats.ncnn_param import stored_fp16

    return stored_fp16(weights)


def _fits(size: int, shape: list[int]) -> bool:
    known = int(np.prod([d for d in shape if d != -1]))
    return known > 0 and (size == known if -1 not in shape else size % known == 0)


class NcnnRunner(Runner):
    name = "ncnn"
    formats = (Format.NCNN,)
    requires = (("ncnn", "ncnn", "ncnn"),)
    thread_safe = True  # one Extractor per call

    def _load(self) -> None:
        from edgekit.formats.ncnn_param import ParamError, read_param

        param, weights = self.source.files[0], self.source.files[1]
        try:
            self.param = read_param(param)
        except (ParamError, OSError) as e:
            raise ModelFileError(f"{param.name}: {first_line(e)}", "export the model again with pnnx") from e
        if not self.param.inputs:
            raise ModelFileError(f"{param.name} has no Input layer", "export the model again with pnnx")
        fp16 = _fp16(self, weights)
        import ncnn

        net = ncnn.Net()
        opt = net.opt
        for flag in ("use_fp16_storage", "use_fp16_arithmetic", "use_fp16_packed"):
            setattr(opt, flag, fp16)
        opt.use_bf16_storage = False
        opt.use_vulkan_compute = False
        if self.threads:
            opt.num_threads = int(self.threads)
        import tempfile

        from edgekit._quiet import captured

        with tempfile.NamedTemporaryFile(prefix="edgekit-ncnn-", suffix=".log") as log:
            with captured(log.name):  # NCNN says why a load failed (an unknown layer type) only on stderr
                ok = net.load_param(str(param)) == 0 and net.load_model(str(weights)) == 0
            said = [ln.strip() for ln in open(log.name, errors="replace").read().splitlines() if ln.strip()]
        if not ok:
            why = f": {said[0]}" if said else ""
            raise ModelFileError(f"NCNN could not load {param.name} with {weights.name}{why}",
                                 "a layer this NCNN build lacks (a pnnx op left unconverted), or a .bin that is not "
                                 "the one written with the .param")
        self.net, self._Mat = net, ncnn.Mat
        self.inputs = [TensorSpec(name=la.tops[0], shape=self.param.input_shape(la), dtype="float32")
                       for la in self.param.inputs]
        outs = list(net.output_names())
        self.outputs = [TensorSpec(name=n, shape=self.param.input_shape(self.param.output_layer(n)), dtype="float32")
                        for n in outs]
        # the declared rank back onto NCNN's Mats (which drop dims of size 1): [1, ...] with -1 for one free dim
        self._reshape = {s.name: [-1 if d is None else d for d in s.shape] for s in self.outputs
                         if s.shape is not None and sum(d is None for d in s.shape) <= 1}
        self._in = [s.name for s in self.inputs]
        self._out = outs
        self.precision = "fp16" if fp16 else "fp32"
        if fp16:
            self.notes.append("NCNN runs this model with fp16 storage and arithmetic")

    def _mats(self, feeds):
        """(name, the sample without its batch dim as contiguous float32) per input."""
        mats = []
        for n in self._in:
            x = feeds[n]
            if x.ndim < 2 or x.shape[0] != 1:
                raise InputError(f"input '{n}' has shape {list(x.shape)}; NCNN runs one sample at a time",
                                 "pass a batch of 1 (edgekit.load(...).predict runs larger batches sample by sample "
                                 "through validate and bench)")
            if x.ndim > 5:
                raise InputError(f"input '{n}' has {x.ndim} dims; NCNN takes at most 4 besides the batch")
            mats.append((n, np.ascontiguousarray(x[0], dtype=np.float32)))
        return mats

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        mats, Mat = self._mats(feeds), self._Mat
        ex = self.net.create_extractor()
        for n, a in mats:
            ex.input(n, Mat(a))
        out = {}
        for n in self._out:
            ret, m = ex.extract(n)
            if ret != 0:
                raise BackendError(f"NCNN inference failed computing '{n}' (code {ret})",
                                   "check the input shapes against `edgekit inspect MODEL`")
            y = np.array(m)
            shape = self._reshape.get(n)
            out[n] = y.reshape(shape) if shape is not None and _fits(y.size, shape) else y[None]
        return out

    def raw_call(self, feeds):
        mats = self._mats(self._check(feeds))
        create, names, Mat = self.net.create_extractor, self._out, self._Mat

        def call():
            ex = create()
            for n, a in mats:
                ex.input(n, Mat(a))
            return [np.array(ex.extract(n)[1]) for n in names]

        return call

    def _close(self) -> None:
        self.net = None

    def describe(self) -> dict:
        return {"parameters": self.param.parameter_count(), "ops": self.param.op_histogram,
                "layers": len(self.param.layers)}
