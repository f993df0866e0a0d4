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
            with quiet_native():
                portable_lib._unsafe_reset_threadpool(int(self.threads))
        program = self._open(Runtime, path)
        self._program = program
        self.inputs = [_spec(t) for t in self.info.inputs]
        self.outputs = [_spec(t) for t in self.info.outputs]
        self._in = [s.name for s in self.inputs]
        self._out = [s.name for s in self.outputs]
        # the planned upper bound of a dynamic batch (dim 0 of every input and output): ExecuTorch refuses a larger
        # input, so larger batches run in chunks (memory planning bounded the CNN fixtures' batch at 15 although
        # the exported range was 1..1024)
        firsts = {t.bound[0] for t in self.info.inputs + self.info.outputs if t.bound and t.shape[0] is None}
        dyn0 = self.info.inputs and all(t.shape and t.shape[0] is None for t in self.info.inputs)
        self._batch = firsts.pop() if dyn0 and len(firsts) == 1 else 0
        for s, t in zip(self.inputs, self.info.inputs):
            s.extra["upper_bound"] = list(t.bound)
        consts = self.info.xnnpack_constants  # the weights' dtypes, read from the XNNPACK graphs in the file
        self.precision = next((p for p in ("int4", "int8", "fp16", "bf16") if consts.get(p)), "fp32")

    def _open(self, Runtime, path):
        """Load the program and its method; on failure, say why in the runtime's own words (its native log) or
        name the operators it has no kernel for."""
        import tempfile

        from edgekit._quiet import captured

        native: list[str] = []
        with tempfile.NamedTemporaryFile(prefix="edgekit-executorch-", suffix=".log") as log:
            try:
                with captured(log.name):  # the runtime says why a method fails only in its native log
                    program = Runtime.get().load_program(str(path))
                    method = "forward" if "forward" in program.method_names else self.info.methods[0]
                    self.method = program.load_method(method)
                return program
            except Exception as e:  # the runtime raises RuntimeError/ValueError with its own codes
                error = e
                native = [ln.split("] ", 1)[-1] for ln in open(log.name, errors="replace").read().splitlines()
                          if "fail" in ln.lower() or "missing" in ln.lower()]
        missing = self._missing_kernels(Runtime.get())
        if missing:
            raise ModelFileError(f"ExecuTorch could not load {path.name}: this runtime has no kernel for "
                                 f"{', '.join(missing)}",
                                 "those operators stayed outside the XNNPACK delegate; export the model so XNNPACK "
                                 "takes them, or use a runtime built with those kernels") from error
        why = "; ".join(dict.fromkeys(native[:2])) or first_line(error)
        raise ModelFileError(f"ExecuTorch could not load {path.name}: {why}",
                             "the program may need a backend or kernels this runtime was built without, or its "
                             "XNNPACK graph was refused at init; export it again with the XNNPACK partitioner") \
            from error

    def _missing_kernels(self, runtime) -> list[str]:
        """The program's operators (outside any delegate) that this runtime has no kernel for."""
        try:
            have = set(runtime.operator_registry.operator_names)
            backends = set(runtime.backend_registry.registered_backend_names)
        except Exception:  # noqa: BLE001 - an older runtime without the registries: no names to give
            return []
        ops = [k for k in self.info.ops if not k.startswith("delegate:") and k not in have]
        return ops + [f"backend {d}" for d in sorted(set(self.info.delegates)) if d not in backends]

    def _args(self, feeds):
        import torch

        return [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self._in]

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = next(iter(feeds.values())).shape[0] if feeds and self._batch else 0
        if self._batch and n > self._batch:  # past the planned bound: chunks along the batch dim
            parts = [self._infer({k: v[i:i + self._batch] for k, v in feeds.items()})
                     for i in range(0, n, self._batch)]
            return {k: np.concatenate([p[k] for p in parts]) for k in self._out}
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
        return {"ops": self.info.op_histogram, "parameters": self.info.parameters, "constant_bytes": self.info.constant_bytes,
                "delegates": sorted(set(self.info.delegates)), "methods": self.info.methods}
