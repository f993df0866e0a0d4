"""The Runner interface every backend implements.

Public ``load`` / ``infer`` / ``close`` check state and inputs, then call the backend's ``_load`` /
``_infer`` / ``_close``. ``infer`` takes and returns ``dict[name, numpy array]``; input checking is done once
per call against specs prepared at load time, so the per-call cost stays a few microseconds.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import ClassVar

import numpy as np

from edgekit.errors import BackendError, InputError, MissingDependencyError
from edgekit.formats import Format, ModelSource
from edgekit.types import TensorSpec


class Runner:
    name: ClassVar[str] = ""
    formats: ClassVar[tuple[Format, ...]] = ()
    # alternatives: the first importable module wins; (module, package, extra)
    requires: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    thread_safe: ClassVar[bool] = True

    def __init__(self, source: ModelSource, threads: int | None = None, device: str = "CPU",
                 raw_quantized_io: bool = False, trust_code: bool = False, **options):
        self.source = source
        self.threads = threads
        self.device = device
        self.raw_quantized_io = raw_quantized_io
        self.trust_code = trust_code
        self.options = options
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        self.precision: str = "fp32"
        # False where the file keys inputs by name and keeps no order (TFLite and SavedModel signatures): a
        # list of arrays cannot then be matched to inputs by position
        self.inputs_ordered = True
        self.notes: list[str] = []  # what a user should know about this load (e.g. a precision not available)
        self._loaded = False
        self._lock = None if self.thread_safe else threading.Lock()
        self._expect: dict[str, tuple[TensorSpec, np.dtype | None]] = {}
        # (dtype, shape) of arrays `_check` accepted as they were, per input: the same again passes at once
        self._accepted: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}

    # ----------------------------------------------------------------- public
    @classmethod
    def available(cls) -> str | None:
        """The importable module that provides this backend, or None (checked without importing it)."""
        for module, _pkg, _extra in cls.requires:
            try:
                if importlib.util.find_spec(module) is not None:
                    return module
            except (ImportError, ValueError):
                continue
        return None

    @classmethod
    def require(cls) -> str:
        module = cls.available()
        if module is None:
            _mod, pkg, extra = cls.requires[0]
            raise MissingDependencyError(pkg, extra, f"run {', '.join(f.value for f in cls.formats)} models")
        return module

    def load(self) -> "Runner":
        if self._loaded:
            return self
        from edgekit.trust import require_trust

        require_trust(self.source, self.trust_code)  # before any runtime or framework opens the file
        self.require()
        self._load()
        self._expect = {s.name: (s, self._feed_dtype(s)) for s in self.inputs}
        self._loaded = True
        return self

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self._loaded:
            raise BackendError(f"the {self.name} model is not loaded (closed or never loaded)",
                               "call load() first, or use the model inside a `with` block")
        feeds = self._check(feeds)
        if self._lock is None:
            return self._infer(feeds)
        with self._lock:
            return self._infer(feeds)

    def close(self) -> None:
        if self._loaded:
            self._loaded = False
            self._close()

    def describe(self) -> dict:
        """Static facts for `inspect`: parameter count and op histogram where the format exposes them."""
        return {}

    def raw_call(self, feeds: dict[str, np.ndarray]):
        """A zero-argument callable making the bare runtime call on ``feeds`` (already checked and converted),
        without edgekit's checks or output handling: the baseline of `edgekit bench --overhead`. None when the
        backend has no separate runtime call to compare with."""
        return None

    def runtime_clock(self):
        """(name, reader) of the runtime's own timer of the last inference on this thread, the clock its vendor
        benchmark tool reports (OpenVINO's ``InferRequest.latency``: benchmark_app's median), or None when the
        runtime keeps none. ``reader()`` returns milliseconds; `edgekit bench` reads it after each timed call,
        outside the wall-clock window, so a vendor's figure can be compared on its own clock."""
        return None

    def __enter__(self):
        return self.load()

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------- to override
    def _load(self) -> None:
        raise NotImplementedError

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def _feed_dtype(self, spec: TensorSpec) -> np.dtype | None:
        """The dtype a caller passes for this input (float for a quantized input unless raw I/O is asked)."""
        if spec.quantized and not self.raw_quantized_io:
            return np.dtype(np.float32)
        try:
            return np.dtype(spec.dtype)
        except TypeError:
            return None

    # ---------------------------------------------------------------- checking
    def _check(self, feeds) -> dict[str, np.ndarray]:
        expect = self._expect
        if len(feeds) == len(expect):  # fast path: arrays of a dtype and shape already accepted (a timed loop)
            accepted = self._accepted
            for k, v in feeds.items():
                if type(v) is not np.ndarray or accepted.get(k) != (v.dtype, v.shape):
                    break
            else:
                return dict(feeds)
        if len(feeds) != len(expect) or any(k not in expect for k in feeds):
            missing = [k for k in expect if k not in feeds]
            unknown = [k for k in feeds if k not in expect]
            parts = []
            if missing:
                parts.append("missing input " + ", ".join(repr(k) for k in missing))
            if unknown:
                parts.append("unknown input " + ", ".join(repr(str(k)) for k in unknown))
            raise InputError("; ".join(parts) + f"; the model expects {signature(self.inputs)}")
        out = {}
        for k, v in feeds.items():
            spec, want = expect[k]
            if not isinstance(v, np.ndarray):
                v = np.asarray(v)
            if want is not None and v.dtype != want:
                v = _cast(k, v, want, spec)
            shape = spec.shape
            if shape is not None:
                if v.ndim != len(shape) or any(d is not None and d != g for d, g in zip(shape, v.shape)):
                    raise InputError(
                        f"input '{k}' expects shape {spec.shape_str()}, got {list(v.shape)}",
                        "'?' marks a dimension of any size; use `edgekit inspect MODEL` to see every input",
                    )
            out[k] = v
            if v is feeds[k] and type(v) is np.ndarray:
                self._accepted[k] = (v.dtype, v.shape)
        return out


def _cast(name: str, v: np.ndarray, want: np.dtype, spec: TensorSpec) -> np.ndarray:
    ok = np.can_cast(v.dtype, want, casting="same_kind") and v.dtype.kind in "biuf" and want.kind in "biuf"
    if ok and want.kind in "iu" and v.dtype.kind in "iu" and v.size:
        info = np.iinfo(want)
        ok = info.min <= int(v.min()) and int(v.max()) <= info.max
    if not ok:
        raise InputError(
            f"input '{name}' expects dtype {want.name}, got {v.dtype.name}",
            f"convert the array with .astype('{want.name}')"
            + (" or load with raw_quantized_io=False to pass floats" if spec.quantized else ""),
        )
    return v.astype(want)


def signature(specs: list[TensorSpec]) -> str:
    return ", ".join(f"'{s.name}' {s.shape_str()} {s.dtype}" for s in specs) or "(none)"
