"""Registry, planner, parity gate, per-target isolation, manifest and the convert CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import edgekit
from edgekit.checks.tolerances import PROFILES
from edgekit.checks.verdict import compare_outputs
from edgekit.cli.main import app
from edgekit.conversion import convert
from edgekit.converters import base, planner
from edgekit.formats import Format


def test_duplicate_edge_is_an_error():
    planner.load_edges()
    existing = type(base.REGISTRY["keras_to_tflite"])
    with pytest.raises(ValueError, match="already registered"):
        base.register(type("Again", (existing,), {}))


def test_direct_route_first_and_alternatives_listed():
    p = planner.plan(Format.TORCH_EXPORT, Format.OPENVINO_IR)
    assert [e.name for e in p.chosen.edges] == ["torch_to_openvino"]
    assert any([e.name for e in r.edges] == ["torch_to_onnx", "onnx_to_openvino"] for r in p.routes)
    text = "\n".join(p.explain())
    assert "chosen" in text and "also" in text


def test_blocked_route_names_the_extra(monkeypatch):
    planner.load_edges()
    edge = base.REGISTRY["torch_to_openvino"]
    monkeypatch.setattr(type(edge), "requires", (("torch", "torch"), ("not_a_real_module_xyz", "openvino")))
    p = planner.plan(Format.TORCH_EXPORT, Format.OPENVINO_IR)
    blocked = [ln for ln in p.explain() if "blocked" in ln]
    assert blocked and "pip install 'edgekit[openvino]'" in blocked[0]
    assert [e.name for e in p.chosen.edges] == ["torch_to_onnx", "onnx_to_openvino"]  # the detour still works


def test_parity_metrics_against_definitions():
    ref = np.array([0.0, 1.0, 2.0, 4.0])
    got = np.array([0.0, 1.0, 2.0, 4.006])
    j, errors = compare_outputs({"y": ref}, {"y": got}, "fp32")
    o = errors["y"]
    assert o["max_abs"] == pytest.approx(0.006) and o["mean_abs"] == pytest.approx(0.0015)
    cos = float(ref @ got / (np.linalg.norm(ref) * np.linalg.norm(got)))
    assert o["cosine"] == pytest.approx(cos)
    assert o["range"] == 4.0
    assert j.verdict == "fail" and "0.006 > 0.001 x range 4" in j.reasons[0]  # 0.006 > 1e-3 * 4
    assert compare_outputs({"y": ref}, {"y": got}, "fp16")[0].verdict == "pass"  # 0.006 <= 1e-2 * 4, cos > 0.999
    assert PROFILES["fp32"]["cosine"] == 0.9999 and PROFILES["fp16"]["max_abs_rel"] == 1e-2
    nan, _ = compare_outputs({"y": ref}, {"y": np.array([0.0, np.nan, 2.0, 4.0])}, "fp32")
    assert nan.verdict == "fail" and "NaN" in nan.reasons[0]
    both, _ = compare_outputs({"y": np.array([np.nan, 1.0])}, {"y": np.array([np.nan, 1.0])}, "fp32")
    assert both.verdict == "pass"  # NaN where the reference has it too
    flipped, _ = compare_outputs({"a": ref}, {"b": -ref}, "fp32")
    assert flipped.verdict == "fail" and flipped.notes  # paired by position, noted
    with pytest.raises(edgekit.InputError, match="unknown precision"):
        compare_outputs({"y": ref}, {"y": got}, "fp12")  # never a silent fp32


def test_one_failing_target_does_not_stop_the_others(cases, tmp_path, monkeypatch):
    planner.load_edges()
    edge = base.REGISTRY["keras_to_openvino"]

    def boom(self, src, options, out):
        raise RuntimeError("simulated converter crash in op Foo")

    monkeypatch.setattr(type(edge), "run", boom)
    rep = convert(cases["cnn"].files["keras"], ["openvino", "tflite"], output_dir=tmp_path)
    assert rep["openvino"].status == "fail" and "simulated converter crash" in rep["openvino"].error
    assert rep["tflite"].status == "pass"
    assert rep.exit_code == 3
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [t["status"] for t in manifest["targets"]] == ["fail", "pass"]


def test_manifest_schema_and_hash(cases, tmp_path):
    import hashlib

    src = cases["cnn"].files["keras"]
    convert(src, ["tflite"], output_dir=tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert set(m) == {"edgekit_version", "created", "source", "warnings", "targets"}
    assert m["source"]["format"] == "keras" and m["source"]["inputs"] == ["image"]
    assert m["source"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    t = m["targets"][0]
    for key in ("target", "path", "route", "precision", "status", "parity", "size_bytes", "seconds",
                "tool_versions", "error", "warnings", "inputs", "files"):
        assert key in t
    assert t["inputs"] == ["image"] and t["files"] == ["cnn.tflite"]
    assert set(t["parity"]) == {"max_abs", "mean_abs", "cosine"}
    assert t["tool_versions"]["tensorflow"]
    assert t["size_bytes"] == (tmp_path / "cnn.tflite").stat().st_size


def test_planted_fault_fails_the_gate(cases, tmp_path, monkeypatch):
    """A converter that silently writes a wrong model is caught: status failed, the file is not reported ok."""
    from model_factory import sabotage_onnx_to_openvino

    sabotage_onnx_to_openvino(monkeypatch, 1.01)
    rep = convert(cases["cnn"].files["onnx"], ["openvino"], output_dir=tmp_path)
    assert rep["openvino"].status == "fail" and "parity outside the fp32 profile" in rep["openvino"].error


def test_fp16_precision_is_judged_with_fp16_tolerance(cases, tmp_path):
    import onnx
    import openvino as ov

    rep = convert(cases["cnn"].files["keras"], ["tflite", "openvino", "onnx"], precision="fp16", output_dir=tmp_path)
    for t in ("tflite", "openvino", "onnx"):
        assert rep[t].status == "pass" and rep[t].precision == "fp16", rep[t].error
        assert 0 < rep[t].parity["max_abs"] <= 1e-2  # fp16 really ran: not bit-identical, within tolerance
    with edgekit.load(rep["tflite"].path) as m:
        assert m.precision == "fp16"  # weights stored as fp16 behind DEQUANTIZE
    weights = [t for t in onnx.load(str(rep["onnx"].path)).graph.initializer if len(t.dims) > 1]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    with edgekit.load(rep["onnx"].path) as m:  # fp32 I/O kept: the same arrays validate every target
        assert m.inputs[0].dtype == "float32"
    consts = [op for op in ov.Core().read_model(str(rep["openvino"].path)).get_ordered_ops()
              if op.get_type_name() == "Constant" and len(op.get_output_shape(0)) > 1]
    assert any(op.get_output_element_type(0).get_type_name() == "f16" for op in consts)


runner = CliRunner()


def test_cli_convert_exit_codes_and_json(cases, tmp_path):
    r = runner.invoke(app, ["convert", str(cases["cnn"].files["keras"]), "--to", "tflite,openvino",
                            "-o", str(tmp_path / "a"), "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert [t["status"] for t in m["targets"]] == ["pass", "pass"]
    r = runner.invoke(app, ["convert", str(cases["cnn"].files["keras"]), "--to", "tflite", "--no-verify",
                            "-o", str(tmp_path / "b"), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["targets"][0]["status"] == "unverified"


def test_cli_convert_explain_is_a_dry_run(cases, tmp_path):
    r = runner.invoke(app, ["convert", str(cases["cnn"].files["pt2"]), "--to", "openvino", "--explain",
                            "-o", str(tmp_path / "x")])
    assert r.exit_code == 0 and "chosen" in r.stdout and "torch_to_openvino" in r.stdout
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args,needle", [
    (["--to", "tensorrt"], "unknown target 'tensorrt'"),
    (["--to", "tflite", "--precision", "int3"], "unknown precision"),
    (["--to", "tflite", "--input-shape", "image=1,x"], "cannot read --input-shape"),
])
def test_cli_convert_bad_options(cases, tmp_path, args, needle):
    r = runner.invoke(app, ["convert", str(cases["cnn"].files["keras"]), *args, "-o", str(tmp_path)])
    assert r.exit_code == 2
    assert f"error: {needle}" in r.stderr and "hint: " in r.stderr


def test_cli_convert_needs_trust_for_pt2(cases, tmp_path):
    r = runner.invoke(app, ["convert", str(cases["cnn"].files["pt2"]), "--to", "onnx", "-o", str(tmp_path)])
    assert r.exit_code == 2 and "without trust" in r.stderr and "--trust-code" in r.stderr


def test_input_shape_fixes_dynamic_dims(cases, tmp_path):
    r = runner.invoke(app, ["convert", str(cases["dynamic"].files["onnx"]), "--to", "openvino",
                            "--input-shape", "seq=3,5,8", "-o", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    with edgekit.load(tmp_path / "dynamic.xml") as m:
        assert m.inputs[0].shape == (3, 5, 8)


def test_user_sample_is_used(cases, tmp_path):
    x = np.full((4, 8, 8, 1), 0.5, np.float32)
    np.savez(tmp_path / "s.npz", image=x)
    rep = convert(cases["cnn"].files["keras"], ["tflite"], sample=tmp_path / "s.npz", output_dir=tmp_path / "o")
    assert rep["tflite"].status == "pass"
    assert not any("generated inputs" in n for n in rep["tflite"].notes)
