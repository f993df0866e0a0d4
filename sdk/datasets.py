"""Data for validation, streamed in batches: `.npz` / `.npy`, a folder of images with a preprocessing spec, or
any Python iterable. Memory stays bounded: only one batch is in memory at a time."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .data import array_headers, check_array_file, check_memory, nbytes
from .errors import InputError, MissingDependencyError

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


_PRE_HINT = ('write a JSON or YAML mapping, e.g. {"size": [224, 224], "mean": [0.485, 0.456, 0.406], '
             '"std": [0.229, 0.224, 0.225], "scale": 255, "layout": "NCHW", "channels": "RGB"}')


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)


@dataclass
class Preprocess:
    """How images become arrays: resize, scale, normalize, channel order and layout."""

    size: tuple[int, int] | None = None  # (height, width)
    mean: list[float] = field(default_factory=lambda: [0.0])
    std: list[float] = field(default_factory=lambda: [1.0])
    scale: float = 255.0  # pixel values are divided by this first
    layout: str = "NHWC"  # or NCHW
    channels: str = "RGB"  # RGB, BGR or L (grayscale)

    def __post_init__(self):
        def bad(what):
            raise InputError(f"preprocessing {what}", _PRE_HINT)

        if self.size is not None:
            if not isinstance(self.size, (list, tuple)) or len(self.size) != 2 or not all(
                    isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in self.size):
                bad(f"'size' must be [height, width] in positive integers, got {self.size!r}")
            self.size = tuple(self.size)
        if not isinstance(self.channels, str) or self.channels.upper() not in ("RGB", "BGR", "L"):
            bad(f"'channels' must be RGB, BGR or L, got {self.channels!r}")
        if not isinstance(self.layout, str) or self.layout.upper() not in ("NHWC", "NCHW"):
            bad(f"'layout' must be NHWC or NCHW, got {self.layout!r}")
        self.channels, self.layout = self.channels.upper(), self.layout.upper()
        if not _number(self.scale) or self.scale <= 0:
            bad(f"'scale' must be a positive number, got {self.scale!r}")
        n = 1 if self.channels == "L" else 3
        for key in ("mean", "std"):
            v = getattr(self, key)
            v = [v] if _number(v) else v
            if not isinstance(v, (list, tuple)) or len(v) not in (1, n) or not all(_number(x) for x in v):
                bad(f"'{key}' must be one number or {n} (one per channel), got {getattr(self, key)!r}")
            setattr(self, key, [float(x) for x in v])
        if any(x == 0 for x in self.std):
            bad("'std' must not be 0")

    @classmethod
    def load(cls, path: str | Path) -> "Preprocess":
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"no such preprocessing spec: {p}", _PRE_HINT) from None
        except IsADirectoryError:
            raise InputError(f"the preprocessing spec {p} is a folder", "pass a .json or .yaml file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read the preprocessing spec {p.name}: {getattr(e, 'strerror', None) or e}",
                             "pass a UTF-8 .json or .yaml file") from None
        if p.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as e:
                raise MissingDependencyError("pyyaml", "report", "read YAML preprocessing specs") from e
            try:
                spec = yaml.safe_load(text)  # safe: a tag such as !!python/object is refused, never constructed
            except yaml.YAMLError as e:
                why = " ".join(str(getattr(e, "problem", None) or e).split())[:200]
                raise InputError(f"{p.name} is not a plain YAML mapping: {why}", _PRE_HINT) from None
        else:
            try:
                spec = json.loads(text)
            except json.JSONDecodeError as e:
                raise InputError(f"{p.name} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})",
                                 _PRE_HINT) from None
        if not isinstance(spec, dict):
            raise InputError(f"{p.name} holds {type(spec).__name__ if spec is not None else 'nothing'} where a "
                             "mapping of preprocessing keys was expected", _PRE_HINT)
        unknown = {str(k) for k in spec} - {"size", "mean", "std", "scale", "layout", "channels"}
        if unknown:
            raise InputError(f"unknown preprocessing keys in {p.name}: {', '.join(sorted(unknown))}",
                             "use size, mean, std, scale, layout (NHWC/NCHW), channels (RGB/BGR/L)")
        try:
            return cls(**spec)
        except InputError as e:
            raise InputError(f"{p.name}: {e.message}", e.hint) from None


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
    try:
        with Image.open(path) as im:
            im = im.convert("L" if pre.channels == "L" else "RGB")
            if pre.size:
                im = im.resize((pre.size[1], pre.size[0]))
            x = np.asarray(im, dtype=np.float32) / pre.scale
    except (OSError, ValueError, Image.DecompressionBombError) as e:  # UnidentifiedImageError is an OSError
        raise InputError(f"cannot read image {path}: {' '.join(str(e).split())[:200] or type(e).__name__}",
                         "remove or replace the damaged image") from e
    if x.ndim == 2:
        x = x[..., None]
    if pre.channels == "BGR":
        x = x[..., ::-1]
    x = (x - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1) if pre.layout.upper() == "NCHW" else x)


def _folder(root: Path, name: str, pre: Preprocess, batch: int) -> Dataset:
    try:
        classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        if classes:
            files = [(f, i) for i, c in enumerate(classes) for f in sorted((root / c).iterdir())
                     if f.suffix.lower() in IMAGE_EXT]
        else:
            files = [(f, -1) for f in sorted(root.iterdir()) if f.suffix.lower() in IMAGE_EXT]
    except OSError as e:
        raise InputError(f"cannot list {root}: {e.strerror or e}", "check the folder's permissions") from None
    if not files:
        raise InputError(f"{root} holds no images", "use a folder of images, or class sub-folders of images")
    if pre.size:  # one batch of decoded images (float32) must fit; a huge --preprocess size is refused here
        check_memory(nbytes((min(batch, len(files)), *pre.size, 1 if pre.channels == "L" else 3), np.float32),
                     f"a batch of {min(batch, len(files))} images of {pre.size[0]}x{pre.size[1]}")

    def gen():
        for i in range(0, len(files), batch):
            yield {name: np.stack([_image(f, pre) for f, _ in files[i:i + batch]])}

    labels = np.array([c for _, c in files]) if classes else None
    return Dataset(gen(), labels, len(files), str(root))


def _arrays(arrays: dict[str, np.ndarray], labels, batch: int, path) -> Dataset:
    n = {k: len(v) if np.ndim(v) else 0 for k, v in arrays.items()}
    if len(set(n.values())) != 1:
        raise InputError("inputs hold different numbers of samples: " + ", ".join(f"{k}={v}" for k, v in n.items()),
                         "the first axis of every input array is the sample axis; give each the same count")
    total = next(iter(n.values()))
    if total == 0:
        raise InputError("the data holds 0 samples", "give at least one sample along the first axis")
    _check_labels(labels, total)

    def gen():
        for i in range(0, total, batch):
            yield {k: v[i:i + batch] for k, v in arrays.items()}

    return Dataset(gen(), labels, total, path)


def _check_labels(labels, samples: int | None) -> None:
    if labels is None:
        return
    if np.ndim(labels) == 0:
        raise InputError("the labels are a single value, not one label per sample",
                         "save labels as a 1-D array with one entry per sample")
    if samples is not None and len(labels) != samples:
        raise InputError(f"{len(labels)} labels for {samples} samples",
                         "give exactly one label per sample, in the data's order")


def _npz_arrays(p: Path, z, keys: list[str]) -> dict[str, np.ndarray]:
    try:
        return {k: z[k] for k in keys}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, MemoryError) as e:
        raise InputError(f"cannot read {p.name}: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}",
                         "save the data with numpy.savez(path, **{input_name: array}, labels=labels)") from e


def load_labels(path: str | Path) -> np.ndarray:
    """Labels from a .npy file, or from the 'labels' array (or the only array) of a .npz file."""
    p = Path(path)
    heads = check_array_file(p)
    key = "" if "" in heads else "labels" if "labels" in heads else next(iter(heads)) if len(heads) == 1 else None
    if key is None:
        raise InputError(f"{p.name} holds several arrays and none is called 'labels'",
                         "save the labels with numpy.save(path, labels)")
    try:
        if key == "":
            return np.load(p, allow_pickle=False)
        with np.load(p, allow_pickle=False) as z:
            return _npz_arrays(p, z, [key])[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, MemoryError) as e:
        raise InputError(f"cannot read {p.name}: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}",
                         "save the labels with numpy.save(path, labels)") from e


def open_dataset(data, input_names: list[str], labels=None, batch: int = 64,
                 preprocess: Preprocess | None = None) -> Dataset:
    """`data`: an .npz/.npy path, an image folder, a dict of arrays, or an iterable of batches (dicts or arrays).
    Array files are checked from their headers first (no objects, sizes that fit in memory, not truncated)."""
    lab = None if labels is None else (load_labels(labels) if isinstance(labels, (str, Path)) else np.asarray(labels))
    if isinstance(data, dict):
        return _arrays({k: np.asarray(v) for k, v in data.items()}, lab, batch, None)
    if isinstance(data, (str, Path)):
        p = Path(data)
        if p.is_dir():
            ds = _folder(p, input_names[0], preprocess or Preprocess(), batch)
            if lab is not None:
                _check_labels(lab, ds.samples)
                ds.labels = lab
            return ds
        if not p.is_file():
            raise InputError(f"no such data file or folder: {p}", "pass an .npz, .npy or a folder of images")
        heads = array_headers(p)
        if "" in heads:  # .npy: memory-mapped, so only one batch is in memory at a time
            if len(input_names) != 1:
                raise InputError(f"{p.name} holds one array but the model has {len(input_names)} inputs",
                                 "use an .npz keyed by input name")
            try:
                arr = np.load(p, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError) as e:
                raise InputError(f"cannot read {p.name}: {str(e).splitlines()[0][:200]}",
                                 "save the data with numpy.save(path, array)") from e
            return _arrays({input_names[0]: arr}, lab, batch, str(p))
        keys = [k for k in heads if k != "labels"]
        if len(input_names) == 1 and len(keys) == 1 and (keys[0] == input_names[0] or keys[0].startswith("arr_")):
            pick = {input_names[0]: keys[0]}  # np.savez(path, x) names it arr_0
        else:
            missing = [n for n in input_names if n not in keys]
            if missing:
                raise InputError(f"{p.name} has no array for input {', '.join(repr(m) for m in missing)} "
                                 f"(it holds {', '.join(repr(k) for k in keys) or 'nothing'})",
                                 f"key the arrays by the model's input names: {', '.join(input_names)}")
            pick = {n: n for n in input_names}
        wanted = list(pick.values()) + (["labels"] if lab is None and "labels" in heads else [])
        check_array_file(p, names=wanted)
        try:
            z = np.load(p, allow_pickle=False)
        except (ValueError, OSError, zipfile.BadZipFile) as e:
            raise InputError(f"cannot read {p.name}: {str(e).splitlines()[0][:200]}") from e
        with z:
            got = _npz_arrays(p, z, wanted)
        if "labels" in wanted:
            lab = got.pop("labels")
        return _arrays({n: got[k] for n, k in pick.items()}, lab, batch, str(p))

    def gen():  # any iterable: batches as dicts, or arrays for a single-input model
        for item in data:
            yield item if isinstance(item, dict) else {input_names[0]: np.asarray(item)}

    return Dataset(gen(), lab, None, None)
