"""convert's gates and validate judge with one compare function and one tolerance table: the same candidate files
on the same data get the same verdict (before, an int8 model passed convert at 98 % agreement and failed validate
at 99 %, and the two computed 'error relative to range' differently)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.checks.tolerances import PROFILES, profile
from edgekit.conversion import check, convert

DIGITS = Path(__file__).resolve().parents[3] / "sdk" / "examples" / "digits"


@pytest.fixture(scope="module")
def candidates(tmp_path_factory):
    """The digits CNN's targets: faithful fp32/fp16, int8-dynamic, and two planted faults (a scaled conv weight,
    and a bias shift small enough to keep most top-1 predictions)."""
    import onnx
    from onnx import numpy_helper

    d = tmp_path_factory.mktemp("verdict")
    data = np.load(DIGITS / "digits_test.npz")
    sample = {"image": data["image"].astype(np.float32)}
    labels = data["labels"]
    rep = convert(DIGITS / "digits_cnn.keras", ["onnx", "tflite"], precision="fp16", sample=sample,
                  output_dir=d / "fp16")
    files = {"fp32-tflite": (DIGITS / "digits_cnn.tflite", "fp32"), "fp16-onnx": (rep["onnx"].path, "fp16"),
             "fp16-tflite": (rep["tflite"].path, "fp16")}
    q = convert(DIGITS / "digits_cnn.onnx", ["onnx"], precision="int8-dynamic", sample=sample, output_dir=d / "q")
    files["int8-onnx"] = (q["onnx"].path, "int8")
    for name, factor in (("scaled-weight", 1.05), ("bias-shift", None)):
        m = onnx.load(str(DIGITS / "digits_cnn.onnx"))
        floats = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
        init = [t for t in floats if len(t.dims) == 4][0] if factor else [t for t in floats if len(t.dims) == 1][-1]
        w = numpy_helper.to_array(init).copy()
        w = w * factor if factor else w + 0.3
        init.CopyFrom(numpy_helper.from_array(w.astype(np.float32), init.name))
        out = d / f"{name}.onnx"
        onnx.save(m, str(out))
        files[name] = (out, "fp32")
    return sample, labels, files


def test_convert_and_validate_agree_on_every_candidate(candidates):
    sample, labels, files = candidates
    source = DIGITS / "digits_cnn.keras"
    report = edgekit.validate(source, [p for p, _ in files.values()], sample, labels=labels)
    verdicts = {}
    for (name, (path, precision)), v in zip(files.items(), report["candidates"]):
        g = check(source, path, sample, precision=precision)
        convert_verdict = g.status  # the same words: pass / fail
        verdicts[name] = (convert_verdict, v["verdict"])
        assert convert_verdict == v["verdict"], (name, g.error, v["reasons"])
    # and the verdicts mean something: faithful ones pass, planted faults fail
    assert verdicts["fp32-tflite"] == ("pass", "pass") and verdicts["fp16-onnx"] == ("pass", "pass")
    assert verdicts["scaled-weight"] == ("fail", "fail") and verdicts["bias-shift"] == ("fail", "fail")


def test_one_table_serves_every_precision_and_refuses_unknown_words():
    assert set(PROFILES) == {"fp32", "fp16", "bf16", "int8", "int4"}
    assert profile("int8-dynamic")["precision"] == "int8"  # the conversion word maps onto the table
    assert profile("fp32", "rpi5")["max_abs_rel"] == pytest.approx(2e-3)  # Arm widens elementwise limits
    with pytest.raises(edgekit.InputError, match="unknown precision"):
        profile("fp8")


def test_compressed_check_uses_the_agreement_limit_validate_uses(candidates, tmp_path):
    """An int8 candidate judged by convert's compression gate on the same 360 images as validate."""
    sample, labels, files = candidates
    path, _ = files["int8-onnx"]
    shutil.copy(path, tmp_path / "q.onnx")
    g = check(DIGITS / "digits_cnn.keras", tmp_path / "q.onnx", sample, precision="int8")
    v = edgekit.validate(DIGITS / "digits_cnn.keras", [tmp_path / "q.onnx"], sample)["candidates"][0]
    assert g.parity["samples"] == 360
    assert g.parity["agreement_top1"] == pytest.approx(v["agreement_top1"])
