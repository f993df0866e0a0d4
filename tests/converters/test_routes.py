"""Every route, on every fixture case: the converted model matches the source on fresh data (not only the
gate's own sample), keeps the source's input names and layout, and keeps dynamic dimensions."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit
from edgekit.conversion import convert

# (source artifact kind, target, family of reference outputs)
ROUTES = [
    ("keras", "tflite"), ("keras", "openvino"), ("keras", "onnx"), ("h5", "tflite"), ("savedmodel", "tflite"),
    ("savedmodel", "openvino"), ("savedmodel", "onnx"),
    ("pt2", "onnx"), ("pt2", "openvino"),
    ("onnx", "openvino"),
    ("tflite", "openvino"), ("tflite", "onnx"),
]
CASES = ("cnn", "two_io", "dynamic")
TRUST = {"pt2", "torchscript", "pickle"}


def _fresh_inputs(model, seed=7, batch=2, seq=11):
    rng = np.random.default_rng(seed)
    feeds = {}
    for s in model.inputs:
        shape = [batch if i == 0 and d is None else (seq if d is None else d) for i, d in enumerate(s.shape)]
        feeds[s.name] = rng.standard_normal(shape).astype(s.dtype)
    return feeds


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind,target", ROUTES, ids=[f"{k}-{t}" for k, t in ROUTES])
def test_route_matches_source(cases, tmp_path, case, kind, target):
    src_path = cases[case].files[kind]
    report = convert(src_path, [target], output_dir=tmp_path, trust_code=kind in TRUST)
    res = report[target]
    assert res.status == "pass", res.error
    assert res.parity["max_abs"] <= 1e-3 and res.parity["cosine"] >= 0.9999
    assert res.size_bytes and res.size_bytes > 0 and res.route
    with edgekit.load(src_path, trust_code=kind in TRUST) as src, edgekit.load(res.path) as dst:
        # same input names, same shapes (no NCHW <-> NHWC change), dynamic dims still dynamic
        assert {s.name: s.shape for s in dst.inputs} == {s.name: s.shape for s in src.inputs}
        feeds = _fresh_inputs(src)  # batch 2 and a new sequence length: exercises the dynamic dims
        ref, got = src.predict(feeds), dst.predict(feeds)
    assert len(got) == len(ref)
    if set(got) != set(ref):  # the tool renamed outputs: they must still come in the same order
        got = dict(zip(ref, got.values()))
    for k in ref:
        span = float(np.ptp(ref[k])) or 1.0
        assert np.max(np.abs(got[k] - ref[k])) <= 1e-4 * span + 1e-6, k


def test_keras_targets_keep_output_names(cases, tmp_path):
    report = convert(cases["two_io"].files["keras"], ["tflite", "openvino"], output_dir=tmp_path)
    for t in ("tflite", "openvino"):
        with edgekit.load(report[t].path) as m:
            assert sorted(s.name for s in m.outputs) == ["act", "sum"]
            assert [s.name for s in m.inputs] == ["a", "b"]


def test_torch_targets_name_outputs_like_the_torch_backend(cases, tmp_path):
    report = convert(cases["two_io"].files["pt2"], ["onnx", "openvino"], output_dir=tmp_path, trust_code=True)
    for t in ("onnx", "openvino"):
        with edgekit.load(report[t].path) as m:
            assert [s.name for s in m.outputs] == ["output_0", "output_1"]
            assert [s.name for s in m.inputs] == ["a", "b"]
            assert m.inputs[0].shape == (None, 4)  # static dims stay static, the batch stays dynamic


def test_in_memory_keras_and_torch(tmp_path):
    import keras
    import torch

    i = keras.Input((5,), name="feat")
    km = keras.Model(i, keras.layers.Dense(3, name="score")(i))
    rep = convert(km, ["tflite", "openvino"], output_dir=tmp_path / "k")
    assert [t.status for t in rep.targets] == ["pass", "pass"]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(5, 3)

        def forward(self, x):
            return torch.sigmoid(self.fc(x))

    rep = convert(Net(), ["onnx", "openvino"], output_dir=tmp_path / "t", example_inputs=(torch.randn(2, 5),))
    assert [t.status for t in rep.targets] == ["pass", "pass"]
    with pytest.raises(edgekit.InputError, match="example inputs"):
        convert(Net(), ["onnx"], output_dir=tmp_path / "t2")


# routes through onnx2tf: ONNX -> SavedModel -> TFLite, and torch -> ONNX -> SavedModel -> TFLite
ONNX2TF = [("onnx", "cnn"), ("onnx", "two_io"), ("pt2", "cnn"), ("pt2", "two_io")]


@pytest.mark.parametrize("kind,case", ONNX2TF, ids=[f"{k}-{c}" for k, c in ONNX2TF])
def test_onnx2tf_routes_keep_layout_and_batch(cases, tmp_path, kind, case):
    src_path = cases[case].files[kind]
    rep = convert(src_path, ["tflite"], output_dir=tmp_path, trust_code=kind in TRUST)
    res = rep["tflite"]
    assert res.status == "pass", res.error
    assert "onnx_to_savedmodel" in res.route
    with edgekit.load(src_path, trust_code=kind in TRUST) as src, edgekit.load(res.path) as dst:
        assert {s.name: s.shape for s in dst.inputs} == {s.name: s.shape for s in src.inputs}  # NCHW kept
        feeds = _fresh_inputs(src, batch=3)
        ref, got = src.predict(feeds), dst.predict(feeds)
    for (k, r), g in zip(ref.items(), got.values()):
        assert np.max(np.abs(g - r)) <= 1e-4 * (float(np.ptp(r)) or 1.0) + 1e-6, k


def test_onnx2tf_dynamic_sequence_is_pinned_and_input_shape_fixes_it(cases, tmp_path):
    """onnx2tf wrote a wrong model for the dynamic-sequence graph (the gate caught it); the sequence is now pinned
    to the check sample's length first (said in the notes) and the batch stays dynamic."""
    import hashlib

    src_path = cases["dynamic"].files["onnx"]
    before = hashlib.sha256(src_path.read_bytes()).hexdigest()
    rep = convert(src_path, ["tflite"], output_dir=tmp_path / "a")
    assert rep["tflite"].status == "pass", rep["tflite"].error
    assert rep["tflite"].to_dict()["pinned"] == {"seq": {"dim 1": 13}}
    with edgekit.load(rep["tflite"].path) as m:
        assert m.inputs[0].shape == (None, 13, 8)
    rep = convert(src_path, ["tflite"], output_dir=tmp_path / "b", input_shapes={"seq": (2, 7, 8)})
    assert rep["tflite"].status == "pass", rep["tflite"].error
    with edgekit.load(rep["tflite"].path) as m:
        assert m.inputs[0].shape == (2, 7, 8)
    # onnx2tf rewrites its input in place: edgekit hands it a copy, the user's file is untouched
    assert hashlib.sha256(src_path.read_bytes()).hexdigest() == before
    with edgekit.load(src_path) as m:
        assert m.inputs[0].shape == (None, None, 8)


