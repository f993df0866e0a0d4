"""Runtime backends behind one Runner interface; one module per backend, imported only when used."""

from __future__ import annotations

import importlib

from edgekit.errors import InputError, MissingDependencyError, UnsupportedFormatError
from edgekit.formats import Format

# name -> "module:Class"; importing a backend module is cheap (its runtime is imported inside _load)
BACKENDS: dict[str, str] = {
    "litert": "edgekit.runtimes.litert:LiteRTRunner",
    "onnxruntime": "edgekit.runtimes.onnxruntime:OnnxRuntimeRunner",
    "openvino": "edgekit.runtimes.openvino:OpenVINORunner",
    "coreml": "edgekit.runtimes.coreml:CoreMLRunner",
    "keras": "edgekit.runtimes.keras:KerasRunner",
    "torch": "edgekit.runtimes.torch:TorchRunner",
    "executorch": "edgekit.runtimes.executorch:ExecuTorchRunner",
    "ncnn": "edgekit.runtimes.ncnn:NcnnRunner",
}

# which backends can run a format, best first
PREFERENCE: dict[Format, tuple[str, ...]] = {
    Format.TFLITE: ("litert", "openvino"),
    Format.ONNX: ("onnxruntime", "openvino"),
    Format.OPENVINO_IR: ("openvino",),
    Format.COREML: ("coreml",),
    Format.KERAS: ("keras",),
    Format.KERAS_H5: ("keras",),
    Format.SAVEDMODEL: ("keras", "openvino"),
    Format.TORCH_EXPORT: ("torch",),
    Format.TORCHSCRIPT: ("torch",),
    Format.TORCH_PICKLE: ("torch",),
    Format.EXECUTORCH: ("executorch",),
    Format.NCNN: ("ncnn",),
}


# other names people use for a backend (`--backend ov`, `--to litert`)
BACKEND_ALIASES = {"ov": "openvino", "tflite": "litert", "ort": "onnxruntime"}


def runner_class(name: str):
    name = BACKEND_ALIASES.get(name, name)
    try:
        module, cls = BACKENDS[name].split(":")
    except KeyError:
        raise InputError(f"unknown backend '{name}'", f"choose one of: {', '.join(BACKENDS)} (ov = openvino, "
                         "tflite = litert, ort = onnxruntime)") from None
    return getattr(importlib.import_module(module), cls)


def pick_backend(fmt: Format, backend: str | None = None):
    """The Runner class for ``fmt``: the one asked for, or the first installed one in preference order."""
    choices = PREFERENCE.get(fmt, ())
    if backend is not None:
        cls = runner_class(backend)
        if fmt not in cls.formats:
            raise UnsupportedFormatError(
                f"the {backend} backend cannot run {fmt.value} models",
                f"backends for {fmt.value}: {', '.join(choices) or 'none'}",
            )
        cls.require()
        return cls
    classes = [runner_class(n) for n in choices]
    for cls in classes:
        if cls.available():
            return cls
    if not classes:
        raise UnsupportedFormatError(f"no backend runs {fmt.value} models")
    first = classes[0]
    _mod, pkg, extra = first.requires[0]
    raise MissingDependencyError(pkg, extra, f"run {fmt.value} models")
