"""Run the compression passes on a converted model: requires, run, ensures, and confinement.

Each pass runs in a fresh folder under ``out`` that is also its current directory and its temporary directory
(ONNX Runtime's pre-processing writes beside the caller; NNCF and ORT use ``tempfile``). After each pass:
``ensures`` checks it had an effect, and nothing appeared in or vanished from ``out``'s parent or the input's
folder, and the input itself is unchanged. Only then is the result moved into ``out`` (replacing a file of the
same name, which may be the input: compressing in place is safe), and the fresh folder is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from edgekit.errors import ConversionError

from .compress_base import CompressionPass, CompressOptions, compress_options, select


def run_passes(target, src: Path, options, out: Path) -> tuple[Path, list[str]]:
    """Apply the compression ``options`` ask for to the model at ``src``; write it to ``out / src.name``.
    Returns (path, notes). Nothing is written when a check refuses the options or the model."""
    src, out = Path(src), Path(out)
    copts = compress_options(options)
    passes = select(target, options)
    if not passes:
        raise ConversionError("no compression was asked for",
                              "set precision int8/int8-dynamic, weights_only_bits, palettize_bits or prune_sparsity")
    if passes[0].in_converter:
        raise ConversionError(f"{passes[0].name} is applied by the converter, not to a converted file",
                              "convert with the compression options instead")
    check_data(passes, copts)
    before = passes[0].inspect(src)
    for p in passes:
        p.requires_model(before, copts)

    out.mkdir(parents=True, exist_ok=True)
    watch = _Watch(src, out)
    work = Path(tempfile.mkdtemp(prefix=".edgekit-compress-", dir=out))
    notes: list[str] = []
    try:
        current, state = src, before
        for i, p in enumerate(passes):
            stage, scratch = work / f"{i}-{p.technique}", work / f"{i}-cwd"
            stage.mkdir()
            scratch.mkdir()
            with _confined(scratch):
                path, more = p.run(current, copts, stage)
            watch.check(p)
            after = p.inspect(path)
            p.ensures(state, after, copts)
            notes += more
            current, state = path, after
        notes += passes[-1].report(before, state)
        return _publish(current, out), notes
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_data(passes: list[CompressionPass], copts: CompressOptions) -> None:
    """The data a pass needs to calibrate is there (it is loaded after ``check_compression`` ran)."""
    for p in passes:
        if p.needs_calibration and not copts.calibration:
            raise ConversionError(f"{p.name} ({'static int8' if p.technique == 'int8' else p.technique}) needs "
                                  "calibration data",
                                  "pass representative samples (CLI: --calibration; in Python a list of feed dicts,"
                                  " one sample each), or use precision int8-dynamic for int8 weights")


def verify_file(target, path: Path, options) -> None:
    """``ensures`` of passes applied inside the converter (TFLite), on the file the route produced."""
    copts = compress_options(options)
    for p in select(target, options):
        if p.in_converter:
            p.ensures(None, p.inspect(Path(path)), copts)


def _publish(result: Path, out: Path) -> Path:
    """Move everything the last pass wrote (the model and its companions: .bin, external data) into ``out``."""
    final = out / result.name
    for entry in sorted(result.parent.iterdir()):
        dest = out / entry.name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.exists() or dest.is_symlink():
            dest.unlink()
        os.replace(entry, dest)
    return final


@contextlib.contextmanager
def _confined(folder: Path):
    """``folder`` as the current directory and the temporary directory while a pass runs."""
    cwd, tmp, env = os.getcwd(), tempfile.tempdir, os.environ.get("TMPDIR")
    os.chdir(folder)
    tempfile.tempdir = str(folder)
    os.environ["TMPDIR"] = str(folder)
    try:
        yield
    finally:
        os.chdir(cwd)
        tempfile.tempdir = tmp
        if env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = env


def _listing(folder: Path, skip: str | None) -> set[str]:
    try:
        return {p.name for p in folder.iterdir() if p.name != skip}
    except FileNotFoundError:
        return set()


def _signature(path: Path) -> list[tuple]:
    """Names and contents of a file or of every file under a folder (an .mlpackage): small files by digest
    (coremltools rewrites an unchanged Manifest.json when it opens a package), large ones by size and time."""
    import hashlib

    items = [path] if not path.is_dir() else sorted(path.rglob("*"))
    out = []
    for p in items:
        with contextlib.suppress(FileNotFoundError):
            if p.is_dir():
                continue
            st = p.stat()
            what = hashlib.sha256(p.read_bytes()).hexdigest() if st.st_size <= 1 << 20 else st.st_mtime_ns
            out.append((str(p.relative_to(path)) if p != path else "", st.st_size, what))
    return out


class _Watch:
    """What a pass must leave alone: the folder around ``out``, the input's folder, and the input."""

    def __init__(self, src: Path, out: Path):
        out = out.resolve()
        self.src = src.resolve()
        self.folders = {out.parent: out.name}
        if self.src.parent != out:
            self.folders[self.src.parent] = None
        self.before = {f: _listing(f, skip) for f, skip in self.folders.items()}
        self.src_sig = _signature(self.src)

    def check(self, p: CompressionPass) -> None:
        wrote: list[str] = []
        for f, skip in self.folders.items():
            now = _listing(f, skip)
            wrote += [f"created {f / n}" for n in sorted(now - self.before[f])]
            wrote += [f"deleted {f / n}" for n in sorted(self.before[f] - now)]
        if _signature(self.src) != self.src_sig:
            wrote.append(f"changed its input {self.src}")
        if wrote:
            raise ConversionError(f"{p.name} wrote outside its output folder: {'; '.join(wrote[:5])}",
                                  "this is an edgekit bug in that pass; please report it")
