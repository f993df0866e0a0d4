"""Input data for models: arrays from .npz/.npy files, or generated from a model's signature. Array files are
checked from their headers before anything is allocated: no Python objects (nothing is unpickled), no array
larger than the memory edgekit allows itself, no array that declares more data than the file holds."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import InputError
from .types import TensorSpec

DEFAULT_DYNAMIC = 16  # size given to a dynamic non-batch dimension when inputs are generated
MEMORY_ENV = "EDGEKIT_MEMORY_LIMIT"  # bytes (or e.g. 8G) that one set of arrays may take; default: half of free RAM
_NPY_MAGIC, _ZIP_MAGIC = b"\x93NUMPY", b"PK\x03\x04"
_SAVE_HINT = "save numeric arrays with numpy.save / numpy.savez, e.g. numpy.asarray(x, dtype=numpy.float32)"


def human_bytes(n: int) -> str:
    x = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if x < 1024 or unit == "PiB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return f"{n} B"


def nbytes(shape, dtype) -> int:
    """Bytes an array of this shape and dtype needs (Python ints: no overflow for huge declared shapes)."""
    n = 1
    for d in shape:
        n *= int(d)
    return n * np.dtype(dtype).itemsize


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    for name in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):  # macOS has only the total
        try:
            return os.sysconf(name) * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            continue
    return None


def memory_limit() -> tuple[int | None, str]:
    """The bytes one set of arrays may take, and where that figure comes from."""
    raw = os.environ.get(MEMORY_ENV, "").strip()
    if raw:
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(raw[-1:].upper(), 1)
        try:
            return int(float(raw[:-1] if mult > 1 else raw) * mult), MEMORY_ENV
        except ValueError:
            raise InputError(f"cannot read {MEMORY_ENV}={raw!r}", "give a number of bytes, e.g. 8G or 500M") from None
    avail = _available_memory()
    return (None, "unknown") if avail is None else (avail // 2, "half the available memory")


def check_memory(need: int, what: str) -> None:
    """Refuse, before allocating, data that would need more than `memory_limit()`."""
    limit, source = memory_limit()
    if limit is not None and need > limit:
        raise InputError(f"{what} would need {human_bytes(need)} of memory, more than the {human_bytes(limit)} "
                         f"allowed ({source})",
                         f"use fewer samples or smaller shapes; set {MEMORY_ENV}=BYTES to allow more")


def _header(f, where: str) -> tuple[tuple[int, ...], np.dtype]:
    from numpy.lib import format as fmt

    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _fortran, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            from numpy.lib._format_impl import _read_array_header  # version 3.0 (utf-8 field names)

            shape, _fortran, dtype = _read_array_header(f, version)
    except (ValueError, OSError, EOFError, ImportError, SyntaxError) as e:
        raise InputError(f"{where} is not a readable numpy array: {str(e).splitlines()[0][:200] if str(e) else e}",
                         _SAVE_HINT) from e
    if dtype.hasobject:
        raise InputError(f"{where} holds Python objects (dtype=object), which edgekit does not load: unpickling "
                         "can run code", _SAVE_HINT)
    return tuple(int(d) for d in shape), dtype


def array_headers(path: str | Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{name: (shape, dtype)} of every array in a .npy (name '') or .npz file, read from the headers only;
    refuses object arrays, files that are neither, and arrays that declare more data than the file holds."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(6)
            if head.startswith(_NPY_MAGIC):
                f.seek(0)
                shape, dtype = _header(f, p.name)
                held = os.fstat(f.fileno()).st_size - f.tell()
                out = {"": (shape, dtype)}
                sizes = {"": held}
            elif head.startswith(_ZIP_MAGIC):
                out, sizes = {}, {}
                with zipfile.ZipFile(f) as z:
                    for info in z.infolist():
                        if info.is_dir():
                            continue
                        name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                        with z.open(info) as m:
                            out[name] = _header(m, f"{p.name}: array '{name}'")
                            sizes[name] = info.file_size - m.tell()
            else:
                raise InputError(f"{p.name} is not a .npy or .npz file", _SAVE_HINT)
    except FileNotFoundError:
        raise InputError(f"no such file: {p}", "pass an existing .npz or .npy file") from None
    except IsADirectoryError:
        raise InputError(f"{p} is a folder, not a .npz or .npy file", "pass an existing .npz or .npy file") from None
    except (OSError, zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError) as e:  # Runtime: encrypted
        raise InputError(f"cannot read {p.name}: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}",
                         _SAVE_HINT) from e
    for name, (shape, dtype) in out.items():
        need = nbytes(shape, dtype)
        if need > sizes[name]:
            what = f"{p.name}: array '{name}'" if name else p.name
            check_memory(need, f"{what} (shape {list(shape)}, {dtype.name})")
            raise InputError(f"{what} declares shape {list(shape)} {dtype.name} ({human_bytes(need)}) but holds "
                             f"{human_bytes(max(sizes[name], 0))}: the file is truncated or damaged", _SAVE_HINT)
    return out


def check_array_file(path: str | Path, names=None, mmap: bool = False, exclude=()) -> dict:
    """Check an array file before loading: the headers (`array_headers`) and, unless it will be memory-mapped,
    that the arrays named (default: all but `exclude`) fit in memory together. Returns the headers."""
    heads = array_headers(path)
    if not mmap:
        keep = [k for k in heads if (names is None or k in names) and k not in exclude]
        total = sum(nbytes(*heads[k]) for k in keep)
        check_memory(total, f"loading {Path(path).name} ({', '.join(repr(k) for k in keep if k) or 'one array'})")
    return heads


def read_arrays(path: str | Path, specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """Read `.npz` (keys = input names; a `labels` key is ignored) or `.npy` (single-input models)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such input file: {p}", "pass an existing .npz or .npy file")
    names = [s.name for s in specs]
    heads = check_array_file(p, exclude=("labels",))
    try:
        if "" in heads:  # a .npy file
            arr = np.load(p, allow_pickle=False)
            if len(names) != 1:
                raise InputError(f"{p.name} holds one array but the model has {len(names)} inputs ({', '.join(names)})",
                                 "use an .npz file keyed by input name")
            return {names[0]: arr}
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files if k != "labels"}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, MemoryError) as e:
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
    plan, notes = [], []
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
        try:
            kind = np.dtype(dtype).kind if dtype not in ("str", "string") else "U"
        except TypeError:  # a dtype numpy does not know (e.g. bfloat16)
            kind = "?"
        if kind not in "fiub":
            raise InputError(f"input '{s.name}' has dtype {s.dtype}; random data cannot be made for it",
                             "pass real inputs with --input FILE.npz")
        plan.append((s, shape, dtype, kind))
    # the arrays, plus the 8-byte-per-element draw the largest one is made from
    need = sum(nbytes(shape, dtype) for _, shape, dtype, _ in plan) + max(
        (nbytes(shape, np.float64) for _, shape, _, _ in plan), default=0)
    check_memory(need, "generated inputs (" + ", ".join(f"{s.name} {shape}" for s, shape, _, _ in plan) + ")")
    out = {}
    for s, shape, dtype, kind in plan:
        if kind == "f":
            x = rng.standard_normal(shape).astype(dtype)
        elif kind in "iu" and s.quantized:
            info = np.iinfo(dtype)
            x = rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
        elif kind in "iu":
            x = rng.integers(0, 10, size=shape).astype(dtype)
        else:
            x = rng.integers(0, 2, size=shape).astype(bool)
        out[s.name] = x
    return out, notes
