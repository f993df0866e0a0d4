"""`edgekit device` and `bench`/`validate --device` against a real OpenSSH server on 127.0.0.1 whose "device" is a
runtime-only venv built by `edgekit device setup --offline` (tests/sdk/devices/conftest.py)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.cli.main import app
from edgekit.examples import DIGITS_DIR

DIGITS = Path(DIGITS_DIR)
ONNX, IR, TFLITE, DATA = (DIGITS / "digits_cnn.onnx", DIGITS / "digits_cnn.xml", DIGITS / "digits_cnn.tflite",
                          DIGITS / "digits_test.npz")
RUNNER = CliRunner()


def cli(*args):
    return RUNNER.invoke(app, [str(a) for a in args])


def _explain(r) -> str:
    return f"exit {r.exit_code}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}\n{r.exception!r}"


def _connect(name: str = "loc"):
    from edgekit.devices.registry import get
    from edgekit.devices.ssh import Connection

    return Connection(get(name))


def test_setup_made_a_runtime_only_device(remote_device):
    from edgekit.device_classes import detect

    r = cli("device", "check", "loc", "--json")
    assert r.exit_code == 0, _explain(r)
    info = json.loads(r.stdout)
    assert (info["os"], info["machine"]) == (platform.system(), platform.machine())
    assert info["python"] == "%d.%d" % tuple(map(int, platform.python_version_tuple()[:2]))
    assert info["device_class"] == detect() and info["runtimes"] == ["onnxruntime"]
    pkgs = info["doctor"]["packages"]
    assert pkgs["onnxruntime"] and not pkgs["torch"] and not pkgs["tensorflow"] and not pkgs["openvino"]
    st = os.statvfs(remote_device.root)
    assert abs(info["free_disk_bytes"] - st.f_bavail * st.f_frsize) < 0.02 * st.f_blocks * st.f_frsize
    assert "wheels: " in remote_device.setup_output  # the offline path: wheels downloaded here and copied


def test_push_is_content_addressed(remote_device, tmp_path):
    from edgekit.devices.push import push

    for f in (IR, IR.with_suffix(".bin")):
        shutil.copy(f, tmp_path / f.name)
    xml, bin_ = tmp_path / IR.name, tmp_path / "digits_cnn.bin"
    bin_.write_bytes(bin_.read_bytes() + b"\0" * 7)  # content no other test pushes
    size = xml.stat().st_size + bin_.stat().st_size
    with _connect() as conn:
        first = push(conn, xml)
        second = push(conn, xml)
        assert (first.copied, second.copied) == (size, 0)  # the .bin travels with the .xml; the second copies 0
        assert second.remote == first.remote and first.remote.endswith(f"/{first.digest}/digits_cnn.xml")
        remote_bin = first.remote[:-len("xml")] + "bin"
        assert hashlib.sha256(conn.read_bytes(remote_bin)).digest() == hashlib.sha256(bin_.read_bytes()).digest()
        bin_.write_bytes(bin_.read_bytes()[:-1])  # changed content: a new address, copied again
        third = push(conn, xml)
        assert third.digest != first.digest and third.copied == size - 1


def test_remote_bench_matches_local(remote_device, tmp_path):
    """Two registered devices (the same server twice) side by side; each row is the device runtime's own
    measurement of the same file and input as a local run."""
    import edgekit

    s = remote_device.sshd
    assert cli("device", "add", "loc2", s.target, "--port", s.port, "--key", s.user_key, "--root",
               remote_device.root).exit_code == 0
    out = tmp_path / "b.json"
    try:
        r = cli("bench", ONNX, "--device", "loc,loc2", "--runs", 40, "--warmup", 5, "--input", DATA, "--json-out", out,
                "--html", tmp_path / "b.html", "--plot", tmp_path / "b.png")
    finally:
        cli("device", "remove", "loc2")
    assert r.exit_code == 0, _explain(r)
    rep = json.loads(out.read_text())
    assert [(x["model"], x["device"]) for x in rep["results"]] == [("digits_cnn.onnx @ loc", "loc"),
                                                                  ("digits_cnn.onnx @ loc2", "loc2")]
    local = edgekit.benchmark(ONNX, runs=40, warmup=5, input_path=DATA).results[0]
    for row in rep["results"]:
        for key in ("format", "backend", "size_bytes", "input_shapes", "runs", "threads", "precision"):
            assert row[key] == local[key], key
        lat = row["latency_ms"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        samples = np.asarray(row["samples_ms"])
        assert len(samples) == 40 and np.isclose(np.median(samples), lat["p50"], rtol=1e-6)
        assert np.isclose(samples.mean(), lat["mean"], rtol=1e-6)
    assert rep["settings"]["devices"] == ["loc", "loc2"]
    for name in ("loc", "loc2"):
        dev = rep["environment"]["devices"][name]
        assert dev["packages"]["torch"] is None and dev["packages"]["onnxruntime"]  # the device's runtime-only env
        assert dev["cpu"]["model"] and "throttled" in dev and dev["device_class"] == local_class()
    page = (tmp_path / "b.html").read_text()
    assert "digits_cnn.onnx @ loc2" in page and page.split("<h2>Devices</h2>")[1].count("<tr><td>") == 2
    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "b.png").shape[0] > 100  # a drawn plot, both rows on it
    r = cli("bench", ONNX, "--device", "loc", "--runs", 5, "--warmup", 1, "--json-out", tmp_path / "b2.json")
    assert r.exit_code == 0, _explain(r)
    assert json.loads((tmp_path / "b2.json").read_text())["results"][0]["pushed_bytes"] == 0


def local_class() -> str:
    from edgekit.device_classes import detect

    return detect()


def test_remote_validate_matches_local(remote_device, tmp_path):
    """OpenVINO reference here, the ONNX candidate on the device: the same errors and metrics as all-local."""
    import edgekit

    out = tmp_path / "v.json"
    r = cli("validate", IR, ONNX, "--data", DATA, "--device", "loc", "--json-out", out)
    assert r.exit_code == 0, _explain(r)
    rem = json.loads(out.read_text())
    loc = edgekit.validate(IR, [ONNX], DATA)
    (rc,), (lc,) = rem["candidates"], loc["candidates"]
    assert rc["model"] == f"{ONNX} @ loc" and rc["device"] == "loc" and rc["backend"] == "onnxruntime"
    assert rem["data"]["samples"] == loc["data"]["samples"] == 360
    assert rc["verdict"] == lc["verdict"] == "pass" and rc["precision"] == lc["precision"]
    for name, e in lc["outputs"].items():
        got = rc["outputs"][name]
        for k in ("max_abs", "mean_abs", "p99_abs"):
            assert abs(got[k] - e[k]) <= 1e-6 + 1e-3 * abs(e[k]), (name, k, got[k], e[k])
        assert got["cosine"] == pytest.approx(e["cosine"], abs=1e-9)
    assert rc["metrics"]["candidate"]["accuracy"] == lc["metrics"]["candidate"]["accuracy"]
    assert rc["metrics"]["reference"]["accuracy"] == lc["metrics"]["reference"]["accuracy"] > 0.9
    assert rem["devices"] == {"loc": local_class()} and rc["device_class"] == local_class()  # the device's profile
    assert rc["profile"] == lc["profile"]


def test_validate_on_an_unreachable_device(tmp_path, monkeypatch):
    from services import free_port

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cli("device", "add", "off", "pi@127.0.0.1", "--port", free_port()).exit_code == 0
    out = tmp_path / "v.json"
    r = cli("validate", IR, ONNX, "--data", DATA, "--device", "off", "--json-out", out)
    assert r.exit_code == 3, _explain(r)  # the candidate could not run: a failed target, the report still written
    (c,) = json.loads(out.read_text())["candidates"]
    assert c["model"] == f"{ONNX} @ off" and c["device"] == "off" and "cannot connect" in c["error"]
    assert "error: device 'off': cannot connect" in r.stderr


def test_missing_runtime_on_the_device(remote_device, tmp_path):
    out = tmp_path / "b.json"
    r = cli("bench", ONNX, TFLITE, "--device", "loc", "--runs", 5, "--warmup", 1, "--json-out", out)
    assert r.exit_code == 3, _explain(r)  # some targets failed, the other was measured
    onnx_row, tfl_row = json.loads(out.read_text())["results"]
    assert "error" not in onnx_row and onnx_row["latency_ms"]["p50"] > 0
    assert "ai-edge-litert" in tfl_row["error"] and tfl_row["device"] == "loc"
    assert tfl_row["hint"].startswith("edgekit device setup loc --extras litert")
    assert "hint: edgekit device setup loc --extras litert" in r.stdout


def test_connection_killed_mid_run_keeps_what_was_measured(remote_device, tmp_path):
    from edgekit.devices.api import benchmark_on
    from edgekit.devices.registry import get
    from edgekit.devices.ssh import DeviceLost

    second = tmp_path / "second.onnx"
    shutil.copy(ONNX, second)
    killed = []

    def model_done(device, row):
        if not killed:
            killed.append(remote_device.sshd.drop_connections())

    rep, faults = benchmark_on([get("loc")], [ONNX, second], runs=10, warmup=2, model_done=model_done)
    assert killed and killed[0] >= 1
    first, lost = rep.results
    assert "error" not in first and first["latency_ms"]["p50"] > 0 and first["model"] == "digits_cnn.onnx @ loc"
    assert lost["model"] == "second.onnx @ loc" and "connection was lost" in lost["error"]
    assert len(faults) == 1 and isinstance(faults[0], DeviceLost) and "device 'loc'" in faults[0].message
    assert "edgekit device check loc" in faults[0].hint
    r = cli("device", "check", "loc")  # the server listens on: the next run connects again
    assert r.exit_code == 0, _explain(r)


def test_unknown_and_changed_host_keys_are_refused(remote_device, tmp_path):
    import asyncssh

    s = remote_device.sshd
    kh = tmp_path / "known_hosts"
    add = ["device", "add", "fresh", s.target, "--port", s.port, "--key", s.user_key, "--root", remote_device.root,
           "--known-hosts", kh]
    assert cli(*add).exit_code == 0
    try:
        r = cli("device", "check", "fresh")  # first contact, no terminal to ask on: refused
        assert r.exit_code == 2 and "unknown host key SHA256:" in r.stderr and "--accept-new-host-key" in r.stderr
        assert not kh.exists()
        other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
        kh.write_text(f"[127.0.0.1]:{s.port} {other}\n")
        r = cli("device", "check", "fresh", "--accept-new-host-key")  # a changed key: refused even so
        assert r.exit_code == 2 and "does not match" in r.stderr and "ssh-keygen -R" in r.stderr, _explain(r)
        kh.unlink()
        r = cli("device", "check", "fresh", "--accept-new-host-key")
        assert r.exit_code == 0, _explain(r)
        assert kh.read_text() == s.known_hosts_line()  # OpenSSH's accept-new: the server's own key, recorded
        wrong = tmp_path / "wrong_key"
        asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(wrong))
        assert cli("device", "add", "stranger", s.target, "--port", s.port, "--key", wrong, "--known-hosts",
                   kh).exit_code == 0
        r = cli("device", "check", "stranger")  # a key the device does not know
        assert r.exit_code == 2 and f"device 'stranger': {s.target} refused the login" in r.stderr, _explain(r)
        assert "ssh-copy-id" in r.stderr
        assert cli("device", "add", "bare", s.target, "--port", s.port, "--key", s.user_key, "--root",
                   tmp_path / "bare-root", "--known-hosts", kh).exit_code == 0
        r = cli("device", "check", "bare")  # reachable, but nothing set up there yet
        assert r.exit_code == 2 and "device 'bare' has no edgekit environment yet" in r.stderr, _explain(r)
        assert "hint: run `edgekit device setup bare` first" in r.stderr
    finally:
        for name in ("fresh", "stranger", "bare"):
            cli("device", "remove", name)


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB file system (tmpfs) at a folder the device's user can write: a device disk that fills up."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs the suite as root)")
    where = tmp_path / "small"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], check=True, timeout=30)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True, timeout=30)


def test_full_disk_names_the_device(remote_device, small_disk, tmp_path):
    from edgekit.devices.registry import DeviceError

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(400 * 1024))
    with _connect() as conn:  # a copy that runs out of space midway: OpenSSH says only "Failure"
        with pytest.raises(DeviceError, match=r"device 'loc': the device's disk is full \(copying big.bin\)"):
            conn.put(big, f"{small_disk}/big.bin")
    (small_disk / "big.bin").unlink()
    # a device whose edgekit folder lies on that disk: the push is refused before copying, the error names it
    s = remote_device.sshd
    (small_disk / "venv").symlink_to(Path(remote_device.root) / "venv")
    (small_disk / "cache").mkdir()
    assert cli("device", "add", "tiny", s.target, "--port", s.port, "--key", s.user_key, "--root",
               small_disk).exit_code == 0
    try:
        out = tmp_path / "b.json"
        r = cli("bench", ONNX, "--device", "tiny", "--runs", 5, "--json-out", out)
        assert r.exit_code == 3, _explain(r)
        (row,) = json.loads(out.read_text())["results"]
        assert row["error"].startswith("device 'tiny': not enough free disk for digits_cnn.onnx")
        assert row["hint"].startswith("free space on the device") and "hint: free space" in r.stdout
        assert sorted(p.name for p in (small_disk / "cache").iterdir()) == []  # nothing half-written left
    finally:
        cli("device", "remove", "tiny")


def test_unreachable_device(tmp_path, monkeypatch):
    """A device that is off (or still rebooting): nothing listens on its port."""
    from services import free_port

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    port = free_port()
    assert cli("device", "add", "off", "pi@127.0.0.1", "--port", port).exit_code == 0
    r = cli("bench", ONNX, "--device", "off", "--runs", 5)
    assert r.exit_code == 3, _explain(r)  # the model was not measured: a failed target, with the device's error
    assert f"error: device 'off': cannot connect to 127.0.0.1:{port}" in r.stderr
    assert f"hint: is the device on and reachable? try `ssh -p {port} pi@127.0.0.1`" in r.stderr
    assert "digits_cnn.onnx @ off" in r.stdout and "not measured" in r.stdout


def test_timeout_names_the_device(remote_device):
    from edgekit.devices.registry import DeviceError

    with _connect() as conn:
        with pytest.raises(DeviceError, match=r"device 'loc': sleeping timed out after 1 s"):
            conn.run(["sleep", "20"], doing="sleeping", timeout=1)


def test_device_commands_are_light():
    """`edgekit device ...` help and the --device options import no framework, runtime or SSH library."""
    from test_light_import import HEAVY, _loaded

    body = ("from edgekit.cli.main import app\n"
            "for c in (['device'], ['device', 'setup'], ['device', 'check'], ['bench'], ['tune']):\n"
            "    try:\n        app([*c, '--help'], standalone_mode=False)\n    except SystemExit:\n        pass\n"
            "import sys\nassert 'asyncssh' not in sys.modules")
    assert _loaded(body) == [] and "onnxruntime" in HEAVY


def test_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    key = tmp_path / "id"
    key.write_text("not read here")
    assert cli("device", "add", "pi5", "pi@raspberrypi.local", "--key", key).exit_code == 0
    assert cli("device", "add", "jet", "jetson.lan", "--port", 2222, "--python", "/usr/bin/python3.10").exit_code == 0
    got = json.loads(cli("device", "list", "--json").stdout)
    assert got["pi5"] | {} == {"name": "pi5", "host": "raspberrypi.local", "user": "pi", "port": 22, "python": "python3",
                               "key": str(key), "root": "~/.edgekit", "known_hosts": None}
    assert (got["jet"]["user"], got["jet"]["port"], got["jet"]["python"]) == (None, 2222, "/usr/bin/python3.10")
    import tomllib

    stored = tomllib.loads((tmp_path / "edgekit" / "devices.toml").read_text())["devices"]
    assert set(stored["pi5"]) == {"host", "user", "port", "python", "key", "root"}  # no secret: a key's path only
    r = cli("device", "add", "pi5", "pi@other")
    assert r.exit_code == 2 and "exists already" in r.stderr and "hint: " in r.stderr
    r = cli("device", "add", "bad name", "pi@x")
    assert r.exit_code == 2 and "not a device name" in r.stderr
    r = cli("bench", ONNX, "--device", "nope")
    assert r.exit_code == 2 and "no device named 'nope' (known: jet, pi5)" in r.stderr
    assert cli("device", "remove", "pi5").exit_code == 0
    assert list(json.loads(cli("device", "list", "--json").stdout)) == ["jet"]


def test_tune_times_each_trial_on_the_devices(remote_device, tmp_path):
    """Two registered devices (the same server twice): one worker per device, every trial timed by a device."""
    s = remote_device.sshd
    assert cli("device", "add", "loc2", s.target, "--port", s.port, "--key", s.user_key, "--root",
               remote_device.root).exit_code == 0
    try:
        r = cli("tune", ONNX, "--data", DATA, "--targets", "onnx", "--sampler", "grid", "--space", "precision=fp32",
                "--space", "onnxruntime.threads=1,2,3,4", "--device", "loc,loc2", "--output-dir", tmp_path / "t",
                "--json")
        assert r.exit_code == 0, _explain(r)
        rep = json.loads(r.stdout)
    finally:
        cli("device", "remove", "loc2")
    trials = rep["trials"]
    assert sorted(t["params"]["onnxruntime.threads"] for t in trials) == [1, 2, 3, 4]
    for t in trials:
        assert t["state"] == "complete", t
        assert t["extra"]["device"] in ("loc", "loc2") and t["extra"]["timed_calls"] > 0 and t["latency_ms"] > 0
        assert t["extra"]["baseline_latency_ms"] is None  # not timed here against the source
        assert t["params"]["onnxruntime.graph_optimization_level"] == "all"  # held: a device run uses the default
    assert {t["extra"]["device"] for t in trials} == {"loc", "loc2"}
    assert "graph_optimization_level held at all" in r.stderr
