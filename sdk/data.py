"""Input data for models: arrays from .npz/.npy files, or generated from a model's signature."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .errors import InputError
from .types import TensorSpec

DEFAULT_DYNAMIC = 16  # size given to a dynamic non-batch dimension when inputs are generated


def read_arrays(path: str | Path, specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """Read `.npz` (keys = input names; a `labels` key is ignored) or `.npy` (single-input models)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such input file: {p}", "pass an existing .npz or .npy file")
    names = [s.name for s in specs]
    try:
        if p.suffix.lower() == ".npy":
            arr = np.load(p, allow_pickle=False)
            if len(names) != 1:
                raise InputError(f"{p.name} holds one array but the model has {len(names)} inputs ({', '.join(names)})",
                                 "use an .npz file keyed by input name")
            return {names[0]: arr}
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files if k != "labels"}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"cannot read {p.name}: {str(e).splitlines()[0][:200]}",
                         "save inputs with numpy.savez(path, **{input_name: array})") from e
    if len(names) == 1 and len(data) == 1 and names[0] not in data:
        return {names[0]: next(iter(data.values()))}
    missing = [n for n in names if n not in data]
    if missing:
        raise InputError(f"{p.name} has no array for input {', '.join(repr(m) for m in missing)} "
                         f"(it holds {', '.join(repr(k) for k in data) or 'nothing'})",
                         f"key the arrays by the model's input names: {', '.join(names)}")
    return {n: data[n] for n in names}


def random_inputs(specs: list[TensorSpec], batch: int = 1, seed: int = 0, raw_quantized: bool = False
                  ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Inputs that respect each input's dtype and shape; returns them and notes on dimensions it chose.
    Quantized inputs get floats (the wrapper quantizes them) unless ``raw_quantized``: then integers."""
    rng = np.random.default_rng(seed)
    out, notes = {}, []
    for s in specs:
        if s.shape is None:
            raise InputError(f"input '{s.name}' has no recorded shape, so random data cannot be made for it",
                             "pass real inputs: `run --input FILE.npz`, `convert --sample FILE.npz`")
        shape = []
        for i, d in enumerate(s.shape):
            if d is None:
                d = batch if i == 0 else DEFAULT_DYNAMIC
                notes.append(f"{s.name}: dynamic dimension {i} set to {d} in the generated inputs")
            shape.append(d)
        dtype = "float32" if (s.quantized and not raw_quantized) or not s.dtype else s.dtype
        kind = np.dtype(dtype).kind if dtype not in ("str", "string") else "U"
        if kind == "f":
            x = rng.standard_normal(shape).astype(dtype)
        elif kind in "iu" and s.quantized:
            info = np.iinfo(dtype)
            x = rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
        elif kind in "iu":
            x = rng.integers(0, 10, size=shape).astype(dtype)
        elif kind == "b":
            x = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise InputError(f"input '{s.name}' has dtype {s.dtype}; random data cannot be made for it",
                             "pass real inputs with --input FILE.npz")
        out[s.name] = x
    return out, notes
