"""What detection checks before any runtime sees a model: its files stay inside it, and its name tells the truth.

Called from ``edgekit.formats.detect``, so every command and API gets these checks; stdlib only (no framework is
imported to detect a format).

- A folder model (SavedModel, .mlpackage) or an OpenVINO IR may not hold a symlink that resolves outside the model's
  folder: a ``model.bin`` linked to a private key was read as weights. Links inside the folder are fine.
- An .mlpackage's Manifest.json item paths are relative and resolve inside its Data folder.
- A zip model (.keras, .pt, .pt2) may not hold a member with an absolute path, a ``..`` component or a symlink entry.
- A file named like a format that runs no code (.keras, .h5, .tflite, .onnx, ...) may not hold one that does (a
  PyTorch pickle, TorchScript, a .pt2 program): trust is given to a file by its content, and a ``.keras`` that is
  really a pickle would otherwise be unpickled under a trust meant for something else.

ONNX external data is checked in ``edgekit.formats.onnx_scan.check_external_data`` and SavedModel ops in
``edgekit.formats.savedmodel_scan`` (both at load time); see docs/TRUST.md.
"""

from __future__ import annotations

import json
import ntpath
import os
import posixpath
import stat
import zipfile
from pathlib import Path

from .errors import ModelFileError

_LINK_HINT = "replace the link with a copy of the file inside the model's folder, if you trust it"


def _inside(folder: str, target: str) -> bool:
    return os.path.commonpath([folder, target]) == folder


def unsafe_relative(name: str) -> str | None:
    """Why ``name`` (a path stored inside a model) is not a plain relative path; None when it is."""
    unified = name.replace("\\", "/")
    if not name:
        return "is empty"
    if "\x00" in name:
        return "contains a NUL byte"
    if posixpath.isabs(unified) or ntpath.isabs(name) or ntpath.splitdrive(name)[0]:
        return "is an absolute path"
    if ".." in unified.split("/"):
        return "escapes with '..'"
    return None


def check_links(folder: Path, kind: str) -> None:
    """Refuse a symlink anywhere under ``folder`` (a folder model) that resolves outside it."""
    real = os.path.realpath(folder)
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            p = os.path.join(root, name)
            if os.path.islink(p):
                target = os.path.realpath(p)
                if not _inside(real, target):
                    rel = os.path.relpath(p, folder)
                    raise ModelFileError(f"{rel} in the {kind} {folder.name} is a symlink to {target}, outside the "
                                         "model's folder; edgekit reads only files inside a model", _LINK_HINT)


def check_ir(xml: Path, bin_path: Path, kind: str = "OpenVINO IR") -> None:
    """The IR's .xml and .bin (an NCNN model's .param and .bin) resolve inside the first file's folder (a .bin
    linked elsewhere is refused)."""
    folder = os.path.realpath(xml.parent)
    for f in (xml, bin_path):
        target = os.path.realpath(f)
        if not _inside(folder, target):
            raise ModelFileError(f"{kind} file {f.name} is a symlink to {target}, outside the model's folder "
                                 f"{folder}; edgekit reads only files inside a model", _LINK_HINT)


def check_mlpackage(pkg: Path) -> None:
    """Manifest.json item paths are relative and resolve inside Data/; no symlink leaves the package."""
    check_links(pkg, "Core ML package")
    try:
        manifest = json.loads((pkg / "Manifest.json").read_bytes())
    except (ValueError, OSError) as e:
        raise ModelFileError(f"the Core ML package {pkg.name} has a corrupt Manifest.json: {e}") from None
    entries = manifest.get("itemInfoEntries", {}) if isinstance(manifest, dict) else None
    if not isinstance(entries, dict):
        raise ModelFileError(f"the Core ML package {pkg.name} has a corrupt Manifest.json (no itemInfoEntries map)")
    data = os.path.realpath(pkg / "Data")
    for entry in entries.values():
        path = entry.get("path") if isinstance(entry, dict) else None
        why = unsafe_relative(path) if isinstance(path, str) else "is not a string"
        if why is None and not _inside(data, os.path.realpath(os.path.join(data, path))):
            why = "resolves outside the package"
        if why is not None:
            raise ModelFileError(f"the Core ML package {pkg.name} lists the item path {path!r}, which {why}; "
                                 "Manifest.json paths must name files inside the package's Data folder",
                                 "re-save the model with coremltools; do not load a package edited by hand")


