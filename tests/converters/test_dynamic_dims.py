"""Dynamic dims through the converters without --input-shape (issue 11): pinned from the check sample by the ONNX
pass (converters/rewrite/onnx_pin_dims.py), recorded in the notes and manifest, the batch kept dynamic in TFLite
(run at batch 1 and 3 against the source), internal symbols (unk__214, s43) never shown; --input-shape None/-1
keeps a dim dynamic and an unknown name is refused before any work.

Fixtures, built by code: a torch encoder over int64 tokens exported to ONNX (dynamic batch and sequence), a
JAX-like graph with unk__ dims and a Reshape driven by Shape ops, an int32 byte classifier, a two-head detector with
3-D outputs whose batch dim torch named s<N>."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.errors import InputError


def torch_tokens(folder: Path) -> Path:
    """A tiny transformer encoder over int64 tokens exported to ONNX with a dynamic batch and sequence."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(40, 16)
            layer = torch.nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, dropout=0.0)
            self.enc = torch.nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
            self.head = torch.nn.Linear(16, 3)

        def forward(self, tokens):
            return self.head(self.enc(self.emb(tokens)).mean(1))

    torch.manual_seed(0)
    path = folder / "torch_tokens.onnx"
    x = torch.randint(0, 40, (2, 7))
    batch, seq = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("seq", min=2, max=128)
    torch.onnx.export(Encoder().eval(), (x,), str(path), input_names=["tokens"], output_names=["logits"],
                      dynamo=True, dynamic_shapes={"tokens": {0: batch, 1: seq}}, verbose=False)
    return path


def jax_like(folder: Path) -> Path:
    """What jax2tf + tf2onnx write: dims named unk__214/unk__215, Dense layers + Softmax, and a Reshape whose
    target comes from Shape ops."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(0, 0.5, (8, 16)).astype("float32"), "dense/kernel")
    b1 = numpy_helper.from_array(rng.normal(0, 0.1, (16,)).astype("float32"), "dense/bias")
    w2 = numpy_helper.from_array(rng.normal(0, 0.5, (16, 4)).astype("float32"), "dense_1/kernel")
    b2 = numpy_helper.from_array(rng.normal(0, 0.1, (4,)).astype("float32"), "dense_1/bias")
    zero = numpy_helper.from_array(np.array([0], dtype=np.int64), "zero")
    minus1 = numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus1")
    nodes = [
        helper.make_node("MatMul", ["x", "dense/kernel"], ["h0"]),
        helper.make_node("Add", ["h0", "dense/bias"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "dense_1/kernel"], ["h3"]),
        helper.make_node("Add", ["h3", "dense_1/bias"], ["h4"]),
        helper.make_node("Softmax", ["h4"], ["probs"], axis=-1),
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        helper.make_node("Concat", ["batch", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["probs", "target"], ["flat"]),
    ]
    g = helper.make_graph(nodes, "jax2tf", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                          ["unk__214", "unk__215", 8])],
                          [helper.make_tensor_value_info("flat", TensorProto.FLOAT, ["unk__214", "unk__216"])],
                          [w1, b1, w2, b2, zero, minus1])
    path = folder / "jax_like.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="tf2onnx"), path)
    return path


def byte_classifier(folder: Path) -> Path:
    """An int32 byte-sequence classifier: tokens [batch, seq] -> Gather(embedding) -> mean over seq -> Gemm."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    emb = numpy_helper.from_array(rng.normal(0, 1, (256, 12)).astype("float32"), "embedding")
    w = numpy_helper.from_array(rng.normal(0, 0.5, (12, 5)).astype("float32"), "fc_w")
    b = numpy_helper.from_array(rng.normal(0, 0.1, (5,)).astype("float32"), "fc_b")
    nodes = [helper.make_node("Gather", ["embedding", "bytes"], ["e"], axis=0),
             helper.make_node("ReduceMean", ["e"], ["m"], axes=[1], keepdims=0),
             helper.make_node("Gemm", ["m", "fc_w", "fc_b"], ["logits"])]
    g = helper.make_graph(nodes, "bytes", [helper.make_tensor_value_info("bytes", TensorProto.INT32,
                                                                         ["batch", "seq"])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 5])], [emb, w, b])
    path = folder / "byte_classifier.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def detector(folder: Path) -> Path:
    """A two-head detector with a dynamic batch: image [batch, 3, 16, 16] -> boxes [batch, 64, 4] and
    scores [batch, 64, 3] (3-D outputs)."""
    import torch

    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.boxes = torch.nn.Linear(8, 4)
            self.scores = torch.nn.Linear(8, 3)

        def forward(self, image):
            f = torch.relu(self.conv(image)).flatten(2).transpose(1, 2)  # [batch, 64, 8]
            return self.boxes(f), torch.sigmoid(self.scores(f))

    torch.manual_seed(0)
    path = folder / "detector.onnx"
    x = torch.randn(2, 3, 16, 16)
    torch.onnx.export(Detector().eval(), (x,), str(path), input_names=["image"], output_names=["boxes", "scores"],
                      dynamo=True, dynamic_shapes={"image": {0: torch.export.Dim.DYNAMIC}},  # named s0, s43, ...: internal
                      verbose=False)
    return path


