import os
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).parent))

from _netguard import sitecustomize as netguard  # noqa: E402  (the network guard; see its docstring)

_NETGUARD_DIR = str(Path(netguard.__file__).parent)
_net = {"log": None, "offset": 0}


def pytest_configure(config):
    """The tests run offline, like many edge labs: a non-loopback connection fails, in this process and in
    the Python processes it starts (tests/_netguard/sitecustomize.py on PYTHONPATH)."""
    fd, log = tempfile.mkstemp(prefix="edgekit-netguard-", suffix=".log")
    os.close(fd)
    _net["log"], _net["offset"] = log, 0
    os.environ[netguard.LOG_VAR] = log
    os.environ[netguard.PREFIX_VAR] = sys.prefix
    path = os.environ.get("PYTHONPATH", "")
    if _NETGUARD_DIR not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_NETGUARD_DIR, path) if p)
    netguard.install()
    # OpenVINO sends usage telemetry when imported and on each convert_model (NNCF turns its own off under
    # pytest). The tests' own OpenVINO use (importorskip, model_factory) and the OpenVINO tools the tests start
    # must not fail on it: this session declares itself CI, which OpenVINO's telemetry honours. Whether edgekit
    # itself stops it is checked in fresh interpreters without CI (tests/converters/test_offline.py).
    os.environ["CI"] = "true"


def pytest_unconfigure(config):
    netguard.uninstall()
    if _net["log"]:
        Path(_net["log"]).unlink(missing_ok=True)


def _network_attempts() -> list[str]:
    """Lines the guard logged since the last call (this process, its children and its forks)."""
    if not _net["log"]:
        return []
    try:
        with open(_net["log"]) as fh:
            fh.seek(_net["offset"])
            text = fh.read()
            _net["offset"] = fh.tell()
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()]


def _fail_on_network(phase: str) -> None:
    seen = _network_attempts()
    if seen:
        more = f" (+{len(seen) - 5} more)" if len(seen) > 5 else ""
        pytest.fail(f"network access during {phase} (tests run offline):\n  " + "\n  ".join(seen[:5]) + more,
                    pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    try:  # a line logged between tests (a late background thread) is reported here
        return (yield)
    finally:
        _fail_on_network("setup")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    finally:
        _fail_on_network("the test")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    try:
        return (yield)
    finally:
        _fail_on_network("teardown")


def pytest_sessionfinish(session, exitstatus):
    late = _network_attempts()
    if late:
        sys.stderr.write("network access outside any test phase (tests run offline):\n  " + "\n  ".join(late) + "\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def cases(tmp_path_factory):
    """Every fixture model, built once per test session (see model_factory.py)."""
    from model_factory import build_all

    return build_all(tmp_path_factory.mktemp("models"))
