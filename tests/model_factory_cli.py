"""Extra fixtures for the CLI tests: more models and broken files (re-exported by model_factory.py).

Built once per session by the fixtures of the same names in tests/sdk/cli/conftest.py, except the digits copies
(`copy_digits`, also used by the tuning tests) and `build_scripted`, which tests build in their own folders.
Models: a Keras CNN with non-zero biases (dynamic and fixed batch, as TFLite too) and a model with an int32
input; copies of the bundled digits example; two TorchScript classifiers. Broken or hostile files: damaged model
files of every format, ONNX external data that points outside its folder, pickles that cannot be loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from model_factory import Case


def _tflite_bytes(model) -> bytes:
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def build_keras_extra(out: Path):
    """A CNN with random (non-zero) biases in three shapes: dynamic batch, fixed batch 1, fixed batch 2;
    and a model with an int32 input. TFLite converters drop all-zero biases, so random ones keep every
    parameter in the file and the parameter count must match Keras' count_params() exactly."""
    from types import SimpleNamespace

    import keras

    keras.utils.set_random_seed(7)
    conv = keras.layers.Conv2D(4, 3, activation="relu", bias_initializer="random_normal")
    flat = keras.layers.Flatten()
    dense = keras.layers.Dense(10, activation="softmax", bias_initializer="random_normal", name="probs")

    def build(batch):
        i = keras.Input((8, 8, 1), batch_size=batch, name="image")
        return keras.Model(i, dense(flat(conv(i))))

    dyn, fixed1, fixed2 = build(None), build(1), build(2)
    ns = SimpleNamespace(dir=out, model=dyn, params=int(dyn.count_params()))
    ns.keras = out / "biased_cnn.keras"
    dyn.save(ns.keras)
    ns.tflite = out / "biased_cnn.tflite"
    ns.tflite.write_bytes(_tflite_bytes(dyn))
    ns.fixed1 = out / "fixed_b1.tflite"
    ns.fixed1.write_bytes(_tflite_bytes(fixed1))
    ns.fixed2 = out / "fixed_b2.tflite"
    ns.fixed2.write_bytes(_tflite_bytes(fixed2))

    rng = np.random.default_rng(11)
    ns.samples = rng.random((5, 8, 8, 1), dtype=np.float32)
    ns.one_by_one = np.concatenate([np.asarray(fixed1(ns.samples[j:j + 1], training=False)) for j in range(5)])
    ns.samples4 = ns.samples[:4]
    ns.two_by_two = np.concatenate([np.asarray(fixed2(ns.samples4[j:j + 2], training=False)) for j in (0, 2)])

    ids = keras.Input((5,), dtype="int32", name="ids")
    h = keras.layers.Embedding(10, 3)(ids)
    h = keras.layers.GlobalAveragePooling1D()(h)
    int_model = keras.Model(ids, keras.layers.Dense(2, name="logits")(h))
    ns.int_keras = out / "int_ids.keras"
    int_model.save(ns.int_keras)
    ns.int_tflite = out / "int_ids.tflite"
    ns.int_tflite.write_bytes(_tflite_bytes(int_model))
    ns.int_inputs = rng.integers(0, 10, size=(3, 5)).astype(np.int32)
    ns.int_ref = np.asarray(int_model(ns.int_inputs, training=False))
    return ns


