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
        """The precision the model's numbers carry: the lowest of its stored weights (read from the file, and from
        the manifest.json edgekit wrote beside it) and the runtime's arithmetic (e.g. OpenVINO's inference
        precision). One vocabulary: fp32, bf16, fp16, int8, int4 (see edgekit.precision)."""
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
        if len(names) > 1 and not self._runner.inputs_ordered:
            raise InputError(
                f"{self.path.name} keys its inputs by name and records no order, so a list of {len(x)} arrays "
                f"could be matched to the wrong inputs ({', '.join(names)})",
                "pass a dict {name: array}; models written by `edgekit convert` keep the source's order in the "
                "manifest.json beside them",
            )
        if len(x) != len(names):
            raise InputError(
                f"the model has {len(names)} inputs ({', '.join(names)}) but {len(x)} arrays were given",
                "pass one array per input, in the order `edgekit inspect` lists them",
            )
        return dict(zip(names, x))

    def predict(self, x) -> dict[str, np.ndarray]:
        # a plain dict goes straight to the runner (it checks names, dtypes and shapes): no copy per call
        return self._runner.infer(x if type(x) is dict else self.feeds(x))

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
         *, trust_code: bool = False, raw_quantized_io: bool = False, device_class: str | None = None,
         inference_precision: str | None = None, intermediates: bool = False) -> Model:
    """Load a model file with the best installed runtime (or ``backend``) and return a ready Model.

    ``threads``: intra-op threads. ``None`` means the device class's default (``device_class``, or the class
    detected for this machine; see `edgekit.device_classes`): 4 on a Raspberry Pi, the runtime's own default
    where the class names none (x86, Jetson, Apple). The same rule holds in `run`, `validate`, `convert` and
    `bench`, so every command runs a model with the same threads on the same machine. ``trust_code``: allow
    formats whose loading can run code (TorchScript, pickled .pt, .pt2). ``raw_quantized_io``: feed and
    receive the raw integers of a quantized model instead of floats. ``inference_precision``: OpenVINO's
    arithmetic ("f32" by default; "bf16"/"f16" on request); the other backends have no such choice.
    ``intermediates``: mark every intermediate tensor as an output (graph optimizations off, so none is fused
    away): ``predict`` then returns them by tensor name beside the model's outputs. For debugging a parity
    failure (`edgekit validate --localize`), not for speed.
    """
    from edgekit.runtimes import pick_backend

    from .device_classes import default_threads

    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InputError(f"threads must be a positive integer, got {threads!r}",
                         "leave threads=None for the device class's default")
    if threads is None:
        threads = default_threads(device_class)
    source = detect(path)
    cls = pick_backend(source.format, backend)
    options = {} if inference_precision is None else {"inference_precision": inference_precision}
    if intermediates:
        options["intermediates"] = True
    runner = cls(source, threads=threads, device=device, trust_code=trust_code,
                 raw_quantized_io=raw_quantized_io, **options)
    size = source.size_bytes
    runner.load()
    _adopt_manifest(runner, size)
    return Model(runner)


def _adopt_manifest(runner, size: int) -> None:
    """Apply what `edgekit convert` recorded beside this file: the source's input order and the precision it
    was made for (the lower of that and what the file shows is kept)."""
    from .manifest import entry_for, input_order
    from .precision import lowest

    entry = entry_for(runner.source.path, size)
    if entry is None:
        return
    order = input_order(entry, [s.name for s in runner.inputs])
    if order is not None:
        by_name = {s.name: s for s in runner.inputs}
        runner.inputs = [by_name[n] for n in order]
        runner.inputs_ordered = True
    recorded = entry.get("precision")
    if isinstance(recorded, str):
        try:
            runner.precision = lowest(runner.precision, recorded)
        except InputError:
            pass  # a manifest from another version may use words we do not know; the file's own reading stands