def check_zip_members(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    """No member with an absolute path, a '..' component or a symlink entry."""
    for info in infos:
        why = unsafe_relative(info.filename)
        if why is None and stat.S_ISLNK(info.external_attr >> 16):
            why = "is a symlink entry"
        if why is not None:
            raise ModelFileError(f"{path.name} holds the member {info.filename!r}, which {why}; edgekit does not "
                                 "load archives whose members could point outside them",
                                 "re-save the model with its own framework")


_CODE_FORMATS = {"torch-pickle": "a PyTorch pickle", "torchscript": "a TorchScript program",
                 "torch-export": "a torch.export program", "pickle": "a Python pickle"}


def check_claim(path: Path, claimed: str | None, found: str) -> None:
    """Refuse a file whose extension claims a format that runs no code (``claimed``, a Format value) but whose
    content is one that does (``found``: a Format value or "pickle"), whatever trust was given."""
    if claimed is None or claimed in _CODE_FORMATS or found not in _CODE_FORMATS:
        return
    ext = ".pt2" if found == "torch-export" else ".pt"
    raise ModelFileError(
        f"{path.name} is named {path.suffix} ({claimed}, which runs no code) but holds {_CODE_FORMATS[found]}, "
        "which runs code when loaded; edgekit will not load it under that name, even with --trust-code",
        f"rename it to {ext} if you trust it and pass --trust-code")


# why loading each code-running format can run code (the one wording every refusal uses)
_WHY = {"torch-export": "a .pt2 ExportedProgram is unpickled when loaded, which can run code",
        "torchscript": "a TorchScript file holds code that runs when the model is loaded and called",
        "torch-pickle": "a pickled PyTorch file runs arbitrary Python code when loaded"}


def needs_trust(source) -> str | None:
    """Why loading ``source`` (a ModelSource) can run code from the file, or None when it cannot: the PyTorch
    formats (unpickling, TorchScript), and a SavedModel whose graph holds file, network or Python ops. For callers
    that decide trust per file before loading (the CLI); loading itself goes through ``require_trust``."""
    from .formats import Format

    if source.format.value in _WHY:
        return _WHY[source.format.value]
    if source.format is Format.SAVEDMODEL:
        from edgekit.errors import EdgekitError
        from edgekit.formats.savedmodel_scan import scan_savedmodel

        try:
            findings = scan_savedmodel(source.path).findings
        except EdgekitError as e:  # unreadable or unscannable: the loader reports it; treat it as needing trust
            return e.message
        if findings:
            return f"its graph runs {findings[0].op} ({findings[0].why}) in {findings[0].where}"
    return None


def require_trust(source, trust_code: bool, action: str = "load") -> None:
    """The one trust check, run before any loader or converter opens a file the user gave: the PyTorch formats
    need ``trust_code``; a SavedModel needs it when its graph holds file, network or Python ops (and its asset paths
    must stay inside it, trust or not). Every runner (``Runner.load``), convert and the converter edges call this."""
    from .errors import TrustRequiredError
    from .formats import Format

    if source.format is Format.TORCH_PICKLE:  # weights only, or a class that exists nowhere: say so, trust or not
        from edgekit.errors import ModelFileError
        from edgekit.formats.torch_pickle_scan import not_a_model

        found = not_a_model(source.path)
        if found:
            raise ModelFileError(*found)
    why = _WHY.get(source.format.value)
    if why is not None and not trust_code:
        raise TrustRequiredError(f"refusing to {action} {source.path.name} without trust: {why}")
    if source.format is Format.SAVEDMODEL:
        from edgekit.formats.savedmodel_scan import check_savedmodel

        check_savedmodel(source.path, trust_code)
