"""`edgekit bench --device` passes the bench method's own flags to the device's edgekit (issue 17): the device
times at the asked batch, in a child process per model, to the asked precision target."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from edgekit.cli.main import app
from edgekit.examples import DIGITS_DIR

ONNX = Path(DIGITS_DIR) / "digits_cnn.onnx"


def test_method_flags_reach_the_device(remote_device, tmp_path):
    out = tmp_path / "b.json"
    r = CliRunner().invoke(app, [str(a) for a in ("bench", ONNX, "--device", "loc", "--runs", 20, "--warmup", 2,
                                                  "--threads", 1, "--batch", 2, "--precision-target", 0.25,
                                                  "--json-out", out)])
    assert r.exit_code == 0, f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}\n{r.exception!r}"
    row = json.loads(out.read_text())["results"][0]
    assert row["input_shapes"] == {"image": [2, 8, 8, 1]} and row["batch"] == 2
    assert row["memory_scope"].startswith("own child process") and row["runs"] >= 20
    assert row["p50_half_width"] <= 0.25 or row["timed_s"] >= 30
