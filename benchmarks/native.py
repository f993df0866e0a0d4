"""The vendors' own benchmark tools, run on a model for `edgekit bench --compare-native`.

Each tool runs in a subprocess, single-request latency mode, with the thread count edgekit used, and we read
back its median latency in ms, so a reader can put edgekit's own median beside the vendor's.

- OpenVINO ``benchmark_app``: ``-hint none -nstreams 1 -nireq 1 -api sync`` (one synchronous request in one
  stream; benchmark_app only takes ``-nthreads`` with ``-hint none``; the CPU plugin's own default hint is then
  LATENCY, as it is for edgekit's backend), ``-infer_precision f32`` (edgekit's OpenVINO backend pins f32; on a
  bf16-capable CPU benchmark_app would otherwise run bf16). Concrete input shapes go in as ``-data_shape``,
  not ``-shape``: edgekit compiles a dynamic model as it is and feeds it concrete arrays, and so does
  benchmark_app with ``-data_shape``; ``-shape`` would reshape the model to static shapes first, which on a
  small model is much faster (digits CNN: 14 us static against 19 us dynamic) and no longer like for like.
  The median comes from stdout ("Median: 14.22 us" below 1 ms average, else "... ms"; 2 decimals).
- LiteRT ``litert-benchmark`` (``ai_edge_litert.tools.benchmark_litert_model``): a Python tool over LiteRT's
  CompiledModel API (XNNPACK on CPU) that times ``run_by_name`` with ``time.perf_counter``. It prints latencies
  rounded to 0.01 ms, which is the whole latency of a small model (the digits CNN takes ~5 us), so we run the
  same tool through ``python -m edgekit.benchmarks.native litert-benchmark ...``: the vendor's argument
  parsing, model loading, warm-up and timing loop unchanged, plus one line with the median it computed before
  rounding. When the tool's module cannot be imported by this interpreter, the installed script is run as it
  is and its rounded median is used. It has no input-shape option (and CompiledModel's resize is unreliable),
  so it runs the model's stored shapes (a dynamic dimension stored as 1): shapes that differ are an error.
  It has no time limit either: ``duration_s`` is not used for it, ``runs`` is. With ``threads=None`` the
  flag is left out and the tool's own default (1 thread) applies.
- ONNX Runtime's ``onnxruntime_perf_test`` is not shipped in the pip wheel: no native tool.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BENCHMARK_APP = "benchmark_app"
LITERT_BENCHMARK = "litert-benchmark"
_TOOLS = {"openvino": BENCHMARK_APP, "litert": LITERT_BENCHMARK}
_UNAVAILABLE = {"onnxruntime": ("onnxruntime_perf_test", ("onnxruntime_perf_test is not in the onnxruntime pip wheel "
                                                           "(it is built from source with onnxruntime)"))}
# What each tool's latency times. benchmark_app (-api sync) appends `InferRequest.latency` after each `infer()`:
# OpenVINO's timer inside the binding, the name `OpenVINORunner.runtime_clock` gives the same timer; a Python
# wall-clock call adds the binding's GIL release/re-acquire and output dict to it (~3 us on a 0.12 ms IR,
# ~50 us on 1.6-16 ms ones, measured). litert-benchmark times `run_by_name` with time.perf_counter: wall clock.
TOOL_CLOCKS = {BENCHMARK_APP: "openvino InferRequest.latency",
               LITERT_BENCHMARK: "wall clock (time.perf_counter around CompiledModel.run_by_name)"}
_FULL_PRECISION = "Inference (median, full precision):"


@dataclass
class NativeResult:
    tool: str                 # "benchmark_app", "litert-benchmark"
    p50_ms: float | None      # median (or the tool's average when it reports no median; see `statistic`)
    statistic: str            # "median" or "mean"
    command: list[str]
    error: str | None = None  # why it could not run / parse (then p50_ms is None)

    @property
    def clock(self) -> str | None:
        """What the tool's figure times (`TOOL_CLOCKS`)."""
        return TOOL_CLOCKS.get(self.tool)


def _find_tool(name: str) -> str | None:
    """The tool next to this interpreter (a venv's bin folder), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def native_tool_for(backend: str) -> str | None:
    """The vendor benchmark tool for an edgekit backend, or None (no such tool, or not installed)."""
    tool = _TOOLS.get(backend)
    return tool if tool is not None and _find_tool(tool) else None


def _litert_module_here() -> bool:
    """Whether this interpreter can import the tool's module (checked without importing ai_edge_litert)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("ai_edge_litert")
    except (ImportError, ValueError):
        return False
    locs = list(spec.submodule_search_locations or []) if spec else []
    return any((Path(p) / "tools" / "benchmark_litert_model.py").is_file() for p in locs)


def _dims(shape) -> list[int]:
    return [int(d) for d in shape]


