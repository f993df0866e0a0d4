"""`edgekit monitor serve`: the model's outputs over HTTP equal predict's, labels by call id, /metrics scraped by a
real Prometheus, and SIGTERM stops it with the last window written."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import edgekit


def _post(url, body: bytes, headers=None):
    req = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, dict(r.headers), r.read()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_serve_predicts_takes_labels_and_is_scraped(color_model, color_profile, crops, tmp_path):
    from services import ServiceError
    from services_prometheus import start_prometheus

    (tmp_path / "p.json").write_text(json.dumps(color_profile))
    exe = Path(sys.executable).with_name("edgekit")
    proc = subprocess.Popen([str(exe), "monitor", "serve", str(color_model), "--profile", str(tmp_path / "p.json"),
                             "--port", "0", "--window", "40", "--log-dir", str(tmp_path / "log")],
                            stderr=subprocess.PIPE, text=True)
    prom = None
    try:
        line = proc.stderr.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", line).group(1))
        url = f"http://127.0.0.1:{port}"
        x = crops(60, seed=11)
        with edgekit.load(color_model) as m:
            want = m.predict(x)["probs"]
        got, ids = [], []
        for i in range(0, 60, 3):
            code, headers, body = _post(url + "/predict", _npz(image=x[i:i + 3]))
            assert code == 200
            with np.load(io.BytesIO(body)) as z:
                got.append(z["probs"])
            ids.append(headers["X-Edgekit-Call-Id"])
        assert ids == [str(k) for k in range(20)]
        assert np.allclose(np.concatenate(got), want, atol=1e-6)
        # one .npy for a one-input model, and an id of our own
        code, headers, _ = _post(url + "/predict", _npy(x[:2]),
                                 {"X-Edgekit-Call-Id": "req-a"})
        assert headers["X-Edgekit-Call-Id"] == "req-a"
        assert _post(url + "/feedback?call_id=req-a", _npy(np.array([1, 2])))[0] == 204
        assert _post(url + "/feedback?call_id=0", _npy(want[:3].argmax(1)))[0] == 204
        with pytest.raises(urllib.error.HTTPError) as e:
            _post(url + "/feedback?call_id=999&label=1", b"")
        assert e.value.code == 404
        with pytest.raises(urllib.error.HTTPError) as e:  # bad input: 400 with the error and its hint
            _post(url + "/predict", b"not numpy")
        assert e.value.code == 400 and set(json.loads(e.value.read())) == {"error", "hint"}
        try:
            prom = start_prometheus([f"127.0.0.1:{port}"])
        except ServiceError as err:
            pytest.fail(str(err), pytrace=False)
        prom.wait_for("edgekit_predict_calls_total", 21)  # the body that was not numpy never reached the model
        assert prom.query("edgekit_predict_samples_total")[0]["value"] == 62
        assert prom.query("edgekit_feedback_labels_total")[0]["value"] == 5
        assert prom.query("edgekit_monitor_windows_total")[0]["value"] == 1
    finally:
        if prom is not None:
            prom.stop()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped after 21 calls, 2 windows" in err
    recs = [json.loads(s) for s in (tmp_path / "log" / "windows.jsonl").read_text().splitlines()]
    assert [r["samples"] for r in recs] == [40, 22]


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()
