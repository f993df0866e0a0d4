"""What machine is this: CPU, ISA features, OS, thermal state, installed runtimes. Reads files, imports nothing heavy."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys
from pathlib import Path

# ISA features that change which kernels runtimes pick; name shown -> /proc/cpuinfo flag(s)
_X86_FLAGS = {
    "sse4_2": ("sse4_2",), "avx": ("avx",), "avx2": ("avx2",), "fma": ("fma",), "avx512f": ("avx512f",),
    "avx512_vnni": ("avx512_vnni", "avx512vnni"), "avx512_bf16": ("avx512_bf16",), "avx_vnni": ("avx_vnni",),
    "amx_tile": ("amx_tile",), "amx_int8": ("amx_int8",), "amx_bf16": ("amx_bf16",),
}
_ARM_FLAGS = {"neon": ("asimd", "neon"), "dotprod": ("asimddp",), "fp16": ("fphp", "asimdhp"),
              "i8mm": ("i8mm",), "bf16": ("bf16",), "sve": ("sve",), "sve2": ("sve2",)}

# runtimes and converters doctor reports: distribution -> (import name, extra, role)
PACKAGES = {
    "ai-edge-litert": ("ai_edge_litert", "litert", "runtime"),
    "tflite-runtime": ("tflite_runtime", "litert", "runtime"),
    "onnxruntime": ("onnxruntime", "onnx", "runtime"),
    "openvino": ("openvino", "openvino", "runtime + converter"),
    "coremltools": ("coremltools", "coreml", "converter + runtime (macOS)"),
    "onnx": ("onnx", "onnx", "format tools"),
    "tensorflow": ("tensorflow", "tensorflow", "converter + reference"),
    "keras": ("keras", "tensorflow", "reference"),
    "torch": ("torch", "torch", "converter + reference"),
}


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


def thermal() -> dict:
    """CPU frequency governor, current frequency and temperatures where the OS exposes them."""
    out: dict = {}
    gov = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if gov:
        out["governor"] = gov
    freq = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    if freq and freq.isdigit():
        out["freq_mhz"] = int(freq) // 1000
    temps = {}
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*")):
        t = _read(str(zone / "temp"))
        if t and t.lstrip("-").isdigit():
            temps[_read(str(zone / "type")) or zone.name] = int(t) / 1000.0
    if temps:
        out["temperatures_c"] = temps
    return out


def installed_packages() -> dict[str, str | None]:
    """Version of each runtime/converter distribution, or None; reads metadata, imports nothing."""
    out = {}
    for dist, (module, _extra, _role) in PACKAGES.items():
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            try:
                out[dist] = "installed" if importlib.util.find_spec(module) else None
            except (ImportError, ValueError):
                out[dist] = None
    return out


def environment() -> dict:
    return {
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "cpu": cpu_info(),
        "board": board(),
        "thermal": thermal(),
        "packages": installed_packages(),
    }


def throttle_state() -> dict:
    """Counters that grow when the CPU throttles: x86 Linux thermal_throttle counts, a Raspberry Pi's
    `vcgencmd get_throttled` bits, a Jetson's power mode. Compare two readings with `throttled_between`."""
    import shutil
    import subprocess

    out: dict = {}
    total, seen = 0, False
    for f in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/thermal_throttle/*_throttle_count"):
        v = _read(str(f))
        if v and v.isdigit():
            total += int(v)
            seen = True
    if seen:
        out["throttle_count"] = total
    if shutil.which("vcgencmd"):
        try:
            r = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=5)
            out["rpi_throttled"] = int(r.stdout.strip().split("=")[-1], 16)
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
    if shutil.which("nvpmodel"):
        try:
            r = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=5)
            out["jetson_power_mode"] = r.stdout.strip().splitlines()[0] if r.stdout.strip() else None
        except (OSError, subprocess.SubprocessError):
            pass
    return out


def throttled_between(before: dict, after: dict) -> bool:
    if after.get("throttle_count", 0) > before.get("throttle_count", 0):
        return True
    # vcgencmd: bits 0-3 are "now" (under-voltage, capped, throttled, soft limit); bits 16-19 "since boot"
    return bool(after.get("rpi_throttled", 0) & 0xF) or \
        (after.get("rpi_throttled", 0) & 0xF0000) > (before.get("rpi_throttled", 0) & 0xF0000)


def rss_mb() -> tuple[float | None, float | None]:
    """(current, peak) resident memory of this process in MB, from /proc/self/status."""
    text = _read("/proc/self/status") or ""
    vals = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            k, v = line.split(":", 1)
            vals[k] = int(v.split()[0]) / 1024.0
    return vals.get("VmRSS"), vals.get("VmHWM")


def reset_peak_rss() -> bool:
    """Reset the process's peak RSS (VmHWM) so the next peak belongs to what runs next (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