BUILDERS = {"torch_tokens": torch_tokens, "jax_like": jax_like, "byte_classifier": byte_classifier,
            "detector": detector}


def _feed(name: str, batch: int, seq: int = 13) -> dict:
    rng = np.random.default_rng(batch)
    return {"torch_tokens": {"tokens": rng.integers(0, 40, (batch, seq))},
            "jax_like": {"x": rng.standard_normal((batch, seq, 8)).astype("float32")},
            "byte_classifier": {"bytes": rng.integers(0, 256, (batch, seq)).astype("int32")},
            "detector": {"image": rng.standard_normal((batch, 3, 16, 16)).astype("float32")}}[name]


def _ort(path: Path, feed: dict) -> list:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("dyn")
    return {name: build(d) for name, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def converted(models, tmp_path_factory):
    """Each fixture converted with no --input-shape to TFLite and ONNX, and the two that failed before to OpenVINO."""
    out = tmp_path_factory.mktemp("dyn_out")
    return {name: edgekit.convert(path, TARGETS[name], output_dir=out / name) for name, path in models.items()}


TARGETS = {"torch_tokens": ["tflite", "openvino", "onnx"], "jax_like": ["tflite", "openvino", "onnx"],
           "byte_classifier": ["tflite", "onnx"], "detector": ["tflite", "onnx"]}


@pytest.mark.parametrize("name,pins", [("torch_tokens", {"tokens": {0: 1, 1: 7}}), ("jax_like", {"x": {0: 2, 1: 5}}),
                                       ("detector", {"image": {0: 1}})])
def test_pin_pass_keeps_the_numbers(models, tmp_path, name, pins):
    import onnx

    from edgekit.converters.rewrite.onnx import rewrite_onnx

    rw = rewrite_onnx(models[name], tmp_path, pins=pins)
    assert rw.path != models[name] and rw.pinned == pins
    m = onnx.load(rw.path)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in m.graph.input[0].type.tensor_type.shape.dim]
    for axis, size in next(iter(pins.values())).items():
        assert dims[axis] == size
    if name == "jax_like":  # the Reshape target no longer comes from Shape ops: folded to [2, -1]
        assert "Shape" not in {n.op_type for n in m.graph.node}
    batch = pins[next(iter(pins))].get(0, 3)
    feed = _feed(name, batch, seq=pins[next(iter(pins))].get(1, 13))
    for a, b in zip(_ort(models[name], feed), _ort(rw.path, feed)):
        assert a.shape == b.shape and np.max(np.abs(a - b)) <= 1e-5
    assert "unk__" not in rw.notes[0] and f"{next(iter(pins))} dim" in rw.notes[0]


def test_nothing_to_pin_leaves_the_file(models, tmp_path):
    from edgekit.converters.rewrite.onnx import rewrite_onnx

    assert rewrite_onnx(models["detector"], tmp_path, pins={}).path == models["detector"]
    with pytest.raises(ValueError, match="dim 1 is 3"):  # a size that contradicts the graph
        rewrite_onnx(models["detector"], tmp_path, pins={"image": {1: 4}})


@pytest.mark.parametrize("name", list(BUILDERS))
def test_converts_without_input_shape(converted, name):
    rep = converted[name]
    for t in TARGETS[name]:
        assert rep[t].status == "pass", (t, rep[t].error)
        assert rep[t].parity["max_abs"] <= 1e-4
    manifest = json.loads((rep.output_dir / "manifest.json").read_text())
    tfl = next(t for t in manifest["targets"] if t["target"] == "tflite")
    seq = {"torch_tokens": {"tokens": {"dim 1": 13}}, "jax_like": {"x": {"dim 1": 13}},
           "byte_classifier": {"bytes": {"dim 1": 13}}, "detector": {}}[name]
    assert tfl["pinned"] == seq  # the batch is never pinned here: kept dynamic
    if seq:
        (inp, dims), = seq.items()
        assert any(n.startswith(f"pinned dynamic dims: {inp} dim 1 = 13") for n in tfl["notes"])
    assert any("kept dynamic" in n for n in tfl["notes"])
    text = json.dumps(manifest) + "".join(str(t.error) for t in rep.targets)
    assert "unk__" not in text and '"s4' not in text and "s40" not in text  # internal symbols stay internal


