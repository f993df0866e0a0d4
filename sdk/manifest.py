"""What `edgekit convert` recorded beside the files it wrote (manifest.json), read back when one of them loads.

The manifest knows things a file may not: the source's input order (TFLite and SavedModel signatures key inputs
by name, so their files list them alphabetically) and the precision the file was made for. An entry is used
only when it names this file and its size still matches, so an edited or replaced file is not misdescribed.
"""

from __future__ import annotations

import json
from pathlib import Path

NAME = "manifest.json"
_MAX_BYTES = 4 << 20  # a manifest is small; never read a huge file that happens to be called manifest.json


def entry_for(path: Path, size_bytes: int | None = None) -> dict | None:
    """The manifest's target entry for the model at ``path`` (the file or folder edgekit loads), or None."""
    path = Path(path)
    mf = path.parent / NAME
    try:
        if not mf.is_file() or mf.stat().st_size > _MAX_BYTES:
            return None
        data = json.loads(mf.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("targets"), list):
        return None
    for t in data["targets"]:
        if not isinstance(t, dict) or not isinstance(t.get("path"), str):
            continue
        if Path(t["path"]).name != path.name:
            continue
        if size_bytes is not None and t.get("size_bytes") not in (None, size_bytes):
            return None  # the file changed since edgekit wrote it
        return t
    return None


def input_order(entry: dict | None, names: list[str]) -> list[str] | None:
    """The recorded input order when it names exactly ``names``, else None."""
    order = (entry or {}).get("inputs")
    if isinstance(order, list) and all(isinstance(n, str) for n in order) and sorted(order) == sorted(names):
        return list(order)
    return None
