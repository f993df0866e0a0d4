"""What people see: tables that fit 80, 100 and 160 columns without cutting a number, labels that tell same-named
files apart, progress lines without a terminal, the --json convention, the manifest's fields, help at 80 columns.

One real convert, validate and bench of the bundled digits models (module scope) feed every check."""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest
from cli_util import describe, invoke, ok, ok_json, user_error

WIDTHS = (80, 100, 160)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """convert keras -> tflite,onnx; validate two same-named ONNX files (fp32 and a copy in another folder) and
    the TFLite file; bench the three. Their JSON and the folders."""
    from model_factory import copy_digits

    from edgekit.examples import DIGITS_DIR

    root = tmp_path_factory.mktemp("display")
    d = copy_digits(root / "digits")
    for sub in ("fp32", "copy"):
        (root / sub).mkdir()
        shutil.copy(d["onnx"], root / sub / "mnv2.onnx")
    out = root / "out"
    conv = invoke("convert", DIGITS_DIR / "digits_cnn.keras", "--to", "litert,onnx", "-o", out,
                  "--sample", d["data"])
    assert conv.exit_code == 0, describe(conv)
    cands = [root / "fp32" / "mnv2.onnx", root / "copy" / "mnv2.onnx", d["tflite"]]
    val = invoke("validate", d["onnx"], *cands, "--data", d["data"], "--json-out", root / "v.json",
                 "--html", root / "v.html")
    assert val.exit_code == 0, describe(val)
    bench = invoke("bench", *cands, "--runs", "30", "--warmup", "2", "--json-out", root / "b.json",
                   "--html", root / "b.html", "--overhead")
    assert bench.exit_code == 0, describe(bench)
    return {"root": root, "out": out, "convert": conv, "validate": val, "bench": bench,
            "manifest": json.loads((out / "manifest.json").read_text()),
            "v": json.loads((root / "v.json").read_text()), "b": json.loads((root / "b.json").read_text())}


def _render(renderable, width: int) -> str:
    from rich.console import Console

    con = Console(width=width, record=True, color_system=None, file=open("/dev/null", "w"))
    con.print(renderable)
    return con.export_text()


def _fits(text: str, width: int) -> None:
    assert "…" not in text, text
    long = [ln for ln in text.splitlines() if len(ln.rstrip()) > width]
    assert not long, f"lines over {width} columns:\n" + "\n".join(long)


@pytest.mark.parametrize("width", WIDTHS)
def test_bench_table_fits_and_shows_every_p50_whole(runs, width):
    from edgekit.benchmarks.report import _ms, rich_table

    text = _render(rich_table(runs["b"], width=width), width)
    _fits(text, width)
    for r in runs["b"]["results"]:
        p50 = r["latency_ms"]["p50"]
        shown = _ms(p50)
        assert re.search(rf"(?<![\d.]){re.escape(shown)}(?![\d])", text), (shown, text)
        assert abs(float(shown) - p50) <= 5e-4 * p50 + 5e-5  # the JSON's number, only rounded
    # the two files named mnv2.onnx are told apart by their folders
    assert "fp32/mnv2.onnx" in text and "copy/mnv2.onnx" in text
    if width >= 100:
        assert "overhead" in text and "prec" in text and "stable" in text
    if width == 160:
        assert "input" in text and "1x8x8x1" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_validate_view_fits_with_labels_verdicts_and_statistics(runs, width):
    from edgekit.validation_report import rich_table

    text = _render(rich_table(runs["v"], width=width), width)
    _fits(text, width)
    assert "fp32/mnv2.onnx" in text and "copy/mnv2.onnx" in text and "digits_cnn.tflite" in text
    for c in runs["v"]["candidates"]:
        e = next(iter(c["outputs"].values()))
        assert format(e["max_abs"], ".3g") in text
        ci = c["metrics"]["ci95"]
        assert f"95% CI [{ci['low']:+.4f}, {ci['high']:+.4f}]" in " ".join(text.split())  # a line may wrap
    assert text.count("pass") >= 3
    if width == 160:
        assert "1x8x8x1" in text or "?x8x8x1" in text  # the input shape column


