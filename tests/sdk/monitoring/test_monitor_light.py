"""On a device with numpy and one runtime only: the monitor imports none of scipy, scikit-learn and
prometheus-client until it needs them, tests drift with its numpy fallbacks when scipy is missing, and names the
extra to install when asked for what it cannot do (checked in a fresh interpreter with those packages blocked)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import json, sys
for m in ("scipy", "sklearn", "prometheus_client"):
    sys.modules[m] = None  # as if not installed: an import raises ImportError
import numpy as np
import edgekit
from edgekit.examples import DIGITS_DIR
from edgekit.errors import MissingDependencyError
from edgekit.monitoring import ProfileBuilder
m = edgekit.load(DIGITS_DIR / "digits_cnn.tflite")
d = np.load(DIGITS_DIR / "digits_test.npz")
x, y = d["image"], d["labels"]
b = ProfileBuilder()
b.observe({"image": x[:180]}, m.predict(x[:180]))
mon = edgekit.monitor(m, b.profile(), window=90)
for i in range(180, 360):
    mon.predict(np.clip(x[i:i + 1] + 0.2 * (i >= 270), 0, 1))
    mon.feedback(mon.last_call_id, y[i])
out = {"alerts": [w["alerts"] for w in mon.windows], "p": mon.windows[1]["drift"]["image:mean[0]"]["p_value"],
       "metrics": mon.windows[1].get("metrics")}
errors = []
for ask in (mon.metrics, lambda: mon.registry):
    try:
        ask()
    except MissingDependencyError as e:
        errors.append([e.message, e.hint])
out["errors"] = errors
out["loaded"] = sorted(k for k in ("scipy", "sklearn", "prometheus_client") if sys.modules.get(k) is not None)
print(json.dumps(out))
"""


def test_monitor_runs_on_numpy_alone():
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert out["alerts"][0] == [] and any("image:mean[0]" in a for a in out["alerts"][1])
    assert out["p"] < 1e-6  # the numpy Kolmogorov tail
    assert out["metrics"] is None  # no scikit-learn: no metrics, and predict never raised for it
    assert out["errors"] == [
        ["the package 'scikit-learn' is needed to compute task metrics from the labels but is not installed",
         "pip install 'edgekit[monitor]'"],
        ["the package 'prometheus-client' is needed to serve the monitor's Prometheus metrics but is not installed",
         "pip install 'edgekit[monitor]'"]]


def test_import_is_light():
    code = ("import sys, json, edgekit.monitoring, edgekit.cli.monitor\n"
            "print(json.dumps(sorted(m for m in ('scipy', 'sklearn', 'prometheus_client', 'matplotlib', 'tensorflow',"
            " 'torch', 'onnxruntime') if m in sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []
