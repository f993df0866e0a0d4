"""Detection keeps a model's reads inside the model and trusts a file by its content, not its name.

- An IR .bin that is a symlink out of the model's folder was read as weights (here: a "private key" that holds the
  real weights, so the runtime would load it without complaint); a SavedModel's variables and an .mlpackage's files
  linked outside are refused the same way, as are Manifest.json paths that are absolute or climb out with '..'.
- A .keras zip with an absolute member, a '..' member or a symlink entry is refused.
- A file named .keras/.h5/.onnx/.tflite that holds a PyTorch pickle, TorchScript or a .pt2 is refused even with
  trust: trust given for one kind of file must not unpickle another.
"""

from __future__ import annotations

import json
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit import Format
from edgekit.errors import EdgekitError, ModelFileError


def _cli(*args):
    from typer.testing import CliRunner

    from edgekit.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _refused(res, *fragments):
    info = f"exit {res.exit_code}\n{res.output[-2000:]}\n{res.exception!r}"
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit), info
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    hints = [ln for ln in res.stderr.splitlines() if ln.startswith("hint: ")]
    assert len(errors) == 1 and len(hints) == 1, info
    for f in fragments:
        assert f.lower() in errors[0].lower(), info
    return errors[0], hints[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A Keras model (.keras, SavedModel), an OpenVINO IR, a Core ML package and TorchScript, built here."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from edgekit._offline import vendor_telemetry_off
    except ImportError:  # a tree without the telemetry guard
        from contextlib import nullcontext as vendor_telemetry_off

    with vendor_telemetry_off():  # importing openvino sends a usage event otherwise
        import openvino as ov
    import torch
    from model_factory import keras_models

    d = tmp_path_factory.mktemp("trust")
    cnn = keras_models()["cnn"]
    cnn.save(d / "cnn.keras")
    cnn.export(str(d / "cnn_sm"), format="tf_saved_model", verbose=False)
    # an IR built from OpenVINO's opsets
    rng = np.random.default_rng(0)
    x = ov.opset13.parameter([1, 8, 8, 1], ov.Type.f32, name="image")
    w = ov.opset13.constant(rng.standard_normal((64, 10)).astype(np.float32))
    flat = ov.opset13.reshape(x, ov.opset13.constant(np.array([1, 64], np.int64)), special_zero=False)
    y = ov.opset13.softmax(ov.opset13.matmul(flat, w, False, False), 1)
    with vendor_telemetry_off():
        ov.save_model(ov.Model([y], [x], "cnn"), str(d / "ir" / "cnn.xml"), compress_to_fp16=False)

    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2).eval()
    torch.jit.trace(lin, torch.zeros(1, 3)).save(str(d / "lin_ts.pt"))
    torch.export.save(torch.export.export(lin, (torch.zeros(1, 3),)), str(d / "lin.pt2"))

    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3))])
    def prog(x):
        return mb.relu(x=x)

    ct.convert(prog, convert_to="mlprogram").save(str(d / "relu.mlpackage"))
    return d


def _x():
    return np.random.default_rng(0).random((1, 8, 8, 1), dtype=np.float32)


# --------------------------------------------------------------------------------------- symlinks out of a model
def test_ir_bin_linked_outside_the_folder_is_refused(files, tmp_path):
    key = tmp_path / "home" / "id_rsa"                     # a private file that happens to parse as the weights
    key.parent.mkdir()
    shutil.copy(files / "ir" / "cnn.bin", key)
    model = tmp_path / "download"
    model.mkdir()
    shutil.copy(files / "ir" / "cnn.xml", model / "cnn.xml")
    (model / "cnn.bin").symlink_to(key)
    for given in (model / "cnn.xml", model):
        with pytest.raises(ModelFileError, match="symlink.*outside"):
            edgekit.detect(given)
    with pytest.raises(EdgekitError):  # the link itself resolves to a file that is no model
        edgekit.detect(model / "cnn.bin")
    err, hint = _refused(_cli("inspect", model / "cnn.xml"), "cnn.bin", "outside")
    _refused(_cli("run", model / "cnn.xml", "--random"), "outside")

    # a link that stays inside the folder is fine, and so is a link to the whole model (resolved first)
    inside = tmp_path / "inside"
    (inside / "weights").mkdir(parents=True)
    shutil.copy(files / "ir" / "cnn.xml", inside / "cnn.xml")
    shutil.copy(files / "ir" / "cnn.bin", inside / "weights" / "real.bin")
    (inside / "cnn.bin").symlink_to(inside / "weights" / "real.bin")
    (tmp_path / "link.xml").symlink_to(files / "ir" / "cnn.xml")
    with edgekit.load(inside / "cnn.xml") as a, edgekit.load(tmp_path / "link.xml") as b:
        assert np.array_equal(a.predict(_x())[a.outputs[0].name], b.predict(_x())[b.outputs[0].name])


