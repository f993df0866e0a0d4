"""Fixture models for the ONNX/TFLite -> Core ML routes (tests/converters/test_coreml_routes.py), built by code:
an image CNN (ONNX from PyTorch, and the same architecture as TFLite from Keras), a small transformer encoder
(int64 tokens) and a byte-sequence classifier (int32 bytes), each with a sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _torch_models():
    import torch

    class CNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.bn = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
            self.c2 = torch.nn.Conv2d(8, 8, 3, stride=2)
            self.fc = torch.nn.Linear(8, 5)

        def forward(self, image):
            h = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.c1(image))), 2)
            h = torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.c2(h)), 1).flatten(1)
            return torch.softmax(self.fc(h), -1)

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(50, 16)
            self.layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
            self.fc = torch.nn.Linear(16, 3)

        def forward(self, tokens):
            return self.fc(self.layer(self.emb(tokens)).mean(1))

    class Bytes(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(256, 8)
            self.conv = torch.nn.Conv1d(8, 12, 5, padding=2)
            self.fc = torch.nn.Linear(12, 4)

        def forward(self, data):
            h = torch.relu(self.conv(self.emb(data).transpose(1, 2)))
            return self.fc(h.amax(-1))

    torch.manual_seed(0)
    cnn = CNN()
    with torch.no_grad():  # non-trivial batch-norm statistics
        cnn.bn.running_mean.uniform_(-0.5, 0.5)
        cnn.bn.running_var.uniform_(0.5, 2.0)
    return {"cnn": cnn.eval(), "encoder": Encoder().eval(), "bytes": Bytes().eval()}


def _keras_cnn():
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((16, 16, 3), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same")(x)
    h = keras.layers.BatchNormalization(moving_mean_initializer="random_uniform")(h)
    h = keras.layers.MaxPooling2D(2)(keras.layers.ReLU()(h))
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(x, keras.layers.Dense(5, activation="softmax")(h))


def build(out: Path) -> dict[str, dict]:
    """name -> {"file": path, "sample": {input: array}}: ONNX files for cnn/encoder/bytes, TFLite for cnn_tflite."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    samples = {
        "cnn": {"image": rng.random((2, 3, 16, 16), dtype=np.float32)},
        "encoder": {"tokens": rng.integers(0, 50, (2, 12), dtype=np.int64)},
        "bytes": {"data": rng.integers(0, 256, (2, 32), dtype=np.int32)},
    }
    batch = torch.export.Dim("batch", min=1, max=64)
    dynamic = {"cnn": {"image": {0: batch}}, "encoder": {"tokens": {0: batch, 1: torch.export.Dim("seq", min=2,
                                                                                                    max=128)}},
               "bytes": {"data": {0: batch}}}
    fixtures = {}
    for name, module in _torch_models().items():
        path = out / f"{name}.onnx"
        args = tuple(torch.from_numpy(v) for v in samples[name].values())
        torch.onnx.export(module, args, str(path), input_names=list(samples[name]), output_names=["scores"],
                          dynamic_shapes=dynamic[name], dynamo=True, verbose=False)
        fixtures[name] = {"file": path, "sample": samples[name]}
    fixtures["cnn_tflite"] = {"file": _tflite(out), "sample": {"image": rng.random((1, 16, 16, 3), dtype=np.float32)}}
    return fixtures


def _tflite(out: Path) -> Path:
    import tensorflow as tf

    model = _keras_cnn()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    path = out / "cnn.tflite"
    path.write_bytes(conv.convert())
    return path
