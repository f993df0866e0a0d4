"""A runtime-only install (`pip install '.[litert,onnx,openvino,ncnn]'`, no TensorFlow, PyTorch or coremltools) can
`inspect` and `run` .tflite, .onnx, OpenVINO IR and NCNN models, and gets the same numbers as the source models.
ExecuTorch's Python runtime imports torch, so `edgekit[executorch]` is not part of a torch-free install: here a
.pte is recognised and refused with the extra to install.

The second virtual environment lives in `.venv-runtime` at the repository root and is rebuilt only when
pyproject.toml or constraints.txt change.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-runtime"


def _stamp() -> str:
    h = hashlib.sha256()
    for f in ("pyproject.toml", "constraints.txt"):
        h.update((ROOT / f).read_bytes())
    h.update(sys.version.encode())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory) -> Path:
    marker = VENV / ".edgekit-runtime-stamp"
    if not (marker.is_file() and marker.read_text() == _stamp()):
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        # a wheel built from a copy of the source tree, so the test never touches the editable install
        src = tmp_path_factory.mktemp("src")
        for item in ("pyproject.toml", "README.md", "sdk", "converters", "runtimes", "benchmarks"):
            s = ROOT / item
            (shutil.copytree if s.is_dir() else shutil.copy)(s, src / item)
        subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "-c",
                        str(ROOT / "constraints.txt"), f"{src}[litert,onnx,openvino,ncnn]"], check=True)
        marker.write_text(_stamp())
    return VENV


def _py(venv: Path, *args, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(venv / "bin" / "python"), *args], capture_output=True, text=True, env=env,
                          cwd="/", timeout=300, **kw)


def test_runtime_only_env_has_no_frameworks(runtime_venv):
    r = _py(runtime_venv, "-c", "import importlib.util as u, json; print(json.dumps({m: u.find_spec(m) is not None "
            "for m in ('tensorflow', 'torch', 'coremltools', 'keras', 'ai_edge_litert', 'onnxruntime', 'openvino', "
            "'ncnn', 'pnnx', 'executorch')}))")
    found = json.loads(r.stdout)
    assert found == {"tensorflow": False, "torch": False, "coremltools": False, "keras": False,
                     "ai_edge_litert": True, "onnxruntime": True, "openvino": True, "ncnn": True, "pnnx": False,
                     "executorch": False}, r.stderr


@pytest.mark.parametrize("case,kind,family", [("cnn", "tflite", "keras"), ("two_io", "tflite", "keras"),
                                              ("int8", "tflite", "keras"), ("cnn", "onnx", "torch"),
                                              ("two_io", "onnx", "torch"), ("dynamic", "openvino", "torch"),
                                              ("two_io", "openvino", "torch")])
def test_inspect_and_run_without_frameworks(runtime_venv, cases, tmp_path, case, kind, family):
    c = cases[case]
    model = c.files[kind]
    cli = ["-m", "edgekit.cli.main"]
    r = _py(runtime_venv, *cli, "inspect", str(model), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    feeds = c.keras_inputs if family == "keras" else c.torch_inputs
    assert [i["name"] for i in info["inputs"]] == list(feeds)
    assert info["parameters"] > 0 and info["ops"]

    inp, out = tmp_path / "in.npz", tmp_path / "out.npz"
    np.savez(inp, **feeds)
    r = _py(runtime_venv, *cli, "run", str(model), "--input", str(inp), "--output", str(out))
    assert r.returncode == 0, r.stderr
    refs = c.keras_outputs if family == "keras" else c.torch_outputs
    with np.load(out) as got:
        assert list(got.files) == [o["name"] for o in info["outputs"]]
        for name, ref in zip(got.files, refs):
            tol = 0.05 if case == "int8" else 1e-5 * max(float(np.ptp(ref)), 1e-6) + 1e-6
            assert np.max(np.abs(got[name] - ref)) <= tol


def test_missing_framework_is_a_clear_error(runtime_venv, cases):
    r = _py(runtime_venv, "-m", "edgekit.cli.main", "inspect", str(cases["cnn"].files["keras"]))
    assert r.returncode == 2
    assert "error: the package 'keras' is needed" in r.stderr
    assert "hint: pip install 'edgekit[tensorflow]'" in r.stderr
    assert "Traceback" not in r.stderr


def test_demo_without_converters_uses_the_bundled_copies(runtime_venv):
    r = _py(runtime_venv, "-m", "edgekit.cli.main", "demo", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["conversion"] is None
    ran = {(x["target"], x["backend"]): x for x in rep["results"]}
    assert ran[("keras", "keras")]["status"] == "skipped"
    for key in (("tflite", "litert"), ("onnx", "onnxruntime"), ("openvino", "openvino")):
        row = ran[key]
        assert row["origin"] == "bundled" and row["status"] == "ok" and row["accuracy"] > 0.95


@pytest.fixture(scope="module")
def edge_files(cases, tmp_path_factory):
    """The CNN and the two-in/two-out model as NCNN (converted here, with pnnx) and the CNN as ExecuTorch."""
    import edgekit

    out = tmp_path_factory.mktemp("edge_targets")
    files = {}
    for case in ("cnn", "two_io"):
        c = cases[case]
        rep = edgekit.convert(c.files["pt2"], ("ncnn", "executorch") if case == "cnn" else "ncnn", trust_code=True,
                              sample=c.torch_inputs, output_dir=out / case)
        files.update({(case, t.target): t.path for t in rep.targets})
    return files


@pytest.mark.parametrize("case", ["cnn", "two_io"])
def test_ncnn_without_frameworks(runtime_venv, cases, edge_files, tmp_path, case):
    c = cases[case]
    model = edge_files[(case, "ncnn")]
    r = _py(runtime_venv, "-m", "edgekit.cli.main", "inspect", str(model), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["backend"] == "ncnn" and [i["name"] for i in info["inputs"]] == list(c.torch_inputs)
    inp, out = tmp_path / "in.npz", tmp_path / "out.npz"
    np.savez(inp, **{k: v[:1] for k, v in c.torch_inputs.items()})  # NCNN: one sample a call
    r = _py(runtime_venv, "-m", "edgekit.cli.main", "run", str(model), "--input", str(inp), "--output", str(out))
    assert r.returncode == 0, r.stderr
    with np.load(out) as got:
        for name, ref in zip(got.files, c.torch_outputs):
            np.testing.assert_allclose(got[name], ref[:1], atol=1e-5)


def test_executorch_needs_its_extra(runtime_venv, edge_files):
    r = _py(runtime_venv, "-m", "edgekit.cli.main", "inspect", str(edge_files[("cnn", "executorch")]))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "error: the package 'executorch' is needed" in r.stderr
    assert "hint: pip install 'edgekit[executorch]'" in r.stderr
