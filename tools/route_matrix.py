"""Fixture class x target -> pass / unverified / fail (why): the README's route table, run on the model classes
real users bring (issue 11). Builds every fixture by code, converts each to the four targets with no options
(no --input-shape: the common case), and prints the table; `compare` prints two runs side by side.

    .venv/bin/python tools/route_matrix.py build /tmp/rm            # fixtures (needs the new TFLite writer)
    .venv/bin/python tools/route_matrix.py run /tmp/rm --json after.json
    PYTHONPATH=/path/to/old/edgekit .venv/bin/python tools/route_matrix.py run /tmp/rm --json before.json
    .venv/bin/python tools/route_matrix.py compare before.json after.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
TARGETS = ("tflite", "onnx", "openvino", "coreml")


def _torch_onnx(module, args, path: Path, names, outs, dynamic: dict) -> None:
    import torch

    torch.onnx.export(module.eval(), args, str(path), dynamo=False, input_names=names, output_names=outs,
                      dynamic_axes=dynamic, opset_version=17)


def _torch_models():
    import torch

    class CNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.f = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                         torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(),
                                         torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 5))

        def forward(self, image):
            return self.f(image)

    class Encoder(torch.nn.Module):
        def __init__(self, dtype_in_range=50):
            super().__init__()
            self.emb = torch.nn.Embedding(dtype_in_range, 16)
            self.enc = torch.nn.TransformerEncoder(
                torch.nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, dropout=0.0), 1)
            self.head = torch.nn.Linear(16, 3)

        def forward(self, tokens):
            return self.head(self.enc(self.emb(tokens)).mean(1))

    class Bytes(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(256, 8)
            self.conv = torch.nn.Conv1d(8, 16, 5, padding=2)
            self.head = torch.nn.Linear(16, 4)

        def forward(self, data):
            h = torch.relu(self.conv(self.emb(data.long()).transpose(1, 2)))
            return self.head(h.amax(2))

    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
                                                torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU())
            self.box = torch.nn.Conv2d(8, 4, 1)
            self.cls = torch.nn.Conv2d(8, 3, 1)

        def forward(self, image):
            h = self.backbone(image)
            boxes = self.box(h).flatten(2).transpose(1, 2)          # [batch, anchors, 4]
            scores = self.cls(h).flatten(2).transpose(1, 2).sigmoid()  # [batch, anchors, 3]
            return boxes, scores

    return CNN, Encoder, Bytes, Detector


def build(d: Path) -> None:
    import numpy as np
    import torch

    d.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    CNN, Encoder, Bytes, Detector = _torch_models()
    batch = {0: "batch"}
    _torch_onnx(CNN(), (torch.randn(1, 3, 32, 32),), d / "image_cnn.onnx", ["image"], ["logits"],
                {"image": batch, "logits": batch})
    enc = Encoder().eval()
    # the TorchScript exporter bakes the traced sequence length into reshapes; the dynamo one keeps it symbolic (s43)
    _torch_onnx(enc, (torch.randint(0, 50, (2, 7)),), d / "encoder_traced.onnx", ["tokens"], ["logits"],
                {"tokens": {0: "batch", 1: "seq"}, "logits": batch})
    dims = {"tokens": {0: torch.export.Dim("batch", min=1, max=64), 1: torch.export.Dim("seq", min=2, max=128)}}
    torch.onnx.export(enc, (torch.randint(0, 50, (2, 7)),), str(d / "encoder_dynamic.onnx"), dynamo=True,
                      input_names=["tokens"], output_names=["logits"], dynamic_shapes=dims, verbose=False)
    _torch_onnx(Bytes(), (torch.randint(0, 256, (2, 64), dtype=torch.int32),), d / "bytes_int32.onnx", ["data"],
                ["logits"], {"data": batch, "logits": batch})
    _torch_onnx(Detector(), (torch.randn(1, 3, 32, 32),), d / "detector_3d.onnx", ["image"], ["boxes", "scores"],
                {"image": batch, "boxes": batch, "scores": batch})
    _jax_like(d / "jax_like.onnx")
    torch.export.save(torch.export.export(enc, (torch.randint(0, 50, (2, 7)),), dynamic_shapes=dims),
                      d / "encoder_dynamic.pt2")
    _tflites(d)
    np.save(d / "done.npy", np.ones(1))


def _jax_like(path: Path) -> None:
    """A JAX/tf2onnx-style graph: unk__ dims, a Reshape driven by Shape ops, Dense + Softmax."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((12, 16)).astype("float32"), "w1"),
             numpy_helper.from_array(rng.standard_normal((16, 4)).astype("float32"), "w2"),
             numpy_helper.from_array(np.array([0], "int64"), "zero"),
             numpy_helper.from_array(np.array([-1], "int64"), "minus1")]
    nodes = [helper.make_node("Shape", ["x"], ["shp"]),
             helper.make_node("Gather", ["shp", "zero"], ["b"], axis=0),
             helper.make_node("Concat", ["b", "minus1"], ["newshape"], axis=0),
             helper.make_node("Reshape", ["x", "newshape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["z"]), helper.make_node("Softmax", ["z"], ["probs"], axis=-1)]
    g = helper.make_graph(nodes, "jax_fn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["unk__214", 3, 4])],
                          [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["unk__215", 4])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def _tflites(d: Path) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    i = keras.Input((64,), name="x")
    dense = keras.layers.Dense(64)
    m = keras.Model(i, keras.layers.Dense(4)(dense(i)))
    w, b = dense.get_weights()
    dense.set_weights([w * (np.random.default_rng(0).random(w.shape) > 0.9), b])
    c = tf.lite.TFLiteConverter.from_keras_model(m)
    c.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    (d / "sparse_densify.tflite").write_bytes(c.convert())
    i = keras.Input((8, 8, 4), name="x", batch_size=1)  # bias kept as TRANSPOSE_CONV's 4th input (no fused act)
    up, up2 = keras.layers.Conv2DTranspose(6, 4, strides=2, padding="same"), keras.layers.Conv2DTranspose(2, 4, 2)
    m = keras.Model(i, up2(keras.layers.LeakyReLU(0.1)(up(i))))
    for layer in (up, up2):
        layer.set_weights([layer.get_weights()[0], np.random.default_rng(1).normal(size=layer.get_weights()[1].shape)])
    (d / "transpose_conv.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    # the MediaPipe custom op, written by edgekit's own flatbuffer writer (the rewrite tests' fixture builder)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "converters"))
    from test_rewrite_tflite import to_mediapipe

    (d / "mediapipe_custom_op.tflite").write_bytes(to_mediapipe((d / "transpose_conv.tflite").read_bytes()))


def run(d: Path, only: list[str] | None) -> dict:
    import edgekit

    rows = {}
    for f in sorted(d.iterdir()):
        if f.suffix not in (".onnx", ".tflite", ".pt2") or (only and f.stem not in only):
            continue
        t0 = time.perf_counter()
        try:
            rep = edgekit.convert(f, list(TARGETS), output_dir=d / "out" / f.stem, trust_code=True)
            rows[f.name] = {t.target: _cell(t) for t in rep.targets}
        except Exception as e:  # the whole conversion refused (a user error on this fixture)
            rows[f.name] = {t: f"error: {_short(str(e))}" for t in TARGETS}
        print(f"{f.name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return rows


def _short(s: str, n: int = 70) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[:n - 3] + "..."


def _cell(t) -> str:
    if t.status != "fail":
        return t.status
    why = t.error or ""
    if t.op and t.op not in why:
        why = f"{t.op}: {why}"
    return f"fail ({_short(why)})"


def show(rows: dict, label: str) -> None:
    print(f"\n{label}")
    print("| fixture | " + " | ".join(TARGETS) + " |\n|---|" + "---|" * len(TARGETS))
    for name, cells in rows.items():
        print(f"| {name} | " + " | ".join(cells.get(t, "-") for t in TARGETS) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("build", "run", "compare"))
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args()
    if a.command == "build":
        build(a.paths[0])
    elif a.command == "run":
        rows = run(a.paths[0], a.only)
        show(rows, f"edgekit at {Path(__import__('edgekit').__file__).parent}")
        if a.json:
            a.json.write_text(json.dumps(rows, indent=1))
    else:
        before, after = (json.loads(p.read_text()) for p in a.paths[:2])
        print("| fixture | target | before | after |\n|---|---|---|---|")
        for name in after:
            for t in TARGETS:
                print(f"| {name} | {t} | {before.get(name, {}).get(t, '-')} | {after[name].get(t, '-')} |")


if __name__ == "__main__":
    main()
