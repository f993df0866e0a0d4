"""The "device" for `edgekit device` and `--device`: a real OpenSSH server on 127.0.0.1 (tests/services_sshd.py)
and, behind it, a runtime-only venv that `edgekit device setup --offline` builds from wheels this workstation
downloads for the device's platform (the expensive step: once per session)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from services_sshd import sshd_server  # noqa: F401 (the session fixture)


@dataclass
class RemoteDevice:
    name: str
    sshd: object
    home: Path  # the workstation's HOME for these tests (~/.ssh/known_hosts, caches)
    root: str  # edgekit's folder on the device
    setup_output: str


def _local_index() -> str | None:
    """The machine's own file:// package index from pip's config (offline machines), to download the device's
    wheels from; None: pip's default index."""
    r = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60)
    for line in r.stdout.splitlines():
        if "index-url" in line:
            for url in line.split("=", 1)[1].strip("'\" ").split():
                if url.startswith("file://"):
                    return url
    return None


def _device_env(mp: pytest.MonkeyPatch, base: Path) -> None:
    mp.setenv("HOME", str(base / "home"))
    mp.setenv("XDG_CONFIG_HOME", str(base / "config"))
    mp.setenv("XDG_CACHE_HOME", str(base / "cache"))


@pytest.fixture(scope="session")
def _built_device(sshd_server, tmp_path_factory):  # noqa: F811
    """Registers device `loc` and builds its runtime-only venv (edgekit[onnx]) with `edgekit device setup
    --offline`, once per session. HOME, XDG_* and PIP_INDEX_URL are changed only while it builds: a session-long
    change leaked into every later test (a later `pip install` saw only the local index and a fresh cache)."""
    from typer.testing import CliRunner

    from edgekit.cli.main import app

    RUNNER = CliRunner()

    base = tmp_path_factory.mktemp("device-home")
    index = _local_index()  # read before HOME moves (pip's user config lives there)
    (base / "home").mkdir()
    root = str(base / "device-root")
    python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    mp = pytest.MonkeyPatch()
    try:
        _device_env(mp, base)
        if index:
            mp.setenv("PIP_INDEX_URL", index)
        r = RUNNER.invoke(app, ["device", "add", "loc", sshd_server.target, "--port", str(sshd_server.port),
                                "--key", str(sshd_server.user_key), "--python", python, "--root", root])
        assert r.exit_code == 0, r.output
        r = RUNNER.invoke(app, ["device", "setup", "loc", "--extras", "onnx", "--offline", "--accept-new-host-key"])
        assert r.exit_code == 0, r.output + (str(r.exception) if r.exception else "")
    finally:
        mp.undo()
    return base, RemoteDevice("loc", sshd_server, base / "home", root, r.output)


@pytest.fixture
def remote_device(_built_device, monkeypatch):
    """Device `loc` (built once per session); HOME, XDG_CONFIG_HOME and XDG_CACHE_HOME point at its temp folder
    for this test only."""
    base, device = _built_device
    _device_env(monkeypatch, base)
    return device
