"""Device-class profiles: what a class of edge device is and the defaults edgekit uses on it.

One table for every command: `edgekit.load` takes its default thread count from the device class (the
detected one, or the one named), so `run`, `validate`, `convert` and `bench` run a model with the same threads
on the same machine; `bench` also picks among the backends that can run a format in the profile's order, and
`validate` scales its tolerances by the class.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class DeviceClass:
    name: str
    description: str
    threads: int | None  # default intra-op threads (None: the runtime's own default)
    backends: tuple[str, ...]  # backend preference for formats several backends can run


PROFILES: dict[str, DeviceClass] = {p.name: p for p in (
    # x86: each format's own runtime first (what a user benchmarking a .tflite or .onnx expects); OpenVINO runs
    # both formats too, by --backend openvino
    DeviceClass("x86-avx2", "x86-64 CPU with AVX2 (laptops, NUCs)", None, ("litert", "onnxruntime", "openvino")),
    DeviceClass("x86-avx512", "x86-64 CPU with AVX-512 (and VNNI/BF16/AMX where present)", None,
                ("litert", "onnxruntime", "openvino")),
    DeviceClass("x86-generic", "x86-64 CPU without AVX2", None, ("litert", "onnxruntime", "openvino")),
    DeviceClass("rpi4", "Raspberry Pi 4 (Cortex-A72, NEON, no dot-product)", 4, ("litert", "onnxruntime")),
    DeviceClass("rpi5", "Raspberry Pi 5 (Cortex-A76, NEON with dot-product)", 4, ("litert", "onnxruntime")),
    DeviceClass("jetson-orin", "NVIDIA Jetson Orin (Cortex-A78AE CPU)", None, ("onnxruntime", "litert")),
    DeviceClass("apple-silicon", "Apple M-series Mac", None, ("coreml", "onnxruntime", "litert")),
    DeviceClass("arm64-generic", "other 64-bit Arm CPU", None, ("litert", "onnxruntime")),
)}


def guess(cpu: dict, board: str | None, system: str) -> str:
    """Name of the profile that best fits a host (from `edgekit.machine.cpu_info()` and `board()`)."""
    b = (board or "").lower()
    if "raspberry pi 5" in b:
        return "rpi5"
    if "raspberry pi 4" in b:
        return "rpi4"
    if "jetson" in b or "orin" in b:
        return "jetson-orin"
    machine = cpu.get("machine", "")
    isa = set(cpu.get("isa", ()))
    if machine in ("arm64", "aarch64") and system == "Darwin":
        return "apple-silicon"
    if machine.startswith(("arm", "aarch")):
        return "arm64-generic"
    if "avx512f" in isa:
        return "x86-avx512"
    if "avx2" in isa:
        return "x86-avx2"
    return "x86-generic"


@functools.lru_cache(maxsize=1)
def detect() -> str:
    """The device class of this machine (read once per process from /proc/cpuinfo and the device tree)."""
    from edgekit.machine import board, cpu_info

    return guess(cpu_info(), board(), platform.system())


def profile(name: str | None = None) -> DeviceClass:
    """The profile called ``name``, or this machine's (``None``); an unknown name is an InputError."""
    if name is None:
        return PROFILES[detect()]
    try:
        return PROFILES[name]
    except KeyError:
        raise InputError(f"unknown device class '{name}'", f"choose one of: {', '.join(PROFILES)}") from None


def default_threads(name: str | None = None) -> int | None:
    """The intra-op threads a model runs with when none are asked: the device class's default (``None`` where
    the class leaves it to the runtime, e.g. on x86, where each runtime sizes its own pool)."""
    return profile(name).threads


def preferred_backend(fmt, name: str | None = None) -> str | None:
    """The device class's preferred backend among those that run format ``fmt`` and are installed (None: let
    `edgekit.load` pick by its own preference order)."""
    from edgekit.runtimes import PREFERENCE, runner_class

    can = PREFERENCE.get(fmt, ())
    for backend in profile(name).backends:
        if backend in can and runner_class(backend).available():
            return backend
    return None
