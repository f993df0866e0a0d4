"""ONNX layout pass: a channels-first flatten then transpose (a PyTorch detection head's
``conv(h).flatten(2).transpose(1, 2)``) is rewritten as transpose then reshape before onnx2tf, which turned the
first form's [1, 64, 4] output into [1, 8, 32] (max abs error ~1, caught by the parity gate)."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.conversion import convert
from edgekit.converters.rewrite import onnx_flatten_transpose


def _detector(path, flatten_to=None):
    import torch

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
                                            torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU())
            self.box, self.cls = torch.nn.Conv2d(8, 4, 1), torch.nn.Conv2d(8, 3, 1)

        def forward(self, image):
            h = self.body(image)
            b = self.box(h)
            b = b.flatten(2) if flatten_to is None else b.reshape(b.shape[0], *flatten_to)
            return b.transpose(1, 2), self.cls(h).flatten(2).transpose(1, 2).sigmoid()

    torch.manual_seed(0)
    torch.onnx.export(Head().eval(), (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, input_names=["image"],
                      output_names=["boxes", "scores"], opset_version=17,
                      dynamic_axes={n: {0: "batch"} for n in ("image", "boxes", "scores")})
    return path


def _run(model_bytes, x):
    import onnxruntime as ort

    return ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"]).run(None, {"image": x})


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return _detector(tmp_path_factory.mktemp("det") / "detector.onnx")


@pytest.mark.parametrize("batch", [1, 3])
def test_pass_keeps_the_numbers(detector, batch):
    import onnx

    model = onnx.load(str(detector))
    assert onnx_flatten_transpose.run(model) == 2  # boxes and scores heads
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Transpose") == 2 and ops.count("Reshape") == 2
    onnx.checker.check_model(model)
    x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    for before, after in zip(_run(detector.read_bytes(), x), _run(model.SerializeToString(), x)):
        assert after.shape == before.shape == (batch, 64, before.shape[2])
        np.testing.assert_array_equal(after, before)


def test_other_reshapes_are_left_alone(tmp_path):
    """[N, 2, 128] is not a flatten of the 4 channels: the transpose after it must stay as it is."""
    import onnx

    model = onnx.load(str(_detector(tmp_path / "other.onnx", flatten_to=(2, 128))))
    assert onnx_flatten_transpose.run(model) == 1  # only the scores head


def test_detector_converts_to_tflite_with_parity(detector, tmp_path):
    rep = convert(detector, ["tflite"], output_dir=tmp_path)
    res = rep["tflite"]
    assert res.status == "pass", res.error
    assert res.parity["max_abs"] <= 1e-5
    assert any(n.startswith("rewrote 2 channels-first flatten") for n in res.notes)


def test_a_flatten_feeding_more_layers_is_left_alone(tmp_path):
    """`flatten(2).transpose(1, 2)` into a Linear head: onnx2tf converts that form exactly and scrambled the
    rewritten one (found by tests/converters/test_dynamic_dims.py's detector), so only heads ending in an output
    are rewritten."""
    import onnx
    import torch

    class LinearHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.Linear(8, 4)

        def forward(self, image):
            return self.fc(torch.relu(self.conv(image)).flatten(2).transpose(1, 2))

    path = tmp_path / "linear_head.onnx"
    torch.onnx.export(LinearHead().eval(), (torch.randn(1, 3, 16, 16),), str(path), dynamo=False,
                      input_names=["image"], output_names=["boxes"], opset_version=17)
    assert onnx_flatten_transpose.run(onnx.load(str(path))) == 0