CORE_ML = [("keras", "cnn", (None, 8, 8, 1)), ("savedmodel", "two_io", (None, 4)), ("pt2", "cnn", (None, 1, 8, 8)),
           ("pt2", "dynamic", (None, None, 8)), ("onnx", "cnn", (None, 1, 8, 8))]


@pytest.mark.parametrize("kind,case,shape", CORE_ML, ids=[f"{k}-{c}" for k, c, _ in CORE_ML])
def test_coreml_targets_are_unverified_off_macos(cases, tmp_path, kind, case, shape):
    import platform

    rep = convert(cases[case].files[kind], ["coreml"], output_dir=tmp_path, trust_code=kind in TRUST)
    res = rep["coreml"]
    if platform.system() != "Darwin":
        assert res.status == "unverified" and res.parity is None, res.error
        assert any("only on macOS" in n for n in res.notes)
    with edgekit.load(res.path) as m:
        first = cases[case].keras_inputs if kind in ("keras", "savedmodel") else cases[case].torch_inputs
        assert [s.name for s in m.inputs] == list(first)  # the source's input names
        assert m.inputs[0].shape == shape  # same layout; dynamic dims stay dynamic (bounded ranges)
        assert m.inputs[0].dtype == "float32"  # fp32 asked: compute and I/O in fp32
        n_out = len(cases[case].keras_outputs)
        assert len(m.outputs) == n_out


