"""Runner._check's fast path (an array of a dtype and shape already accepted passes without re-checking) keeps
every check it skips: another shape, dtype or name is still judged in full."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit
from edgekit.examples import DIGITS_DIR


@pytest.mark.parametrize("model", ["digits_cnn.tflite", "digits_cnn.onnx", "digits_cnn.xml"])
def test_fast_path_keeps_the_checks(model):
    with edgekit.load(DIGITS_DIR / model, threads=1) as m:
        x = np.random.default_rng(0).random((1, 8, 8, 1), dtype=np.float32)
        first = m.predict({"image": x})
        again = m.predict({"image": x})  # the accepted (dtype, shape): fast path
        assert m.runner._accepted["image"] == (np.dtype(np.float32), (1, 8, 8, 1))
        for k in first:
            np.testing.assert_array_equal(first[k], again[k])
        with pytest.raises(edgekit.InputError, match="expects shape"):
            m.predict({"image": np.zeros((1, 8, 8), np.float32)})
        with pytest.raises(edgekit.InputError, match="missing input 'image'"):
            m.predict({"img": x})
        as64 = m.predict({"image": x.astype(np.float64)})  # cast, not cached as accepted
        assert m.runner._accepted["image"][0] == np.float32
        np.testing.assert_allclose(next(iter(as64.values())), next(iter(first.values())), rtol=1e-6)
        with pytest.raises(edgekit.InputError, match="expects dtype"):
            m.predict({"image": np.zeros((1, 8, 8, 1), np.complex64)})
        four = m.predict({"image": np.repeat(x, 4, axis=0)})  # a dynamic batch: another accepted shape
        assert next(iter(four.values())).shape[0] == 4
        feeds = {"image": x}
        m.predict(feeds)
        assert feeds["image"] is x and list(feeds) == ["image"]  # the caller's dict is not changed


@pytest.mark.parametrize("model", ["digits_cnn.tflite", "digits_cnn.onnx", "digits_cnn.xml"])
def test_an_array_written_in_place_is_read_again(model):
    """OpenVINO binds an array once as a shared tensor: new contents of the same array (a frame buffer) are
    what the next call computes on; another array, shape or layout is bound anew."""
    rng = np.random.default_rng(1)
    a, b = (rng.random((1, 8, 8, 1), dtype=np.float32) for _ in range(2))
    with edgekit.load(DIGITS_DIR / model, threads=1) as m:
        want_a, want_b = (next(iter(m.predict({"image": x.copy()}).values())) for x in (a, b))
        assert not np.allclose(want_a, want_b)
        buf = a.copy()
        got_a = next(iter(m.predict({"image": buf}).values()))
        buf[:] = b
        got_b = next(iter(m.predict({"image": buf}).values()))
        np.testing.assert_allclose(got_a, want_a, rtol=1e-6)
        np.testing.assert_allclose(got_b, want_b, rtol=1e-6)
        got_a[:] = 0  # outputs are copies: the next call does not write into what the caller holds
        np.testing.assert_allclose(next(iter(m.predict({"image": buf}).values())), want_b, rtol=1e-6)
        strided = np.repeat(b, 2, axis=2)[:, :, ::2]  # not contiguous
        np.testing.assert_allclose(next(iter(m.predict({"image": strided}).values())), want_b, rtol=1e-6)
        two = np.concatenate([a, b])
        np.testing.assert_allclose(next(iter(m.predict({"image": two}).values())),
                                   np.concatenate([want_a, want_b]), rtol=1e-5)
