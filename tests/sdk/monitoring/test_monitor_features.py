"""Per-sample features against their definitions, for each kind of tensor."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.monitoring.features import GRID, Extractor, plan_for


def test_image_channels_nhwc_and_nchw():
    rng = np.random.default_rng(0)
    x = rng.random((5, 16, 12, 3), dtype=np.float32)
    ex = Extractor.from_batch({"img": x}, {}, None)
    (p,) = ex.plans
    assert (p.kind, p.layout, p.stride, p.channels) == ("image", "NHWC", 1, 3)
    f, _ = ex.features({"img": x}, {})
    assert ex.names == [f"img:mean[{c}]" for c in range(3)] + [f"img:std[{c}]" for c in range(3)]
    assert np.allclose(f[:, :3], x.mean(axis=(1, 2)), atol=1e-6) and np.allclose(f[:, 3:], x.std(axis=(1, 2)), atol=1e-6)
    xc = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # the same images, NCHW
    fc, _ = Extractor.from_batch({"img": xc}, {}, None).features({"img": xc}, {})
    assert np.allclose(fc, f, atol=1e-6)


def test_large_images_are_read_on_a_grid():
    x = np.random.default_rng(1).random((2, 224, 224, 3), dtype=np.float32)
    p = plan_for("img", "input", x)
    assert p.stride == 7 and (224 // 7) ** 2 <= GRID
    v = p.view(x)
    assert v.shape == (2, 32, 32, 3) and np.shares_memory(v, x)  # a view: no copy per call
    f, _ = Extractor([p]).features({"img": x}, {})
    assert np.allclose(f[:, :3], x[:, ::7, ::7, :].mean(axis=(1, 2)), atol=1e-6)
    assert abs(f[0, 0] - x[0, ..., 0].mean()) < 0.02  # and the grid's mean is close to the whole image's


def test_columns_flat_and_classes():
    rng = np.random.default_rng(2)
    tab = rng.normal(size=(6, 4))
    seq = rng.normal(size=(6, 50, 40))
    logits = rng.normal(size=(6, 5)).astype(np.float32)
    ex = Extractor.from_batch({"tab": tab, "seq": seq}, {"logits": logits}, "classification")
    assert [p.kind for p in ex.plans] == ["columns", "flat", "classes"]
    f, c = ex.features({"tab": tab, "seq": seq}, {"logits": logits})
    assert ex.names == ["tab[0]", "tab[1]", "tab[2]", "tab[3]", "seq:mean", "seq:std", "logits:confidence"]
    assert np.allclose(f[:, :4], tab)
    flat = seq.reshape(6, -1)[:, ::(2000 // GRID)]
    assert np.allclose(f[:, 4], flat.mean(axis=1)) and np.allclose(f[:, 5], flat.std(axis=1))
    sm = np.exp(logits - logits.max(1, keepdims=True))
    sm /= sm.sum(1, keepdims=True)
    assert np.allclose(f[:, 6], sm.max(1), atol=1e-6)  # logits: the confidence is the softmax's largest value
    assert np.array_equal(c[:, 0], logits.argmax(1))
    # unnamed task: logits are not taken for class scores (an embedding looks the same): 5 columns; probabilities are
    assert [p.kind for p in Extractor.from_batch({}, {"logits": logits}, None).plans] == ["columns"]
    assert [p.kind for p in Extractor.from_batch({}, {"p": sm}, None).plans] == ["classes"]
    from edgekit.errors import InputError

    with pytest.raises(InputError, match="2 outputs"):
        Extractor.from_batch({}, {"p": sm}, None).bind({"output": ["a", "b"]}, {"input": [], "output": ["p"]})
