"""The one tolerance table: what a candidate must keep, per precision, widened per device class.

`edgekit convert` (the parity gate and the compression gate) and `edgekit validate` judge with this table and the
same compare function (``checks.verdict``), so they give the same verdict for the same files.

- ``max_abs_rel``: the largest absolute error allowed, as a fraction of the reference output's range over the
  data (max - min; its largest |value| when the range is 0), so logits and probabilities are judged alike.
- ``cosine``: the least cosine similarity between the flattened reference and candidate outputs.
- ``agreement``: the least top-1 agreement on class-score outputs (2-D, more than one column).
- ``accuracy_drop``: the largest drop in accuracy against labels, when labels are given.
A ``None`` entry is not judged at that precision (int8/int4 are judged on task level, not elementwise).

Sources: fp32 1e-3 of range / cosine 0.9999 sit above the noise floor measured here (batched vs one-by-one runs of
one model in one runtime differ by ~1e-3 on softmax outputs, DESIGN.md field notes; fp32 conversions of the fixture
models differ from their sources by <= 1e-6 of range). fp16 (10-bit mantissa): ~5e-4 relative error per op, a few
e-3 after a dozen layers -> 1e-2 / 0.999. bf16 (7-bit mantissa): ~4x fp16 -> 3e-2 / 0.995 (OpenVINO bf16 moved a
MobileNetV2 by ~0.3 % relative, DESIGN.md). int8: top-1 agreement >= 98 % and accuracy drop <= 1 point (the figures
the compression issue asked for; ORT/NNCF/TFLite int8 of the digits CNN kept 100 % agreement), cosine >= 0.99 for
outputs that are not class scores. Device-class factors widen elementwise limits where kernels differ more from the
x86 reference (Arm NEON FMA ordering, Apple's fp16 Neural Engine): starting points, not yet measured on devices.
"""

from __future__ import annotations

from edgekit.precision import Precision, normalize

# keyed by Precision (a str enum: PROFILES["fp16"] works too)
PROFILES: dict[str, dict[str, float | None]] = {
    Precision.FP32: {"max_abs_rel": 1e-3, "cosine": 0.9999, "agreement": 0.99, "accuracy_drop": 0.005},
    Precision.FP16: {"max_abs_rel": 1e-2, "cosine": 0.999, "agreement": 0.99, "accuracy_drop": 0.01},
    Precision.BF16: {"max_abs_rel": 3e-2, "cosine": 0.995, "agreement": 0.98, "accuracy_drop": 0.01},
    Precision.INT8: {"max_abs_rel": None, "cosine": 0.99, "agreement": 0.98, "accuracy_drop": 0.01},
    Precision.INT4: {"max_abs_rel": None, "cosine": 0.99, "agreement": 0.98, "accuracy_drop": 0.01},
}
# int8/int4: the cosine applies to outputs that are not class scores (class scores are judged on agreement)
TASK_LEVEL = frozenset({Precision.INT8, Precision.INT4})

DEVICE_FACTOR: dict[str, float] = {
    "x86-avx2": 1.0, "x86-avx512": 1.0, "x86-generic": 1.0, "rpi4": 2.0, "rpi5": 2.0, "arm64-generic": 2.0,
    "jetson-orin": 2.0, "apple-silicon": 4.0,
}


def profile(precision: str, device_class: str | None = None) -> dict:
    """The thresholds for ``precision`` (an unknown word is an error, never a silent fp32) on ``device_class``."""
    precision = normalize(precision)
    p: dict = dict(PROFILES[precision])
    f = DEVICE_FACTOR.get(device_class or "", 1.0)
    if p["max_abs_rel"] is not None:
        p["max_abs_rel"] *= f
        p["cosine"] = 1.0 - (1.0 - p["cosine"]) * f
    p["precision"], p["device_class"], p["device_factor"] = precision, device_class, f
    p["task_level"] = precision in TASK_LEVEL
    return p
