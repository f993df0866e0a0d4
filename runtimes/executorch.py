"""ExecuTorch backend: a .pte program run by ``executorch.runtime.Runtime`` (the prebuilt runtime with the XNNPACK
delegate and the core ATen kernels).

The file is read by edgekit's own reader first (sdk/formats/pte_fb.py): a damaged program is refused before the
native loader sees it, and the I/O (names, dtypes, which tensors may change shape) comes from it. ExecuTorch's
Python runtime takes and returns torch tensors, so it needs torch installed beside it (imported here, at load).
Threads: XNNPACK's thread pool is one per process (``_unsafe_reset_threadpool``): the last load's ``threads``
holds for every ExecuTorch model in the process.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import BackendError, ModelFileError, first_line
from edgekit.formats import Format
from edgekit.runtimes.base import Runner
from edgekit.space import Knob, thread_choices
from edgekit.types import TensorSpec

KNOBS = (Knob("executorch.threads", thread_choices(), targets=("executorch",), owner=__name__,
              help="XNNPACK thread pool size"),)


def read_program(path):
    """The .pte's PteInfo, or a ModelFileError saying what is damaged."""
    from edgekit.formats.pte_fb import read_pte
    from edgekit.formats.tflite_fb import FlatbufferError

    try:
        data = path.read_bytes()
        return read_pte(memoryview(data))
    except (FlatbufferError, OSError, ValueError, IndexError) as e:
        raise ModelFileError(f"{path.name} is not a readable ExecuTorch program: {first_line(e)}",
                             "export it again (edgekit convert MODEL --to executorch)") from e


def _spec(t) -> TensorSpec:
    return TensorSpec(name=t.name, shape=list(t.shape), dtype=t.dtype)


class ExecuTorchRunner(Runner):
    name = "executorch"
    formats = (Format.EXECUTORCH,)
    requires = (("executorch", "executorch", "executorch"),)
    thread_safe = False  # a loaded method owns its planned memory: one call at a time

    def _load(self) -> None:
        path = self.source.path
        self.info = read_program(path)
        if any(t.dtype == "scalar" for t in self.info.inputs):
            raise ModelFileError(f"{path.name} takes non-tensor inputs, which edgekit cannot feed",
                                 "export the program with tensor inputs only")
        from edgekit._quiet import quiet_native

        with quiet_native():  # the runtime's cpuinfo probes print to fd 2 at import
            import torch  # noqa: F401  (ExecuTorch's Python runtime is built on torch tensors)
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime

        if self.threads:
            portable_lib._unsafe_reset_threadpool(int(self.threads))
        try:
            with quiet_native():
                program = Runtime.get().load_program(str(path))
                method = "forward" if "forward" in program.method_names else self.info.methods[0]
                self.method = program.load_method(method)
        except Exception as e:  # the runtime raises RuntimeError/ValueError with its own codes
            raise ModelFileError(f"ExecuTorch could not load {path.name}: {first_line(e)}",
                                 "the program may need a backend or kernels this runtime was built without; "
                                 "export it again with the XNNPACK partitioner") from e
        self._program = program
        self.inputs = [_spec(t) for t in self.info.inputs]
        self.outputs = [_spec(t) for t in self.info.outputs]
        self._in = [s.name for s in self.inputs]
        self._out = [s.name for s in self.outputs]
        self.precision = "fp32"  # XNNPACK keeps its packed weights opaque; convert's manifest records int8/fp16

    def _args(self, feeds):
        import torch

        return [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self._in]

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            outs = self.method.execute(self._args(feeds))
        except Exception as e:
            raise BackendError(f"ExecuTorch inference failed: {first_line(e)}",
                               "a missing kernel or a shape outside the bounds the program was exported with; "
                               "`edgekit inspect` shows the input shapes") from e
        return {n: o.numpy() for n, o in zip(self._out, outs)}

    def raw_call(self, feeds):
        args = self._args(self._check(feeds))
        execute = self.method.execute
        return lambda: execute(args)

    def _close(self) -> None:
        self.method = self._program = None

    def describe(self) -> dict:
        return {"ops": self.info.op_histogram, "parameters": None, "constant_bytes": self.info.constant_bytes,
                "delegates": sorted(set(self.info.delegates)), "methods": self.info.methods}
