"""The bench method's mechanics (docs/ARCHITECTURE.md "Bench method"): one child process per model, pinned;
memory per model from its own process; the overhead and main figures from the same blocks; the precision
target; Ctrl-C and a crashing child; the shapes a model was timed at. No timing thresholds: figures are for
`tools/bench_agreement.py`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.benchmarks import harness, worker
from edgekit.examples import DIGITS_DIR

TFLITE = DIGITS_DIR / "digits_cnn.tflite"
ONNX = DIGITS_DIR / "digits_cnn.onnx"
IR = DIGITS_DIR / "digits_cnn.xml"


@pytest.fixture(scope="module")
def run3():
    """Three runtimes in one isolated run, with --overhead."""
    return edgekit.benchmark([TFLITE, ONNX, IR], runs=60, warmup=5, threads=1, overhead=True)


def test_each_model_runs_in_its_own_pinned_child_process(run3):
    pids = [r["process_pid"] for r in run3.results]
    assert len(set(pids)) == 3 and os.getpid() not in pids
    cpus = worker.pin_cpus(1)
    assert cpus == [sorted(os.sched_getaffinity(0))[-1]]
    assert run3.settings["isolation"] == "child process per model" and run3.settings["cpus"] == cpus
    for r in run3.results:
        assert r["affinity"] == cpus == r["cpus"]  # read back inside the child
        assert r["memory_scope"].startswith("own child process")


def test_the_parent_never_loads_a_runtime():
    """In a fresh interpreter: after benchmarking an IR and a TFLite model, neither runtime was imported by the
    parent (the children did all the loading and timing)."""
    code = ("import sys, edgekit; r = edgekit.benchmark([sys.argv[1], sys.argv[2]], runs=20, warmup=2, threads=1);"
            "assert not r.failed, r.failed;"
            "print(sorted(m for m in ('openvino', 'ai_edge_litert', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(IR), str(TFLITE)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_memory_is_each_models_own():
    """The same model twice: in one process the second load's peak is a small delta over the first; in its own
    process each one pays for its runtime and model alike."""
    r = edgekit.benchmark([IR, IR], runs=10, warmup=1, threads=1)
    a, b = (x["peak_rss_mb"] for x in r.results)
    assert a > 10 and b > 10 and 0.75 < a / b < 1.33  # OpenVINO's library and the model, each time (~80 MB)
    for x in r.results:
        assert x["process_peak_rss_mb"] >= x["peak_rss_mb"] + x["rss_before_load_mb"] - 1
    shared = edgekit.benchmark([IR, IR], runs=10, warmup=1, threads=1, isolate=False)
    assert shared.results[1]["memory_scope"].startswith("shared process")
    assert shared.results[1]["peak_rss_mb"] < b / 2  # what issue 16 saw: a later model's delta


def test_overhead_and_main_figure_are_the_same_samples(run3):
    for r in run3.results:
        o = r["overhead"]
        assert o["edgekit_p50_ms"] == r["latency_ms"]["p50"] == pytest.approx(np.median(r["samples_ms"]))
        assert o["raw_runs"] == r["runs"] == 60
        assert o["ratio"] == pytest.approx(o["edgekit_p50_ms"] / o["raw_p50_ms"])
        assert o["ratio_ci"][0] <= o["ratio"] <= o["ratio_ci"][1]
        lo, hi = r["p50_ci_ms"]
        assert lo <= r["latency_ms"]["p50"] <= hi
        assert r["p50_half_width"] == pytest.approx((hi - lo) / 2 / r["latency_ms"]["p50"])
        assert r["outliers"]["count"] == sum(x > r["outliers"]["fence_ms"] for x in r["samples_ms"])


def test_raw_and_edgekit_calls_alternate_in_sub_blocks(monkeypatch):
    order = []
    monkeypatch.setattr(worker, "SETTLE_S", 0.0)
    ed, rw, rt = worker.timed_block(lambda f: order.append("e"), {}, lambda: order.append("r"), calls=10, max_s=10,
                                    call_s=worker.SUB_S / 3)  # sub-blocks of 3 calls
    assert rt is None  # no runtime clock asked
    timed = "".join(order[2 * worker.SETTLE_CALLS:])
    assert order[:2 * worker.SETTLE_CALLS] == ["e", "r"] * worker.SETTLE_CALLS  # settle: both, untimed
    assert timed == "rrreee" * 3 + "re" and len(ed) == len(rw) == 10
    assert (ed > 0).all() and (rw > 0).all()


def test_precision_target_times_until_the_interval_is_narrow():
    r = edgekit.benchmark([ONNX], runs=20, warmup=5, threads=1, precision_target=0.02, duration_s=20)
    row = r.results[0]
    assert r.settings["precision_target"] == 0.02 and r.settings["budget_s"] == 20
    assert row["runs"] >= 20
    assert row["p50_half_width"] <= 0.02 or row["timed_s"] >= 20  # narrow, or the budget ran out
    exact = edgekit.benchmark([ONNX], runs=20, warmup=5, threads=1)
    assert exact.results[0]["runs"] == 20  # without a target: exactly --runs


def test_a_crashing_child_is_an_error_row_and_the_others_are_measured():
    rows, interrupted, _ = harness.measure_isolated(
        [(Path("dies.onnx"), partial(os._exit, 3)),
         (ONNX, partial(edgekit.bench._open, ONNX, "onnxruntime", 1, False, "x86-avx2", None, {}, None))],
        runs=10, warmup=1, threads=1)
    assert rows[0] == {"model": "dies.onnx", "path": "dies.onnx",
                       "error": "the child process measuring dies.onnx exited with status 3 while loading it"}
    assert rows[1]["runs"] == 10 and not interrupted


def test_ctrl_c_in_the_parent_keeps_the_blocks_measured(request):
    """A real SIGINT to this process while a child is timing its second block: that block is kept too."""
    # Python's own Ctrl-C handler, whatever this process inherited: a shell without job control starts
    # background commands (`make test &` in a script) with SIGINT ignored, and the signal would never arrive
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    fired = []

    def progress(done, total):
        if not fired:
            fired.append(threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)))
            fired[0].start()

    r = edgekit.benchmark([ONNX], runs=10**8, warmup=2, threads=1, duration_s=60, progress=progress)
    row = r.results[0]
    assert r.interrupted and row["runs"] > 0 and row["timed_s"] < 30
    assert row["runs"] == len(row["samples_ms"])


def test_timed_shapes_are_stated_and_batch_applies():
    r = edgekit.benchmark([ONNX, TFLITE], runs=10, warmup=1, threads=1, batch=4, compare_native=False)
    for row in r.results:
        assert row["input_shapes"] == {"image": [4, 8, 8, 1]} and row["batch"] == 4
        assert row["declared_shapes"] == {"image": [None, 8, 8, 1]} and row["dynamic_inputs"] == ["image"]
    r = edgekit.benchmark([ONNX], runs=5, warmup=0, input_shape="image[3,8,8,1]")
    assert r.results[0]["input_shapes"] == {"image": [3, 8, 8, 1]}
    r = edgekit.benchmark([ONNX], runs=5, warmup=0, input_shape="[2,8,8]")
    assert r.results[0]["error"] == "input 'image' is declared [?,8,8,1]; it cannot run at [2, 8, 8]"


def test_input_shape_syntax():
    from edgekit.bench import parse_shapes

    assert parse_shapes("[1,3,224,224]") == {None: [1, 3, 224, 224]}
    assert parse_shapes("a[1,4],b[1, 3]") == {"a": [1, 4], "b": [1, 3]}
    assert parse_shapes(["a[1,4]", "b[2,3]"]) == {"a": [1, 4], "b": [2, 3]}
    for bad in ("1,3,224", "a[1,x]", "[]", "[1],b[2]"):
        with pytest.raises(edgekit.InputError):
            parse_shapes(bad)


def test_native_tool_runs_at_the_timed_shape_on_the_same_cpus():
    r = edgekit.benchmark([IR], runs=30, warmup=2, threads=1, batch=2, compare_native=True)
    n = r.results[0]["native"]
    assert n["error"] is None and n["p50_ms"] > 0 and "-data_shape [2,8,8,1]" in n["command"]
    assert n["cpus"] == r.settings["cpus"]
    # benchmark_app reports OpenVINO's own timer; edgekit read the same timer on its calls: like for like
    rc = r.results[0]["runtime_clock"]
    assert n["clock"] == rc["clock"] == "openvino InferRequest.latency"
    assert n["same_clock_ratio"] == pytest.approx(rc["p50_ms"] / n["p50_ms"])
    assert n["ratio"] == pytest.approx(r.results[0]["latency_ms"]["p50"] / n["p50_ms"])


@pytest.mark.parametrize("isolate", [True, False])
def test_openvino_calls_are_read_on_its_own_clock_too(isolate):
    """Each timed call's `InferRequest.latency` is read after its wall-clock stamp: the inner timer lies inside
    the wall-clock window, so every call is shorter on it, and the gap is the median of per-call differences.
    Runtimes without such a timer have no figure."""
    r = edgekit.benchmark([IR, ONNX], runs=200, warmup=5, threads=1, isolate=isolate)
    ir, onnx = r.results
    rc = ir["runtime_clock"]
    assert rc["clock"] == "openvino InferRequest.latency" and rc["runs"] == ir["runs"] == 200
    assert "runtime_clock" not in onnx
    assert 0 < rc["p50_ms"] < ir["latency_ms"]["p50"]
    assert rc["wall_minus_clock_us"] > 0
    lo, hi = rc["p50_ci_ms"]
    assert lo <= rc["p50_ms"] <= hi


def test_per_call_the_openvino_timer_lies_inside_the_wall_clock_call():
    with edgekit.load(IR, threads=1) as m:
        name, read = m.runner.runtime_clock()
        feeds = m.feeds(np.random.default_rng(0).random((1, 8, 8, 1), dtype=np.float32))
        ed, _, rt = worker.timed_block(m.predict, feeds, None, calls=300, max_s=30, call_s=1e-4, inner=read)
    assert len(ed) == len(rt) == 300 and (rt > 0).all()
    assert (rt * 1e6 <= ed).all()  # ms inside, ns outside


def test_the_inner_clock_is_read_per_call_outside_the_wall_clock_window(monkeypatch):
    """With an inner clock, each call's reading is taken once, right after that call's wall-clock stamp."""
    monkeypatch.setattr(worker, "SETTLE_S", 0.0)
    events = []
    ticks = iter(range(1, 10**6))

    def inner():
        events.append("read")
        return float(next(ticks))

    ed, rw, rt = worker.timed_block(lambda f: events.append("call"), {}, None, calls=7, max_s=10,
                                    call_s=0.001, inner=inner)
    timed = events[worker.SETTLE_CALLS:]
    assert timed == ["call", "read"] * 7
    assert rt.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0] and len(ed) == 7 and len(rw) == 0


def test_a_script_without_a_main_guard_can_benchmark(tmp_path):
    """The children are fresh interpreters, not multiprocessing spawns that re-run the caller's script."""
    script = tmp_path / "bench_it.py"
    script.write_text("import sys, edgekit\n"
                      f"r = edgekit.benchmark([{str(ONNX)!r}], runs=10, warmup=1, threads=1)\n"
                      "print('runs', r.results[0]['runs'])\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("runs 10") == 1


def test_cli_options_reach_the_method(tmp_path):
    import json

    from typer.testing import CliRunner

    from edgekit.cli.main import app

    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["bench", str(ONNX), "--runs", "20", "--warmup", "2", "--threads", "1",
                                   "--precision-target", "0.2", "--batch", "2", "--no-pin", "--json-out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    s, row = data["settings"], data["results"][0]
    assert s["precision_target"] == 0.2 and s["cpus"] is None and s["isolation"] == "child process per model"
    assert row["input_shapes"] == {"image": [2, 8, 8, 1]} and row["affinity"] == sorted(os.sched_getaffinity(0))
    res = CliRunner().invoke(app, ["bench", str(ONNX), "--runs", "5", "--in-process", "--input-shape", "image[3,8,8,1]",
                                   "--json-out", str(out)])
    data = json.loads(out.read_text())
    assert res.exit_code == 0 and data["settings"]["isolation"] == "one process"
    assert data["results"][0]["input_shapes"] == {"image": [3, 8, 8, 1]}
    res = CliRunner().invoke(app, ["bench", str(ONNX), "--input-shape", "1,8,8,1"])
    assert res.exit_code == 2
    assert "error: cannot read the input shape '1,8,8,1'" in res.stderr and "hint: write it as" in res.stderr


def test_cli_says_under_the_table_which_clock_vs_native_is_on(tmp_path):
    import json

    from typer.testing import CliRunner

    from edgekit.cli.main import app

    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["bench", str(IR), str(TFLITE), "--runs", "50", "--warmup", "2", "--threads", "1",
                                   "--compare-native", "--json-out", str(out)], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    ir, tfl = json.loads(out.read_text())["results"]
    rc, nat = ir["runtime_clock"], ir["native"]
    line = next(x for x in res.stdout.splitlines() if x.startswith("digits_cnn.xml: vs native"))
    assert f"edgekit p50 {rc['p50_ms']:.4g} ms on it, {ir['latency_ms']['p50']:.4g} ms on the wall clock" in line
    assert f"wall clock vs native {nat['ratio']:.3f}x" in line
    assert f"{nat['same_clock_ratio']:.2f}x" in res.stdout  # the table's ×native is the same-clock ratio
    # litert-benchmark reports the wall clock: compared wall to wall, no note
    assert tfl["native"]["same_clock_ratio"] is None and "digits_cnn.tflite: vs native" not in res.stdout


def _failing_open(*args):
    """An opener (run in the child) whose model's runtime fails on its 40th timed-phase call."""
    from edgekit.errors import BackendError

    e = edgekit.bench._open(*args)
    real, n = e.model.predict, [0]

    def predict(feeds):
        n[0] += 1
        if n[0] > 40:
            raise BackendError("the runtime failed on purpose")
        return real(feeds)

    e.model.predict = predict
    return e


def test_a_runtime_failing_mid_run_is_an_error_row_and_the_others_are_measured():
    args = (ONNX, "onnxruntime", 1, False, "x86-avx2", None, {}, None)
    rows, interrupted, _ = harness.measure_isolated(
        [(Path("fails.onnx"), partial(_failing_open, *args)), (ONNX, partial(edgekit.bench._open, *args))],
        runs=200, warmup=1, threads=1)
    assert rows[0]["error"] == "the runtime failed on purpose" and "latency_ms" not in rows[0]
    assert rows[1]["runs"] == 200 and "error" not in rows[1] and not interrupted
