"""Labels that arrive after the prediction: matched by call id, kept in a ring, turned into task metrics.

`Labels.remember` stores a copy of the scored output of each call (at most ``capacity`` calls, the oldest dropped);
`Labels.add` matches a label to its call and moves (label, scores) into a ring of the last ``window`` labelled
samples; `Labels.metrics` computes the task's metrics on that ring with scikit-learn (`edgekit.checks.metrics`).
Not thread-safe by itself: the Monitor calls it under its lock.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from edgekit.errors import InputError


class Labels:
    def __init__(self, capacity: int, window: int):
        self.capacity = capacity
        self.pending: OrderedDict = OrderedDict()
        self.y = np.zeros(window, np.float64)  # class ids are cast back for classification
        self.s: np.ndarray | None = None
        self.count = self.pos = 0
        self.new = 0  # labels since the last window record
        self.matched = self.unmatched = 0
        self.cached: dict | None = None

    def remember(self, call_id, scores: np.ndarray) -> None:
        self.pending[call_id] = np.array(scores)
        if len(self.pending) > self.capacity:
            self.pending.popitem(last=False)

    def add(self, call_id, label) -> bool:
        scores = self.pending.pop(call_id, None)
        if scores is None:
            self.unmatched += 1
            return False
        y = np.atleast_1d(np.asarray(label))
        s = scores.reshape(len(scores), -1) if scores.ndim > 1 else scores.reshape(-1, 1)
        if len(y) != len(s):
            self.pending[call_id] = scores
            raise InputError(f"call {call_id!r} had {len(s)} samples but {len(y)} labels were given",
                             "give one label per sample of the call's batch")
        if self.s is None:
            self.s = np.zeros((len(self.y), s.shape[1]))
        for yi, si in zip(y, s):
            self.y[self.pos] = yi
            self.s[self.pos] = si
            self.pos = (self.pos + 1) % len(self.y)
            self.count = min(self.count + 1, len(self.y))
        self.matched += len(y)
        self.new += len(y)
        self.cached = None
        return True

    def metrics(self, task: str | None, strict: bool = False) -> dict | None:
        """Metrics over the ring (None before any label). ``strict``: raise when scikit-learn is missing (an
        explicit ask); inside predict or a scrape, None."""
        if self.count == 0:
            return None
        if self.cached is not None:
            return self.cached
        try:
            import sklearn.metrics  # noqa: F401
        except ImportError:
            if strict:
                from edgekit.errors import MissingDependencyError

                raise MissingDependencyError("scikit-learn", "monitor", "compute task metrics from the labels")
            return None
        from edgekit.checks import metrics as M

        n = len(self.y)
        idx = np.arange(self.count) if self.count < n else (np.arange(n) + self.pos) % n
        y, s = self.y[idx], self.s[idx]
        task = task or ("classification" if s.shape[1] > 1 else "binary")
        if task in ("classification", "binary"):
            y = y.astype(np.int64)
        if task == "classification":
            m = M.classification_metrics(y, s, n_classes=s.shape[1])
            m = {k: m[k] for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc")}
        elif task == "binary":
            m = {k: v for k, v in M.binary_metrics(y, s).items() if k != "confusion_matrix"}
        elif task == "regression":
            m = M.regression_metrics(y, s[:, 0])
        else:
            return None
        m["labels"] = int(self.count)
        self.cached = m
        return m
