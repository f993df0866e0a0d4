"""`edgekit.doctor`: what is installed, what this machine is, and what an extra would add.

Reads package metadata and /proc; imports no runtime or framework.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field


@dataclass
class DoctorReport:
    """This machine and install. ``environment``: os, python, cpu (model, machine, cores, isa), board, thermal,
    packages (distribution -> version or None). ``backends``: name -> {available, via, formats, extra[,
    can_predict]}. ``to_dict()`` is the JSON `edgekit doctor --json` prints (the environment's keys at the top)."""
    environment: dict
    backends: dict[str, dict]
    device_class: str
    device_class_description: str
    missing_extras: list[str] = field(default_factory=list)
    # distribution -> {version or None, role}: the converters and quantizers the routes use
    converters: dict[str, dict] = field(default_factory=dict)
    # vendor benchmark tools `bench --compare-native` runs: name -> {path or None, version, backend}
    tools: dict[str, dict] = field(default_factory=dict)
    # distribution -> (the extra that installs it, its role), for each package in ``environment`` (not in the JSON)
    package_roles: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    @property
    def install_hint(self) -> str | None:
        """The pip command that adds every missing extra, or None."""
        return f"pip install 'edgekit[{','.join(self.missing_extras)}]'" if self.missing_extras else None

    def to_dict(self) -> dict:
        return {**self.environment, "backends": self.backends, "device_class": self.device_class,
                "device_class_description": self.device_class_description, "missing_extras": self.missing_extras,
                "converters": self.converters, "native_tools": self.tools,
                "install_hint": self.install_hint}


# distribution -> what edgekit uses it for (converters, quantizers and graph tools the routes run)
CONVERTERS = {
    "tf2onnx": "Keras/SavedModel/TFLite -> ONNX", "onnx2tf": "ONNX -> SavedModel (on the way to TFLite)",
    "onnxscript": "torch.onnx (dynamo) export", "onnx-ir": "ONNX graph rewrites (dims pinned)",
    "onnxsim": "ONNX simplifier (onnx2tf)", "onnx_graphsurgeon": "onnx2tf's graph editing",
    "nncf": "OpenVINO int8 quantization", "coremltools": "Core ML conversion and compression",
    "openvino": "OpenVINO IR conversion (ovc)", "tensorflow": "TFLiteConverter", "torch": "torch.export",
    "pnnx": "PyTorch/ONNX -> NCNN", "ncnn": "NCNN runtime", "executorch": "PyTorch/ONNX -> ExecuTorch",
    "torchao": "ExecuTorch int8 (PT2E)",
    "skl2onnx": "scikit-learn -> ONNX (tune build=fn)",
}


def _version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def native_tools(packages: dict) -> dict[str, dict]:
    """The vendor benchmark tools, where they are and the version of the package that ships them."""
    from edgekit.benchmarks.native import _TOOLS, _find_tool

    ships = {"openvino": "openvino", "litert": "ai-edge-litert"}
    return {tool: {"backend": backend, "path": _find_tool(tool),
                   "version": packages.get(ships.get(backend, "")) or _version(ships.get(backend, ""))}
            for backend, tool in _TOOLS.items()}


def doctor() -> DoctorReport:
    """Report installed runtimes and converters, CPU features and the detected device class."""
    from edgekit.benchmarks.environment import PACKAGES, environment
    from edgekit.runtimes import BACKENDS, runner_class

    from .device_classes import PROFILES, guess

    env = environment()
    pk = env["packages"]
    backends = {}
    for name in BACKENDS:
        cls = runner_class(name)
        mod = cls.available()
        backends[name] = {"available": mod is not None, "via": mod,
                          "formats": [f.value for f in cls.formats], "extra": cls.requires[0][2]}
        if name == "coreml":
            backends[name]["can_predict"] = platform.system() == "Darwin"
    installed_extras = {PACKAGES[d][1] for d, v in pk.items() if v}
    missing = sorted({PACKAGES[d][1] for d, v in pk.items() if v is None} - installed_extras)
    cls_name = guess(env["cpu"], env["board"], platform.system())
    return DoctorReport(environment=env, backends=backends, device_class=cls_name,
                        device_class_description=PROFILES[cls_name].description, missing_extras=missing,
                        converters={d: {"version": _version(d), "role": role} for d, role in CONVERTERS.items()},
                        tools=native_tools(pk),
                        package_roles={dist: (extra, role) for dist, (_mod, extra, role) in PACKAGES.items()})
