"""Bad output paths through the CLI: one `error:` line, one `hint:` line, exit 2, no traceback, nothing lost.

Outputs that cannot be written or would overwrite an input (checked before the work starts), and reports that
fail after the work (the others and the results are kept). Bad input data and models are in
test_cli_bad_input.py; the `digits` and `no_bench` fixtures both files use are in conftest.py.
Models are copies of the bundled digits example in tmp_path, so a failing test can never damage the originals.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from cli_util import invoke, ok, user_error


# -------------------------------------------------------------------- outputs checked before the work


def _impossible(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir(exist_ok=True)
    return {"folder": tmp_path / "a_folder", "under a file": tmp_path / "a_file" / "r.json",
            "name too long": tmp_path / ("x" * 300 + ".json")}


@pytest.mark.parametrize("flag", ["--json-out", "--markdown", "--html", "--plot"])
@pytest.mark.parametrize("case", ["folder", "under a file", "name too long"])
def test_bench_reports_checked_before_measuring(flag, case, digits, tmp_path, no_bench):
    path = _impossible(tmp_path)[case]
    user_error(invoke("bench", digits["onnx"], flag, path, "--runs", "3"), flag)


@pytest.mark.parametrize("case", ["folder", "under a file", "name too long"])
def test_validate_and_run_outputs_checked_first(case, digits, tmp_path, monkeypatch):
    import edgekit.validation

    monkeypatch.setattr(edgekit.validation, "validate", lambda *a, **k: pytest.fail("validated before the check"))
    path = _impossible(tmp_path)[case]
    user_error(invoke("validate", digits["onnx"], digits["tflite"], "--data", digits["data"], "--html", path),
               "--html")
    user_error(invoke("run", digits["onnx"], "--random", "--output", path), "--output")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_unwritable_folder(digits, tmp_path, no_bench):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        user_error(invoke("bench", digits["onnx"], "--json-out", locked / "sub" / "r.json"), "permission")
        user_error(invoke("convert", digits["onnx"], "--to", "openvino", "-o", locked / "out"), "permission")
    finally:
        locked.chmod(0o700)


def test_convert_and_demo_output_dir_that_is_a_file(digits, tmp_path):
    (tmp_path / "a_file").write_text("keep me")
    user_error(invoke("convert", digits["onnx"], "--to", "openvino", "-o", tmp_path / "a_file"), "not a folder")
    user_error(invoke("demo", "-o", tmp_path / "a_file"), "not a folder")
    assert (tmp_path / "a_file").read_text() == "keep me"


def test_two_reports_with_one_path(digits, tmp_path, no_bench):
    user_error(invoke("bench", digits["onnx"], "--json-out", tmp_path / "r", "--markdown", tmp_path / "r"),
               "--json-out", "--markdown")


# ------------------------------------------------------------------- outputs that would overwrite inputs


@pytest.mark.parametrize("which", ["onnx", "xml", "bin"])
def test_run_output_that_is_the_model_is_refused(which, digits):
    model = digits["xml"] if which in ("xml", "bin") else digits["onnx"]
    before = digits[which].read_bytes()
    user_error(invoke("run", model, "--random", "--output", digits[which]), str(digits[which].name))
    assert digits[which].read_bytes() == before


def test_run_output_that_is_onnx_external_data_is_refused(onnx_external):
    weights = onnx_external.good.parent / "w.bin"
    before = weights.read_bytes()
    user_error(invoke("run", onnx_external.good, "--random", "--output", weights), "w.bin", "model")
    assert weights.read_bytes() == before


def test_run_output_that_is_the_input_is_refused(digits):
    before = digits["data"].read_bytes()
    user_error(invoke("run", digits["onnx"], "--input", digits["data"], "--output", digits["data"]), "--input")
    assert digits["data"].read_bytes() == before


def test_bench_and_validate_reports_over_a_model_are_refused(digits, no_bench, monkeypatch):
    import edgekit.validation

    monkeypatch.setattr(edgekit.validation, "validate", lambda *a, **k: pytest.fail("validated before the check"))
    before = digits["tflite"].read_bytes()
    user_error(invoke("bench", digits["onnx"], digits["tflite"], "--json-out", digits["tflite"]), "--json-out")
    user_error(invoke("validate", digits["onnx"], digits["tflite"], "--data", digits["data"], "--markdown",
                      digits["tflite"]), "--markdown")
    user_error(invoke("validate", digits["onnx"], digits["tflite"], "--data", digits["data"], "--json-out",
                      digits["data"]), "--data")
    assert digits["tflite"].read_bytes() == before


def test_run_output_still_written(digits, tmp_path):
    out = tmp_path / "deep" / "out.npz"
    ok("run", digits["onnx"], "--input", digits["data"], "--output", out)
    with np.load(out) as z:
        assert z[next(iter(z.files))].shape == (360, 10)


# ------------------------------------------------------------ a report that fails after the work ran


def _block_after(monkeypatch, module, name, blocker: Path):
    """Run the real function, then put a file where the report's folder should be (the disk changed mid-run)."""
    real = getattr(module, name)

    def wrapped(*a, **k):
        out = real(*a, **k)
        blocker.write_text("in the way")
        return out

    monkeypatch.setattr(module, name, wrapped)


def test_bench_html_failing_after_measuring_keeps_the_results(digits, tmp_path, monkeypatch):
    from edgekit import bench

    _block_after(monkeypatch, bench, "benchmark", tmp_path / "later")
    res = invoke("bench", digits["onnx"], "--runs", "20", "--warmup", "2", "--json-out", tmp_path / "r.json",
                 "--markdown", tmp_path / "r.md", "--html", tmp_path / "later" / "r.html")
    msg = user_error(res, "--html", "r.html")
    assert "--json-out" not in msg and "--markdown" not in msg, msg
    data = json.loads((tmp_path / "r.json").read_text())  # the measurement survived
    row = data["results"][0]
    assert row["runs"] == 20 and 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["max"]
    assert "digits_cnn.onnx" in (tmp_path / "r.md").read_text()
    assert "digits_cnn.onnx" in res.stdout  # the table was printed
    assert not (tmp_path / "later").is_dir()


def test_validate_json_failing_after_validating_keeps_the_results(digits, tmp_path, monkeypatch):
    import edgekit.validation

    _block_after(monkeypatch, edgekit.validation, "validate", tmp_path / "later")
    res = invoke("validate", digits["onnx"], digits["tflite"], "--data", digits["data"], "--json-out",
                 tmp_path / "later" / "r.json", "--markdown", tmp_path / "r.md")
    user_error(res, "--json-out")
    md = (tmp_path / "r.md").read_text()
    assert "digits_cnn.tflite" in md and "360 samples" in md and "360 samples" in res.stdout


def test_an_existing_report_is_not_half_overwritten(digits, tmp_path, monkeypatch):
    """A report is replaced whole or not at all: a failing render keeps the previous file."""
    from edgekit.benchmarks import report

    old = tmp_path / "r.md"
    old.write_text("previous run\n")

    def broken(result):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "to_markdown", broken)
    res = invoke("bench", digits["onnx"], "--runs", "5", "--warmup", "1", "--markdown", old, "--json-out",
                 tmp_path / "r.json")
    user_error(res, "--markdown", "No space left")
    assert old.read_text() == "previous run\n"
    assert json.loads((tmp_path / "r.json").read_text())["results"][0]["runs"] == 5
    assert not list(tmp_path.glob(".edgekit-*.tmp"))
