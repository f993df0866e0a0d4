"""Verdict profiles for `edgekit validate`: thresholds per precision, adjusted per device class.

fp32 and fp16 are judged elementwise, relative to each output's range over the whole data set (so the ~1e-3 noise
between batched and one-by-one runs of one runtime passes, and a fault that flips predictions does not); int8 is
judged on task metrics. Multipliers for device classes widen the elementwise thresholds where kernels differ
more from the x86 reference (Arm NEON FMA ordering, Apple's fp16 Neural Engine). Starting points, to be tuned on
real devices; every threshold can be overridden per output.
"""

from __future__ import annotations

PROFILES: dict[str, dict[str, float]] = {
    "fp32": {"max_abs_rel": 1e-3, "cosine": 0.9999, "agreement": 0.99, "accuracy_drop": 0.005},
    "fp16": {"max_abs_rel": 1e-2, "cosine": 0.999, "agreement": 0.99, "accuracy_drop": 0.01},
    "bf16": {"max_abs_rel": 3e-2, "cosine": 0.995, "agreement": 0.98, "accuracy_drop": 0.01},
    "int8": {"max_abs_rel": None, "cosine": None, "agreement": 0.99, "accuracy_drop": 0.01},
}
PROFILES["int4"] = dict(PROFILES["int8"])  # 4-bit weights: judged on task metrics like int8

DEVICE_FACTOR: dict[str, float] = {
    "x86-avx2": 1.0, "x86-avx512": 1.0, "x86-generic": 1.0, "rpi4": 2.0, "rpi5": 2.0, "arm64-generic": 2.0,
    "jetson-orin": 2.0, "apple-silicon": 4.0,
}


def profile(precision: str, device_class: str | None = None) -> dict[str, float]:
    from edgekit.precision import normalize

    precision = normalize(precision)  # an unknown word is an error, never a silent fp32
    p = dict(PROFILES[precision])
    f = DEVICE_FACTOR.get(device_class or "", 1.0)
    if p["max_abs_rel"] is not None:
        p["max_abs_rel"] *= f
        p["cosine"] = 1.0 - (1.0 - p["cosine"]) * f
    p["precision"], p["device_class"], p["device_factor"] = precision, device_class, f
    return p