@pytest.mark.parametrize("width", WIDTHS)
def test_convert_view_fits_and_keeps_notes_of_passing_targets(runs, width):
    from edgekit.conversion_report import rich_view

    m = runs["manifest"]
    text = _render(rich_view(m, width=width), width)
    _fits(text, width)
    for t in m["targets"]:
        assert t["status"] == "pass" and f"{t['parity']['max_abs']:.2e}" in text
        for n in t["notes"]:  # a passing target's notes are shown too
            assert " ".join(n.split())[:40] in " ".join(text.split())


def test_stacked_layout_when_even_the_main_columns_do_not_fit():
    from edgekit.display import Column, fit_table

    cols = [Column("model", "model", False, 0), Column("p50", "p50 ms", True, 0), Column("p99", "p99 ms", True, 0)]
    rows = [{"model": "a_rather_long_model_name_for_a_narrow_terminal.tflite", "p50": "123.456", "p99": "234.567"}]
    text = _render(fit_table(cols, rows, 40), 40)
    _fits(text, 40)
    assert "p50 ms 123.456" in text and "p99 ms 234.567" in text


def test_short_labels():
    from edgekit.display import short_labels

    assert short_labels(["/m/fp16/mnv2.tflite", "/m/int8/mnv2.tflite", "/x/a.onnx"]) == \
        ["fp16/mnv2.tflite", "int8/mnv2.tflite", "a.onnx"]
    assert short_labels(["a/b/c.onnx", "d/b/c.onnx"]) == ["a/b/c.onnx", "d/b/c.onnx"]
    assert short_labels(["x.onnx", "x.onnx"]) == ["x.onnx", "x.onnx"]  # the same file twice


def test_cli_tables_fit_columns(runs, monkeypatch):
    """The commands themselves, with COLUMNS=100 and no terminal: stdout fits 100 columns."""
    monkeypatch.setenv("COLUMNS", "100")
    d = runs["root"] / "digits"
    res = invoke("validate", d / "digits_cnn.onnx", runs["root"] / "fp32" / "mnv2.onnx", d / "digits_cnn.tflite",
                 "--data", d / "digits_test.npz")
    assert res.exit_code == 0, describe(res)
    _fits(res.stdout, 100)
    assert "fp32/mnv2.onnx" not in res.stdout and "mnv2.onnx" in res.stdout  # unique names stay short


def test_progress_is_plain_lines_without_a_terminal(runs):
    err = runs["convert"].stderr
    assert "\x1b" not in err and "\r" not in err
    assert "[1/2] tflite: convert 1/1 (keras_to_tflite)" in err and "[2/2] onnx: check against the source" in err
    assert "source: running the source on the check sample" in err
    assert "loading the reference digits_cnn.onnx" in runs["validate"].stderr
    assert "validating: 360/360 samples" in runs["validate"].stderr