@pytest.mark.parametrize("name", list(BUILDERS))
def test_tflite_keeps_a_dynamic_batch(converted, models, name):
    with edgekit.load(converted[name]["tflite"].path) as m:
        assert m.inputs[0].shape[0] is None
        for batch in (1, 3):
            feed = _feed(name, batch)
            want = _ort(models[name], feed)
            got = list(m.predict(feed).values())
            for w in want:  # outputs matched by shape (names differ after onnx2tf)
                g = next(g for g in got if g.shape == w.shape)
                assert np.max(np.abs(g - w)) <= 1e-4, (name, batch)


def test_input_shape_keeps_a_dim_dynamic(models, tmp_path):
    rep = edgekit.convert(models["byte_classifier"], ["tflite"], output_dir=tmp_path,
                          input_shapes={"bytes": (-1, 7)})
    assert rep["tflite"].status == "pass", rep["tflite"].error
    assert rep["tflite"].to_dict()["pinned"] == {"bytes": {"dim 1": 7}}
    with edgekit.load(rep["tflite"].path) as m:
        assert m.inputs[0].shape == (None, 7)
        feed = _feed("byte_classifier", 3, seq=7)
        assert np.max(np.abs(next(iter(m.predict(feed).values())) - _ort(models["byte_classifier"], feed)[0])) <= 1e-4
    # every dim kept dynamic: nothing pinned (onnx2tf keeps this graph's sequence), any length runs
    rep = edgekit.convert(models["byte_classifier"], ["tflite"], output_dir=tmp_path / "all",
                          input_shapes={"bytes": (None, None)})
    assert rep["tflite"].status == "pass" and rep["tflite"].to_dict()["pinned"] == {}, rep["tflite"].error
    with edgekit.load(rep["tflite"].path) as m:
        assert m.inputs[0].shape == (None, None)
        feed = _feed("byte_classifier", 2, seq=21)
        assert np.max(np.abs(next(iter(m.predict(feed).values())) - _ort(models["byte_classifier"], feed)[0])) <= 1e-4


def test_unknown_input_name_is_refused_before_work(models, tmp_path):
    with pytest.raises(InputError, match="names no input of the model: token") as e:
        edgekit.convert(models["torch_tokens"], ["tflite"], output_dir=tmp_path / "a", input_shapes={"token": (1, 7)})
    assert "tokens" in e.value.hint
    with pytest.raises(InputError, match="gives tokens 3 dims"):
        edgekit.convert(models["torch_tokens"], ["tflite"], output_dir=tmp_path / "b",
                        input_shapes={"tokens": (1, 7, 1)})
    from typer.testing import CliRunner

    from edgekit.cli.main import app

    res = CliRunner().invoke(app, ["convert", str(models["torch_tokens"]), "--to", "tflite", "-o", str(tmp_path / "c"),
                                   "--input-shape", "token=-1,7"])
    assert res.exit_code == 2 and "names no input of the model: token" in res.output and "tokens" in res.output
    assert not (tmp_path / "c" / "manifest.json").exists()


def test_internal_symbols_are_not_shown(models):
    from edgekit.converters.onnx_to_savedmodel import _still_dynamic, _without_symbols
    from edgekit.formats.onnx_scan import scan_onnx

    report = edgekit.inspect(models["jax_like"]).to_dict()
    assert report["inputs"][0]["shape"] == [None, None, 8] and "unk__" not in json.dumps(report)
    info = scan_onnx(models["jax_like"])
    assert _still_dynamic(info, {"x": {1: 13}}) == ["x dim 0"]  # named by input and axis, not unk__214
    assert str(_without_symbols(ValueError("Reshape: [unk__214, unk__216] vs [4]"))) == "Reshape: [?, ?] vs [4]"


def test_batch_pinned_to_1_only_where_onnx2tf_fails_with_it(models, tmp_path, monkeypatch):
    """Where onnx2tf fails with a dynamic batch (simulated: the real onnx2tf refuses any file whose dim 0 is not
    fixed), the edge converts again with the batch pinned to 1, says so, and the gate runs the sample in chunks."""
    import onnx
    import onnx2tf

    real = onnx2tf.convert

    def strict(**kw):
        dim0 = onnx.load(kw["input_onnx_file_path"]).graph.input[0].type.tensor_type.shape.dim[0]
        if not dim0.HasField("dim_value"):
            raise SystemExit(1)  # what onnx2tf does on many failures
        return real(**kw)

    monkeypatch.setattr(onnx2tf, "convert", strict)
    rep = edgekit.convert(models["detector"], ["tflite"], output_dir=tmp_path)
    res = rep["tflite"]
    assert res.status == "pass" and res.parity["max_abs"] <= 1e-4, res.error
    assert res.to_dict()["pinned"] == {"image": {"dim 0": 1}}
    assert any(n.startswith("pinned dynamic dims: image dim 0 = 1") for n in res.notes)
    assert not any("kept dynamic" in n for n in res.notes)
    with edgekit.load(res.path) as m:
        assert m.inputs[0].shape == (1, 3, 16, 16)