def test_savedmodel_variables_linked_outside_are_refused(files, tmp_path):
    sm = tmp_path / "sm"
    shutil.copytree(files / "cnn_sm", sm)
    data = next((sm / "variables").glob("variables.data-*"))
    outside = tmp_path / "elsewhere.data"
    shutil.move(data, outside)
    data.symlink_to(outside)
    with pytest.raises(ModelFileError, match="variables.*symlink.*outside"):
        edgekit.detect(sm)
    _refused(_cli("inspect", sm), "symlink", "outside")
    # the same link inside the folder loads
    shutil.move(outside, sm / "variables" / "kept.data")
    data.unlink()
    data.symlink_to(sm / "variables" / "kept.data")
    assert edgekit.detect(sm).format is Format.SAVEDMODEL


def _package_copy(files, tmp_path, name):
    pkg = tmp_path / name
    shutil.copytree(files / "relu.mlpackage", pkg, symlinks=True)
    return pkg


def _edit_manifest(pkg, path):
    m = json.loads((pkg / "Manifest.json").read_text())
    entry = next(iter(m["itemInfoEntries"].values()))
    entry["path"] = path
    (pkg / "Manifest.json").write_text(json.dumps(m))


def test_mlpackage_paths_and_links_stay_inside(files, tmp_path):
    assert edgekit.detect(files / "relu.mlpackage").format is Format.COREML
    for bad, why in [("/etc/hostname", "absolute"), ("../../secret.bin", "'..'"),
                     ("com.apple.CoreML/../../../x", "'..'")]:
        pkg = _package_copy(files, tmp_path, f"p{abs(hash(bad))}.mlpackage")
        _edit_manifest(pkg, bad)
        with pytest.raises(ModelFileError, match=f"item path.*{why}"):
            edgekit.detect(pkg)
    # a path that is relative but resolves outside through a linked folder
    pkg = _package_copy(files, tmp_path, "linked_dir.mlpackage")
    (tmp_path / "outside").mkdir()
    (pkg / "Data" / "com.apple.CoreML").rename(tmp_path / "outside" / "com.apple.CoreML")
    (pkg / "Data" / "com.apple.CoreML").symlink_to(tmp_path / "outside" / "com.apple.CoreML")
    with pytest.raises(ModelFileError, match="symlink.*outside"):
        edgekit.detect(pkg)
    _refused(_cli("inspect", pkg), "linked_dir.mlpackage", "outside")


# ----------------------------------------------------------------------------------------------- zip members
def _keras_with(files, tmp_path, name, info: zipfile.ZipInfo, data: bytes = b"x"):
    out = tmp_path / name
    with zipfile.ZipFile(files / "cnn.keras") as src, zipfile.ZipFile(out, "w") as z:
        for i in src.infolist():
            z.writestr(i, src.read(i))
        z.writestr(info, data)
    return out


def test_keras_zip_members_stay_inside(files, tmp_path):
    with edgekit.load(files / "cnn.keras") as m:  # the original loads
        assert m.format is Format.KERAS
    link = zipfile.ZipInfo("assets/key")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    for name, info, why in [("abs.keras", zipfile.ZipInfo("/etc/cron.d/x"), "absolute"),
                            ("dotdot.keras", zipfile.ZipInfo("../../outside.txt"), "'..'"),
                            ("link.keras", link, "symlink")]:
        path = _keras_with(files, tmp_path, name, info, b"/root/.ssh/id_rsa" if info is link else b"x")
        with pytest.raises(ModelFileError, match=f"member.*{why}"):
            edgekit.detect(path)
        _refused(_cli("inspect", path), name, why)


# ---------------------------------------------------------------------- content that runs code, named otherwise
def _pickle_that_writes(target: Path):
    class Evil:
        def __reduce__(self):
            return (target.write_text, ("pwned",))
    return Evil()


