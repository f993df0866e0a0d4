"""Train the bundled digits CNN and write every artifact `edgekit demo` uses.

Data: scikit-learn's bundled 8x8 digits (1797 images), split 80/20 stratified with random_state=0; pixels are
scaled from 0..16 to 0..1 and laid out NHWC (N, 8, 8, 1). Writes, next to this file:

- digits_cnn.keras           the trained Keras 3 model (the source of truth)
- digits_cnn.tflite          TFLiteConverter.from_keras_model, fp32
- digits_cnn.onnx            Keras' own ONNX export (tf2onnx), opset 17
- digits_cnn.xml / .bin      OpenVINO IR converted from the ONNX file, fp32 weights (compress_to_fp16=False)
- digits_test.npz            the test split: `image` (float32) and `labels` (int64)

Run from the repository root with the full install plus tf2onnx:
    .venv/bin/pip install tf2onnx && .venv/bin/python sdk/examples/digits/train.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

OUT = Path(__file__).parent


def load_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    return train_test_split(x, d.target.astype(np.int64), test_size=0.2, stratify=d.target, random_state=0)


def build():
    import keras

    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    out = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="digits_cnn")


def main() -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    x_tr, x_te, y_tr, y_te = load_split()
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_tr, y_tr, epochs=30, batch_size=32, verbose=0, validation_split=0.1)
    acc = float(np.mean(np.argmax(model.predict(x_te, verbose=0), -1) == y_te))
    print(f"test accuracy: {acc:.4f} on {len(y_te)} images")

    model.save(OUT / "digits_cnn.keras")
    np.savez_compressed(OUT / "digits_test.npz", image=x_te, labels=y_te)
    (OUT / "digits_cnn.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    model.export(str(OUT / "digits_cnn.onnx"), format="onnx", verbose=False)

    import openvino as ov

    ov.save_model(ov.convert_model(str(OUT / "digits_cnn.onnx")), str(OUT / "digits_cnn.xml"), compress_to_fp16=False)
    for f in sorted(OUT.glob("digits_*")):
        print(f"{f.name}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
