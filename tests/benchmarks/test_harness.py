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
    rep = edgekit.benchmark([TFLITE, ONNX, IR], runs=40, warmup=3, threads=1, overhead=True)
    r = rep.to_dict()  # the JSON schema `edgekit bench --json` writes
    assert set(r) >= {"environment", "results", "settings", "interrupted"}
    assert r["results"] is rep.results and r["environment"] is rep.environment and rep.threads == 1
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
    assert "error" in r.results[0] and r.results[0]["model"] == "broken.tflite"
    assert r.results[1]["runs"] == 5
    assert r.failed == [r.results[0]] and r.row(bad) is r.results[0]


def test_duration_ends_the_run_first():
    r = edgekit.benchmark([ONNX], runs=10**7, warmup=0, duration_s=0.2)
    n = r.results[0]["runs"]
    assert 0 < n < 10**7 and sum(r.results[0]["samples_ms"]) < 1000


def test_ctrl_c_keeps_what_was_measured(monkeypatch, tmp_path):
    from edgekit.model import Model

    import time

    start = []
    real = Model.predict

    def flaky(self, x):  # the user presses Ctrl-C once the first block (0.05 s settle + 0.25 s) is timed
        start.append(time.perf_counter()) if not start else None
        if time.perf_counter() - start[0] > 0.6:
            raise KeyboardInterrupt
        return real(self, x)

    monkeypatch.setattr(Model, "predict", flaky)  # in this process: --in-process (a child has its own Model)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["bench", str(TFLITE), "--runs", "10000000", "--warmup", "2", "--json-out", str(out),
                                   "--markdown", str(tmp_path / "r.md"), "--in-process"])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["interrupted"] is True
    row = data["results"][0]
    assert 0 < row["runs"] < 10000000 and row["latency_ms"]["p50"] > 0
    assert "nterrupted" in (tmp_path / "r.md").read_text()


def test_reports_are_written_and_non_trivial(tmp_path):
    args = ["bench", str(TFLITE), str(ONNX), "--runs", "20", "--warmup", "2", "--json-out", str(tmp_path / "r.json"),
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
    from edgekit import device_classes

    r = edgekit.benchmark([ONNX, TFLITE], runs=3, warmup=0, device_class="rpi4")
    assert r.environment["device_class"] == "rpi4" == r.device_class
    assert r.settings["threads"] == 4  # the profile's default
    assert [x["backend"] for x in r.results] == ["onnxruntime", "litert"]
    # a profile's backend preference picks among the backends that run a format
    nuc = device_classes.DeviceClass("intel-nuc", "test profile", 2, ("openvino", "onnxruntime", "litert"))
    monkeypatch.setitem(device_classes.PROFILES, "intel-nuc", nuc)  # known in this process only: --in-process
    r = edgekit.benchmark([ONNX, TFLITE], runs=3, warmup=0, device_class="intel-nuc", isolate=False)
    assert [x["backend"] for x in r.results] == ["openvino", "openvino"]
    assert r.settings["threads"] == 2
    res = CliRunner().invoke(app, ["bench", str(ONNX), "--device-class", "toaster"])
    assert res.exit_code == 2 and "error: unknown device class 'toaster'" in res.stderr


def test_cli_error_row_gives_exit_3(tmp_path):
    res = CliRunner().invoke(app, ["bench", str(tmp_path / "missing.onnx"), str(ONNX), "--runs", "5"])
    assert res.exit_code == 3
    assert "digits_cnn.onnx" in res.stdout


def test_the_harness_times_models_it_is_given():
    """benchmarks/ is timing only: the harness measures what the caller loaded, on the caller's feeds."""
    from pathlib import Path
    from types import SimpleNamespace

    from edgekit.benchmarks import harness

    calls = {"n": 0}

    class Fake:  # the parts of an edgekit.Model the harness uses
        format, backend, precision = SimpleNamespace(value="tflite"), "fake", "fp32"
        source = SimpleNamespace(size_bytes=123)
        runner = SimpleNamespace()
        closed = False

        def feeds(self, x):
            return dict(x)

        def predict(self, feeds):
            calls["n"] += 1
            return {"y": feeds["x"] * 2}

        def close(self):
            self.closed = True

    e = harness.open_subject(Path("m.tflite"), Fake, lambda m: {"x": np.ones((1, 3), np.float32)}, threads=2)
    assert calls["n"] == 1 and e.row["load_ms"] > 0 and e.row["first_inference_ms"] > 0
    assert e.row["input_shapes"] == {"x": [1, 3]} and e.row["threads"] == 2 and e.row["size_bytes"] == 123
    harness.warm_up(e, 4)
    interrupted, _ = harness.measure([e], runs=25)
    settle = calls["n"] - (1 + 4 + 25)  # untimed calls before the block: at least SETTLE_CALLS
    assert not interrupted and settle >= harness.worker.SETTLE_CALLS
    s = np.array(e.row["samples_ms"])
    assert e.row["runs"] == len(s) == 25 and e.row["latency_ms"]["p50"] == pytest.approx(np.median(s))
    assert e.row["ratio_to_first"] == 1.0 and e.row["throughput_async_ips"] is None

    def bad_feeds(m):
        raise ValueError("no feeds")

    model = {}
    with pytest.raises(ValueError):  # a model that loaded is closed again when a later step fails
        harness.open_subject(Path("m.tflite"), lambda: model.setdefault("m", Fake()), bad_feeds, threads=None)
    assert model["m"].closed


def test_benchmarks_do_not_import_the_api_layer():
    """The timing layer may use core types (errors, formats, types, machine) and the runtimes, never the public API above
    it (edgekit.load, edgekit.data, conversion, ...)."""
    import ast
    from pathlib import Path

    import edgekit.benchmarks

    allowed = ("edgekit.errors", "edgekit.formats", "edgekit.types", "edgekit.machine", "edgekit.runtimes",
               "edgekit.display",  # core: labels and fitted tables shared by every view
               "edgekit.benchmarks")
    bad = []
    for f in sorted(Path(edgekit.benchmarks.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            bad += [f"{f.name}: {n}" for n in names if n.split(".")[0] == "edgekit" and not n.startswith(allowed)]
    assert not bad, bad


def test_threads_mean_the_device_class_default_everywhere(monkeypatch):
    """threads=None is the device class's default in load (so run, validate, convert) and in bench alike."""
    import edgekit
    from edgekit import device_classes

    pi = device_classes.PROFILES["rpi4"]
    with edgekit.load(ONNX, device_class="rpi4") as m:
        assert m.runner.threads == pi.threads == 4
    r = edgekit.benchmark([ONNX], runs=3, warmup=0, device_class="rpi4")
    assert r.results[0]["threads"] == r.threads == 4
    with edgekit.load(ONNX, device_class="rpi4", threads=1) as m:  # an explicit count wins
        assert m.runner.threads == 1
    monkeypatch.setattr(device_classes, "detect", lambda: "rpi5")  # what load finds on this machine
    with edgekit.load(ONNX) as m:
        assert m.runner.threads == device_classes.PROFILES["rpi5"].threads == 4
    monkeypatch.setattr(device_classes, "detect", lambda: "x86-avx2")
    with edgekit.load(ONNX) as m:
        assert m.runner.threads is None  # the class leaves it to the runtime
    with pytest.raises(edgekit.InputError, match="unknown device class 'toaster'"):
        edgekit.load(ONNX, device_class="toaster")
