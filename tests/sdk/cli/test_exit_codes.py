"""One exit-code contract for every command (docs/EXIT_CODES.md): 0 ok, 1 a check failed, 2 a user error,
3 some targets failed, 4 an internal error, 130 interrupted; 2 over 3 over 1 when several apply."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from cli_util import describe, invoke, user_error
from edgekit.cli import _common

ROOT = Path(__file__).resolve().parents[3]


def _halved_input(src: Path, dest: Path) -> Path:
    """A copy of an ONNX model whose input is multiplied by 0.5 first: it runs, and fails any parity check."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(str(src))
    inp = m.graph.input[0].name
    for node in m.graph.node:
        node.input[:] = [inp + "_half" if x == inp else x for x in node.input]
    m.graph.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
    m.graph.node.insert(0, helper.make_node("Mul", [inp, "half"], [inp + "_half"], name="planted"))
    onnx.save_model(m, str(dest))
    return dest


def _noisy_onnx(path: Path) -> Path:
    """y = x + uniform noise: ONNX Runtime and OpenVINO draw different noise, so a converted copy converts and
    runs but fails the parity check (a real failed check, no monkeypatching)."""
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("RandomUniformLike", ["x"], ["r"], high=1.0, low=0.0, seed=3.0),
                           helper.make_node("Add", ["x", "r"], ["y"])], "noisy",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 16])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.save(m, str(path))
    return path


# ------------------------------------------------------------------------------- the contract in one place


def test_docs_table_matches_the_constants():
    text = (ROOT / "docs" / "EXIT_CODES.md").read_text()
    rows = dict((name, int(code)) for code, name in re.findall(r"^\|\s*(\d+)\s*\|\s*`([A-Z_]+)`\s*\|", text, re.M))
    assert rows == {"OK": 0, "CHECK_FAILED": 1, "USER_ERROR": 2, "TARGETS_FAILED": 3, "INTERNAL_ERROR": 4,
                    "INTERRUPTED": 130}
    assert all(getattr(_common, name) == code for name, code in rows.items())


def test_commands_use_the_constants_not_literals():
    """No command ends with a bare number: `typer.Exit(3)` in one module and `Exit(1)` in another is how the
    commands came to disagree."""
    for f in sorted((ROOT / "sdk" / "cli").glob("*.py")):
        literal = re.findall(r"Exit\(\s*\d+\s*\)", f.read_text())
        assert not literal, f"{f.name}: {literal}"


def test_precedence():
    assert _common.outcome() == 0
    assert _common.outcome(checks_failed=True) == 1
    assert _common.outcome(targets_failed=True) == 3
    assert _common.outcome(targets_failed=True, checks_failed=True) == 3


# -------------------------------------------------------------------------------------------- bench


