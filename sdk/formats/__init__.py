"""Model formats, recognised by content rather than by file extension alone."""

from __future__ import annotations

import enum
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import trust
from ..errors import ModelFileError, UnsupportedFormatError


class Format(str, enum.Enum):
    KERAS = "keras"  # Keras 3 .keras zip
    KERAS_H5 = "keras-h5"  # legacy HDF5
    SAVEDMODEL = "savedmodel"
    TORCH_EXPORT = "torch-export"  # torch.export ExportedProgram .pt2
    TORCHSCRIPT = "torchscript"
    TORCH_PICKLE = "torch-pickle"  # torch.save of a module or state dict: unpickling runs code
    ONNX = "onnx"
    TFLITE = "tflite"
    COREML = "coreml"  # .mlpackage folder or .mlmodel spec
    OPENVINO_IR = "openvino-ir"
    EXECUTORCH = "executorch"  # ExecuTorch program .pte (flatbuffer, identifier ET12)
    NCNN = "ncnn"  # NCNN .param text (magic 7767517) + .bin weights

    def __str__(self) -> str:
        return self.value


@dataclass
class ModelSource:
    """A model on disk: the path edgekit loads, its format and the files that belong to it."""

    path: Path
    format: Format
    files: list[Path] = field(default_factory=list)

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files if f.is_file())


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
_KNOWN_EXT = {
    ".tflite": Format.TFLITE, ".lite": Format.TFLITE, ".onnx": Format.ONNX, ".keras": Format.KERAS,
    ".h5": Format.KERAS_H5, ".hdf5": Format.KERAS_H5, ".pt2": Format.TORCH_EXPORT, ".pt": Format.TORCHSCRIPT,
    ".pth": Format.TORCH_PICKLE, ".mlmodel": Format.COREML, ".xml": Format.OPENVINO_IR,
    ".pte": Format.EXECUTORCH, ".param": Format.NCNN,
}
NCNN_MAGIC = b"7767517"


def _all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _detect_dir(p: Path) -> ModelSource:
    if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file():
        trust.check_links(p, "SavedModel")  # its graph ops are scanned at load (sdk/formats/savedmodel_scan.py)
        return ModelSource(p, Format.SAVEDMODEL, _all_files(p))
    if (p / "Manifest.json").is_file() and (p / "Data").is_dir():
        trust.check_mlpackage(p)
        return ModelSource(p, Format.COREML, _all_files(p))
    params = [x for x in sorted(p.glob("*.param")) if _is_ncnn_param(x)]
    if len(params) == 1:
        return _ncnn_source(params[0])
    irs = [x for x in sorted(p.glob("*.xml")) if _is_ir_xml(x)]
    if len(irs) == 1:
        return _ir_source(irs[0])
    if len(irs) > 1:
        raise UnsupportedFormatError(
            f"folder {p} holds {len(irs)} OpenVINO IR models ({', '.join(x.name for x in irs)})",
            "pass the .xml file of the model you mean",
        )
    if len(params) > 1:
        raise UnsupportedFormatError(f"folder {p} holds {len(params)} NCNN models ({', '.join(x.name for x in params)})",
                                     "pass the .param file of the model you mean")
    raise UnsupportedFormatError(f"folder {p} holds no model (no saved_model.pb, Manifest.json, IR .xml or NCNN .param)")


