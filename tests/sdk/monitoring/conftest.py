"""Fixtures for the monitor's tests: real models run through edgekit.load, real data.

- `color_model`: a small ONNX classifier built here with onnx.helper (NHWC 32x32x3 image -> per-channel mean ->
  Gemm -> Softmax over 4 classes), run by ONNX Runtime; its inputs are `crops`: random 32x32 crops of scikit-learn's
  two bundled photos (china.jpg, flower.jpg), an endless stream of independent, identically distributed images
  whose channels differ (so swapped channels change the per-channel statistics, as in a real RGB/BGR mix-up).
- `digits`: the bundled digits CNN (ONNX) with scikit-learn's digits split as in its train.py: the 1437 training
  images profile the reference, the 360 test images (never in the profile) are the live traffic.
"""

from __future__ import annotations

import numpy as np
import pytest


def build_color_model(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.array([[8, -4, -4, 0], [-4, 8, -4, 0], [-4, -4, 8, 0]], np.float32)
    b = np.array([0, 0, 0, 1.0], np.float32)
    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2], keepdims=0),
             helper.make_node("Gemm", ["m", "w", "b"], ["z"]),
             helper.make_node("Softmax", ["z"], ["probs"], axis=1)]
    g = helper.make_graph(nodes, "color", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 32, 32, 3])],
                          [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, 4])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


class Crops:
    def __init__(self):
        from sklearn.datasets import load_sample_images

        self.images = [i.astype(np.float32) / 255 for i in load_sample_images().images]

    def __call__(self, n: int, seed: int, size: int = 32) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = np.empty((n, size, size, 3), np.float32)
        for k in range(n):
            im = self.images[rng.integers(len(self.images))]
            y, x = rng.integers(0, im.shape[0] - size), rng.integers(0, im.shape[1] - size)
            out[k] = im[y:y + size, x:x + size]
        return out


@pytest.fixture(scope="session")
def crops():
    return Crops()


@pytest.fixture(scope="session")
def color_model(tmp_path_factory):
    return build_color_model(tmp_path_factory.mktemp("color") / "color.onnx")


def profile_of(model, batches, task=None) -> dict:
    from edgekit.monitoring import ProfileBuilder

    b = ProfileBuilder(task)
    for x in batches:
        feeds = model.feeds(x)
        b.observe(feeds, model.predict(feeds))
    return b.profile()


@pytest.fixture(scope="session")
def color_profile(color_model, crops):
    import edgekit

    with edgekit.load(color_model) as m:
        ref = crops(2000, seed=1)
        return profile_of(m, [ref[i:i + 200] for i in range(0, len(ref), 200)])


@pytest.fixture(scope="session")
def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from edgekit.examples import DIGITS_DIR

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    xtr, xte, ytr, yte = train_test_split(x, d.target.astype(np.int64), test_size=0.2, stratify=d.target,
                                          random_state=0)
    return {"model": DIGITS_DIR / "digits_cnn.onnx", "keras": DIGITS_DIR / "digits_cnn.keras", "train": xtr,
            "test": xte, "test_labels": yte, "train_labels": ytr}


@pytest.fixture(scope="session")
def digits_profile(digits):
    import edgekit

    with edgekit.load(digits["model"]) as m:
        x = digits["train"]
        return profile_of(m, [x[i:i + 128] for i in range(0, len(x), 128)])
