"""edgekit converts on an offline machine and never reaches the network itself.

The whole suite runs behind the network guard of tests/_netguard (installed by conftest): a connection to a
non-loopback address fails, in this process and in the Python processes it starts, and fails the test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from _netguard import sitecustomize as netguard
from edgekit.conversion import convert


def _image_onnx(path, nhwc: bool, seed: int = 0):
    """A small 3-channel image classifier: conv 3x3 -> relu -> global average pool -> [1, 4].
    ``nhwc``: the input is [1, 16, 16, 3] and the graph transposes it, as tf2onnx writes Keras/TFLite models."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3, "w")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32) * 0.1, "b")
    nodes = [helper.make_node("Transpose", ["image"], ["x"], perm=[0, 3, 1, 2])] if nhwc else []
    nodes += [helper.make_node("Conv", ["x" if nhwc else "image", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
              helper.make_node("Relu", ["c"], ["r"]),
              helper.make_node("GlobalAveragePool", ["r"], ["g"]),
              helper.make_node("Flatten", ["g"], ["logits"])]
    shape = [1, 16, 16, 3] if nhwc else [1, 3, 16, 16]
    graph = helper.make_graph(nodes, "image_net", [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_guard_blocks_the_network_here_and_in_child_processes(tmp_path, monkeypatch):
    log = tmp_path / "net.log"
    monkeypatch.setenv(netguard.LOG_VAR, str(log))  # this test's own attempts are expected: keep them apart
    with pytest.raises(OSError, match="test tried to reach the network: example.com:80"):
        socket.create_connection(("example.com", 80), timeout=1)
    with pytest.raises(OSError, match="test tried to reach the network: 192.0.2.1:443"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.connect(("192.0.2.1", 443))
    with pytest.raises(OSError, match="example.org"):
        socket.getaddrinfo("example.org", 443)
    # loopback still works: tests may start local servers
    with socket.create_server(("127.0.0.1", 0)) as srv:
        with socket.create_connection(("localhost", srv.getsockname()[1]), timeout=5):
            pass
    # a child Python process started by a test is guarded too, and its attempt is logged
    code = "import urllib.request; urllib.request.urlopen('https://example.net/', timeout=2)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "test tried to reach the network: example.net:443" in r.stderr
    lines = log.read_text().splitlines()
    assert len(lines) == 4 and "example.net:443" in lines[-1] and f"pid {os.getpid()}" not in lines[-1]


def test_onnx_nhwc_image_model_converts_to_tflite_offline(tmp_path):
    """onnx2tf downloads 20 calibration images from GitHub when every input is a fixed-batch 3-channel NHWC
    image; edgekit gives it its own sample, so the conversion works offline and passes the parity gate.
    (NCHW inputs stay NCHW through onnx2tf in edgekit, so onnx2tf sees the width as the last dim and fetches
    nothing unless the width is 3.)"""
    import edgekit

    src = _image_onnx(tmp_path / "image_nhwc.onnx", nhwc=True)
    rep = convert(src, ["tflite"], output_dir=tmp_path / "out")
    res = rep["tflite"]
    assert res.status == "pass", res.error
    assert "onnx_to_savedmodel" in res.route
    assert res.parity["max_abs"] <= 1e-4 and res.parity["cosine"] >= 0.9999
    with edgekit.load(src) as a, edgekit.load(res.path) as b:
        assert [(s.name, s.shape) for s in b.inputs] == [("image", (1, 16, 16, 3))]
        feeds = {"image": np.random.default_rng(3).random((1, 16, 16, 3), dtype=np.float32)}
        ref, got = a.predict(feeds), b.predict(feeds)
    (r,), (g,) = ref.values(), got.values()
    assert np.max(np.abs(g - r)) <= 1e-4 * (float(np.ptp(r)) or 1.0) + 1e-6


CI_MARKERS = ("CI", "TF_BUILD", "JENKINS_URL")  # OpenVINO's telemetry stays off where one is set (conftest sets CI)


def _fresh_interpreter(tmp_path, code: str, *args) -> tuple[dict, str]:
    """Run ``code`` in a new Python process behind the network guard, with its own guard log, a new HOME and no
    CI marker: OpenVINO's telemetry is on, as on a new machine (no opt-out file). Returns (its last stdout
    line as JSON, the attempts it logged)."""
    home, log = tmp_path / "home", tmp_path / "net.log"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in CI_MARKERS}
    env.update({netguard.LOG_VAR: str(log), "HOME": str(home)})
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                       text=True, env=env, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1]), (log.read_text() if log.exists() else "")


def test_openvino_and_nncf_send_no_telemetry(tmp_path):
    """Importing openvino, openvino.convert_model and NNCF send usage telemetry to Google Analytics unless the
    user opted out; edgekit's conversions and compressions send nothing. In a fresh interpreter: this pytest
    process has imported openvino already (with telemetry off: conftest), and NNCF turns its own off under
    pytest."""
    src = _image_onnx(tmp_path / "image.onnx", nhwc=False)
    got, attempts = _fresh_interpreter(tmp_path, """
        import json, sys
        from edgekit.conversion import convert
        out = {}
        for precision in ("fp32", "int8-dynamic"):
            res = convert(sys.argv[1], ["openvino"], precision=precision, output_dir=f"{sys.argv[2]}/{precision}")
            out[precision] = [res["openvino"].status, res["openvino"].error]
        print(json.dumps(out))
    """, src, tmp_path)
    assert got["fp32"] == ["pass", None]
    assert got["int8-dynamic"][0] == "pass", got["int8-dynamic"]
    assert attempts == ""


def test_openvino_runtime_sends_no_telemetry(tmp_path):
    src = _image_onnx(tmp_path / "image.onnx", nhwc=False)
    ir = convert(src, ["openvino"], output_dir=tmp_path / "ir")["openvino"].path
    got, attempts = _fresh_interpreter(tmp_path, """
        import json, sys
        import numpy as np
        import edgekit
        with edgekit.load(sys.argv[1]) as m:
            y = m.predict({"image": np.ones((1, 3, 16, 16), np.float32)})
        print(json.dumps({k: v.shape for k, v in y.items()}))
    """, ir)
    assert got == {"logits": [1, 4]}
    assert attempts == "", attempts


def test_native_benchmark_app_sends_no_telemetry(tmp_path, monkeypatch):
    from edgekit.benchmarks.native import native_tool_for, run_native
    from edgekit.examples import DIGITS_DIR

    if native_tool_for("openvino") is None:
        pytest.skip("benchmark_app is not installed")
    log = tmp_path / "net.log"
    for k in CI_MARKERS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv(netguard.LOG_VAR, str(log))
    monkeypatch.setenv("HOME", str(tmp_path))
    r = run_native(os.path.join(DIGITS_DIR, "digits_cnn.xml"), "openvino", 1, {"image": (1, 8, 8, 1)}, runs=5)
    assert r.error is None and r.p50_ms > 0, r.error
    assert not log.exists(), log.read_text()