def _is_ncnn_param(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            return f.read(len(NCNN_MAGIC) + 1).rstrip() == NCNN_MAGIC
    except OSError:
        return False


def _ncnn_weights(param: Path) -> Path:
    """model.ncnn.param -> model.ncnn.bin (pnnx's names), model.param -> model.bin."""
    return param.with_suffix(".bin")


def _ncnn_source(param: Path) -> ModelSource:
    bin_path = _ncnn_weights(param)
    if not bin_path.is_file():
        raise ModelFileError(f"NCNN model {param.name} has no weights file {bin_path.name} beside it",
                             "copy the .bin file written with the .param into the same folder")
    trust.check_ir(param, bin_path, "NCNN model")  # as an IR pair: both files inside the model's folder
    return ModelSource(param, Format.NCNN, [param, bin_path])


def _is_ir_xml(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            head = f.read(1024)
    except OSError:
        return False
    return b"<net" in head


def _ir_source(xml: Path) -> ModelSource:
    bin_path = xml.with_suffix(".bin")
    if not bin_path.is_file():
        raise ModelFileError(
            f"OpenVINO IR {xml.name} has no weights file {bin_path.name} beside it",
            "copy the .bin file that was saved with the .xml into the same folder",
        )
    trust.check_ir(xml, bin_path)
    return ModelSource(xml, Format.OPENVINO_IR, [xml, bin_path])


def _detect_zip(p: Path) -> Format:
    try:
        with zipfile.ZipFile(p) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ModelFileError(f"{p.name} is a damaged zip archive: {e}") from e
    trust.check_zip_members(p, infos)
    names = [i.filename for i in infos]
    base = {n.rsplit("/", 1)[-1] for n in names}
    if "config.json" in base and ("model.weights.h5" in base or "metadata.json" in base):
        return Format.KERAS
    if any(n.endswith("models/model.json") or n.endswith("/archive_format") for n in names):
        return Format.TORCH_EXPORT
    if any("/code/" in n for n in names) or "constants.pkl" in base:
        return Format.TORCHSCRIPT
    if "data.pkl" in base:
        return Format.TORCH_PICKLE
    raise UnsupportedFormatError(f"{p.name} is a zip archive but not a Keras, PyTorch or other known model")


def _onnx_external_files(p: Path) -> list[Path]:
    """The files an ONNX model keeps weights in (external data), so a ModelSource lists all of its files (size,
    copies, what convert must not overwrite). Only when the scan passes; the runner reports a damaged or unsafe
    file in its own words."""
    from .onnx_scan import OnnxScanError, check_external_data, scan_onnx

    try:
        info = scan_onnx(p)
        check_external_data(info, p)
    except (OnnxScanError, OSError, ValueError):
        return []
    return list(dict.fromkeys(p.parent / loc for _tensor, loc in info.external_data))


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def detect(path: str | os.PathLike) -> ModelSource:
    """Recognise the model format of ``path`` from its content; raise a clear error otherwise."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelFileError(f"no such file or folder: {p}", "check the path")
    p = p.resolve()
    if p.is_dir():
        return _detect_dir(p)
    if p.name == "saved_model.pb":
        return _detect_dir(p.parent)
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise ModelFileError(f"cannot read {p}: {e.strerror}", "check the file's permissions") from e
    ext = p.suffix.lower()
    if not head:
        raise ModelFileError(f"{p.name} is empty (0 bytes)")

    from edgekit.formats.onnx_scan import looks_like_onnx
    from edgekit.formats.pte_fb import is_pte
    from edgekit.formats.tflite_fb import is_tflite

    if is_tflite(head):
        return ModelSource(p, Format.TFLITE, [p])
    if is_pte(head):
        return ModelSource(p, Format.EXECUTORCH, [p])
    if head.startswith(NCNN_MAGIC) and head[len(NCNN_MAGIC):len(NCNN_MAGIC) + 1] in (b"\n", b"\r", b" "):
        return _ncnn_source(p)
    if head.startswith(_HDF5_MAGIC):
        return ModelSource(p, Format.KERAS_H5, [p])
    claimed = _KNOWN_EXT.get(ext)
    if head.startswith(_ZIP_MAGIC):
        fmt = _detect_zip(p)
        trust.check_claim(p, claimed and claimed.value, fmt.value)  # a .keras that holds a pickle: refused
        return ModelSource(p, fmt, [p])
    if b"<net" in head[:1024] and (head.lstrip().startswith(b"<")):
        return _ir_source(p)
    if ext == ".bin" and p.with_suffix(".xml").is_file() and _is_ir_xml(p.with_suffix(".xml")):
        return _ir_source(p.with_suffix(".xml"))
    if ext == ".bin" and _is_ncnn_param(p.with_suffix(".param")):
        return _ncnn_source(p.with_suffix(".param"))
    if head[:1] == b"\x80":  # a pickle (protocol 2+) named like a format that runs no code is refused
        trust.check_claim(p, claimed and claimed.value, "pickle")
    if head[:1] == b"\x80" and ext in (".pt", ".pth", ".pkl", ".pickle", ".joblib", ".bin"):
        return ModelSource(p, Format.TORCH_PICKLE, [p])
    if looks_like_onnx(head):
        return ModelSource(p, Format.ONNX, [p, *_onnx_external_files(p)])
    if ext == ".mlmodel" and head[:1] == b"\x08":
        return ModelSource(p, Format.COREML, [p])
    if claimed is not None:
        raise ModelFileError(
            f"{p.name} has the extension of {_article(claimed.value)} {claimed.value} model but its content is not one "
            "(corrupt, truncated or a different kind of file)"
        )
    raise UnsupportedFormatError(f"{p.name} is not a model format edgekit recognises")
