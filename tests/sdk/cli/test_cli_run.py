"""`edgekit run`: outputs compared with the source framework's reference, keyed by output name."""

from __future__ import annotations

import numpy as np
import pytest

from cli_util import assert_close, invoke, ok, ok_json, user_error

# ----------------------------------------------------------------------------------------------------- run

KERAS_RUNS = [("keras", None), ("h5", None), ("savedmodel", None), ("savedmodel", "openvino"), ("tflite", None),
              ("tflite", "openvino")]
TORCH_RUNS = [("onnx", None), ("onnx", "openvino"), ("openvino", None), ("pt2", None), ("torchscript", None),
              ("pickle", None)]
RUN_MATRIX = [(case, kind, backend) for case in ("cnn", "two_io", "dynamic")
              for kind, backend in KERAS_RUNS + TORCH_RUNS]


def _run_args(kind, backend):
    args = []
    if backend:
        args += ["--backend", backend]
    if kind in ("pt2", "torchscript", "pickle"):
        args.append("--trust-code")
    return args


@pytest.mark.parametrize("case,kind,backend", RUN_MATRIX,
                         ids=[f"{c}-{k}" + (f"-{b}" if b else "") for c, k, b in RUN_MATRIX])
def test_run_npz_matches_reference(case, kind, backend, cases, tmp_path):
    c = cases[case]
    torch_side = (kind, backend) in TORCH_RUNS
    inputs = c.torch_inputs if torch_side else c.keras_inputs
    ref = c.torch_outputs if torch_side else c.keras_outputs
    npz = tmp_path / "in.npz"
    np.savez(npz, **inputs)
    out = tmp_path / "sub" / "out.npz"
    res = ok("run", c.files[kind], "--input", npz, "--output", out, *_run_args(kind, backend))
    assert "wrote" in res.stdout
    with np.load(out) as z:
        names = list(z.files)
        got = {k: z[k] for k in names}
    assert len(names) == len(ref), names
    info = ok_json("inspect", c.files[kind], "--json", *_run_args(kind, backend))
    if info["outputs"]:  # formats that know their outputs before a run: keys are those names, in order
        assert names == [o["name"] for o in info["outputs"]]
    for name, r in zip(names, ref):
        assert_close(got[name], r, what=f"{case}/{kind}/{name}")


def test_run_npz_output_names(cases, tmp_path):
    npz = tmp_path / "in.npz"
    np.savez(npz, **cases["two_io"].keras_inputs)
    ok("run", cases["two_io"].files["keras"], "--input", npz, "--output", tmp_path / "k.npz")
    with np.load(tmp_path / "k.npz") as z:
        assert z.files == ["sum", "act"]
        assert_close(z["sum"], cases["two_io"].keras_outputs[0])
        assert_close(z["act"], cases["two_io"].keras_outputs[1])
    np.savez(npz, **cases["two_io"].torch_inputs)
    ok("run", cases["two_io"].files["onnx"], "--input", npz, "--output", tmp_path / "o.npz")
    with np.load(tmp_path / "o.npz") as z:
        assert z.files == ["out0", "out1"]
        assert_close(z["out1"], cases["two_io"].torch_outputs[1])


def test_run_npz_ignores_labels_key(cases, tmp_path):
    npz = tmp_path / "in.npz"
    np.savez(npz, image=cases["cnn"].keras_inputs["image"], labels=np.arange(3))
    ok("run", cases["cnn"].files["tflite"], "--input", npz, "--output", tmp_path / "o.npz")
    with np.load(tmp_path / "o.npz") as z:
        assert_close(z[z.files[0]], cases["cnn"].keras_outputs[0])


@pytest.mark.parametrize("kind", ["tflite", "onnx", "keras"])
def test_run_npy_single_input(kind, cases, tmp_path):
    c = cases["cnn"]
    torch_side = kind == "onnx"
    npy = tmp_path / "x.npy"
    np.save(npy, (c.torch_inputs if torch_side else c.keras_inputs)["image"])
    data = ok_json("run", c.files[kind], "--input", npy, "--json")
    (name, out), = data["outputs"].items()
    assert out["shape"] == [3, 10] and out["dtype"] == "float32"
    ref = (c.torch_outputs if torch_side else c.keras_outputs)[0]
    assert_close(np.array(out["values"], dtype=np.float32), ref)
    assert np.allclose(np.sum(out["values"], axis=1), 1.0, atol=1e-5)  # softmax rows