def _fmt(shape) -> str:
    return "[" + ",".join(str(d) for d in _dims(shape)) + "]"


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


_OV_WHERE = re.compile(r"^(?:\w+: )?Exception from \S+:\d+:?$")
_ERROR_LINE = re.compile(r"^\[ ERROR \]\s*(.+)|^\S+ \S+ (?:ERROR|CRITICAL) \S+: (.+)|^ERROR: (.+)")


def _why_failed(out: str, rc: int | None) -> str:
    """The first meaningful line of a failed tool's output."""
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]

    def past_locations(msg: str, i: int) -> str:  # OpenVINO: "Exception from src/...cpp:84:" lines, then the text
        while _OV_WHERE.match(msg) and i + 1 < len(lines):
            i += 1
            msg = lines[i]
        return msg[:500]

    for i, ln in enumerate(lines):  # benchmark_app "[ ERROR ] ...", litert-benchmark "<date> <time> ERROR <logger>:
        m = _ERROR_LINE.match(ln)  # ...", LiteRT's native "ERROR: ..."
        if m:
            return past_locations(next(g for g in m.groups() if g).strip(), i)
    for i, ln in enumerate(lines):  # a Python exception line (a traceback's end)
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b:", ln):
            return past_locations(ln, i)
    if rc is not None and rc < 0:
        try:
            return f"the tool was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"the tool was killed by signal {-rc}"
    tail = [ln for ln in lines if not ln.startswith(("INFO", "[ INFO ]", "WARNING", "[ WARNING ]"))]
    return (tail[-1] if tail else f"the tool exited with status {rc}")[:500]


def _run(cmd: list[str], timeout_s: float, cpus: list[int] | None = None) -> tuple[int | None, str, str | None]:
    """(returncode, stdout+stderr, error) of a tool run in its own process group, pinned to ``cpus`` (the CPUs
    edgekit's own measurement ran on) where given; killed on timeout."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("CI", "true")  # benchmark_app imports openvino, whose telemetry stays quiet only under CI
    try:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                             env=env, start_new_session=True,
                             preexec_fn=(lambda: os.sched_setaffinity(0, set(cpus))) if cpus else None)
    except OSError as e:
        return None, "", f"could not start {cmd[0]}: {e}"
    try:
        out, _ = p.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            p.kill()
        out, _ = p.communicate()
        return None, out or "", f"timed out after {timeout_s:g} s"
    return p.returncode, out, None


# ----------------------------------------------------------------------------------------------- OpenVINO

_OV_MEDIAN = re.compile(r"^\[ INFO \]\s+Median:\s+([0-9.]+)\s*(us|ms)\s*$", re.MULTILINE)
_OV_AVERAGE = re.compile(r"^\[ INFO \]\s+Average:\s+([0-9.]+)\s*(us|ms)\s*$", re.MULTILINE)
_OV_INPUT = re.compile(r"^\[ INFO \]\s+(\S.*?) \(node: .*?\) : \S+ / \[[^\]]*\] / \[([^\]]*)\]\s*$")
_OV_STATIC = re.compile(r"Input '(.+?)' has static shape\. Provided data shapes for this input will be ignored")


def _openvino_names(model_path: Path, input_shapes: dict) -> dict:
    """edgekit's names -> the names benchmark_app sees (a .tflite's tensor names rather than signature keys)."""
    if model_path.suffix.lower() != ".tflite" or len(input_shapes) == 1:  # one input: passed unnamed
        return dict(input_shapes)
    key_to_tensor = _tflite_key_to_tensor(model_path)
    return {key_to_tensor.get(k, k): v for k, v in input_shapes.items()}


def _tflite_key_to_tensor(model_path: Path) -> dict[str, str]:
    from edgekit.formats.tflite_fb import read_tflite
    from edgekit.formats.tflite_io import public_names

    names_in, _ = public_names(read_tflite(model_path.read_bytes()))
    return {key: tensor for tensor, key in names_in.items()}


def _openvino_cmd(tool: str, model_path: Path, threads, shapes: dict | None, runs: int,
                  duration_s: float | None) -> list[str]:
    cmd = [tool, "-m", str(model_path), "-d", "CPU", "-hint", "none", "-nstreams", "1", "-nireq", "1",
           "-api", "sync", "-infer_precision", "f32"]
    if threads:
        cmd += ["-nthreads", str(int(threads))]
    if duration_s:  # benchmark_app runs until *both* -niter and -t are reached, so only one is given
        cmd += ["-t", str(max(1, int(-(-duration_s // 1))))]
    else:
        cmd += ["-niter", str(int(runs))]
    if shapes:
        if len(shapes) == 1:  # unnamed form: no name to get wrong
            cmd += ["-data_shape", _fmt(next(iter(shapes.values())))]
        else:
            cmd += ["-data_shape", ",".join(f"{k}{_fmt(v)}" for k, v in shapes.items())]
    return cmd


def _openvino_ignored_shapes(out: str, shapes: dict) -> str | None:
    """benchmark_app ignores -data_shape for a static input; an error when that input's shape differs."""
    ignored = set(_OV_STATIC.findall(out))
    if not ignored:
        return None
    static = {}
    for ln in out.splitlines():
        m = _OV_INPUT.match(ln)
        if m:
            static.setdefault(m.group(1), m.group(2))
    for name in ignored:
        want = shapes.get(name) if len(shapes) > 1 else next(iter(shapes.values()))
        have = static.get(name)
        if want is not None and have is not None and have.replace(" ", "") != _fmt(want)[1:-1]:
            return (f"benchmark_app ran input '{name}' at its static shape [{have}], "
                    f"not the requested {_fmt(want)}")
    return None


