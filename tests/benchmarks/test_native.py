"""edgekit.benchmarks.native: the vendors' own benchmark tools (benchmark_app, litert-benchmark) on the digits CNN."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from edgekit.benchmarks.native import NativeResult, native_tool_for, run_native
from edgekit.examples import DIGITS_DIR

DIGITS = Path(DIGITS_DIR)
SHAPES = {"image": (1, 8, 8, 1)}  # the digits models have a dynamic batch: [-1, 8, 8, 1]


def _need(backend: str) -> None:
    if native_tool_for(backend) is None:
        pytest.skip(f"no native benchmark tool installed for {backend}")


def _flag(cmd: list[str], name: str) -> str | None:
    """The value after `name` in a command, or of `name=value`."""
    for i, a in enumerate(cmd):
        if a == name and i + 1 < len(cmd):
            return cmd[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def test_tool_for_backend():
    assert native_tool_for("onnxruntime") is None
    assert native_tool_for("coreml") is None
    assert native_tool_for("no-such-backend") is None
    assert native_tool_for("openvino") in (None, "benchmark_app")
    assert native_tool_for("litert") in (None, "litert-benchmark")


def test_onnxruntime_is_reported_unavailable():
    r = run_native(DIGITS / "digits_cnn.onnx", "onnxruntime", 1, SHAPES)
    assert isinstance(r, NativeResult)
    assert r.p50_ms is None and "onnxruntime_perf_test" in r.error


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("model", ["digits_cnn.xml", "digits_cnn.onnx", "digits_cnn.tflite"])
def test_benchmark_app(model, threads):
    _need("openvino")
    r = run_native(DIGITS / model, "openvino", threads, SHAPES, runs=200)
    assert r.error is None, r.error
    assert r.tool == "benchmark_app" and r.statistic == "median"
    assert r.p50_ms is not None and 0 < r.p50_ms < 1000
    assert _flag(r.command, "-nthreads") == str(threads)
    assert _flag(r.command, "-infer_precision") == "f32"
    assert _flag(r.command, "-hint") == "none" and _flag(r.command, "-nstreams") == "1"
    assert _flag(r.command, "-api") == "sync" and _flag(r.command, "-nireq") == "1"
    assert _flag(r.command, "-data_shape") == "[1,8,8,1]"
    assert _flag(r.command, "-niter") == "200"


@pytest.mark.parametrize("threads", [1, 2])
def test_litert_benchmark(threads):
    _need("litert")
    r = run_native(DIGITS / "digits_cnn.tflite", "litert", threads, SHAPES, runs=200, warmup=20)
    assert r.error is None, r.error
    assert r.tool == "litert-benchmark" and r.statistic == "median"
    assert r.p50_ms is not None and 0 < r.p50_ms < 1000
    assert _flag(r.command, "--num_threads") == str(threads)
    assert _flag(r.command, "--num_runs") == "200" and _flag(r.command, "--warmup_runs") == "20"


def test_litert_accepts_tensor_names_and_rejects_other_shapes():
    _need("litert")
    r = run_native(DIGITS / "digits_cnn.tflite", "litert", 1, {"serving_default_image:0": (1, 8, 8, 1)}, runs=20)
    assert r.error is None and r.p50_ms > 0
    r = run_native(DIGITS / "digits_cnn.tflite", "litert", 1, {"image": (4, 8, 8, 1)}, runs=20)
    assert r.p50_ms is None and "[4,8,8,1]" in r.error and "[1,8,8,1]" in r.error


def test_benchmark_app_needs_shapes_for_a_dynamic_model():
    _need("openvino")
    r = run_native(DIGITS / "digits_cnn.xml", "openvino", 1, None, runs=20)
    assert r.p50_ms is None and "dynamic" in r.error


def test_benchmark_app_duration_and_timeout():
    _need("openvino")
    r = run_native(DIGITS / "digits_cnn.xml", "openvino", 1, SHAPES, duration_s=0.5)
    assert r.error is None and r.p50_ms > 0
    assert _flag(r.command, "-t") == "1" and _flag(r.command, "-niter") is None
    r = run_native(DIGITS / "digits_cnn.xml", "openvino", 1, SHAPES, runs=10**9, timeout_s=2)
    assert r.p50_ms is None and "timed out" in r.error


@pytest.mark.parametrize("backend,suffix", [("openvino", ".xml"), ("openvino", ".tflite"), ("litert", ".tflite")])
def test_missing_and_garbage_models(tmp_path, backend, suffix):
    _need(backend)
    r = run_native(tmp_path / ("missing" + suffix), backend, 1, SHAPES)
    assert isinstance(r, NativeResult) and r.p50_ms is None and "not found" in r.error
    bad = tmp_path / ("garbage" + suffix)
    bad.write_bytes(b"this is not a model\n" * 50)
    for shapes in (SHAPES, None):
        r = run_native(bad, backend, 1, shapes, runs=10)
        assert isinstance(r, NativeResult) and r.p50_ms is None
        assert r.error and "\n" not in r.error and len(r.error) <= 500, r.error


def test_output_parsing():
    from edgekit.benchmarks import native

    ov_us = "[ INFO ] Latency:\n[ INFO ]    Median:        14.22 us\n[ INFO ]    Average:       14.56 us\n"
    ov_ms = "[ INFO ] Latency:\n[ INFO ]    Median:        3.25 ms\n[ INFO ]    Average:       3.40 ms\n"
    assert native._parse_latency(*native._OV_MEDIAN.search(ov_us).groups()) == pytest.approx(0.01422)
    assert native._parse_latency(*native._OV_MEDIAN.search(ov_ms).groups()) == pytest.approx(3.25)
    lr = "Inference (avg):       0.01 ms (200 runs)\nInference (median):    0.01 ms\n"
    assert native._LR_MEDIAN.search(lr).group(1) == "0.01"
    assert native._LR_FULL.search(lr + "Inference (median, full precision): 0.005238 ms\n").group(1) == "0.005238"
    ov_err = ("[ ERROR ] Exception from src/inference/src/cpp/core.cpp:84:\n"
              "Exception from src/inference/src/model_reader.cpp:148:\nUnable to read the model: \"x.xml\"\n")
    assert native._why_failed(ov_err, 1) == 'Unable to read the model: "x.xml"'
    lr_err = ("WARNING: [compiler_plugin.cc:312] Failed to load plugin with error: ERROR: [plugin.cc:259]\n"
              "2026-01-01 10:00:00 ERROR benchmark_litert_model: Model file not found: /x.tflite\n")
    assert native._why_failed(lr_err, 1) == "Model file not found: /x.tflite"
    assert "SIGSEGV" in native._why_failed("", -11)


def _edgekit_median_ms(path: Path, backend: str, runs: int = 300, warmup: int = 30) -> float:
    import edgekit
    import numpy as np

    x = np.random.default_rng(0).random(SHAPES["image"], dtype=np.float32)
    with edgekit.load(path, backend=backend, threads=1) as model:
        for _ in range(warmup):
            model.predict(x)
        ns = []
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            model.predict(x)
            ns.append(time.perf_counter_ns() - t0)
    return float(np.median(ns)) / 1e6


@pytest.mark.parametrize("backend,model", [("openvino", "digits_cnn.xml"), ("litert", "digits_cnn.tflite")])
def test_native_median_is_in_the_same_range_as_ours(backend, model):
    """A sanity check only: this machine is shared and noisy, so no 7% assertion here."""
    _need(backend)
    ours = _edgekit_median_ms(DIGITS / model, backend)
    nat = run_native(DIGITS / model, backend, 1, SHAPES, runs=300, warmup=30)
    assert nat.error is None, nat.error
    print(f"\n{model} {backend} threads=1: edgekit p50 {ours * 1000:.2f} us, {nat.tool} p50 {nat.p50_ms * 1000:.2f} us, "
          f"ratio {ours / nat.p50_ms:.2f}\n  {' '.join(nat.command)}")
    assert ours > 0 and nat.p50_ms > 0
    assert 1 / 3 < ours / nat.p50_ms < 3
