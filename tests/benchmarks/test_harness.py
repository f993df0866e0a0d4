"""The bench harness and `edgekit bench`: schema, statistics consistent with the samples, error rows,
--duration, Ctrl-C keeps what was measured, reports written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import edgekit
from edgekit.cli.main import app
from edgekit.examples import DIGITS_DIR

TFLITE = DIGITS_DIR / "digits_cnn.tflite"
ONNX = DIGITS_DIR / "digits_cnn.onnx"
IR = DIGITS_DIR / "digits_cnn.xml"
ROW_KEYS = {"model", "format", "backend", "threads", "runs", "latency_ms", "load_ms", "first_inference_ms",
            "throughput_ips", "peak_rss_mb", "size_bytes", "stable"}


def test_schema_and_statistics_match_the_samples():
    r = edgekit.benchmark([TFLITE, ONNX, IR], runs=40, warmup=3, threads=1, overhead=True)
    assert set(r) >= {"environment", "results", "settings", "interrupted"}
    env = r["environment"]
    assert env["cpu"]["isa"] and env["device_class"] and env["python"] and env["packages"]["onnxruntime"]
    assert [x["backend"] for x in r["results"]] == ["litert", "onnxruntime", "openvino"]
    for row in r["results"]:
        assert ROW_KEYS <= set(row), ROW_KEYS - set(row)
        s = np.array(row["samples_ms"])
        lat = row["latency_ms"]
        assert row["runs"] == len(s) == 40
        assert lat["p50"] == pytest.approx(np.median(s)) and lat["mean"] == pytest.approx(s.mean())
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert lat["std"] == pytest.approx(s.std(ddof=1))
        assert row["throughput_ips"] == pytest.approx(1000 * len(s) / s.sum())
        assert row["load_ms"] > 0 and row["first_inference_ms"] > 0 and row["size_bytes"] > 0
        assert row["threads"] == 1
        o = row["overhead"]
        assert o["ratio"] == pytest.approx(o["edgekit_p50_ms"] / o["raw_p50_ms"])
        assert o["added_us"] < 1000  # a few microseconds in practice; the figure itself is reported, not asserted
    assert r["results"][0]["ratio_to_first"] == 1.0
    assert r["results"][1]["ratio_to_first"] == pytest.approx(
        r["results"][1]["latency_ms"]["p50"] / r["results"][0]["latency_ms"]["p50"])
    assert r["results"][2]["throughput_async_ips"] > 0  # OpenVINO's async infer queue


def test_a_model_that_fails_to_load_is_an_error_row(tmp_path):
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"\x00" * 64)
    r = edgekit.benchmark([bad, ONNX], runs=5, warmup=1)
    assert "error" in r["results"][0] and r["results"][0]["model"] == "broken.tflite"
    assert r["results"][1]["runs"] == 5


def test_duration_ends_the_run_first():
    r = edgekit.benchmark([ONNX], runs=10**7, warmup=0, duration_s=0.2)
    n = r["results"][0]["runs"]
    assert 0 < n < 10**7 and sum(r["results"][0]["samples_ms"]) < 1000


def test_ctrl_c_keeps_what_was_measured(monkeypatch, tmp_path):
    from edgekit.model import Model

    calls = {"n": 0}
    real = Model.predict

    def flaky(self, x):
        calls["n"] += 1
        if calls["n"] == 60:  # warm-up and first calls pass, then the user presses Ctrl-C mid-run
            raise KeyboardInterrupt
        return real(self, x)

    monkeypatch.setattr(Model, "predict", flaky)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["bench", str(TFLITE), "--runs", "1000", "--warmup", "2", "--json", str(out),
                                   "--markdown", str(tmp_path / "r.md")])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["interrupted"] is True
    row = data["results"][0]
    assert 0 < row["runs"] < 1000 and row["latency_ms"]["p50"] > 0
    assert "nterrupted" in (tmp_path / "r.md").read_text()


def test_reports_are_written_and_non_trivial(tmp_path):
    args = ["bench", str(TFLITE), str(ONNX), "--runs", "20", "--warmup", "2", "--json", str(tmp_path / "r.json"),
            "--markdown", str(tmp_path / "r.md"), "--html", str(tmp_path / "r.html"), "--plot", str(tmp_path / "r.png")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    png = (tmp_path / "r.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    html = (tmp_path / "r.html").read_text()
    assert "data:image/png;base64," in html and "digits_cnn.onnx" in html and "<table" in html
    md = (tmp_path / "r.md").read_text()
    assert md.count("digits_cnn.") >= 2 and "| " in md
    assert "digits_cnn.tflite" in res.stdout


def test_device_class_is_recorded_and_validated(tmp_path, monkeypatch):
    from edgekit.benchmarks import device_classes

    r = edgekit.benchmark([ONNX, TFLITE], runs=3, warmup=0, device_class="rpi4")
    assert r["environment"]["device_class"] == "rpi4"
    assert r["settings"]["threads"] == 4  # the profile's default
    assert [x["backend"] for x in r["results"]] == ["onnxruntime", "litert"]
    # a profile's backend preference picks among the backends that run a format
    nuc = device_classes.DeviceClass("intel-nuc", "test profile", 2, ("openvino", "onnxruntime", "litert"))
    monkeypatch.setitem(device_classes.PROFILES, "intel-nuc", nuc)
    r = edgekit.benchmark([ONNX, TFLITE], runs=3, warmup=0, device_class="intel-nuc")
    assert [x["backend"] for x in r["results"]] == ["openvino", "openvino"]
    assert r["settings"]["threads"] == 2
    res = CliRunner().invoke(app, ["bench", str(ONNX), "--device-class", "toaster"])
    assert res.exit_code == 2 and "error: unknown device class 'toaster'" in res.stderr


def test_cli_error_row_gives_exit_3(tmp_path):
    res = CliRunner().invoke(app, ["bench", str(tmp_path / "missing.onnx"), str(ONNX), "--runs", "5"])
    assert res.exit_code == 3
    assert "digits_cnn.onnx" in res.stdout