def _parse_latency(value: str, unit: str) -> float:
    v = float(value)
    return round(v / 1000.0, 8) if unit == "us" else v


def _run_openvino(model_path: Path, threads, input_shapes, runs, duration_s, timeout_s, cpus) -> NativeResult:
    tool = _find_tool(BENCHMARK_APP)
    if not model_path.exists():
        cmd = _openvino_cmd(tool or BENCHMARK_APP, model_path, threads, input_shapes, runs, duration_s)
        return NativeResult(BENCHMARK_APP, None, "median", cmd, f"model file not found: {model_path}")
    shapes = None
    if input_shapes:
        try:
            shapes = _openvino_names(model_path, input_shapes)
        except (OSError, ValueError, IndexError) as e:  # a bad .tflite (FlatbufferError is a ValueError)
            return NativeResult(BENCHMARK_APP, None, "median", [BENCHMARK_APP, "-m", str(model_path)],
                                f"could not read {model_path.name}: {_first_line(str(e)) or type(e).__name__}")
    cmd = _openvino_cmd(tool or BENCHMARK_APP, model_path, threads, shapes, runs, duration_s)
    if tool is None:
        return NativeResult(BENCHMARK_APP, None, "median", cmd, "benchmark_app is not installed (pip install openvino)")
    rc, out, err = _run(cmd, timeout_s, cpus)
    if err:
        return NativeResult(BENCHMARK_APP, None, "median", cmd, err)
    if rc != 0:
        return NativeResult(BENCHMARK_APP, None, "median", cmd, _why_failed(out, rc))
    if shapes:
        bad = _openvino_ignored_shapes(out, shapes)
        if bad:
            return NativeResult(BENCHMARK_APP, None, "median", cmd, bad)
    m = _OV_MEDIAN.search(out)
    if m:
        return NativeResult(BENCHMARK_APP, _parse_latency(*m.groups()), "median", cmd)
    m = _OV_AVERAGE.search(out)
    if m:
        return NativeResult(BENCHMARK_APP, _parse_latency(*m.groups()), "mean", cmd)
    return NativeResult(BENCHMARK_APP, None, "median", cmd,
                        "no 'Median:' latency line in benchmark_app's output: " + _why_failed(out, rc))


# ----------------------------------------------------------------------------------------------- LiteRT

_LR_FULL = re.compile(r"^" + re.escape(_FULL_PRECISION) + r"\s+([0-9.eE+-]+) ms\s*$", re.MULTILINE)
_LR_MEDIAN = re.compile(r"^Inference \(median\):\s+([0-9.]+) ms", re.MULTILINE)
_LR_AVG = re.compile(r"^Inference \(avg\):\s+([0-9.]+) ms", re.MULTILINE)


def _litert_check_shapes(model_path: Path, input_shapes: dict) -> str | None:
    """litert-benchmark runs the stored shapes: None when the requested ones are those, else why not."""
    from edgekit.formats.tflite_fb import read_tflite
    from edgekit.formats.tflite_io import public_names

    info = read_tflite(model_path.read_bytes())
    if not info.subgraphs:
        return f"{model_path.name} has no subgraph to run"
    sub = info.subgraphs[0]
    names_in, _ = public_names(info)
    stored = {}
    for i in sub.inputs:
        t = sub.tensors[i]
        stored[t.name] = stored[names_in.get(t.name, t.name)] = [max(int(d), 1) for d in t.shape]
    for name, want in input_shapes.items():
        if name not in stored:
            if len(input_shapes) == 1 and len(sub.inputs) == 1:
                have = next(iter(stored.values()))
            else:
                return f"the model has no input '{name}' (inputs: {', '.join(sorted(set(names_in.values()) or stored))})"
        else:
            have = stored[name]
        if _dims(want) != have:
            return (f"litert-benchmark cannot set input shapes: it runs '{name}' at the model's stored shape "
                    f"{_fmt(have)}, not the requested {_fmt(want)}")
    return None


