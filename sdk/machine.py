"""What this machine's CPU and board are: read from /proc and the device tree, stdlib only.

The core layer's view of the hardware: `edgekit.device_classes` (and so `edgekit.load`'s default threads) and the
benchmark environment fingerprint (benchmarks/environment.py) both read it from here.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# ISA features that change which kernels runtimes pick; name shown -> /proc/cpuinfo flag(s)
_X86_FLAGS = {
    "sse4_2": ("sse4_2",), "avx": ("avx",), "avx2": ("avx2",), "fma": ("fma",), "avx512f": ("avx512f",),
    "avx512_vnni": ("avx512_vnni", "avx512vnni"), "avx512_bf16": ("avx512_bf16",), "avx_vnni": ("avx_vnni",),
    "amx_tile": ("amx_tile",), "amx_int8": ("amx_int8",), "amx_bf16": ("amx_bf16",),
}
_ARM_FLAGS = {"neon": ("asimd", "neon"), "dotprod": ("asimddp",), "fp16": ("fphp", "asimdhp"),
              "i8mm": ("i8mm",), "bf16": ("bf16",), "sve": ("sve",), "sve2": ("sve2",)}


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip("\x00 \n")
    except OSError:
        return None


def cpu_info() -> dict:
    """CPU model, core counts and the ISA features that matter for inference kernels."""
    text = _read("/proc/cpuinfo") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields.setdefault(k.strip().lower(), v.strip())
    raw = set((fields.get("flags") or fields.get("features") or "").split())
    machine = platform.machine().lower()
    table = _ARM_FLAGS if machine.startswith(("arm", "aarch")) else _X86_FLAGS
    isa = sorted(name for name, flags in table.items() if raw & set(flags))
    if machine in ("arm64", "aarch64") and platform.system() == "Darwin":
        isa = sorted(set(isa) | {"neon", "dotprod", "fp16"})
    model = fields.get("model name") or fields.get("hardware") or platform.processor() or machine
    return {
        "model": model,
        "machine": machine,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "isa": isa,
    }


def board() -> str | None:
    """The board name on single-board computers (Raspberry Pi, Jetson), from the device tree."""
    return _read("/proc/device-tree/model") or (_read("/etc/nv_tegra_release") and "NVIDIA Jetson")
