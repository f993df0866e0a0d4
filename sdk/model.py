"""`edgekit.load`: one Model facade over every runtime backend."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from .errors import InputError
from .formats import Format, ModelSource, detect
from .types import TensorSpec


class Model:
    """A loaded model: ``.inputs``, ``.outputs``, ``.predict(x) -> {name: array}``; a context manager."""

    def __init__(self, runner):
        self._runner = runner

    @property
    def inputs(self) -> list[TensorSpec]:
        return self._runner.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self._runner.outputs

    @property
    def format(self) -> Format:
        return self._runner.source.format

    @property
    def backend(self) -> str:
        return self._runner.name

    @property
    def source(self) -> ModelSource:
        return self._runner.source

    @property
    def path(self):
        return self._runner.source.path

    @property
    def precision(self) -> str:
        """The precision the runtime actually computes in (e.g. OpenVINO's inference precision)."""
        return self._runner.precision

    @property
    def notes(self) -> list[str]:
        """What the backend reported while loading (e.g. an asked precision this CPU cannot run)."""
        return self._runner.notes

    @property
    def runner(self):
        return self._runner

    def feeds(self, x) -> dict[str, np.ndarray]:
        """Normalise a dict, a sequence in input order, or one array (single-input model) to a feed dict."""
        names = [s.name for s in self._runner.inputs]
        if isinstance(x, Mapping):
            return dict(x)
        if isinstance(x, np.ndarray) or not isinstance(x, Sequence):
            if len(names) != 1:
                raise InputError(
                    f"the model has {len(names)} inputs ({', '.join(names)}) but one array was given",
                    "pass a dict {name: array} or a list in input order",
                )
            return {names[0]: x}
        if len(x) != len(names):
            raise InputError(
                f"the model has {len(names)} inputs ({', '.join(names)}) but {len(x)} arrays were given",
                "pass one array per input, in the order `edgekit inspect` lists them",
            )
        return dict(zip(names, x))

    def predict(self, x) -> dict[str, np.ndarray]:
        return self._runner.infer(self.feeds(x))

    __call__ = predict

    def describe(self) -> dict:
        return self._runner.describe()

    def close(self) -> None:
        self._runner.close()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<edgekit.Model {self.path.name} format={self.format.value} backend={self.backend}>"


def load(path: str | os.PathLike, backend: str | None = None, threads: int | None = None, device: str = "CPU",
         *, trust_code: bool = False, raw_quantized_io: bool = False, **options) -> Model:
    """Load a model file with the best installed runtime (or ``backend``) and return a ready Model.

    ``threads``: intra-op threads (None: the runtime's default). ``trust_code``: allow formats whose loading
    can run code (TorchScript, pickled .pt, .pt2). ``raw_quantized_io``: feed and receive the raw integers
    of a quantized model instead of floats. Backend options: ``inference_precision`` for OpenVINO ("f32" by
    default; "bf16"/"f16" on request).
    """
    from edgekit.runtimes import pick_backend

    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InputError(f"threads must be a positive integer, got {threads!r}",
                         "leave threads=None for the runtime's default")
    source = detect(path)
    cls = pick_backend(source.format, backend)
    runner = cls(source, threads=threads, device=device, trust_code=trust_code,
                 raw_quantized_io=raw_quantized_io, **options)
    runner.load()
    return Model(runner)