def _run_litert(model_path: Path, threads, input_shapes, runs, warmup, timeout_s, cpus) -> NativeResult:
    script = _find_tool(LITERT_BENCHMARK)
    args = [f"--model={model_path}"]
    if threads:
        args.append(f"--num_threads={int(threads)}")
    args += [f"--num_runs={int(runs)}", f"--warmup_runs={int(warmup)}"]
    if _litert_module_here():
        cmd = [sys.executable, "-m", "edgekit.benchmarks.native", LITERT_BENCHMARK, *args]
    else:
        cmd = [script or LITERT_BENCHMARK, *args]
    if script is None and not _litert_module_here():
        return NativeResult(LITERT_BENCHMARK, None, "median", cmd,
                            "litert-benchmark is not installed (pip install ai-edge-litert)")
    if not model_path.is_file():
        return NativeResult(LITERT_BENCHMARK, None, "median", cmd, f"model file not found: {model_path}")
    try:  # validate in Python first: a corrupt flatbuffer can crash the native loader
        bad = _litert_check_shapes(model_path, dict(input_shapes or {}))
    except (OSError, ValueError) as e:  # FlatbufferError is a ValueError
        return NativeResult(LITERT_BENCHMARK, None, "median", cmd,
                            f"{model_path.name} is not a valid TFLite model: {_first_line(str(e)) or type(e).__name__}")
    if bad:
        return NativeResult(LITERT_BENCHMARK, None, "median", cmd, bad)
    rc, out, err = _run(cmd, timeout_s, cpus)
    if err:
        return NativeResult(LITERT_BENCHMARK, None, "median", cmd, err)
    if rc != 0:
        return NativeResult(LITERT_BENCHMARK, None, "median", cmd, _why_failed(out, rc))
    for rx, stat in ((_LR_FULL, "median"), (_LR_MEDIAN, "median"), (_LR_AVG, "mean")):
        m = rx.search(out)
        if m:
            v = float(m.group(1))
            if v <= 0:
                return NativeResult(LITERT_BENCHMARK, None, stat, cmd,
                                    f"litert-benchmark reported {m.group(0).strip()!r}: below its 0.01 ms resolution")
            return NativeResult(LITERT_BENCHMARK, v, stat, cmd)
    return NativeResult(LITERT_BENCHMARK, None, "median", cmd,
                        "no 'Inference (median)' line in litert-benchmark's output: " + _why_failed(out, rc))


def _litert_main(argv: list[str]) -> int:
    """Run LiteRT's benchmark tool unchanged, and print the median it computed before rounding to 0.01 ms."""
    import statistics

    from ai_edge_litert.tools import benchmark_litert_model as tool

    seen: list[float] = []

    class _Stats:  # the tool's `statistics` module, recording its one median() call (over the timed runs)
        def __getattr__(self, name):
            return getattr(statistics, name)

        @staticmethod
        def median(data):
            v = statistics.median(data)
            seen.append(v)
            return v

    tool.statistics = _Stats()
    sys.argv = [LITERT_BENCHMARK, *argv]
    tool.main()
    if len(seen) == 1:
        print(f"{_FULL_PRECISION} {seen[0]:.6f} ms", flush=True)
    return 0


# ----------------------------------------------------------------------------------------------- public

def run_native(model_path, backend: str, threads: int | None, input_shapes: dict[str, tuple[int, ...]] | None = None,
               runs: int = 200, warmup: int = 20, duration_s: float | None = None,
               timeout_s: float = 300, cpus: list[int] | None = None) -> NativeResult:
    """Run the vendor's benchmark tool for ``backend`` on ``model_path``; its median latency in ms.

    Never raises for a tool that is missing, fails or times out: the result's ``error`` says why and
    ``p50_ms`` is None. ``warmup`` is honoured by litert-benchmark; benchmark_app always makes exactly one
    untimed first inference. ``duration_s`` is honoured by benchmark_app (``-t``, whole seconds, instead of
    ``-niter``); litert-benchmark has no time limit and runs ``runs`` calls. ``cpus``: pin the tool to these
    CPUs (as edgekit's child process was), where the OS allows.
    """
    tool = _TOOLS.get(backend)
    if tool is None:
        name, why = _UNAVAILABLE.get(backend, (backend, f"no vendor benchmark tool for backend '{backend}'"))
        return NativeResult(name, None, "median", [], why)
    path = Path(model_path)
    if backend == "openvino":
        return _run_openvino(path, threads, input_shapes, runs, duration_s, timeout_s, cpus)
    return _run_litert(path, threads, input_shapes, runs, warmup, timeout_s, cpus)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == LITERT_BENCHMARK:
        sys.exit(_litert_main(sys.argv[2:]))
    print(f"usage: python -m edgekit.benchmarks.native {LITERT_BENCHMARK} --model=M.tflite [tool options]",
          file=sys.stderr)
    sys.exit(2)
