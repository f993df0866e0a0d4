"""Files pushed to a device land in a content-addressed cache: ``ROOT/cache/<sha256>/<name>``, so a second run of
the same model or data copies nothing.

The address of a model is the sha256 over its files (relative path, size and each file's own sha256): an OpenVINO
IR's .xml and .bin, an ONNX model's external data and a folder's files travel together and keep their names, which
format detection on the device needs. A push writes into a temporary folder and renames it into place, so an
interrupted copy never leaves a half entry that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgekit.errors import InputError

from .registry import DeviceError, config_dir


@dataclass
class Pushed:
    local: Path
    remote: str  # the model's (or data file's) path on the device
    digest: str
    size: int  # bytes the entry holds
    copied: int  # bytes copied by this push (0: it was cached)


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgekit" / "file-hashes.json"


_MEMO: dict[str, str] = {}
MARGIN = 1 << 20  # free bytes a push leaves on the device (for the run's own outputs)


def _file_sha256(path: Path, memo: dict) -> str:
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    if key not in memo:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        memo[key] = h.hexdigest()
    return memo[key]


def members(path: Path) -> tuple[Path, list[tuple[str, Path]]]:
    """(base folder, [(path relative to base, file)]) of what a model or data path consists of."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"no such file or folder: {path}", "check the path")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return path.parent, [(str(p.relative_to(path.parent)), p) for p in files]
    out = [path]
    if path.suffix.lower() not in (".npz", ".npy"):
        from edgekit.errors import EdgekitError
        from edgekit.formats import detect

        try:
            src = detect(path)
            out += [Path(f) for f in src.files if Path(f) != path]
        except EdgekitError:
            pass  # the device's edgekit says what is wrong with it
    base = path.parent
    rel = []
    for f in out:
        try:
            rel.append((str(f.resolve().relative_to(base.resolve())), f))
        except ValueError:
            raise InputError(f"{f} (part of {path}) lies outside the model's folder",
                             "keep a model's files in its folder (docs/TRUST.md)") from None
    return base, rel


def digest(path: Path) -> tuple[str, list[tuple[str, Path, int]]]:
    """The content address of ``path`` and its members (relative path, file, size)."""
    memo = _load_memo()
    _, files = members(path)
    h = hashlib.sha256()
    listed = []
    for rel, f in sorted(files):
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0{_file_sha256(f, memo)}\n".encode())
        listed.append((rel, f, size))
    _save_memo(memo)
    return h.hexdigest(), listed


def _load_memo() -> dict:
    if not _MEMO:
        try:
            _MEMO.update(json.loads(_cache_file().read_text()))
        except (OSError, ValueError):
            pass
    return _MEMO


def _save_memo(memo: dict) -> None:
    try:
        f = _cache_file()
        f.parent.mkdir(parents=True, exist_ok=True)
        items = list(memo.items())[-2000:]  # bounded
        tmp = f.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(dict(items)))
        os.replace(tmp, f)
    except OSError:
        pass  # a memo, not state


def push(conn, path: Path, progress: Callable[[int, int], None] | None = None) -> Pushed:
    """Copy ``path`` (a model or data file, or a folder) into the device's cache unless it is there already.
    ``progress(bytes_done, bytes_total)`` is called as bytes go."""
    path = Path(path).expanduser()
    key, files = digest(path)
    total = sum(s for _, _, s in files)
    cache = f"{conn.root}/cache"
    entry = f"{cache}/{key}"
    remote = f"{entry}/{path.name}"
    if conn.exists(f"{entry}/.complete"):
        if progress is not None:
            progress(total, total)
        return Pushed(path, remote, key, total, 0)
    free = conn.free_bytes(next((p for p in (cache, conn.root) if conn.exists(p)), "."))
    if free is not None and free < total + MARGIN:
        raise DeviceError(f"device '{conn.device.name}': not enough free disk for {path.name} "
                          f"({total / 1e6:.1f} MB needed, {free / 1e6:.1f} MB free)",
                          f"free space on the device, e.g. remove {cache}")
    tmp = f"{cache}/.tmp-{key[:16]}-{uuid.uuid4().hex[:8]}"
    done = [0]

    def step(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], total)

    conn.makedirs(tmp)
    try:
        for rel, f, _ in files:
            parent = os.path.dirname(rel)
            if parent:
                conn.makedirs(f"{tmp}/{parent}")
            conn.put(f, f"{tmp}/{rel}", progress=step)
        conn.write_bytes(f"{tmp}/.complete", key.encode())
        if conn.exists(entry) and not conn.exists(f"{entry}/.complete"):
            conn.remove_tree(entry)  # a broken entry (from an edgekit that did not rename atomically)
        if not conn.exists(entry):  # else another run placed the same content meanwhile
            conn.rename(tmp, entry)
    finally:
        if conn._conn is not None and conn.exists(tmp):
            conn.remove_tree(tmp)
    return Pushed(path, remote, key, total, done[0])
