"""`edgekit validate --save-profile` writes the reference profile the monitor reads (a deployed model whose tensors
are named differently is matched by position); `edgekit monitor report LOG --html` shows what the log holds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.monitoring import drift as D

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from cli_util import describe, invoke, ok, user_error  # noqa: E402


@pytest.fixture(scope="module")
def saved_profile(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("prof")
    np.savez(out / "train.npz", image=digits["train"], labels=digits["train_labels"])
    ok("validate", digits["model"], "--data", out / "train.npz", "--save-profile", out / "profile.json")
    return json.loads((out / "profile.json").read_text())


def test_save_profile_summarises_the_validation_data(saved_profile, digits):
    p, x = saved_profile, digits["train"]
    assert p["samples"] == len(x) == 1437 and p["task"] == "classification"
    assert p["tensors"] == {"input": ["image"], "output": ["Identity:0"]}
    assert len(p["model"]["sha256"]) == 64
    mean = p["features"]["image:mean[0]"]
    per_image = x.mean(axis=(1, 2, 3))
    assert mean["mean"] == pytest.approx(per_image.mean()) and mean["std"] == pytest.approx(per_image.std())
    assert (mean["min"], mean["max"]) == (pytest.approx(per_image.min()), pytest.approx(per_image.max()))
    assert len(mean["sample"]) == 1437  # under the 2000 cap every value is kept
    assert sorted(mean["sample"]) == pytest.approx(sorted(per_image.tolist()))
    assert mean["edges"] == pytest.approx(D.decile_edges(per_image).tolist())
    with edgekit.load(digits["model"]) as m:
        probs = m.predict(x)["Identity:0"]
    assert p["features"]["Identity:0:class"]["counts"] == np.bincount(probs.argmax(1), minlength=10).tolist()
    hist = p["confidence_histogram"]
    assert hist["counts"] == np.histogram(probs.max(1), np.linspace(0, 1, 11))[0].tolist()


def test_profile_from_one_format_watches_another(saved_profile, digits, tmp_path):
    """The ONNX file was profiled; the TFLite file runs on the device (its output is 'output_0')."""
    x, y = digits["test"], digits["test_labels"]
    with edgekit.load(digits["model"].with_suffix(".tflite")) as m:
        assert m.outputs[0].name != "Identity:0"
        mon = edgekit.monitor(m, saved_profile, window=120, log_dir=tmp_path / "log")
        for i in range(240):
            mon.predict(x[i:i + 1])
            mon.feedback(mon.last_call_id, y[i])
        for i in range(240, 360):  # a planted brightness shift in the last window
            mon.predict(np.clip(x[i:i + 1] * 0.5 + 0.4, 0, 1))
        mon.close()
    clean1, clean2, shifted = mon.windows
    assert clean1["alerts"] == clean2["alerts"] == []
    assert "Identity:0:class" in clean1["drift"]  # profile names, the deployed model's tensors
    assert any("image:mean[0]" in a for a in shifted["alerts"])
    # the report: exit 1 (an alert), the HTML holds the alerts, the window table and three plots
    html = tmp_path / "report.html"
    r = invoke("monitor", "report", tmp_path / "log", "--html", html, "--json-out", tmp_path / "w.json")
    assert r.exit_code == 1, describe(r)
    page = html.read_text()
    assert page.count("<img") == 3 and "drift in image:mean[0]" in page
    recs = json.loads((tmp_path / "w.json").read_text())
    assert [w["samples"] for w in recs] == [120, 120, 120]
    assert recs[1]["metrics"]["accuracy"] == pytest.approx(mon.windows[1]["metrics"]["accuracy"])
    assert f"<td>{recs[0]['metrics']['accuracy']:.4f}</td>" in page


def test_bad_input_is_one_error_and_one_hint(tmp_path, digits):
    user_error(invoke("monitor", "report", tmp_path), "not a monitor log")
    user_error(invoke("validate", digits["model"]), "no data")
    user_error(invoke("validate", digits["model"], "--data", tmp_path / "x.npz"), "no candidate")
    (tmp_path / "p.json").write_text("{}")
    with edgekit.load(digits["model"]) as m:
        from edgekit.errors import InputError

        with pytest.raises(InputError, match="not an edgekit profile"):
            edgekit.monitor(m, tmp_path / "p.json")