def test_run_json_two_io(cases, tmp_path):
    c = cases["two_io"]
    npz = tmp_path / "in.npz"
    np.savez(npz, **c.keras_inputs)
    data = ok_json("run", c.files["tflite"], "--input", npz, "--json")
    assert data["backend"] == "litert" and data["notes"] == []
    outs = list(data["outputs"].values())
    assert [o["shape"] for o in outs] == [[3, 2], [3, 3]]
    for o, ref in zip(outs, c.keras_outputs):
        assert_close(np.array(o["values"], dtype=np.float32), ref)


def test_run_fixed_batch_tflite_stacks_samples(keras_extra, tmp_path):
    info = ok_json("inspect", keras_extra.fixed1, "--json")
    assert info["inputs"][0]["shape"] == [1, 8, 8, 1]
    assert info["parameters"] == keras_extra.params
    npz = tmp_path / "five.npz"
    np.savez(npz, image=keras_extra.samples)
    out = tmp_path / "out.npz"
    ok("run", keras_extra.fixed1, "--input", npz, "--output", out)
    with np.load(out) as z:
        (y,) = [z[k] for k in z.files]
    assert y.shape == (5, 10)
    assert_close(y, keras_extra.one_by_one)
    assert len({tuple(np.round(row, 6)) for row in y}) == 5  # five different samples, not one repeated


def test_run_fixed_batch_two_chunks(keras_extra, tmp_path):
    npz = tmp_path / "four.npz"
    np.savez(npz, image=keras_extra.samples4)
    data = ok_json("run", keras_extra.fixed2, "--input", npz, "--json")
    (out,) = data["outputs"].values()
    assert out["shape"] == [4, 10]
    assert_close(np.array(out["values"], dtype=np.float32), keras_extra.two_by_two)


def test_run_fixed_batch_not_a_multiple(keras_extra, tmp_path):
    npz = tmp_path / "five.npz"
    np.savez(npz, image=keras_extra.samples)
    res = invoke("run", keras_extra.fixed2, "--input", npz)
    user_error(res, "image", "2", "5")


def test_run_fixed_batch_pt2(torch_fixed, tmp_path):
    info = ok_json("inspect", torch_fixed.path, "--json", "--trust-code")
    assert info["inputs"][0]["shape"] == [1, 1, 8, 8]
    npz = tmp_path / "five.npz"
    np.savez(npz, image=torch_fixed.samples)
    out = tmp_path / "out.npz"
    ok("run", torch_fixed.path, "--trust-code", "--input", npz, "--output", out)
    with np.load(out) as z:
        (y,) = [z[k] for k in z.files]
    assert y.shape == (5, 10)
    assert_close(y, torch_fixed.one_by_one)


def test_run_int_input_model(keras_extra, tmp_path):
    npz = tmp_path / "ids.npz"
    np.savez(npz, ids=keras_extra.int_inputs)
    for path in (keras_extra.int_keras, keras_extra.int_tflite):
        data = ok_json("run", path, "--input", npz, "--json")
        (out,) = data["outputs"].values()
        assert_close(np.array(out["values"], dtype=np.float32), keras_extra.int_ref, what=path.name)
    # int64 values that fit are accepted for an int32 input
    np.savez(npz, ids=keras_extra.int_inputs.astype(np.int64))
    data = ok_json("run", keras_extra.int_tflite, "--input", npz, "--json")
    assert_close(np.array(next(iter(data["outputs"].values()))["values"]), keras_extra.int_ref)


def test_run_int8_tflite_dequantizes(cases, tmp_path):
    npz = tmp_path / "in.npz"
    np.savez(npz, **cases["int8"].keras_inputs)
    data = ok_json("run", cases["int8"].files["tflite"], "--input", npz, "--json")
    (out,) = data["outputs"].values()
    assert out["dtype"] == "float32" and out["shape"] == [3, 10]
    got = np.array(out["values"])
    ref = cases["int8"].keras_outputs[0]
    assert np.max(np.abs(got - ref)) < 4 / 256  # a few output quantization steps
    assert np.array_equal(got.argmax(1), ref.argmax(1))


