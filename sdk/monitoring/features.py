"""Per-sample features the monitor watches: what one input or output row is reduced to (numpy only).

Each tensor gets a `Plan` from its per-sample shape, decided once (and stored in the reference profile so the
monitor reduces live data exactly as the profile reduced the validation data):

- an image (4-D, a channel axis of 1 to 4 last, NHWC, or second, NCHW): per channel, the mean and the standard
  deviation of the pixels (``NAME:mean[c]``, ``NAME:std[c]``). A brightness shift moves the means, swapped channels
  swap them, a contrast change moves the standard deviations.
- a row of at most `MAX_COLUMNS` numbers (``(N, F)``, or ``(N,)``): each column is a feature (``NAME[j]``).
- anything else numeric: the mean and standard deviation of the sample (``NAME:mean``, ``NAME:std``).
- the classifier's output (its first output, 2-D scores of 2 or more classes, when the task is "classification" or,
  unnamed, the rows are probabilities): the predicted class (``NAME:class``, categorical) and the confidence, the
  largest probability (``NAME:confidence``; softmax first for logits).

One value per sample, so samples are the independent draws the drift tests assume (pixels of one image are not).
Large tensors are read on a fixed grid (`stride`) of at most `GRID` points per sample and channel: the monitor copies
that grid per call and reduces a block of calls at once, which keeps the per-call cost at one small copy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

MAX_COLUMNS = 16
GRID = 1024  # grid points per sample and channel read for the statistics


@dataclass(frozen=True)
class Plan:
    tensor: str
    role: str  # "input" or "output"
    kind: str  # "image", "columns", "flat", "classes"
    layout: str = ""  # "NHWC" / "NCHW" for images
    stride: int = 1  # spatial stride (images) or flat stride (flat)
    channels: int = 0
    columns: int = 0
    key: str = ""  # the deployed model's name for the tensor when it differs from the profile's (`Extractor.bind`)

    def names(self) -> list[str]:
        t = self.tensor
        if self.kind == "image":
            return [f"{t}:mean[{c}]" for c in range(self.channels)] + [f"{t}:std[{c}]" for c in range(self.channels)]
        if self.kind == "columns":
            return [f"{t}[{j}]" for j in range(self.columns)] if self.columns > 1 else [t]
        if self.kind == "classes":
            return [f"{t}:confidence"]
        return [f"{t}:mean", f"{t}:std"]

    def class_name(self) -> str | None:
        return f"{self.tensor}:class" if self.kind == "classes" else None

    def read(self, feeds: dict, outputs: dict) -> np.ndarray:
        return np.asarray((feeds if self.role == "input" else outputs)[self.key or self.tensor])

    def view(self, x: np.ndarray) -> np.ndarray:
        """The part of a batch the statistics read: a strided view (no copy)."""
        if self.kind == "image":
            s = self.stride
            return x[:, ::s, ::s, :] if self.layout == "NHWC" else x[:, :, ::s, ::s]
        if self.kind == "flat" and self.stride > 1:
            return x.reshape(len(x), -1)[:, ::self.stride]
        return x

    def to_dict(self) -> dict:
        return asdict(self)


def plan_for(name: str, role: str, x: np.ndarray, classifier: bool = False) -> Plan | None:
    """The plan for a batch ``x`` of tensor ``name`` (first axis = samples); None for non-numeric tensors."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf" or x.ndim == 0:
        return None
    shape = x.shape[1:]
    if classifier and len(shape) == 1 and shape[0] >= 2:
        return Plan(name, role, "classes", columns=shape[0])
    if len(shape) == 3:
        for layout, c, hw in (("NHWC", shape[2], shape[:2]), ("NCHW", shape[0], shape[1:])):
            if 1 <= c <= 4 and min(hw) > 4:
                stride = max(1, math.ceil(math.sqrt(hw[0] * hw[1] / GRID)))
                return Plan(name, role, "image", layout=layout, stride=stride, channels=int(c))
    if len(shape) <= 1 and (int(np.prod(shape)) if shape else 1) <= MAX_COLUMNS:
        return Plan(name, role, "columns", columns=int(shape[0]) if shape else 1)
    size = int(np.prod(shape))
    return Plan(name, role, "flat", stride=max(1, size // GRID))


def looks_like_scores(y: np.ndarray) -> bool:
    y = np.asarray(y)
    return y.ndim == 2 and y.shape[1] >= 2 and y.dtype.kind == "f"


def _probs(y) -> bool:
    """Rows of probabilities (what a classifier with a softmax gives): how the task is told without being named."""
    y = np.asarray(y, np.float64)
    return bool(np.all(y >= 0) and np.allclose(y.sum(axis=1), 1.0, atol=1e-3))


def reduce(plan: Plan, v: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Features of a block of strided views (`Plan.view`): ``(n, len(plan.names()))`` float64, and the predicted
    class per sample for a classifier's output (else None)."""
    n = len(v)
    if plan.kind == "image":
        axes = (1, 2) if plan.layout == "NHWC" else (2, 3)
        v = v.astype(np.float64, copy=False)
        return np.concatenate([v.mean(axis=axes), v.std(axis=axes)], axis=1), None
    if plan.kind == "columns":
        return v.reshape(n, -1).astype(np.float64), None
    if plan.kind == "classes":
        s = v.reshape(n, -1).astype(np.float64)
        rows = s.sum(axis=1)
        if not (np.all(s >= 0) and np.allclose(rows, 1.0, atol=1e-3)):  # logits: softmax for the confidence
            e = np.exp(s - s.max(axis=1, keepdims=True))
            s = e / e.sum(axis=1, keepdims=True)
        return s.max(axis=1, keepdims=True), s.argmax(axis=1)
    f = v.reshape(n, -1).astype(np.float64)
    return np.stack([f.mean(axis=1), f.std(axis=1)], axis=1), None


class Extractor:
    """The features of every tensor of a model: plans fixed from the profile (or the first call), names in order."""

    def __init__(self, plans: list[Plan]):
        self.plans = plans
        self.names = [n for p in plans for n in p.names()]
        self.class_names = [p.class_name() for p in plans if p.kind == "classes"]

    @classmethod
    def from_batch(cls, feeds: dict, outputs: dict, task: str | None) -> "Extractor":
        plans = [plan_for(k, "input", v) for k, v in feeds.items()]
        first = True
        for k, v in outputs.items():  # the first output of a classifier is its scores
            scores = first and looks_like_scores(v) and (task == "classification" or task is None and _probs(v))
            plans.append(plan_for(k, "output", v, classifier=scores))
            first = False
        return cls([p for p in plans if p is not None])

    @classmethod
    def from_dicts(cls, plans: list[dict]) -> "Extractor":
        return cls([Plan(**p) for p in plans])

    def bind(self, profiled: dict[str, list[str]], model: dict[str, list[str]]) -> "Extractor":
        """Read the deployed model's tensors for the profile's (a converted model may rename them): by name when
        the names match, else by position. ``profiled``/``model``: {"input": [names], "output": [names]}."""
        from edgekit.errors import InputError

        keys = {}
        for role in ("input", "output"):
            a, b = profiled.get(role) or [], model[role]
            if set(a) == set(b) or not a:
                continue
            if len(a) != len(b):
                raise InputError(f"the profile was made for a model with {len(a)} {role}s ({', '.join(a)}) but this "
                                 f"one has {len(b)} ({', '.join(b)})", "profile the model you deploy (or its source) "
                                 "with `edgekit validate ... --save-profile FILE`")
            keys.update({(role, x): y for x, y in zip(a, b)})
        return Extractor([Plan(**{**p.to_dict(), "key": keys.get((p.role, p.tensor), "")}) for p in self.plans])

    def features(self, feeds: dict, outputs: dict) -> tuple[np.ndarray, np.ndarray]:
        """(n, F) numeric features and (n, K) classes (K classifier outputs) of one batch."""
        num, cls_ = [], []
        for p in self.plans:
            f, c = reduce(p, p.view(p.read(feeds, outputs)))
            num.append(f)
            if c is not None:
                cls_.append(c)
        n = len(num[0]) if num else 0
        return (np.concatenate(num, axis=1) if num else np.empty((n, 0)),
                np.stack(cls_, axis=1) if cls_ else np.empty((n, 0), np.int64))
