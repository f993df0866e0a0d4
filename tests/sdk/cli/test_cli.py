"""`edgekit inspect / doctor / demo` and global options through typer's CliRunner, checked by their numbers."""

from __future__ import annotations

import json
import platform

import pytest

from cli_util import invoke, ok, ok_json

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
    coreml = rep["backends"]["coreml"]
    if coreml["available"]:  # honest state: coremltools inspects everywhere but predicts only on macOS
        assert coreml.get("can_predict") is (platform.system() == "Darwin")
    for extra in rep["missing_extras"]:  # every extra it says is missing really has an uninstalled package
        assert extra in (rep["install_hint"] or "")


def test_doctor_text():
    text = ok("doctor").stdout
    assert "device class" in text and "runtime backends" in text
    assert "litert" in text and "ready" in text


# -------------------------------------------------------------------------------------------------- demo


def test_demo_json(tmp_path):
    import platform

    rep = ok_json("demo", "--json", "--output-dir", str(tmp_path))
    conv = {t["target"]: t for t in rep["conversion"]["targets"]}
    assert set(conv) == {"tflite", "onnx", "openvino", "coreml", "executorch", "ncnn"}
    for t in ("tflite", "onnx", "openvino", "executorch", "ncnn"):  # converted here, checked on the 360 test images
        assert conv[t]["status"] == "pass" and conv[t]["parity"]["cosine"] >= 0.9999
        assert (tmp_path / conv[t]["path"]).exists()
    assert conv["coreml"]["status"] == ("pass" if platform.system() == "Darwin" else "unverified")
    verdicts = {c["model"].rsplit("/", 1)[-1]: c["verdict"] for c in rep["validation"]["candidates"]}
    assert verdicts == {"digits_cnn.tflite": "pass", "digits_cnn.onnx": "pass", "digits_cnn.xml": "pass",
                        "digits_cnn.pte": "pass", "digits_cnn.ncnn.param": "pass",
                        "digits_cnn.mlpackage": "pass" if platform.system() == "Darwin" else "unverified"}
    for r in rep["int8"]:  # fp32 and int8 side by side: accuracy kept, smaller, both timed
        assert r["status"] == "pass" and r["int8_accuracy"] >= 0.96 and r["agreement"] >= 0.98
        assert r["int8_size"] < r["fp32_size"] and r["speed"]["p50_ms"] > 0
    bench = {r["model"]: r for r in rep["benchmark"]["results"]}  # every converted target that runs here
    assert set(bench) == {"digits_cnn.tflite", "digits_cnn.onnx", "digits_cnn.xml", "digits_cnn.pte",
                          "digits_cnn.ncnn.param"}
    assert all(r["runs"] == 200 and r["latency_ms"]["p50"] > 0 for r in bench.values())
    rows = [r for r in rep["results"] if r["target"] != "coreml"]
    assert {(r["model"], r["backend"]) for r in rows} >= {("digits_cnn.tflite", "litert"),
                                                          ("digits_cnn.onnx", "onnxruntime"),
                                                          ("digits_cnn.xml", "openvino"),
                                                          ("digits_cnn.pte", "executorch"),
                                                          ("digits_cnn.ncnn.param", "ncnn")}
    assert all(r["origin"] == "converted" for r in rows if r["target"] != "keras")
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


# ------------------------------------------------------------ the public API behind the commands (the CLI renders)


def test_inspect_command_renders_the_api_report():
    import edgekit
    from edgekit.examples import DIGITS_DIR

    path = DIGITS_DIR / "digits_cnn.onnx"
    rep = edgekit.inspect(path)
    assert isinstance(rep, edgekit.InspectReport) and rep.format == "onnx" and rep.backend == "onnxruntime"
    assert [s.name for s in rep.inputs] == ["image"] and rep.parameters > 0 and rep.ops["Conv"] >= 1
    assert ok_json("inspect", path, "--json") == json.loads(json.dumps(rep.to_dict()))


def test_doctor_command_renders_the_api_report():
    import edgekit

    rep = edgekit.doctor()
    assert isinstance(rep, edgekit.DoctorReport) and rep.device_class and rep.backends["litert"]["available"]
    d = rep.to_dict()
    assert set(d) == {"os", "python", "cpu", "board", "thermal", "packages", "backends", "device_class",
                      "device_class_description", "missing_extras", "install_hint", "converters", "native_tools"}
    cli = ok_json("doctor", "--json")
    for key in ("cpu", "packages", "backends", "device_class", "missing_extras", "install_hint"):
        assert cli[key] == json.loads(json.dumps(d[key])), key  # thermal readings may move between the calls


def test_explain_routes_is_what_convert_explain_prints():
    import edgekit
    from edgekit.examples import DIGITS_DIR

    path = DIGITS_DIR / "digits_cnn.keras"
    routes = edgekit.explain_routes(path, "tflite,onnx")
    assert routes.source.value == "keras" and list(routes.routes) == ["tflite", "onnx"]
    assert any(line.startswith("tflite: chosen") for line in routes.routes["tflite"])
    assert ok_json("convert", path, "--to", "tflite,onnx", "--explain", "--json") == routes.to_dict()
    with pytest.raises(edgekit.InputError, match="unknown target 'tensorrt'"):
        edgekit.explain_routes(path, ["tensorrt"])


def test_option_parsers_are_api_functions():
    from edgekit import InputError
    from edgekit.converters.compress_base import CompressOptions
    from edgekit.options import parse_input_shapes, parse_output_tolerances

    assert parse_input_shapes(["image=1,3,8,8", "ids=2,5"]) == {"image": (1, 3, 8, 8), "ids": (2, 5)}
    assert parse_output_tolerances(["a:b:atol=1e-4,cosine=0.99"]) == {"a:b": {"atol": 1e-4, "cosine": 0.99}}
    for bad in ("image", "=1,2", "image=1,x", "image=1,0"):
        with pytest.raises(InputError, match="cannot read --input-shape"):
            parse_input_shapes([bad], "--input-shape")
    with pytest.raises(InputError, match="cannot read output tolerance 'x:speed=3'"):
        parse_output_tolerances(["x:speed=3"])
    assert CompressOptions(weights_only_bits=4).weights_only_bits == 4  # the one rule lives in the options
    for bad in (3, 16):
        with pytest.raises(InputError, match="must be 8 or 4"):
            CompressOptions(weights_only_bits=bad)


def test_convert_refuses_other_weight_bits_before_any_work(tmp_path):
    from edgekit.examples import DIGITS_DIR

    res = invoke("convert", DIGITS_DIR / "digits_cnn.onnx", "--to", "openvino", "--weights-only-bits", "3",
                 "-o", tmp_path / "out")
    assert res.exit_code == 2 and "weights-only-bits must be 8 or 4" in res.stderr.replace("_", "-"), res.output
    assert not (tmp_path / "out").exists()


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