@pytest.mark.parametrize("ext", [".keras", ".h5", ".onnx", ".tflite"])
def test_torch_pickle_named_like_a_safe_format_is_refused_even_with_trust(files, tmp_path, ext):
    import torch

    target = tmp_path / "written.txt"
    path = tmp_path / f"model{ext}"
    torch.save({"w": _pickle_that_writes(target)}, path)
    for trust in (False, True):
        with pytest.raises(ModelFileError, match=f"named {ext} .*holds a PyTorch pickle") as e:
            edgekit.load(path, trust_code=trust)
        assert "rename it to .pt" in e.value.hint and "--trust-code" in e.value.hint
    assert not target.exists()
    err, hint = _refused(_cli("run", path, "--random", "--trust-code"), f"named {ext}", "pytorch pickle")
    assert "rename it to .pt" in hint and not target.exists()


def test_raw_pickle_and_torch_programs_named_like_safe_formats(files, tmp_path):
    import pickle

    target = tmp_path / "written.txt"
    raw = tmp_path / "model.h5"
    raw.write_bytes(pickle.dumps(_pickle_that_writes(target), protocol=4))
    with pytest.raises(ModelFileError, match="holds a Python pickle"):
        edgekit.load(raw, trust_code=True)
    for src, ext, what, rename in [("lin_ts.pt", ".onnx", "TorchScript", ".pt"),
                                   ("lin.pt2", ".keras", "torch.export", ".pt2"),
                                   ("lin.pt2", ".tflite", "torch.export", ".pt2")]:
        disguised = tmp_path / f"{src.split('.')[0]}{ext}"
        shutil.copy(files / src, disguised)
        with pytest.raises(ModelFileError, match=f"named {ext} .*{what}") as e:
            edgekit.load(disguised, trust_code=True)
        assert f"rename it to {rename}" in e.value.hint
    assert not target.exists()
    # the hint is true: under its own name, with trust, it loads
    renamed = tmp_path / "lin_renamed.pt"
    shutil.copy(files / "lin_ts.pt", renamed)
    with edgekit.load(renamed, trust_code=True) as m:
        assert m.predict(np.zeros((1, 3), np.float32))
    # names that claim nothing keep working (content decides, as before)
    odd = tmp_path / "model.weird"
    shutil.copy(files / "lin_ts.pt", odd)
    assert edgekit.detect(odd).format is Format.TORCHSCRIPT



def test_trust_is_checked_in_one_place_for_runners_and_edges(tmp_path):
    """Runner.load and Edge.convert both call edgekit.trust.require_trust: an edge handed an untrusted .pt2 refuses it
    before torch opens it, as a runner does; and no other module defines its own trust refusal."""
    import ast
    from pathlib import Path

    import torch

    from edgekit.converters import base, planner
    from edgekit.formats import Format

    class Tiny(torch.nn.Module):
        def forward(self, x):
            return x * 2

    pt2 = tmp_path / "tiny.pt2"
    torch.export.save(torch.export.export(Tiny(), (torch.zeros(1, 3),)), pt2)
    planner.load_edges()
    edge = base.REGISTRY["torch_to_onnx"]
    with pytest.raises(edgekit.TrustRequiredError, match="without trust"):
        edge.convert(base.Artifact(pt2, Format.TORCH_EXPORT), base.ConvertOptions(), tmp_path)
    assert not list(tmp_path.glob("*.onnx"))
    with pytest.raises(edgekit.TrustRequiredError, match="without trust"):
        edgekit.load(pt2)
    out = edge.convert(base.Artifact(pt2, Format.TORCH_EXPORT), base.ConvertOptions(trust_code=True), tmp_path)
    assert out.path.is_file() and out.written
    root = Path(edgekit.__file__).resolve().parents[1]
    raising = set()
    for folder in ("sdk", "runtimes", "converters", "benchmarks"):
        for f in (root / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and \
                        getattr(node.exc.func, "id", "") == "TrustRequiredError":
                    raising.add(str(f.relative_to(root)))
    # the one check, the SavedModel scanner it calls, and Keras safe mode (a Lambda layer is refused, trust or not)
    assert raising == {"sdk/trust.py", "sdk/formats/savedmodel_scan.py", "runtimes/keras.py"}, raising