def test_manifest_paths_version_time_and_signatures(runs):
    import edgekit

    m, out = runs["manifest"], runs["out"]
    assert m["edgekit_version"] == edgekit.__version__
    created = time.mktime(time.strptime(m["created"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(time.time() - created) < 3600
    assert (out / m["source"]["path"]).resolve() == (edgekit.examples.DIGITS_DIR / "digits_cnn.keras").resolve()
    for t in m["targets"]:
        assert not t["path"].startswith("/") and (out / t["path"]).is_file()
        with edgekit.load(out / t["path"]) as model:
            assert t["signature"]["inputs"] == [s.to_dict() for s in model.inputs]
            assert t["signature"]["outputs"] == [s.to_dict() for s in model.outputs]
    assert "report:" in runs["convert"].stdout and (out / "report.html").is_file()


def test_json_is_a_flag_everywhere_and_json_out_writes(runs, tmp_path):
    d = runs["root"] / "digits"
    user_error(invoke("bench", d / "digits_cnn.onnx", "--json", tmp_path / "r.json"), "--json takes no path")
    user_error(invoke("validate", d / "digits_cnn.onnx", d / "digits_cnn.tflite", "--data", d / "digits_test.npz",
                      "--json", tmp_path / "r.json"), "--json takes no path")
    got = ok_json("validate", d / "digits_cnn.onnx", d / "digits_cnn.tflite", "--data", d / "digits_test.npz",
                  "--json")
    assert got["candidates"][0]["verdict"] == "pass" and got["data"]["samples"] == 360
    b = ok_json("bench", d / "digits_cnn.onnx", "--runs", "5", "--warmup", "1", "--json")
    assert b["results"][0]["runs"] == 5 and b["results"][0]["latency_ms"]["p50"] > 0


def test_target_and_backend_aliases(runs):
    import numpy as np

    import edgekit
    from edgekit.conversion import parse_targets

    assert parse_targets("litert,ov,onnx") == ["tflite", "openvino", "onnx"]
    d = runs["root"] / "digits"
    x = np.load(d / "digits_test.npz")["image"][:4]
    with edgekit.load(d / "digits_cnn.tflite", backend="ov") as a, \
            edgekit.load(d / "digits_cnn.tflite", backend="openvino") as b:
        assert a.backend == "openvino"
        got, ref = a.predict(x), b.predict(x)
        assert list(got) == list(ref)
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k])


def test_doctor_lists_converters_and_native_tools():
    import importlib.metadata

    rep = ok_json("doctor", "--json")
    for dist in ("tf2onnx", "onnx2tf", "nncf", "pnnx"):
        assert rep["converters"][dist]["version"] == importlib.metadata.version(dist)
    tool = rep["native_tools"]["benchmark_app"]
    assert tool["path"] and tool["version"] == importlib.metadata.version("openvino")
    text = ok("doctor").stdout
    assert "tf2onnx" in text and "benchmark_app" in text


@pytest.mark.parametrize("cmd", ["convert", "validate", "bench", "tune", "run", "inspect", "doctor", "demo"])
def test_help_at_80_columns_keeps_every_option_name(cmd, monkeypatch):
    import typer.main

    from edgekit.cli.main import app

    monkeypatch.setenv("COLUMNS", "80")
    text = ok(cmd, "--help").stdout
    _fits(text, 80)
    command = typer.main.get_command(app).commands[cmd]
    for p in command.params:
        for opt in p.opts:
            if opt.startswith("--"):
                assert re.search(rf"{re.escape(opt)}(?![\w-])", text), opt


@pytest.mark.parametrize("width", WIDTHS)
def test_tune_table_fits_and_keeps_each_trials_settings(width):
    from edgekit.tuning import report
    from edgekit.tuning.result import TrialResult, TuneResult

    params = {"onnxruntime.threads": 2, "onnxruntime.graph_optimization_level": "all", "precision": "int8",
              "calibrate_method": "minmax"}
    trials = [TrialResult(i, dict(params, target=t), "complete", t, 0.9778 - i / 100, i / 10, (-0.5, 0.8 + i / 10),
                          0.01234 * (i + 1), 0.0951, 12.5, True) for i, t in enumerate(("onnx", "tflite", "openvino"))]
    trials.append(TrialResult(3, {"target": "onnx", "precision": "int8"}, "failed", "onnx", reason="ConversionError: x"))
    res = TuneResult(trials[0], trials[:2], trials, {}, "s", "sqlite://", ".")
    text = _render(report.rich_table(res, width=width), width)
    _fits(text, width)
    flat = " ".join(text.split())
    for t in trials[:3]:
        assert f"{t.latency_ms:.3f}" in text
        assert f"{t.accuracy_drop:+.2f} [{t.drop_ci[0]:+.2f}, {t.drop_ci[1]:+.2f}]" in text
        assert "graph_optimization_level=all" in flat  # in the table or, when narrow, on the trial's own line
    assert "#3 failed: ConversionError: x" in flat
