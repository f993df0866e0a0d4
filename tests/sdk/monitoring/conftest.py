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

from monitor_fixtures import Crops, build_color_model


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
