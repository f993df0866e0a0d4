"""Data for validation, streamed in batches: `.npz` / `.npy`, a folder of images with a preprocessing spec, or
any Python iterable. Memory stays bounded: only one batch is in memory at a time."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import InputError, MissingDependencyError

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class Preprocess:
    """How images become arrays: resize, scale, normalize, channel order and layout."""

    size: tuple[int, int] | None = None  # (height, width)
    mean: list[float] = field(default_factory=lambda: [0.0])
    std: list[float] = field(default_factory=lambda: [1.0])
    scale: float = 255.0  # pixel values are divided by this first
    layout: str = "NHWC"  # or NCHW
    channels: str = "RGB"  # RGB, BGR or L (grayscale)

    @classmethod
    def load(cls, path: str | Path) -> "Preprocess":
        p = Path(path)
        text = p.read_text()
        if p.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as e:
                raise MissingDependencyError("pyyaml", "report", "read YAML preprocessing specs") from e
            spec = yaml.safe_load(text)
        else:
            spec = json.loads(text)
        unknown = set(spec) - {"size", "mean", "std", "scale", "layout", "channels"}
        if unknown:
            raise InputError(f"unknown preprocessing keys: {', '.join(sorted(unknown))}",
                             "use size, mean, std, scale, layout (NHWC/NCHW), channels (RGB/BGR/L)")
        return cls(**{k: (tuple(v) if k == "size" else v) for k, v in spec.items()})


@dataclass
class Dataset:
    """Batches of {input name: array}, and labels when the data has them."""

    batches: Iterator[dict[str, np.ndarray]]
    labels: np.ndarray | None
    samples: int | None
    path: str | None


def _image(path: Path, pre: Preprocess) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as e:
        raise MissingDependencyError("pillow", "report", "read image folders") from e
    with Image.open(path) as im:
        im = im.convert("L" if pre.channels == "L" else "RGB")
        if pre.size:
            im = im.resize((pre.size[1], pre.size[0]))
        x = np.asarray(im, dtype=np.float32) / pre.scale
    if x.ndim == 2:
        x = x[..., None]
    if pre.channels == "BGR":
        x = x[..., ::-1]
    x = (x - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1) if pre.layout.upper() == "NCHW" else x)


def _folder(root: Path, name: str, pre: Preprocess, batch: int) -> Dataset:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if classes:
        files = [(f, i) for i, c in enumerate(classes) for f in sorted((root / c).iterdir())
                 if f.suffix.lower() in IMAGE_EXT]
    else:
        files = [(f, -1) for f in sorted(root.iterdir()) if f.suffix.lower() in IMAGE_EXT]
    if not files:
        raise InputError(f"{root} holds no images", "use a folder of images, or class sub-folders of images")

    def gen():
        for i in range(0, len(files), batch):
            yield {name: np.stack([_image(f, pre) for f, _ in files[i:i + batch]])}

    labels = np.array([c for _, c in files]) if classes else None
    return Dataset(gen(), labels, len(files), str(root))


def _arrays(arrays: dict[str, np.ndarray], labels, batch: int, path) -> Dataset:
    n = {k: len(v) for k, v in arrays.items()}
    if len(set(n.values())) != 1:
        raise InputError("inputs hold different numbers of samples: " + ", ".join(f"{k}={v}" for k, v in n.items()))
    total = next(iter(n.values()))
    if total == 0:
        raise InputError("the data holds 0 samples", "give at least one sample along the first axis")

    def gen():
        for i in range(0, total, batch):
            yield {k: v[i:i + batch] for k, v in arrays.items()}

    return Dataset(gen(), labels, total, path)


def open_dataset(data, input_names: list[str], labels=None, batch: int = 64,
                 preprocess: Preprocess | None = None) -> Dataset:
    """`data`: an .npz/.npy path, an image folder, a dict of arrays, or an iterable of batches (dicts or arrays)."""
    lab = None if labels is None else (np.load(labels, allow_pickle=False) if isinstance(labels, (str, Path))
                                       else np.asarray(labels))
    if isinstance(data, dict):
        return _arrays({k: np.asarray(v) for k, v in data.items()}, lab, batch, None)
    if isinstance(data, (str, Path)):
        p = Path(data)
        if p.is_dir():
            ds = _folder(p, input_names[0], preprocess or Preprocess(), batch)
            if lab is not None:
                ds.labels = lab
            return ds
        if not p.is_file():
            raise InputError(f"no such data file or folder: {p}", "pass an .npz, .npy or a folder of images")
        if p.suffix.lower() == ".npy":
            if len(input_names) != 1:
                raise InputError(f"{p.name} holds one array but the model has {len(input_names)} inputs",
                                 "use an .npz keyed by input name")
            return _arrays({input_names[0]: np.load(p, mmap_mode="r", allow_pickle=False)}, lab, batch, str(p))
        try:
            z = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise InputError(f"cannot read {p.name}: {str(e).splitlines()[0][:200]}") from e
        if lab is None and "labels" in z.files:
            lab = z["labels"]
        keys = [k for k in z.files if k != "labels"]
        if len(input_names) == 1 and len(keys) == 1 and (keys[0] == input_names[0] or keys[0].startswith("arr_")):
            return _arrays({input_names[0]: z[keys[0]]}, lab, batch, str(p))  # np.savez(path, x) names it arr_0
        missing = [n for n in input_names if n not in keys]
        if missing:
            raise InputError(f"{p.name} has no array for input {', '.join(repr(m) for m in missing)}",
                             f"key the arrays by the model's input names: {', '.join(input_names)}")
        return _arrays({n: z[n] for n in input_names}, lab, batch, str(p))

    def gen():  # any iterable: batches as dicts, or arrays for a single-input model
        for item in data:
            yield item if isinstance(item, dict) else {input_names[0]: np.asarray(item)}

    return Dataset(gen(), lab, None, None)
