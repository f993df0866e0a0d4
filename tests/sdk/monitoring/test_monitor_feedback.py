"""Labels that arrive later, by call id, give the same metrics scikit-learn gives on the same labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

import edgekit
from edgekit.errors import InputError


def test_metrics_from_feedback_equal_scikit_learns(digits):
    x, y = digits["test"], digits["test_labels"]
    with edgekit.load(digits["model"]) as m:
        mon = edgekit.monitor(m, window=100, metrics_window=1000)
        ids, preds = [], {}
        for i in range(0, len(x), 3):  # batched calls, ids of our own
            cid = f"req-{i}"
            preds[cid] = mon.predict(x[i:i + 3], call_id=cid)[m.outputs[0].name]
            ids.append(cid)
        rng = np.random.default_rng(0)
        labelled = [ids[k] for k in sorted(rng.choice(len(ids), 90, replace=False))]
        for cid in rng.permutation(labelled):  # labels come back out of order, some never
            i = int(cid.split("-")[1])
            assert mon.feedback(cid, y[i:i + 3])
        assert not mon.feedback("req-unknown", 3)
        got = mon.metrics()
    yt = np.concatenate([y[int(c.split("-")[1]):int(c.split("-")[1]) + 3] for c in labelled])
    s = np.concatenate([preds[c] for c in labelled])
    assert got["labels"] == len(yt) == 270
    p = s.argmax(1)
    assert got["accuracy"] == pytest.approx(accuracy_score(yt, p))
    assert got["precision_macro"] == pytest.approx(precision_score(yt, p, average="macro", zero_division=0))
    assert got["recall_macro"] == pytest.approx(recall_score(yt, p, average="macro", zero_division=0))
    assert got["f1_macro"] == pytest.approx(f1_score(yt, p, average="macro", zero_division=0))
    assert got["roc_auc"] == pytest.approx(roc_auc_score(yt, s, multi_class="ovr", average="macro"))
    assert mon.labels.unmatched == 1 and mon.labels.matched == 270


def test_feedback_memory_is_bounded_and_wrong_label_counts_refused(digits):
    x, y = digits["test"], digits["test_labels"]
    with edgekit.load(digits["model"]) as m:
        mon = edgekit.monitor(m, feedback_capacity=50, metrics_window=40)
        for i in range(120):
            mon.predict(x[i:i + 1])
        assert len(mon.labels.pending) == 50
        assert not mon.feedback(0, y[0])  # expired: only the last 50 calls are remembered
        with pytest.raises(InputError, match="1 samples but 2 labels"):
            mon.feedback(119, y[:2])
        assert mon.feedback(119, y[119])  # still there after the refused attempt
        for cid in range(70, 119):
            mon.feedback(cid, y[cid])
        met = mon.metrics()  # over the last 40 labelled samples (the metrics window), in arrival order
        window = ([119] + list(range(70, 119)))[-40:]
        p = m.predict(x[window])[m.outputs[0].name].argmax(1)
    assert met["labels"] == 40
    assert met["accuracy"] == pytest.approx(accuracy_score(y[window], p))


def test_regression_labels_give_scikit_learns_errors(crops, tmp_path):
    from monitor_fixtures import build_color_model
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    x = crops(60, seed=3)
    truth = x.mean(axis=(1, 2, 3)) + np.random.default_rng(0).normal(0, 0.02, 60)  # float labels, kept as floats
    with edgekit.load(build_color_model(tmp_path / "bright.onnx", regression=True)) as m:
        mon = edgekit.monitor(m, task="regression")
        pred = np.concatenate([mon.predict(x[i:i + 2])["value"][:, 0] for i in range(0, 60, 2)])
        for cid in range(30):
            assert mon.feedback(cid, truth[2 * cid:2 * cid + 2])
        got = mon.metrics()
    assert got["mae"] == pytest.approx(mean_absolute_error(truth, pred))
    assert got["rmse"] == pytest.approx(np.sqrt(mean_squared_error(truth, pred)))
    assert got["r2"] == pytest.approx(r2_score(truth, pred))
