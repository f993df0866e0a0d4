"""The tune artifact cache: a converted model is stored under ``output_dir/cache/<key>/`` where the key is the
sha256 of what decides its bytes (the source's content hash, the target, the conversion and compression options,
the calibration data's hash, edgekit's version). A configuration seen before reuses its files: a hit is a
directory lookup and a small JSON read, no conversion. Entries are written to a private folder and renamed into
place, so two workers sharing a cache never see half an entry."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

ENTRY = "entry.json"


def file_sha256(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def arrays_sha256(arrays: dict | None) -> str | None:
    """The hash of named arrays (calibration samples): names, dtypes, shapes and bytes."""
    if arrays is None:
        return None
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cache_key(source_sha: str, target: str, convert_kwargs: dict, calibration_sha: str | None) -> str:
    from edgekit import __version__

    spec = {"source": source_sha, "target": target, "convert": convert_kwargs, "calibration": calibration_sha,
            "edgekit": __version__}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


class ArtifactCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def get(self, key: str) -> dict | None:
        """The entry (its artifact path made absolute) or None."""
        entry = self.root / key / ENTRY
        try:
            data = json.loads(entry.read_text())
        except (OSError, ValueError):
            return None
        path = self.root / key / data["artifact"]
        if not path.exists():
            return None
        return {**data, "artifact": str(path)}

    def staging(self) -> Path:
        """A fresh private folder to convert into before ``put``."""
        p = self.root / f".tmp-{uuid.uuid4().hex}"
        p.mkdir(parents=True)
        return p

    def put(self, key: str, folder: Path, artifact: Path, info: dict) -> dict:
        """Move ``folder`` (holding ``artifact``) into place under ``key``; another worker's entry wins a race."""
        rel = Path(artifact).resolve().relative_to(Path(folder).resolve())
        (folder / ENTRY).write_text(json.dumps({**info, "artifact": str(rel)}, default=str))
        dest = self.root / key
        try:
            os.rename(folder, dest)
        except OSError:  # already there (another worker converted the same configuration): keep theirs
            shutil.rmtree(folder, ignore_errors=True)
        got = self.get(key)
        if got is None:
            raise OSError(f"the cache entry {dest} could not be written")
        return got