def test_run_int8_tflite_raw_quantized(cases, tmp_path):
    info = ok_json("inspect", cases["int8"].files["tflite"], "--json")
    q = info["inputs"][0]["quantization"]
    x = cases["int8"].keras_inputs["image"]
    raw = np.clip(np.round(x / q["scale"][0] + q["zero_point"][0]), -128, 127).astype(np.int8)
    npz = tmp_path / "raw.npz"
    np.savez(npz, image=raw)
    data = ok_json("run", cases["int8"].files["tflite"], "--input", npz, "--json", "--raw-quantized")
    (out,) = data["outputs"].values()
    assert out["dtype"] == "int8"
    oq = info["outputs"][0]["quantization"]
    deq = (np.array(out["values"], dtype=np.float32) - oq["zero_point"][0]) * oq["scale"][0]
    assert np.max(np.abs(deq - cases["int8"].keras_outputs[0])) < 4 / 256


def test_run_int8_tflite_raw_quantized_random(cases):
    """--random with --raw-quantized must generate int8 data for an int8 input."""
    data = ok_json("run", cases["int8"].files["tflite"], "--random", "--raw-quantized", "--json")
    (out,) = data["outputs"].values()
    assert out["dtype"] == "int8" and out["shape"] == [1, 10]


@pytest.mark.parametrize("kind", ["tflite", "onnx", "openvino", "keras"])
def test_run_random_json(kind, cases):
    data = ok_json("run", cases["two_io"].files[kind], "--random", "--json")
    outs = list(data["outputs"].values())
    assert [o["shape"] for o in outs] == [[1, 2], [1, 3]]
    assert all(o["dtype"] == "float32" for o in outs)
    assert all(np.isfinite(np.array(o["values"])).all() for o in outs)
    assert min(np.array(outs[1]["values"]).ravel()) >= 0  # the second output is a ReLU
    assert sorted(data["notes"]) == ["a: dynamic dimension 0 set to 1 in the generated inputs",
                                   "b: dynamic dimension 0 set to 1 in the generated inputs"]


def test_run_random_is_seeded(cases):
    f = cases["cnn"].files["onnx"]
    a = ok_json("run", f, "--random", "--json", "--seed", "3")
    b = ok_json("run", f, "--random", "--json", "--seed", "3")
    c = ok_json("run", f, "--random", "--json", "--seed", "4")
    assert a["outputs"] == b["outputs"]
    assert a["outputs"] != c["outputs"]


@pytest.mark.parametrize("kind", ["tflite", "onnx", "keras"])
def test_run_random_dynamic_notes_fixed_dims(kind, cases):
    data = ok_json("run", cases["dynamic"].files[kind], "--random", "--json")
    assert "seq: dynamic dimension 1 set to 16 in the generated inputs" in data["notes"]
    assert "seq: dynamic dimension 0 set to 1 in the generated inputs" in data["notes"]
    (out,) = data["outputs"].values()
    assert out["shape"] == [1, 6]
    assert np.all(np.abs(np.array(out["values"])) <= 1)  # tanh then mean
    text = ok("run", cases["dynamic"].files[kind], "--random").stdout
    assert "note: seq: dynamic dimension 1 set to 16" in text


def test_run_random_table(cases):
    text = ok("run", cases["cnn"].files["tflite"], "--random").stdout
    assert "[1, 10]" in text and "float32" in text and "litert" in text


def test_run_random_torchscript_without_shapes(cases):
    res = invoke("run", cases["cnn"].files["torchscript"], "--random", "--trust-code")
    user_error(res, "image", "shape")


def test_run_torchscript_with_input(cases, tmp_path):
    npz = tmp_path / "in.npz"
    np.savez(npz, **cases["cnn"].torch_inputs)
    data = ok_json("run", cases["cnn"].files["torchscript"], "--trust-code", "--input", npz, "--json")
    (out,) = data["outputs"].values()
    assert_close(np.array(out["values"], dtype=np.float32), cases["cnn"].torch_outputs[0])


def test_run_onnx_external_data_inside_folder(onnx_external, tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    npz = tmp_path / "x.npz"
    np.savez(npz, x=x)
    for backend in ("onnxruntime", "openvino"):
        data = ok_json("run", onnx_external.good, "--input", npz, "--json", "--backend", backend)
        assert_close(np.array(data["outputs"]["y"]["values"], dtype=np.float32), x @ onnx_external.weights,
                     what=backend)
    info = ok_json("inspect", onnx_external.good, "--json")
    assert info["parameters"] == 12
