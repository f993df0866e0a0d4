"""Run a TFLite file once in a child process before this process loads it, when the validator cannot vouch for it.

LiteRT crashes (SIGSEGV, SIGABRT), rather than raises, on some structurally valid flatbuffers, and no
``except`` clause survives that. ``_tflite_fb.read_tflite`` refuses the crash patterns it knows and marks a file
"vouched for" when it checked the operands of every operator (``TFLiteInfo.vouched``). Any other file (an
operator outside ``_tflite_ops.OPERANDS``, a custom op, unusual operand counts or dtypes) is first loaded,
allocated and invoked once on zeros by the same runtime in a child process: if that child dies, the caller gets
a ``ModelFileError`` naming the file and the signal instead of dying itself.

A vouched file whose declared tensors are large (``_big_model_bytes``) is probed too: a mutated input shape made
LiteRT allocate 6 GB, and on a small device the out-of-memory killer should end the child, not the caller.

The verdict is cached per (path, size, mtime, sha256, runtime), so repeated loads in one process pay once.
EDGEKIT_PROBE=0 turns the probe off (the caller then risks a crash); EDGEKIT_PROBE_TIMEOUT sets its time limit.
A child probe costs one interpreter start-up plus the model's load: 0.15-0.2 s for LiteRT and 0.4-0.6 s for
OpenVINO here, on a 5 KB and a 15 MB model alike (``last_cost_ms``); a cached verdict costs the sha256 of the file
(1 ms for 1 MB). The probe runs one invoke on zeros: a kernel whose crash
depends on the input values is not ruled out, only every load-time and shape-time crash.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edgekit.errors import BackendError, EdgekitError, ModelFileError

__all__ = ["last_cost_ms", "probe_tflite"]

TIMEOUT_S = float(os.environ.get("EDGEKIT_PROBE_TIMEOUT", "300"))
DONE = "edgekit-probe: done"

# key -> None (the child survived) or the error to raise again
_VERDICTS: dict[tuple, EdgekitError | None] = {}
_COST: dict[str, float] = {}
child_runs = 0  # child processes started by this process (the cache makes repeated loads free)

_CHILD = r"""
import importlib, sys
path, backend, module = sys.argv[1:4]
import numpy as np

def note(stage, e):
    print(f"edgekit-probe: {stage}: {type(e).__name__}: {str(e)[:300]!r}", flush=True)

def zeros(shape, dtype):
    return np.zeros([max(int(d), 1) for d in shape], dtype)

if backend == "litert":
    if module == "tensorflow":
        Interpreter = importlib.import_module("tensorflow").lite.Interpreter
    else:
        Interpreter = importlib.import_module(module + ".interpreter").Interpreter
    try:
        it = Interpreter(model_path=path)
        it.allocate_tensors()
        for d in it.get_input_details():
            try:
                it.set_tensor(d["index"], zeros(d["shape"], d["dtype"]))
            except Exception as e:
                note("set_tensor", e)
        it.invoke()
        for d in it.get_output_details():
            it.get_tensor(d["index"])
    except Exception as e:
        note("litert", e)
else:
    import openvino as ov
    try:
        core = ov.Core()
        compiled = core.compile_model(core.read_model(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        feeds = {}
        for i, port in enumerate(compiled.inputs):
            ps = port.get_partial_shape()
            shape = [d.get_length() if d.is_static else 1 for d in ps] if ps.rank.is_static else [1]
            feeds[i] = zeros(shape, port.get_element_type().to_dtype())
        compiled.create_infer_request().infer(feeds)
    except Exception as e:
        note("openvino", e)
print("edgekit-probe: done", flush=True)
"""


def last_cost_ms(path) -> float | None:
    """Milliseconds the last child probe of ``path`` took in this process (None: none ran)."""
    return _COST.get(str(Path(path).resolve()))


def _big_model_bytes() -> int:
    """Models whose declared tensors take more than this run in a child first, where the out-of-memory killer
    ends the child, not the caller (declared shapes understate: a fuzzed 0.8 GB input took 6 GB in LiteRT).
    A sixteenth of physical memory, at most 256 MiB."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 4 << 30
    return min(256 << 20, physical // 16)


def _key(path: Path, backend: str, module: str) -> tuple:
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as f:  # hashlib.file_digest is 3.11+
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return str(path.resolve()), st.st_size, st.st_mtime_ns, h.hexdigest(), backend, module


def probe_tflite(path, info, backend: str, module: str = "") -> float | None:
    """Make sure loading and running ``path`` once cannot kill this process.

    Returns None when ``info`` (from ``read_tflite``) is vouched for, else the milliseconds the child probe took
    (0.0 when its verdict was cached). ``backend``: "litert" (``module``: the interpreter's package) or
    "openvino". Raises ModelFileError when the child died, ended without finishing or did not finish in time."""
    big = info.activation_bytes() > _big_model_bytes()
    if info.vouched and not big or os.environ.get("EDGEKIT_PROBE", "1") == "0":  # 0: the caller takes the risk
        return None
    path = Path(path)
    key = _key(path, backend, module)
    if key in _VERDICTS:
        if _VERDICTS[key] is not None:
            raise _VERDICTS[key]
        return 0.0
    runtime = "LiteRT" if backend == "litert" else "OpenVINO"
    ops = sorted({op for g in info.subgraphs for op in g.unchecked})
    why = f"it uses {', '.join(ops[:5])}" if ops else f"its tensors need {info.activation_bytes() / 2**30:.1f} GiB"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONFAULTHANDLER="")
    global child_runs
    child_runs += 1
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(path), backend, module or ""], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT_S)
    except OSError as e:  # no usable sys.executable (an embedded interpreter) or no processes allowed
        raise BackendError(f"cannot start a child process to check {path.name} before loading it: {e}",
                           "set EDGEKIT_PROBE=0 to load it in this process anyway, at the risk of a crash") from e
    except subprocess.TimeoutExpired:
        raise ModelFileError(
            f"{path.name}: loading it and running it once with {runtime} did not finish in {TIMEOUT_S:.0f} s "
            f"(tried in a child process, as {why})",
            "set EDGEKIT_PROBE_TIMEOUT to a larger number of seconds if the model is very large") from None
    cost = (time.perf_counter() - t0) * 1e3
    _COST[key[0]] = cost
    out = done.stdout.decode(errors="replace")
    err = None
    if done.returncode != 0 or DONE not in out:
        last = [ln.strip() for ln in done.stderr.decode(errors="replace").splitlines()
                if ln.strip() and not ln.startswith(("INFO:", "WARNING:", "I0000", "W0000"))]
        detail = f": {last[-1][:200]}" if last else ""
        if done.returncode < 0:
            try:
                how = f"killed by {signal.Signals(-done.returncode).name}"
            except ValueError:
                how = f"killed by signal {-done.returncode}"
        else:
            how = f"ended with exit code {done.returncode}"
        hint = ("the file is corrupt or uses an operator in a way this runtime cannot run; re-export it, or try "
                "another --backend")
        if done.returncode == -signal.SIGKILL and big:
            hint = f"SIGKILL is most likely the out-of-memory killer: {why}; use a machine with more memory"
        err = ModelFileError(
            f"{path.name} crashes {runtime}: a child process that loaded it and ran it once was {how}{detail}", hint)
    _VERDICTS[key] = err
    if err is not None:
        raise err
    return cost
