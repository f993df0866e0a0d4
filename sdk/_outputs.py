"""Where `edgekit convert` may write: a fresh private work folder, and the output folder without loss.

Every tool writes into a private staging folder made for this run; a target's files reach the output folder
only when it did not fail, and never over the source or over a file edgekit did not create (a file is edgekit's
when the manifest.json of an earlier run in that folder lists it). On a clash the target gets a new name and a
note says which. Nothing is deleted that this run did not create, and symlinks are never followed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import InputError
from .manifest import NAME as MANIFEST


def work_folder(out: Path) -> Path:
    """A new, private (0700) folder inside ``out`` for this run's intermediate files."""
    return Path(tempfile.mkdtemp(prefix=".edgekit-work-", dir=out))


@contextlib.contextmanager
def working_in(folder: Path):
    """Run a tool with ``folder`` as the current directory: some write beside the caller (ONNX Runtime's
    quantization pre-processing leaves sym_shape_infer_temp.onnx and <uuid>.data in the current directory)."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def owned_names(out: Path) -> set[str]:
    """Names in ``out`` that an earlier `edgekit convert` wrote (from its manifest.json). A manifest.json that is
    not edgekit's is refused before any work starts, so it cannot be overwritten."""
    mf = out / MANIFEST
    if not mf.exists() and not mf.is_symlink():
        return set()
    try:
        if mf.is_symlink():
            raise ValueError("a symlink")
        data = json.loads(mf.read_text())
        targets = data["targets"]
        assert isinstance(targets, list) and isinstance(data["source"], dict)
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as e:
        raise InputError(f"{mf} exists and is not a manifest edgekit wrote ({str(e).splitlines()[0][:80]})",
                         "choose another --output-dir, or move that file away") from None
    names = {MANIFEST}
    src = data["source"].get("path")
    if isinstance(src, str) and Path(src).parent.name == "_source":  # an in-memory model edgekit saved
        names.add(f"_source/{Path(src).name}")
    for t in targets:
        if isinstance(t, dict):
            names.update(n for n in t.get("files") or [] if isinstance(n, str) and "/" not in n)
            if isinstance(t.get("path"), str):
                names.add(Path(t["path"]).name)
    return names


def place(staged: Path, main: Path, out: Path, protected: set[Path], owned: set[str], tag: str
          ) -> tuple[Path, list[str], list[str]]:
    """Move the entries of ``staged`` (``main`` is the artifact edgekit loads) into ``out``.

    Returns (the new main path, the entry names written, notes). An entry whose name exists in ``out`` is
    replaced only when an earlier edgekit run wrote it and it is not part of the source; otherwise every entry
    is renamed ``<stem>.<tag>[-k]<rest>`` (IR .xml/.bin stay paired; an ONNX file with external data cannot be
    renamed, since its data location is written inside it, and is refused)."""
    entries = sorted(staged.iterdir(), key=lambda p: p.name)
    stem = main.name.split(".", 1)[0] if main.is_dir() else main.stem

    def blocked(name: str) -> bool:
        dest = out / name
        if not (dest.exists() or dest.is_symlink()):
            return False
        return dest.resolve() in protected or dest.is_symlink() or name not in owned

    notes: list[str] = []
    clash = [e.name for e in entries if blocked(e.name)]
    if clash:
        if main.suffix == ".onnx" and len(entries) > 1:
            raise InputError(f"writing the onnx target would replace {', '.join(clash)} in {out}, which edgekit did "
                             "not create (or which is the source)",
                             "choose another --output-dir; ONNX external data cannot be renamed safely")
        for k in range(0, 1000):
            new_stem = f"{stem}.{tag}" + (f"-{k}" if k else "")
            renamed = {e.name: new_stem + e.name[len(stem):] if e.name.startswith(stem) else e.name for e in entries}
            if not any(blocked(n) for n in renamed.values()):
                break
        else:
            raise InputError(f"no free name for the {tag} target in {out}", "choose another --output-dir")
        for e in entries:
            if renamed[e.name] != e.name:
                e.rename(staged / renamed[e.name])
        notes.append(f"wrote {renamed[main.name]} instead of {main.name}: {', '.join(clash)} already in {out} and "
                     "not written by edgekit (or the source), so it was left untouched")
        main = staged / renamed[main.name]
        entries = sorted(staged.iterdir(), key=lambda p: p.name)
    written = []
    for e in entries:
        dest = out / e.name
        if dest.is_symlink() or dest.is_file():
            dest.unlink()  # an earlier edgekit output (a symlink is removed, never followed)
        elif dest.is_dir():
            shutil.rmtree(dest)
        shutil.move(str(e), str(dest))
        written.append(e.name)
    return out / main.name, written, notes