def test_bench_all_measured_is_0_and_a_model_that_fails_to_load_is_3(digits, tmp_path):
    res = invoke("bench", digits["onnx"], digits["tflite"], "--runs", "5", "--warmup", "1")
    assert res.exit_code == 0, describe(res)
    (tmp_path / "broken.onnx").write_bytes(b"not a model at all")
    res = invoke("bench", tmp_path / "broken.onnx", digits["onnx"], "--runs", "5", "--warmup", "1", "--json-out",
                 tmp_path / "r.json")
    assert res.exit_code == 3, describe(res)
    rows = {r["model"]: r for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert "error" in rows["broken.onnx"] and rows["digits_cnn.onnx"]["runs"] == 5  # the other was measured


def test_bench_user_error_is_2(digits):
    user_error(invoke("bench", digits["onnx"], "--device-class", "toaster"), "toaster")


# ----------------------------------------------------------------------------------------- validate


def test_validate_codes(digits, tmp_path):
    half = _halved_input(digits["onnx"], tmp_path / "half.onnx")
    missing = tmp_path / "missing.onnx"
    data = ("--data", digits["data"])
    res = invoke("validate", digits["onnx"], digits["tflite"], *data)
    assert res.exit_code == 0, describe(res)
    res = invoke("validate", digits["onnx"], digits["tflite"], half, *data, "--json-out", tmp_path / "r.json")
    assert res.exit_code == 1, describe(res)  # a failing candidate: a check failed
    verdicts = [c["verdict"] for c in json.loads((tmp_path / "r.json").read_text())["candidates"]]
    assert verdicts == ["pass", "fail"]
    res = invoke("validate", digits["onnx"], digits["tflite"], missing, *data)
    assert res.exit_code == 3, describe(res)  # a candidate that cannot be loaded: a target failed
    res = invoke("validate", digits["onnx"], half, missing, *data)
    assert res.exit_code == 3, describe(res)  # 3 over 1
    user_error(invoke("validate", missing, digits["tflite"], *data), "missing.onnx")  # no reference: 2


# ------------------------------------------------------------------------------------------ convert


def test_convert_all_ok_is_0_and_a_failed_target_is_3(digits, tmp_path, monkeypatch):
    res = invoke("convert", digits["onnx"], "--to", "onnx,openvino", "-o", tmp_path / "a", "--json")
    assert res.exit_code == 0, describe(res)
    assert [t["status"] for t in json.loads(res.stdout)["targets"]] == ["pass", "pass"]
    res = invoke("convert", digits["xml"], "--to", "tflite", "-o", tmp_path / "b", "--json")
    assert res.exit_code == 3, describe(res)  # no route from an IR to TFLite
    from edgekit.converters.onnx_to_openvino import OnnxToOpenVINO

    def crash(self, src, options, out):
        raise RuntimeError("the converter crashed")

    monkeypatch.setattr(OnnxToOpenVINO, "run", crash)
    res = invoke("convert", digits["onnx"], "--to", "onnx,openvino", "-o", tmp_path / "c", "--json")
    assert res.exit_code == 3, describe(res)
    status = {t["target"]: t["status"] for t in json.loads(res.stdout)["targets"]}
    assert status == {"onnx": "pass", "openvino": "fail"}  # the other target converted and passed


def test_convert_failed_parity_with_every_target_converted_is_1(tmp_path):
    res = invoke("convert", _noisy_onnx(tmp_path / "noisy.onnx"), "--to", "openvino", "-o", tmp_path / "out",
                 "--json")
    assert res.exit_code == 1, describe(res)
    (t,) = json.loads(res.stdout)["targets"]
    assert t["status"] == "fail" and t["parity"]["max_abs"] > 0.01  # converted, ran, and differs


def test_convert_exit_code_mapping():
    from edgekit.conversion import ConvertReport, TargetResult

    def rep(*targets):
        return ConvertReport({}, list(targets), None)

    ok, unverified = TargetResult("tflite", status="pass", parity={"max_abs": 0}), TargetResult("coreml", status="unverified")
    parity = TargetResult("onnx", status="fail", parity={"max_abs": 1.0})
    broken = TargetResult("openvino", status="fail")
    assert rep(ok, unverified).exit_code == 0
    assert rep(ok, parity).exit_code == 1
    assert rep(ok, broken).exit_code == 3
    assert rep(parity, broken).exit_code == 3


def test_convert_user_error_is_2(digits, tmp_path):
    user_error(invoke("convert", digits["onnx"], "--to", "tensorrt", "-o", tmp_path), "tensorrt")


# -------------------------------------------------------------------------------------------- demo


def test_demo_exit_code_mapping():
    from edgekit.cli.demo import demo_exit_code

    good = {"conversion": {"targets": [{"status": "pass", "parity": {}}, {"status": "unverified", "parity": None}]},
            "results": [{"status": "ok"}, {"status": "skipped"}, {"status": "unverified"}],
            "validation": {"candidates": [{"verdict": "pass"}, {"verdict": "unverified"}]},
            "benchmark": {"results": [{"runs": 200}]}, "int8": [{"status": "pass"}]}
    assert demo_exit_code(good) == 0
    assert demo_exit_code({**good, "validation": {"candidates": [{"verdict": "fail"}]}}) == 1
    assert demo_exit_code({**good, "results": [{"status": "error"}]}) == 3
    assert demo_exit_code({**good, "benchmark": {"results": [{"error": "x"}]}}) == 3
    assert demo_exit_code({"conversion": None, "results": [], "validation": None, "benchmark": None,
                           "int8": None}) == 0


# ---------------------------------------------------------------------------- bugs and interruptions


def test_an_internal_bug_is_4_with_its_traceback_not_1(digits, monkeypatch):
    import edgekit.inspection as mod  # the public API the command calls

    def bug(*a, **k):
        return {}["missing"]

    monkeypatch.setattr(mod, "inspect", bug)
    res = invoke("inspect", digits["onnx"])
    assert res.exit_code == 4, describe(res)
    assert "Traceback" in res.stderr and "KeyError" in res.stderr and "internal error" in res.stderr
    assert not any(ln.startswith(("error: ", "hint: ")) for ln in res.stderr.splitlines())  # not dressed up


def test_ctrl_c_outside_a_measurement_is_130(digits, monkeypatch):
    import edgekit.inspection as mod  # the public API the command calls

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(mod, "inspect", interrupted)
    res = invoke("inspect", digits["onnx"])
    assert res.exit_code == 130, describe(res)


def test_running_out_of_memory_anyway_is_a_user_error(digits, monkeypatch):
    import edgekit.inspection as mod  # the public API the command calls

    def oom(*a, **k):
        raise MemoryError("Unable to allocate 4.00 TiB")

    monkeypatch.setattr(mod, "inspect", oom)
    user_error(invoke("inspect", digits["onnx"]), "out of memory", "4.00 TiB")


def test_usage_errors_stay_2(digits):
    res = invoke("bench", digits["onnx"], "--runs", "0")
    assert res.exit_code == 2 and "Traceback" not in res.output, describe(res)
