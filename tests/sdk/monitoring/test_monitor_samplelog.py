"""The sample log: opt-in, rate-limited, size-capped and rotating, holding exactly what the model saw and gave;
replayable by `edgekit validate REFERENCE --replay LOG`, which fails when the recorded outputs depart."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.monitoring import samplelog as SL

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from cli_util import describe, invoke, user_error  # noqa: E402


class Clock:
    def __init__(self):
        self.t = 1000.0

    def monotonic(self):
        return self.t

    def time(self):
        return self.t


def test_rate_limit_keeps_at_most_rate_times_duration_plus_burst(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(SL, "time", clock)
    log = SL.SampleLog(tmp_path / "s", rate=2.0, max_bytes=1 << 20)
    x = {"x": np.ones((1, 4), np.float32)}
    kept = []
    for i in range(100):  # 10 calls per second for 10 s
        kept.append(log.offer(i, x, {"y": x["x"] * 2}))
        clock.t += 0.1
    n = sum(kept)
    assert 2 * 9.9 <= n <= 2 + 2 * 9.9  # rate x duration, plus the burst of 2
    assert kept[:3] == [True, True, False]  # the burst, then the bucket is empty
    assert log.records == n and log.dropped == 100 - n
    log.close()
    (ins, outs, ids), = SL.read_segments(tmp_path / "s")
    assert [int(i) for i in ids] == [i for i, k in enumerate(kept) if k]
    assert np.array_equal(outs["y"], np.full((n, 4), 2, np.float32))


def test_size_cap_rotation_and_content(color_model, crops, tmp_path):
    cap = 150_000  # bytes on disk; a sample is 12 KB of image + 16 B of output
    with edgekit.load(color_model) as m:
        mon = edgekit.monitor(m, log_dir=tmp_path / "log", sample_rate=1e6, sample_max_bytes=cap, window=50)
        x = crops(100, seed=5)
        outs, peak = [], 0
        for i in range(100):
            outs.append(mon.predict(x[i:i + 1])["probs"])
            peak = max(peak, mon.samples_log.stats()["buffered_bytes"])
        mon.close()
    segs = sorted((tmp_path / "log" / "samples").glob("samples-*.npz"))
    sizes = [p.stat().st_size for p in segs]
    assert sum(sizes) <= cap and len(segs) >= 2
    assert peak <= mon.samples_log.segment_bytes + x[0].nbytes + 16  # memory: one segment's worth at most
    got_ids = [int(i) for _, _, ids in SL.read_segments(tmp_path / "log") for i in ids]
    assert got_ids == list(range(got_ids[0], 100)) and got_ids[0] > 0  # the newest kept, the oldest rotated out
    for ins, o, ids in SL.read_segments(tmp_path / "log"):
        k = ids.astype(int)
        assert np.array_equal(ins["image"], x[k])
        assert np.array_equal(o["probs"], np.concatenate([outs[i] for i in k]))


def test_replay_passes_on_the_true_log_and_fails_on_a_tampered_one(color_model, crops, tmp_path):
    with edgekit.load(color_model) as m:
        mon = edgekit.monitor(m, log_dir=tmp_path / "log", sample_rate=1e6, window=64)
        x = crops(80, seed=9)
        for i in range(0, 80, 4):
            mon.predict(x[i:i + 4])
        mon.close()
    r = invoke("validate", color_model, "--replay", tmp_path / "log", "--json-out", tmp_path / "r.json")
    assert r.exit_code == 0, describe(r)
    import json

    rep = json.loads((tmp_path / "r.json").read_text())
    (c,) = rep["candidates"]
    assert rep["data"]["samples"] == 80 and c["verdict"] == "pass" and c["outputs"]["probs"]["max_abs"] < 1e-5
    # the device gave other outputs than the reference would: the replay says so
    (seg,) = sorted((tmp_path / "log" / "samples").glob("samples-*.npz"))
    with np.load(seg) as z:
        data = dict(z)
    data["output:probs"] = data["output:probs"][:, ::-1].copy()
    np.savez(seg, **data)
    r = invoke("validate", color_model, "--replay", tmp_path / "log")
    assert r.exit_code == 1, describe(r)
    assert "fail" in r.stdout
    # replay takes no data and no candidates; a folder without segments is a user error
    user_error(invoke("validate", color_model, color_model, "--replay", tmp_path / "log"), "--replay")
    user_error(invoke("validate", color_model, "--replay", tmp_path / "log", "--localize"), "--localize")
    (tmp_path / "empty").mkdir()
    user_error(invoke("validate", color_model, "--replay", tmp_path / "empty"), "no sample log segments")


def test_sample_log_is_opt_in_and_needs_a_folder(color_model):
    from edgekit.errors import InputError

    with edgekit.load(color_model) as m:
        assert edgekit.monitor(m).samples_log is None
        with pytest.raises(InputError, match="needs a log_dir"):
            edgekit.monitor(m, sample_rate=1.0)
