"""compare_outputs pairs outputs of the same size; a candidate whose output has another layout (beyond singleton
dims) is compared in the reference's shape, and the judgement says so: a converter that returns boxes as
[1, 8, 32] instead of [1, 64, 4] must not go unremarked even when the check has to fail it on values."""

import numpy as np

from edgekit.checks.verdict import compare_outputs


def test_other_layout_is_noted_and_judged_on_values():
    rng = np.random.default_rng(0)
    ref = {"boxes": rng.standard_normal((1, 64, 4)).astype(np.float32)}
    same_values = {"boxes": ref["boxes"].reshape(1, 8, 32)}
    j, errors = compare_outputs(ref, same_values, "fp32")
    assert j.verdict == "pass" and errors["boxes"]["max_abs"] == 0.0
    assert j.notes == ["output shapes differ from the source's, compared reshaped: boxes [1, 8, 32] vs [1, 64, 4]"]
    scrambled = {"boxes": ref["boxes"].transpose(0, 2, 1).reshape(1, 8, 32)}  # what onnx2tf produced
    j, errors = compare_outputs(ref, scrambled, "fp32")
    assert j.verdict == "fail" and errors["boxes"]["max_abs"] > 0.5
    assert any("[1, 8, 32] vs [1, 64, 4]" in n for n in j.notes)


def test_singleton_dims_are_not_a_layout_change():
    ref = {"y": np.arange(6, dtype=np.float32).reshape(6, 1)}
    j, _ = compare_outputs(ref, {"y": np.arange(6, dtype=np.float32)}, "fp32")
    assert j.verdict == "pass" and j.notes == []
