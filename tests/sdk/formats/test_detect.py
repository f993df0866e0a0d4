"""Formats are recognised by content, not by extension."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import edgekit
from edgekit import Format


@pytest.mark.parametrize("kind,fmt", [
    ("tflite", Format.TFLITE), ("onnx", Format.ONNX), ("keras", Format.KERAS), ("h5", Format.KERAS_H5),
    ("pt2", Format.TORCH_EXPORT), ("torchscript", Format.TORCHSCRIPT), ("pickle", Format.TORCH_PICKLE),
])
def test_misleading_extension_is_ignored(cases, tmp_path, kind, fmt):
    src = cases["cnn"].files[kind]
    renamed = tmp_path / "model.weird"
    shutil.copy(src, renamed)
    assert edgekit.detect(renamed).format is fmt


def test_folders_and_pairs(cases, tmp_path):
    c = cases["cnn"].files
    assert edgekit.detect(c["savedmodel"]).format is Format.SAVEDMODEL
    assert edgekit.detect(c["savedmodel"] / "saved_model.pb").format is Format.SAVEDMODEL
    assert edgekit.detect(c["coreml"]).format is Format.COREML
    ir = edgekit.detect(c["openvino"])
    assert ir.format is Format.OPENVINO_IR and [p.suffix for p in ir.files] == [".xml", ".bin"]
    # the .bin of an IR pair, or a folder holding one IR, resolve to the .xml
    assert edgekit.detect(c["openvino"].with_suffix(".bin")).path == c["openvino"].resolve()
    folder = tmp_path / "ir"
    folder.mkdir()
    shutil.copy(c["openvino"], folder / "m.xml")
    shutil.copy(c["openvino"].with_suffix(".bin"), folder / "m.bin")
    assert edgekit.detect(folder).path == (folder / "m.xml").resolve()


def test_tflite_extension_with_other_content_is_a_file_error(tmp_path):
    p = tmp_path / "fake.tflite"
    p.write_bytes(b"PK\x03\x04" + b"\x00" * 64)  # a zip header, damaged
    with pytest.raises(edgekit.ModelFileError):
        edgekit.detect(p)
    p.write_bytes(np.random.default_rng(0).bytes(256))
    with pytest.raises(edgekit.ModelFileError, match="extension of a tflite model"):
        edgekit.detect(p)


def test_litert_falls_back_to_tensorflow_interpreter(cases, monkeypatch):
    """Where only TensorFlow is installed, its own interpreter runs .tflite with the same numbers."""
    from edgekit.runtimes.litert import LiteRTRunner

    monkeypatch.setattr(LiteRTRunner, "requires", (("tensorflow", "tensorflow", "tensorflow"),))
    c = cases["two_io"]
    with edgekit.load(c.files["tflite"]) as m:
        assert m.runner.module == "tensorflow"
        out = m.predict(c.keras_inputs)
        for spec, ref in zip(m.outputs, c.keras_outputs):
            np.testing.assert_allclose(out[spec.name], ref, rtol=1e-5, atol=1e-6)
