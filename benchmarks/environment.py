"""What machine is this: CPU, ISA features, OS, thermal state, installed runtimes. Reads files, imports nothing heavy."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import sys
from pathlib import Path

from edgekit.machine import _read, board, cpu_info  # noqa: F401 (re-exported: part of the fingerprint)

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
    "executorch": ("executorch", "executorch", "runtime + converter (its Python runtime needs torch)"),
    "ncnn": ("ncnn", "ncnn", "runtime"),
    "pnnx": ("pnnx", "pnnx", "converter (PyTorch/ONNX -> NCNN)"),
}


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
