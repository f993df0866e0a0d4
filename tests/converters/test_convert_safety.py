"""convert never destroys the user's files, keeps the source's input order, reads precision from the weights and
says when its check has no power (issue 9: each test failed before its fix)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

import edgekit
from edgekit.conversion import convert
from edgekit.errors import InputError


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory):
    """A small trained-looking MLP exported to ONNX (one file, no external data), with 64 inputs."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5)).eval()
    d = tmp_path_factory.mktemp("mlp")
    path = d / "mlp.onnx"
    torch.onnx.export(net, (torch.zeros(1, 16),), str(path), input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "n"}}, dynamo=False)
    x = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    np.savez(d / "x.npz", x=x)
    return path, d / "x.npz"


@pytest.fixture(scope="module")
def two_input_keras(tmp_path_factory):
    """Two float inputs of the same shape whose names sort the other way round ('query' after 'key'): a swap
    cannot be caught by a shape or dtype check, only by the numbers."""
    import keras

    keras.utils.set_random_seed(1)
    q = keras.Input((5,), name="query")
    k = keras.Input((5,), name="key")
    y = keras.layers.Dense(3, name="score")(keras.layers.Concatenate()([q, k * 2.0]))
    model = keras.Model([q, k], y)
    path = tmp_path_factory.mktemp("order") / "qk.keras"
    model.save(path)
    rng = np.random.default_rng(2)
    xq, xk = rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal((4, 5)).astype(np.float32)
    return path, xq, xk, np.asarray(model([xq, xk]))


# --------------------------------------------------------------------------------------------- input order
def test_every_target_keeps_the_source_input_order(two_input_keras, tmp_path):
    path, xq, xk, ref = two_input_keras
    rep = convert(path, ["tflite", "onnx", "openvino"], output_dir=tmp_path / "out")
    for t in rep.targets:
        assert t.status == "pass", t.error
        assert t.inputs == ["query", "key"]
        with edgekit.load(t.path) as m:
            assert [s.name for s in m.inputs] == ["query", "key"], t.target
            y = next(iter(m.predict([xq, xk]).values()))  # positional, in the source's order
            np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["source"]["inputs"] == ["query", "key"]
    # the IR itself now lists its parameters in the source's order, even without the manifest
    alone = tmp_path / "alone"
    alone.mkdir()
    for f in ("qk.xml", "qk.bin", "qk.tflite"):
        shutil.copy(tmp_path / "out" / f, alone / f)
    with edgekit.load(alone / "qk.xml") as m:
        assert [s.name for s in m.inputs] == ["query", "key"]
    # a TFLite file keys inputs by name: without the manifest its order is unknown, so a list is refused
    with edgekit.load(alone / "qk.tflite") as m:
        with pytest.raises(InputError, match="records no order"):
            m.predict([xq, xk])
        y = next(iter(m.predict({"query": xq, "key": xk}).values()))
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------- precision
def test_precision_is_read_from_the_weights(cases, tmp_path):
    rep = convert(cases["cnn"].files["keras"], ["onnx", "openvino"], precision="fp16", output_dir=tmp_path / "o")
    alone = tmp_path / "alone"
    alone.mkdir()
    for t in rep.targets:
        assert t.status == "pass", t.error
        for f in t.files:
            shutil.copy(tmp_path / "o" / f, alone / f)
        for p in (t.path, alone / t.path.name):  # with and without the manifest beside it
            with edgekit.load(p) as m:
                assert m.inputs[0].dtype == "float32"  # fp32 I/O ...
                assert m.precision == "fp16", p  # ... but fp16 weights: judged as fp16
        x = {"image": np.random.default_rng(0).random((40, 8, 8, 1), dtype=np.float32)}
        r = edgekit.validate(cases["cnn"].files["keras"], [t.path], x)
        assert r["candidates"][0]["precision"] == "fp16"


def test_manifest_precision_is_used_when_lower(cases, tmp_path):
    """A file whose weights look fp32 but which the manifest records as int8-dynamic keeps the lower word."""
    out = tmp_path / "o"
    out.mkdir()
    shutil.copy(cases["cnn"].files["tflite"], out / "cnn.tflite")
    size = (out / "cnn.tflite").stat().st_size
    (out / "manifest.json").write_text(json.dumps({"source": {}, "targets": [
        {"path": str(out / "cnn.tflite"), "precision": "int8-dynamic", "size_bytes": size}]}))
    with edgekit.load(out / "cnn.tflite") as m:
        assert m.precision == "int8"
    (out / "manifest.json").write_text(json.dumps({"source": {}, "targets": [
        {"path": str(out / "cnn.tflite"), "precision": "int8-dynamic", "size_bytes": size + 1}]}))
    with edgekit.load(out / "cnn.tflite") as m:  # the file changed since: the manifest no longer describes it
        assert m.precision == "fp32"


# ----------------------------------------------------------------------------------------------- power
def test_constant_reference_is_a_warning_not_a_silent_ok(tmp_path):
    import keras

    i = keras.Input((6,), name="x")
    dead = keras.layers.Dense(4, kernel_initializer="zeros", bias_initializer="ones", name="y")(i)
    model = keras.Model(i, dead)  # its output does not depend on its input
    src = tmp_path / "dead.keras"
    model.save(src)
    rep = convert(src, ["onnx"], output_dir=tmp_path / "o")
    t = rep["onnx"]
    assert t.status == "pass"
    assert any("does not depend on its input" in w for w in t.warnings), t.warnings
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert any("does not depend" in w for w in manifest["warnings"])
    assert any("does not depend" in w for w in manifest["targets"][0]["warnings"])


