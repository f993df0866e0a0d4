"""Planted drift is found within the window; undrifted traffic stays quiet at the configured false-alarm rate.

Window: 200 samples (the crops) or 150 (digits); alpha = 0.01 per window (Bonferroni over the window's tests: 6
image features + confidence + class = 8 for the colour model). Undrifted windows come from a stream independent of
the one the profile was built from.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

import edgekit

W = 200
ALPHA = 0.01


def _run(mon, x, batch=1):
    for i in range(0, len(x), batch):
        mon.predict(x[i:i + batch])


@pytest.fixture
def color(color_model):
    with edgekit.load(color_model) as m:
        yield m


def _drifted(rec):
    return sorted(f for f, d in rec["drift"].items() if d["drift"])


def test_brightness_shift_found_in_the_first_window_after_it_starts(color, color_profile, crops, caplog):
    mon = edgekit.monitor(color, color_profile, window=W, thresholds={"alpha": ALPHA})
    _run(mon, crops(W, seed=100))  # one clean window, one call per image
    with caplog.at_level(logging.WARNING, logger="edgekit.monitor"):
        _run(mon, np.clip(crops(W, seed=101) + 0.1, 0, 1))
    clean, shifted = mon.windows
    assert clean["samples"] == shifted["samples"] == W
    assert clean["alerts"] == []
    assert {"image:mean[0]", "image:mean[1]", "image:mean[2]"} <= set(_drifted(shifted))
    assert all(shifted["drift"][f"image:mean[{c}]"]["window_mean"] > shifted["drift"][f"image:mean[{c}]"]
               ["reference_mean"] + 0.05 for c in range(3))
    # alerts are log lines too, one per drifted feature
    lines = [r.getMessage() for r in caplog.records if "drift in image:mean" in r.getMessage()]
    assert len(lines) == 3 and all("window 1" in x for x in lines)


def test_swapped_channels_found_in_the_first_window(color, color_profile, crops):
    mon = edgekit.monitor(color, color_profile, window=W, thresholds={"alpha": ALPHA})
    _run(mon, crops(W, seed=200)[..., ::-1], batch=4)  # RGB -> BGR
    (rec,) = mon.windows
    assert {"image:mean[0]", "image:mean[2]"} <= set(_drifted(rec))
    assert "image:mean[1]" not in _drifted(rec)  # green stays green


def test_no_alerts_on_undrifted_traffic_at_the_false_alarm_rate(color, color_profile, crops):
    mon = edgekit.monitor(color, color_profile, window=W, thresholds={"alpha": ALPHA})
    n_windows = 40
    for k in range(n_windows):
        _run(mon, crops(W, seed=1000 + k), batch=8)
    assert len(mon.windows) == n_windows
    noisy = [w["window"] for w in mon.windows if w["alerts"]]
    # P(4 or more of 40 windows alert | each at most 1 %) < 0.001
    assert len(noisy) <= 3, [mon.windows[i]["alerts"] for i in noisy]
    # the smallest p-value per window behaves like a uniform draw's minimum, not like drift
    pmin = [min(d["p_value"] for d in w["drift"].values()) for w in mon.windows]
    assert np.median(pmin) > ALPHA


def test_changed_class_mix_found_and_the_same_mix_left_alone(digits, digits_profile):
    x, y = digits["test"], digits["test_labels"]
    with edgekit.load(digits["model"]) as m:
        same = edgekit.monitor(m, digits_profile, window=150, thresholds={"alpha": ALPHA})
        order = np.random.default_rng(0).permutation(len(x))
        _run(same, x[order], batch=5)
        same.flush()  # the last 60 samples too
        assert [w["samples"] for w in same.windows] == [150, 150, 60]
        assert all(w["alerts"] == [] for w in same.windows)

        mixed = edgekit.monitor(m, digits_profile, window=150, thresholds={"alpha": ALPHA})
        low = x[y < 5]  # only the digits 0 to 4: the class mix changes, each image is a real one
        _run(mixed, low[np.random.default_rng(1).permutation(len(low))][:150])
    (rec,) = mixed.windows
    cls = [f for f in rec["drift"] if f.endswith(":class")]
    assert len(cls) == 1 and rec["drift"][cls[0]]["drift"]
    counts = rec["drift"][cls[0]]["window_counts"]
    assert sum(counts[5:]) <= 5 and sum(counts) == 150  # (a few 0-4 images may be misclassified)
    assert rec["drift"][cls[0]]["js"] > 0.3
