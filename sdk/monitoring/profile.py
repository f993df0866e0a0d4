"""The reference profile: what the model's inputs and outputs looked like on the validation data.

Written by `edgekit validate --save-profile FILE` (or `ProfileBuilder` from Python) and read by `edgekit.monitor`.
A JSON file holding, per feature (see `features.py`): summary (count, mean, std, min, max), a uniform sample of at
most `SAMPLE` values (the drift tests' reference), decile edges with the sample's counts per bin (PSI); per
classifier output the class histogram; the confidence histogram; the feature plans; the model's hash and task.
Building it streams: memory stays bounded however much data goes through.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgekit.errors import InputError

from .drift import bin_counts, decile_edges
from .features import Extractor

SAMPLE = 2000
VERSION = 1
CONFIDENCE_EDGES = np.linspace(0.0, 1.0, 11)


class ProfileBuilder:
    """Feed it batches (``observe(feeds, outputs)``), then ``profile()``."""

    def __init__(self, task: str | None = None, seed: int = 0):
        self.task = task
        self.extractor: Extractor | None = None
        self.rng = np.random.default_rng(seed)
        self.pool: np.ndarray | None = None
        self.filled = self.seen = 0
        self.s1 = self.s2 = self.lo = self.hi = None
        self.class_counts: list[np.ndarray] = []

    def observe(self, feeds: dict, outputs: dict) -> None:
        if self.extractor is None:
            self.extractor = Extractor.from_batch(feeds, outputs, self.task)
            self.tensors = {"input": list(feeds), "output": list(outputs)}
        f, c = self.extractor.features(feeds, outputs)
        if self.pool is None:
            self.pool = np.empty((SAMPLE, f.shape[1]))
            self.s1, self.s2 = np.zeros(f.shape[1]), np.zeros(f.shape[1])
            self.lo, self.hi = np.full(f.shape[1], np.inf), np.full(f.shape[1], -np.inf)
            self.class_counts = [np.zeros(0, np.int64) for _ in range(c.shape[1])]
        self.s1 += f.sum(axis=0)
        self.s2 += (f * f).sum(axis=0)
        if len(f):
            self.lo, self.hi = np.minimum(self.lo, f.min(axis=0)), np.maximum(self.hi, f.max(axis=0))
        for j in range(c.shape[1]):
            width = self._classes(j)
            cnt = np.bincount(c[:, j], minlength=width)
            self.class_counts[j] = np.pad(self.class_counts[j], (0, len(cnt) - len(self.class_counts[j]))) + cnt
        for row in f:  # reservoir sampling (Algorithm R), one row per sample
            if self.filled < SAMPLE:
                self.pool[self.filled] = row
                self.filled += 1
            else:
                k = int(self.rng.integers(0, self.seen + 1))
                if k < SAMPLE:
                    self.pool[k] = row
            self.seen += 1

    def _classes(self, j: int) -> int:
        p = [p for p in self.extractor.plans if p.kind == "classes"][j]
        return p.columns

    def profile(self, model_info: dict | None = None) -> dict:
        if self.extractor is None or self.seen == 0:
            raise InputError("no samples were profiled", "give the validation data at least one sample")
        n = self.seen
        pool = self.pool[:self.filled]
        feats = {}
        mean, var = self.s1 / n, np.maximum(self.s2 / n - (self.s1 / n) ** 2, 0.0)
        for j, name in enumerate(self.extractor.names):
            col = pool[:, j]
            edges = decile_edges(col)
            feats[name] = {"kind": "numeric", "count": n, "mean": float(mean[j]), "std": float(np.sqrt(var[j])),
                           "min": float(self.lo[j]), "max": float(self.hi[j]), "sample": col.tolist(),
                           "edges": edges.tolist(), "counts": bin_counts(col, edges).tolist()}
        for name, counts in zip(self.extractor.class_names, self.class_counts):
            feats[name] = {"kind": "class", "count": n, "counts": counts.tolist()}
        conf = [n for n in self.extractor.names if n.endswith(":confidence")]
        hist = None
        if conf:
            j = self.extractor.names.index(conf[0])
            hist = {"feature": conf[0], "edges": CONFIDENCE_EDGES.tolist(),
                    "counts": np.histogram(pool[:, j], CONFIDENCE_EDGES)[0].tolist(), "of_sample": len(pool)}
        return {"edgekit_profile": VERSION, "samples": n, "task": self.task, "model": model_info or {},
                "tensors": self.tensors,
                "plans": [p.to_dict() for p in self.extractor.plans], "features": feats,
                "confidence_histogram": hist}


def save_profile(profile: dict, path) -> None:
    Path(path).write_text(json.dumps(profile))


def load_profile(path_or_dict) -> dict:
    if isinstance(path_or_dict, dict):
        prof = path_or_dict
    else:
        p = Path(path_or_dict)
        try:
            prof = json.loads(p.read_text())
        except FileNotFoundError:
            raise InputError(f"no such profile: {p}", "write one with `edgekit validate ... --save-profile FILE`") \
                from None
        except (ValueError, UnicodeDecodeError) as e:
            raise InputError(f"{p} is not a profile (not JSON: {e})",
                             "pass the file `edgekit validate --save-profile` wrote") from None
    if not isinstance(prof, dict) or prof.get("edgekit_profile") != VERSION or "features" not in prof:
        raise InputError("the reference is not an edgekit profile (version 1)",
                         "pass the file `edgekit validate --save-profile` wrote")
    return prof


def model_info(model) -> dict:
    """What identifies the deployed model: path, format, content hash, runtime, precision, threads, device."""
    from edgekit.conversion import _sha256

    src = model.source
    files = [src.path, *src.files] if src.path.is_file() else list(src.files)
    return {"path": str(src.path), "format": model.format.value, "sha256": _sha256(list(dict.fromkeys(files))),
            "runtime": model.backend, "precision": model.precision,
            "threads": model.runner.threads if model.runner.threads is not None else "default",
            "device": model.runner.device}
