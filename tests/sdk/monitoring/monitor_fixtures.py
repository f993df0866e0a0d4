"""Models and data the monitor's tests build (imported by conftest.py and by tests that need a variant)."""

from __future__ import annotations

import numpy as np


def build_color_model(path, regression: bool = False):
    """The colour classifier; ``regression=True``: one output, the image's brightness (mean of the channel means)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.array([[8, -4, -4, 0], [-4, 8, -4, 0], [-4, -4, 8, 0]], np.float32)
    b = np.array([0, 0, 0, 1.0], np.float32)
    if regression:
        w, b = np.full((3, 1), 1 / 3, np.float32), np.zeros(1, np.float32)
    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2], keepdims=0),
             helper.make_node("Gemm", ["m", "w", "b"], ["z" if not regression else "value"])]
    if not regression:
        nodes.append(helper.make_node("Softmax", ["z"], ["probs"], axis=1))
    out = ("value", 1) if regression else ("probs", 4)
    g = helper.make_graph(nodes, "color", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 32, 32, 3])],
                          [helper.make_tensor_value_info(out[0], TensorProto.FLOAT, [None, out[1]])],
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
