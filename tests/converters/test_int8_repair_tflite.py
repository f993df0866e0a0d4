"""Accuracy-aware static int8 for TFLite (issue 13): TensorFlow's quantization debugger calibrates once and
re-quantizes with layers denylisted (kept float). On the transformer block with outlier FFN channels
(tests/model_factory.build_outlier_attention, ONNX -> SavedModel -> TFLite), plain full-integer int8 loses about a
fifth of its top-1 agreement; ``max_accuracy_drop`` keeps the most sensitive layers float until the budget holds.
Each written file is read back: the kept layers' output tensors are float32 in the flatbuffer, the others int8,
and its outputs are compared again against the fp32 ONNX source."""

from __future__ import annotations

import re

import numpy as np
import pytest

import edgekit
from edgekit.conversion import convert
from edgekit.formats.tflite_fb import read_tflite
from tests.model_factory import build_outlier_attention


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    root = tmp_path_factory.mktemp("outlier_tflite")
    files = build_outlier_attention(root / "src")
    with np.load(files["data"]) as z:
        files["tokens"], files["labels"] = z["tokens"], z["labels"]
    with edgekit.load(files["onnx"]) as m:
        files["fp32"] = m.predict({"tokens": files["tokens"]})["probs"]
    files["root"] = root
    return files


def _convert(f, name, **kw):
    return convert(f["onnx"], ["tflite"], precision="int8", calibration=f["calib"], sample=f["data"],
                   output_dir=f["root"] / name, **kw)["tflite"]


def _measure(path, f) -> tuple[float, float, np.ndarray]:
    """(top-1 agreement with the fp32 source, accuracy on the labels, outputs) of the file at ``path``."""
    with edgekit.load(path) as m:
        got = next(iter(m.predict({"tokens": f["tokens"]}).values()))
    return (float(np.mean(got.argmax(-1) == f["fp32"].argmax(-1))), float(np.mean(got.argmax(-1) == f["labels"])),
            got)


def _dtypes(path) -> dict[str, str]:
    """Output tensor name -> dtype of every non-constant tensor in the main subgraph of the flatbuffer."""
    g = read_tflite(path.read_bytes()).subgraphs[0]
    return {t.name: t.dtype for t in g.tensors if not t.buffer_size}


@pytest.fixture(scope="module")
def repaired(fixture):
    return _convert(fixture, "repaired", max_accuracy_drop=1.0)


def test_plain_full_integer_int8_misses_the_budget(fixture):
    f = fixture
    res = _convert(f, "plain", verify=False)  # kept unchecked, to measure it here
    agreement, acc, got = _measure(res.path, f)
    assert agreement < 0.90, agreement  # measured 0.78: the outlier channels crush the FFN activations
    assert acc < float(np.mean(f["fp32"].argmax(-1) == f["labels"])) - 0.05
    acts = _dtypes(res.path)
    assert res.repair is None and list(acts.values()).count("float32") == 2  # only the float input and output


def test_repair_meets_a_one_point_budget_with_the_ffn_float(repaired, fixture):
    f = fixture
    res = repaired
    assert res.status == "pass", res.error
    rep = res.repair
    kept = rep["kept_float"]
    assert rep["met"] and rep["budget_pts"] == 1.0 and 1 <= len(kept) <= 6
    ranked = [s["layer"] for s in rep["sensitivity"]]
    assert kept == ranked[:len(kept)]  # the most sensitive first
    # the two FFN matmuls (names carry a per-process Keras counter): ff1 with its ReLU (writes the outlier
    # channels) and ff2 (reads them)
    assert all("MatMul" in k for k in kept[:2]) and sum("Relu" in k for k in kept[:2]) == 1
    assert rep["trials"][0]["keep_float"] == [] and rep["trials"][0]["drop_pts"] > 5.0  # plain int8 missed it
    assert rep["sensitivity"][0]["drop_pts"] > 5.0 and rep["sensitivity"][-1]["drop_pts"] < 2.0
    notes = " ".join(res.notes)
    assert "kept float" in notes and "budget met" in notes and all(k in notes for k in kept)
    acts = _dtypes(res.path)  # the file: kept layers float, every other ranked layer int8
    assert all(acts[k] == "float32" for k in kept)
    assert all(acts[n] == "int8" for n in ranked if n not in kept)
    agreement, acc, got = _measure(res.path, f)  # against the fp32 source, again
    assert agreement >= 0.99 and agreement == pytest.approx(res.parity["agreement_top1"])
    assert acc >= float(np.mean(f["fp32"].argmax(-1) == f["labels"])) - 0.01
    cos = np.sum(got * f["fp32"], -1) / (np.linalg.norm(got, axis=-1) * np.linalg.norm(f["fp32"], axis=-1))
    assert float(cos.mean()) > 0.99


def test_keep_float_count_leaves_that_many_layers_float(repaired, fixture):
    f = fixture
    res = _convert(f, "keep2", keep_float=2)
    kept = res.repair["kept_float"]
    assert len(kept) == 2 and kept == [s["layer"] for s in res.repair["sensitivity"][:2]]
    shape = lambda names: {re.sub(r"\d+", "#", n) for n in names}  # noqa: E731 (Keras counters differ per run)
    assert shape(kept) == shape(repaired.repair["kept_float"][:2])  # the same ranking as the budget's
    acts = _dtypes(res.path)
    ranked = [s["layer"] for s in res.repair["sensitivity"]]
    assert [n for n in ranked if acts[n] == "float32"] == kept  # exactly N ranked layers float in the file
    agreement, _, _ = _measure(res.path, f)
    assert agreement >= 0.97 and agreement == pytest.approx(res.parity["agreement_top1"])  # measured 0.99


def test_ensures_checks_the_named_layers_in_the_file(repaired, fixture, tmp_path):
    from edgekit.converters.compress_base import PASSES, CompressOptions, OptionError
    from edgekit.errors import ConversionError
    from edgekit.formats import Format

    f = fixture
    p = PASSES[(Format.TFLITE, "int8")]
    kept = tuple(repaired.repair["kept_float"])
    after = p.inspect(repaired.path)
    p.ensures(None, after, CompressOptions(precision="int8", keep_float=kept))  # they are float: no error
    quantized = next(s["layer"] for s in repaired.repair["sensitivity"] if s["layer"] not in kept)
    with pytest.raises(ConversionError, match="keep_float had no effect on .*: quantized anyway .int8."):
        p.ensures(None, after, CompressOptions(precision="int8", keep_float=(quantized,)))
    with pytest.raises(ConversionError, match="keep_float names no layer nowhere"):
        p.ensures(None, after, CompressOptions(precision="int8", keep_float=("nowhere",)))
    with pytest.raises(OptionError, match="int8-io") as e:  # the debugger writes float inputs and outputs
        convert(f["onnx"], ["tflite"], precision="int8", calibration=f["calib"], keep_float=kept[:1],
                int8_io=True, output_dir=tmp_path / "io")
    assert e.value.target == "tflite" and not (tmp_path / "io").exists()