@pytest.mark.parametrize("kind", ["torchscript", "pickle"])
def test_torchscript_and_pickled_modules_convert_with_a_sample(cases, tmp_path, kind):
    c = cases["two_io"]
    sample = tmp_path / "s.npz"
    np.savez(sample, **c.torch_inputs)
    rep = convert(c.files[kind], ["onnx", "openvino"], output_dir=tmp_path / "o", trust_code=True, sample=sample)
    for t in ("onnx", "openvino"):
        assert rep[t].status == "pass", rep[t].error
        assert rep[t].route[0] == "torchscript_to_onnx"
        with edgekit.load(rep[t].path) as m:
            got = m.predict(c.torch_inputs)
        for ref, g in zip(c.torch_outputs, got.values()):
            assert np.max(np.abs(g - ref)) <= 1e-5
    # without a sample there are no shapes to trace with: a clear error, not a crash
    with pytest.raises(edgekit.InputError, match="records no input shapes") as err:
        convert(c.files[kind], ["onnx"], output_dir=tmp_path / "p", trust_code=True)
    names = list(c.torch_inputs)
    assert all(f"{n}=x_" in err.value.hint for n in names) and "torch.export.save" in err.value.hint


def test_keras_sequential_to_onnx_keeps_the_names_of_every_target(tmp_path):
    """A Keras 3 Sequential model records no output names; tf2onnx's from_keras failed on it ('keras_tensor_8')."""
    import keras

    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    m.save(tmp_path / "seq.keras")
    x = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    ref = np.asarray(m(x))
    rep = convert(tmp_path / "seq.keras", ["onnx", "tflite"], output_dir=tmp_path / "o", sample={"input_layer": x})
    names = {}
    for t in ("onnx", "tflite"):
        assert rep[t].status == "pass", rep[t].error
        with edgekit.load(rep[t].path) as loaded:
            names[t] = ([s.name for s in loaded.inputs], [s.name for s in loaded.outputs])
            got = loaded.predict(x)["output_0"]
        assert np.max(np.abs(got - ref)) <= 1e-5
    assert names["onnx"] == names["tflite"] == (["input_layer"], ["output_0"])


def test_source_traced_at_one_length_is_named_with_the_sizes_edgekit_chose(tmp_path):
    """The TorchScript exporter bakes the traced sequence length into reshapes while declaring it dynamic: the
    source fails on generated inputs of another length. A user error naming the chosen dims, and --input-shape
    at the traced size converts."""
    import torch

    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, dropout=0.0)
    enc = torch.nn.Sequential(torch.nn.Embedding(20, 8), torch.nn.TransformerEncoder(layer, 1)).eval()
    path = tmp_path / "traced.onnx"
    torch.onnx.export(enc, (torch.randint(0, 20, (2, 7)),), str(path), dynamo=False, input_names=["tokens"],
                      output_names=["h"], dynamic_axes={"tokens": {0: "batch", 1: "seq"}}, opset_version=17)
    with pytest.raises(edgekit.InputError, match="fails on generated inputs with tokens dim 1 = ") as err:
        convert(path, ["onnx"], output_dir=tmp_path / "a")
    assert "--input-shape" in err.value.hint and "--sample" in err.value.hint
    rep = convert(path, ["onnx", "openvino"], output_dir=tmp_path / "b", input_shapes={"tokens": (1, 7)})
    assert rep["onnx"].status == rep["openvino"].status == "pass", rep["openvino"].error
