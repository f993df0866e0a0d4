"""Run many samples through a model whose batch dimension may be fixed."""

from __future__ import annotations

import numpy as np

from .errors import InputError


def sample_count(feeds: dict[str, np.ndarray]) -> int:
    counts = {k: (v.shape[0] if v.ndim else 1) for k, v in feeds.items()}
    if len(set(counts.values())) > 1:
        raise InputError("inputs hold different numbers of samples: "
                         + ", ".join(f"{k}={n}" for k, n in counts.items()),
                         "the first axis of every input array is the sample axis; give each input the same count")
    n = next(iter(counts.values()), 0)
    if n == 0 and feeds:
        raise InputError("the inputs hold 0 samples", "give at least one sample along the first axis")
    return n


def plan(model, feeds: dict[str, np.ndarray]) -> tuple[str, int]:
    """How to feed ``feeds``: ("whole", n) in one call, ("each", n) one sample at a time with the batch axis
    removed (the model has no batch axis), or ("chunk", size) in pieces of the model's fixed batch size."""
    n = sample_count(feeds)
    mode, size = "whole", n
    for spec in model.inputs:
        x = feeds.get(spec.name)
        if x is None or spec.shape is None:
            continue
        if x.ndim == len(spec.shape) + 1:
            return "each", n
        if x.ndim == len(spec.shape) and spec.shape and spec.shape[0] is not None and x.shape[0] != spec.shape[0]:
            fixed = spec.shape[0]
            if fixed == 0 or n % fixed:
                raise InputError(f"input '{spec.name}' has a fixed batch of {fixed} and {n} samples were given",
                                 f"give a multiple of {fixed} samples")
            mode, size = "chunk", fixed
    return mode, size


def predict_samples(model, feeds: dict[str, np.ndarray], progress=None) -> dict[str, np.ndarray]:
    """Run every sample in ``feeds`` (first axis = samples) and stack the outputs along the first axis."""
    feeds = {k: np.asarray(v) for k, v in model.feeds(feeds).items()}
    mode, size = plan(model, feeds)
    if mode == "whole":
        return model.predict(feeds)
    n = sample_count(feeds)
    parts: list[dict[str, np.ndarray]] = []
    step = 1 if mode == "each" else size
    for i in range(0, n, step):
        piece = {k: (v[i] if mode == "each" else v[i:i + step]) for k, v in feeds.items()}
        parts.append(model.predict(piece))
        if progress is not None:
            progress(min(i + step, n), n)
    if not parts:
        return {}
    join = np.stack if mode == "each" else np.concatenate
    return {k: join([p[k] for p in parts]) for k in parts[0]}


def align_inputs(model, batch: dict[str, np.ndarray], source_names: list[str], notes: list[str] | None = None) -> dict:
    """Feed arrays keyed by another model's input names to ``model``: by name when the names match, else by
    position (a converter renamed them), noting the mapping in ``notes``."""
    names = [s.name for s in model.inputs]
    if set(names) == set(batch):
        return batch
    if len(names) == len(source_names):
        if notes is not None:
            notes.append("inputs fed by position (names differ: "
                         + ", ".join(f"{a}->{b}" for a, b in zip(source_names, names) if a != b) + ")")
        return {n: batch[s] for n, s in zip(names, source_names)}
    raise InputError(f"the model takes {len(names)} inputs where the source takes {len(source_names)}")