def test_too_few_samples_is_a_warning(mlp_onnx, tmp_path):
    path, data = mlp_onnx
    one = {"x": np.load(data)["x"][:1]}
    rep = convert(path, ["openvino"], sample=one, output_dir=tmp_path / "o")
    assert rep["openvino"].status == "pass"
    assert any("only 1 sample" in w for w in rep["openvino"].warnings)
    many = convert(path, ["openvino"], sample=data, output_dir=tmp_path / "o2")
    assert many["openvino"].status == "pass" and many["openvino"].warnings == []


def test_sample_larger_than_a_fixed_batch_runs_in_chunks(tmp_path):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh()).eval()
    src = tmp_path / "fixed.onnx"
    torch.onnx.export(net, (torch.zeros(1, 8),), str(src), input_names=["x"], output_names=["y"], dynamo=False)
    x = np.random.default_rng(0).standard_normal((12, 8)).astype(np.float32)
    rep = convert(src, ["openvino", "tflite"], sample={"x": x}, output_dir=tmp_path / "o")
    for t in rep.targets:
        assert t.status == "pass", t.error
        assert t.warnings == []  # 12 real samples, all checked
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    with edgekit.load(rep["openvino"].path) as m:
        from edgekit.batching import predict_samples

        np.testing.assert_allclose(predict_samples(m, {"x": x})["y"], ref, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------- user files
def test_output_in_the_source_folder_never_overwrites_the_source(mlp_onnx, tmp_path):
    path, data = mlp_onnx
    folder = tmp_path / "models"
    folder.mkdir()
    src = folder / "mlp.onnx"
    shutil.copy(path, src)
    before = sha(src)
    rep = convert(src, ["onnx"], precision="int8-dynamic", sample=data, output_dir=folder)
    t = rep["onnx"]
    assert sha(src) == before  # the user's fp32 model is untouched
    assert t.status == "pass", t.error
    assert t.path != src and t.path.name == "mlp.int8-dynamic.onnx"
    assert any("instead of mlp.onnx" in n for n in t.notes)
    with edgekit.load(t.path) as m:
        assert m.precision == "int8"  # the check compared the int8 file with the original fp32 one
    assert t.parity["samples"] == 64


def test_files_edgekit_did_not_write_are_left_alone(mlp_onnx, tmp_path):
    path, data = mlp_onnx
    out = tmp_path / "out"
    out.mkdir()
    (out / "mlp.xml").write_text("<mine/>")  # the user's own file, with the target's name
    rep = convert(path, ["openvino"], sample=data, output_dir=out)
    assert (out / "mlp.xml").read_text() == "<mine/>"
    assert rep["openvino"].status == "pass" and rep["openvino"].path.name == "mlp.fp32.xml"
    assert (out / "mlp.fp32.bin").is_file()
    again = convert(path, ["openvino"], sample=data, output_dir=out)  # edgekit's own output is replaced
    assert again["openvino"].path.name == "mlp.fp32.xml"
    assert not list(out.glob("mlp.fp32-1.*"))
    (out / "manifest.json").write_text("my notes")
    with pytest.raises(InputError, match="not a manifest edgekit wrote"):
        convert(path, ["openvino"], sample=data, output_dir=out)
    assert (out / "manifest.json").read_text() == "my notes"


def test_work_folder_is_private_and_a_planted_symlink_is_not_followed(mlp_onnx, tmp_path):
    path, data = mlp_onnx
    out, precious = tmp_path / "out", tmp_path / "precious"
    out.mkdir()
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    (out / "_work").symlink_to(precious, target_is_directory=True)
    rep = convert(path, ["openvino"], sample=data, output_dir=out)
    assert rep["openvino"].status == "pass"
    assert (precious / "keep.txt").read_text() == "keep"
    assert (out / "_work").is_symlink()  # not ours: not deleted either
    assert not [p for p in out.iterdir() if p.name.startswith(".edgekit-work")]  # our own folder is gone


def test_tools_write_nothing_in_the_current_directory(mlp_onnx, tmp_path, monkeypatch):
    path, data = mlp_onnx
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    rep = convert(path, ["onnx"], precision="int8", calibration=data, sample=data, output_dir=tmp_path / "o")
    assert rep["onnx"].status == "pass", rep["onnx"].error
    assert sorted(os.listdir(cwd)) == []  # ONNX Runtime's pre-processing once left two files here


def test_a_failed_target_leaves_no_file_to_ship(cases, tmp_path, monkeypatch):
    from model_factory import sabotage_onnx_to_openvino

    sabotage_onnx_to_openvino(monkeypatch, 1.5)
    rep = convert(cases["cnn"].files["onnx"], ["openvino", "onnx"], output_dir=tmp_path / "o")
    assert rep["openvino"].status == "fail" and rep["openvino"].path is None
    assert not (tmp_path / "o" / "cnn.xml").exists() and not (tmp_path / "o" / "cnn.bin").exists()
    assert any("deleted" in n for n in rep["openvino"].notes)
    assert rep["onnx"].status == "pass" and rep["onnx"].path.is_file()  # the other target still completes
