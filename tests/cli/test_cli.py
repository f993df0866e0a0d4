"""`edgekit inspect / run / doctor / demo` driven through typer's CliRunner, checked by their numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli_util import assert_close, invoke, ok, ok_json, user_error

# ------------------------------------------------------------------------------------------- reference counts


@pytest.fixture(scope="session")
def keras_params(cases):
    import keras

    return {name: int(keras.saving.load_model(str(cases[name].files["keras"]), compile=False).count_params())
            for name in ("cnn", "two_io", "dynamic")}


@pytest.fixture(scope="session")
def torch_params(cases):
    import torch

    out = {}
    for name in ("cnn", "two_io", "dynamic"):
        module = torch.load(str(cases[name].files["pickle"]), weights_only=False)
        out[name] = sum(int(p.numel()) for p in module.parameters())
    return out


def _spec(info, kind="inputs"):
    return {s["name"]: (s["shape"], s["dtype"]) for s in info[kind]}


# ------------------------------------------------------------------------------------------------- inspect

# kind -> (format, backend, image input shape, op that must appear, parameter family, extra args)
INSPECT = {
    "tflite": ("tflite", "litert", [None, 8, 8, 1], "CONV_2D", "keras", ()),
    "keras": ("keras", "keras", [None, 8, 8, 1], "Conv2D", "keras", ()),
    "h5": ("keras-h5", "keras", [None, 8, 8, 1], "Conv2D", "keras", ()),
    "savedmodel": ("savedmodel", "keras", [None, 8, 8, 1], None, "keras", ()),
    "onnx": ("onnx", "onnxruntime", [None, 1, 8, 8], "Conv", "torch", ()),
    "openvino": ("openvino-ir", "openvino", [None, 1, 8, 8], "Convolution", "torch", ()),
    "pt2": ("torch-export", "torch", [None, 1, 8, 8], None, "torch", ("--trust-code",)),
    "coreml": ("coreml", "coreml", [1, 1, 8, 8], "conv", "torch", ()),
}
# formats whose parameter count is not known from the file (reported as null, never a wrong number)
PARAMS_MAY_BE_UNKNOWN = {"savedmodel", "coreml"}


@pytest.mark.parametrize("kind", list(INSPECT))
def test_inspect_json_cnn(kind, cases, keras_params, torch_params):
    fmt, backend, shape, op, family, extra = INSPECT[kind]
    info = ok_json("inspect", cases["cnn"].files[kind], "--json", *extra)
    assert info["format"] == fmt
    assert info["backend"] == backend
    assert info["size_bytes"] > 0
    assert list(_spec(info)) == ["image"]
    got_shape, dtype = _spec(info)["image"]
    assert got_shape == shape
    # the Core ML fixture is an fp16 ML program (macOS 13 target): its I/O is float16
    assert dtype == ("float16" if kind == "coreml" else "float32")
    if kind != "savedmodel":
        assert len(info["outputs"]) == 1 and info["outputs"][0]["shape"][-1] == 10
    expected = (keras_params if family == "keras" else torch_params)["cnn"]
    if kind == "tflite":
        # the TFLite converter drops the fixture's all-zero Dense bias (10 values): never more than Keras counts;
        # exact equality is checked on a model with non-zero biases in test_inspect_tflite_parameter_count_exact
        assert expected - 10 <= info["parameters"] <= expected
    elif kind in PARAMS_MAY_BE_UNKNOWN and info["parameters"] is None:
        pass
    else:
        assert info["parameters"] == expected, f"{kind}: {info['parameters']} parameters, source has {expected}"
    if op is not None:
        assert info["ops"][op] >= 1, info["ops"]


def test_inspect_tflite_parameter_count_exact(keras_extra):
    info = ok_json("inspect", keras_extra.tflite, "--json")
    assert info["parameters"] == keras_extra.params == 1490
    assert info["ops"]["CONV_2D"] == 1 and info["ops"]["FULLY_CONNECTED"] == 1
    assert _spec(info) == {"image": ([None, 8, 8, 1], "float32")}


@pytest.mark.parametrize("kind", ["tflite", "keras", "onnx", "openvino", "pt2"])
def test_inspect_json_two_io(kind, cases, keras_params, torch_params):
    extra = ("--trust-code",) if kind == "pt2" else ()
    info = ok_json("inspect", cases["two_io"].files[kind], "--json", *extra)
    assert _spec(info) == {"a": ([None, 4], "float32"), "b": ([None, 3], "float32")}
    assert [o["shape"] for o in info["outputs"]] == [[None, 2], [None, 3]]
    if kind == "keras":
        assert [o["name"] for o in info["outputs"]] == ["sum", "act"]
    if kind in ("onnx", "openvino"):
        assert [o["name"] for o in info["outputs"]] == ["out0", "out1"]
    expected = keras_params["two_io"] if kind in ("tflite", "keras") else torch_params["two_io"]
    if kind == "tflite":  # the four all-zero Dense biases (15 values) are dropped by the converter
        assert expected - 15 <= info["parameters"] <= expected
    else:
        assert info["parameters"] == expected


@pytest.mark.parametrize("kind", ["tflite", "onnx", "openvino", "keras", "pt2"])
def test_inspect_json_dynamic_dims(kind, cases):
    extra = ("--trust-code",) if kind == "pt2" else ()
    info = ok_json("inspect", cases["dynamic"].files[kind], "--json", *extra)
    assert _spec(info) == {"seq": ([None, None, 8], "float32")}


def test_inspect_int8_tflite_shows_quantization(cases):
    info = ok_json("inspect", cases["int8"].files["tflite"], "--json")
    assert info["precision"] == "int8"
    (inp,), (outp,) = info["inputs"], info["outputs"]
    assert inp["dtype"] == "int8" and outp["dtype"] == "int8"
    q = inp["quantization"]
    # inputs in [0, 1) calibrated to int8: scale ~ 1/255, zero point -128
    assert q["scale"][0] == pytest.approx(1 / 255, rel=0.02) and q["zero_point"] == [-128]
    # softmax output: scale 1/256, zero point -128 (TFLite's fixed output quantization for softmax)
    assert outp["quantization"]["scale"][0] == pytest.approx(1 / 256) and outp["quantization"]["zero_point"] == [-128]
    assert info["ops"]["CONV_2D"] == 1

    text = ok("inspect", cases["int8"].files["tflite"]).stdout
    assert "int8" in text and "scale=" in text and "zp=-128" in text


@pytest.mark.parametrize("kind", ["tflite", "onnx", "openvino", "keras"])
def test_inspect_text_mentions_inputs(kind, cases):
    text = ok("inspect", cases["cnn"].files[kind]).stdout
    assert "image" in text
    assert "format=" in text and "backend=" in text
    text2 = ok("inspect", cases["two_io"].files[kind]).stdout
    lines = [ln for ln in text2.splitlines() if "input" in ln]
    assert any(" a " in ln for ln in lines) and any(" b " in ln for ln in lines), text2


def test_inspect_openvino_backend_on_tflite(cases):
    info = ok_json("inspect", cases["cnn"].files["tflite"], "--json", "--backend", "openvino")
    assert info["format"] == "tflite" and info["backend"] == "openvino"
    assert info["precision"] == "fp32"  # pinned to f32 even on a bf16-capable CPU
    assert _spec(info)["image"] == ([None, 8, 8, 1], "float32")


def test_inspect_trusted_torchscript_has_no_shapes(cases, torch_params):
    info = ok_json("inspect", cases["cnn"].files["torchscript"], "--json", "--trust-code")
    assert info["format"] == "torchscript"
    assert info["inputs"] == [{"name": "image", "shape": None, "dtype": ""}]
    assert info["parameters"] == torch_params["cnn"]


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
    assert sorted(data["notes"]) == ["a: dynamic dimension 0 set to 1", "b: dynamic dimension 0 set to 1"]


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
    assert "seq: dynamic dimension 1 set to 16" in data["notes"]
    assert "seq: dynamic dimension 0 set to 1" in data["notes"]
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


# ------------------------------------------------------------------------------------------------ doctor


def test_doctor_json():
    rep = ok_json("doctor", "--json")
    isa = rep["cpu"]["isa"]
    assert isinstance(isa, list) and all(isinstance(x, str) and x for x in isa)
    assert rep["cpu"]["logical_cores"] >= 1 and 1 <= rep["cpu"]["usable_cores"] <= rep["cpu"]["logical_cores"]
    assert isinstance(rep["device_class"], str) and rep["device_class"]
    assert rep["device_class_description"]
    for name in ("litert", "onnxruntime", "openvino"):
        assert rep["backends"][name]["available"] is True, rep["backends"][name]
    assert "tflite" in rep["backends"]["litert"]["formats"]
    assert "openvino-ir" in rep["backends"]["openvino"]["formats"]
    for extra in rep["missing_extras"]:  # every extra it says is missing really has an uninstalled package
        assert extra in (rep["install_hint"] or "")


def test_doctor_text():
    text = ok("doctor").stdout
    assert "device class" in text and "runtime backends" in text
    assert "litert" in text and "ready" in text


# -------------------------------------------------------------------------------------------------- demo


def test_demo_json():
    rep = ok_json("demo", "--json")
    rows = rep["results"]
    assert {(r["model"], r["backend"]) for r in rows} >= {("digits_cnn.tflite", "litert"),
                                                          ("digits_cnn.onnx", "onnxruntime"),
                                                          ("digits_cnn.xml", "openvino")}
    for r in rows:
        assert r["status"] == "ok", r
        assert r["samples"] > 100
        assert r["accuracy"] > 0.9, r
        assert r["agreement"] >= 0.99, r
        assert r["max_abs_diff"] < 1e-3, r
    # every backend classifies the same split: accuracies agree to within the disagreement allowed
    accs = [r["accuracy"] for r in rows]
    assert max(accs) - min(accs) <= 0.01


def test_demo_text():
    text = ok("demo").stdout
    assert "digits_cnn.tflite" in text and "litert" in text and "accuracy" in text


# ---------------------------------------------------------------------------------------- global options


def test_version_and_help():
    assert ok("--version").stdout.startswith("edgekit ")
    text = ok("--help").stdout
    for cmd in ("inspect", "run", "doctor", "demo"):
        assert cmd in text


def test_no_args_shows_help():
    res = invoke()
    assert "inspect" in res.output and res.exit_code in (0, 2)


def test_json_stdout_is_pure(cases):
    """--json output must be parseable as a whole: nothing else may be printed on stdout."""
    for kind in ("tflite", "keras", "coreml", "savedmodel"):
        res = ok("inspect", cases["cnn"].files[kind], "--json")
        json.loads(res.stdout)