def build_bad_files(cases: dict[str, Case], out: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    """Broken model files, most made from the `cnn` case's files: name -> (path, fragments the error line must
    contain)."""
    import shutil
    import zipfile

    rng = np.random.default_rng(3)
    cnn = cases["cnn"].files
    files: dict[str, tuple[Path, tuple[str, ...]]] = {}

    def add(name, data: bytes, *frags):
        p = out / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        files[name] = (p, frags)

    files["nonexistent"] = (out / "does_not_exist.tflite", ("does_not_exist.tflite",))
    add("empty.tflite", b"", "empty.tflite", "empty")
    add("random.tflite", rng.bytes(4000), "random.tflite")
    add("random.onnx", rng.bytes(4000), "random.onnx")
    add("random.bin", rng.bytes(4000), "random.bin")
    add("random.xyz", rng.bytes(4000), "random.xyz")
    tfl = cnn["tflite"].read_bytes()
    add("truncated.tflite", tfl[: len(tfl) // 2], "truncated.tflite")
    onx = cnn["onnx"].read_bytes()
    add("truncated.onnx", onx[: int(len(onx) * 0.6)], "truncated.onnx")
    add("forged.tflite", b"\x1c\x00\x00\x00TFL3" + rng.bytes(4000), "forged.tflite")

    empty_dir = out / "no_model_dir"
    empty_dir.mkdir()
    (empty_dir / "README.txt").write_text("no model here\n")
    (empty_dir / "notes.json").write_text("{}\n")
    files["folder without a model"] = (empty_dir, ("no model",))

    xml = cnn["openvino"].read_bytes()
    add("ir_no_bin/model.xml", xml, "model.xml", "model.bin")
    binary = cnn["openvino"].with_suffix(".bin").read_bytes()
    add("ir_half_bin/model.xml", xml, "model.xml")
    add("ir_half_bin/model.bin", binary[: len(binary) // 2])
    del files["ir_half_bin/model.bin"]

    buf = out / "corrupt.keras"
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("metadata.json", rng.bytes(64))
        z.writestr("config.json", rng.bytes(300))
        z.writestr("model.weights.h5", rng.bytes(2000))
    files["corrupt.keras"] = (buf, ("corrupt.keras",))
    src = zipfile.ZipFile(cases["cnn"].files["keras"])
    with zipfile.ZipFile(out / "garbage_weights.keras", "w") as z:
        for n in src.namelist():
            z.writestr(n, rng.bytes(len(src.read(n))) if n.endswith(".h5") else src.read(n))
    files["garbage_weights.keras"] = (out / "garbage_weights.keras", ("garbage_weights.keras",))
    keras_bytes = cases["cnn"].files["keras"].read_bytes()
    add("truncated.keras", keras_bytes[: len(keras_bytes) // 2], "truncated.keras")
    add("corrupt.h5", b"\x89HDF\r\n\x1a\n" + rng.bytes(2000), "corrupt.h5")
    h5 = cases["cnn"].files["h5"].read_bytes()
    add("truncated.h5", h5[: len(h5) // 2], "truncated.h5")
    add("savedmodel_corrupt/saved_model.pb", rng.bytes(2000))
    files["savedmodel_corrupt"] = (out / "savedmodel_corrupt", ("savedmodel_corrupt",))
    del files["savedmodel_corrupt/saved_model.pb"]
    add("corrupt.mlpackage/Manifest.json", rng.bytes(300))
    (out / "corrupt.mlpackage" / "Data").mkdir()
    files["corrupt.mlpackage"] = (out / "corrupt.mlpackage", ("corrupt.mlpackage",))
    del files["corrupt.mlpackage/Manifest.json"]
    trunc_ml = out / "truncated.mlpackage"
    shutil.copytree(cases["cnn"].files["coreml"], trunc_ml)
    (spec,) = list(trunc_ml.rglob("*.mlmodel"))
    spec.write_bytes(spec.read_bytes()[: spec.stat().st_size // 2])
    files["truncated.mlpackage"] = (trunc_ml, ("truncated.mlpackage",))
    add("malformed_ir/model.xml", b'<?xml version="1.0"?>\n<net name="m" version="11"><layers><layer id="0" garbage',
        "model.xml")
    add("malformed_ir/model.bin", b"\0" * 64)
    del files["malformed_ir/model.bin"]
    return files


def build_onnx_external(root: Path):
    """An ONNX model with its weights in external data inside its folder (valid), and a copy whose external
    data location was rewritten to '../outside.bin', with that file really present outside the folder."""
    from types import SimpleNamespace

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder = root / "model"
    folder.mkdir()
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    good = folder / "good.onnx"
    onnx.save_model(model, str(good), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="w.bin", size_threshold=0)

    evil_model = onnx.load(str(good), load_external_data=False)
    tensor = evil_model.graph.initializer[0]
    assert tensor.data_location == TensorProto.EXTERNAL
    for entry in tensor.external_data:
        if entry.key == "location":
            entry.value = "../outside.bin"
    evil = folder / "evil.onnx"
    onnx.save_model(evil_model, str(evil))
    (root / "outside.bin").write_bytes((folder / "w.bin").read_bytes())
    return SimpleNamespace(good=good, evil=evil, weights=w)


def build_torch_bad(out: Path):
    """Pickled PyTorch files that fail to load even with --trust-code: one whose class lives in a module that
    is no longer importable, and one with garbage after the pickle protocol header."""
    import importlib
    import sys
    from types import SimpleNamespace

    import torch

    mod_dir = out / "mods"
    mod_dir.mkdir()
    name = "edgekit_cli_test_gone_module"
    (mod_dir / f"{name}.py").write_text(
        "import torch\n\nclass Net(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.fc = torch.nn.Linear(3, 2)\n\n"
        "    def forward(self, x):\n        return self.fc(x)\n"
    )
    sys.path.insert(0, str(mod_dir))
    try:
        mod = importlib.import_module(name)
        foreign = out / "foreign_class.pt"
        torch.save(mod.Net(), foreign)
    finally:
        sys.path.remove(str(mod_dir))
        sys.modules.pop(name, None)
        (mod_dir / f"{name}.py").unlink()
    garbage = out / "garbage_pickle.pt"
    garbage.write_bytes(b"\x80\x04" + np.random.default_rng(5).bytes(600))
    return SimpleNamespace(foreign=foreign, module_name=name, garbage=garbage)


def copy_digits(out: Path) -> dict[str, Path]:
    """Copies of the bundled digits models and test split in ``out`` (tests may overwrite or damage them):
    onnx, tflite, xml (+ its bin), data, and the folder (dir)."""
    import shutil

    from edgekit.examples import DIGITS_DIR

    out.mkdir(parents=True, exist_ok=True)
    for name in ("digits_cnn.onnx", "digits_cnn.tflite", "digits_cnn.xml", "digits_cnn.bin", "digits_test.npz"):
        shutil.copy(DIGITS_DIR / name, out / name)
    return {"onnx": out / "digits_cnn.onnx", "tflite": out / "digits_cnn.tflite", "xml": out / "digits_cnn.xml",
            "bin": out / "digits_cnn.bin", "data": out / "digits_test.npz", "dir": out}


def build_scripted(out: Path) -> Path:
    """Two TorchScript copies of a small classifier (loading either runs code), a.pt and b.pt, and data.npz
    keyed 'input' (40 digits test images)."""
    import torch

    from edgekit.examples import DIGITS_DIR

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10), torch.nn.Softmax(-1)).eval()
    ts = torch.jit.trace(net, torch.zeros(1, 8, 8, 1))
    for name in ("a.pt", "b.pt"):
        ts.save(str(out / name))
    with np.load(DIGITS_DIR / "digits_test.npz") as z:
        np.savez(out / "data.npz", input=z["image"][:40])
    return out
