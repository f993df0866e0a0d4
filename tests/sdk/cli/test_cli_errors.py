"""User errors through the CLI: exit code 2, one `error: ...` line and one `hint: ...` line, no traceback.

Every damaged file goes through both `inspect` and `run --random`.
"""

from __future__ import annotations

import platform

import numpy as np
import pytest

from cli_util import describe, hint_of, invoke, ok, rejected, user_error

BAD = ["nonexistent", "empty.tflite", "random.tflite", "random.onnx", "random.bin", "random.xyz",
       "truncated.tflite", "truncated.onnx", "forged.tflite", "folder without a model", "ir_no_bin/model.xml",
       "ir_half_bin/model.xml", "malformed_ir/model.xml", "corrupt.keras", "garbage_weights.keras",
       "truncated.keras", "corrupt.h5", "truncated.h5", "savedmodel_corrupt", "corrupt.mlpackage",
       "truncated.mlpackage"]
COMMANDS = {"inspect": ("inspect",), "run": ("run", "--random")}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("name", BAD)
def test_bad_file(name, command, bad_files):
    path, fragments = bad_files[name]
    res = invoke(*COMMANDS[command], path)
    user_error(res, *fragments)


@pytest.mark.parametrize("name,expected", [
    ("truncated.tflite", "not a valid tflite"),
    ("forged.tflite", "not a valid tflite"),
    ("truncated.onnx", "truncated"),
    ("random.tflite", "content is not"),
    ("empty.tflite", "0 bytes"),
    ("random.bin", "not a model format"),
    ("folder without a model", "holds no model"),
    ("ir_no_bin/model.xml", "no weights file"),
    ("nonexistent", "no such file"),
])
def test_bad_file_says_what_is_wrong(name, expected, bad_files):
    path, _ = bad_files[name]
    user_error(invoke("inspect", path), expected)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_openvino_truncated_bin_names_the_weights(command, bad_files):
    """A half-length .bin must be reported as a damaged weights file, not an opaque source location."""
    path, _ = bad_files["ir_half_bin/model.xml"]
    msg = user_error(invoke(*COMMANDS[command], path))
    assert "core.cpp" not in msg and not msg.rstrip().endswith(":"), msg
    assert "weights" in msg.lower() or "model.bin" in msg, msg


def test_openvino_malformed_xml_message_is_not_a_source_location(bad_files):
    path, _ = bad_files["malformed_ir/model.xml"]
    msg = user_error(invoke("inspect", path))
    assert "core.cpp" not in msg and not msg.rstrip().endswith(":"), msg


@pytest.mark.parametrize("command", list(COMMANDS))
def test_onnx_external_data_outside_folder(command, onnx_external):
    msg = user_error(invoke(*COMMANDS[command], onnx_external.evil), "evil.onnx", "external data", "../outside.bin")
    assert "outside" in msg.lower() or "escapes" in msg.lower(), msg
    assert "folder" in msg.lower()


def test_onnx_external_data_outside_folder_openvino_backend(onnx_external):
    user_error(invoke("run", onnx_external.evil, "--random", "--backend", "openvino"), "external data")


TRUST_KINDS = ["pt2", "torchscript", "pickle"]


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", TRUST_KINDS)
def test_untrusted_torch_formats_refused(kind, command, cases):
    path = cases["cnn"].files[kind]
    res = invoke(*COMMANDS[command], path)
    user_error(res, path.name)
    hint = hint_of(res)
    assert "--trust-code" in hint or "trust_code" in hint, hint


@pytest.mark.parametrize("kind", TRUST_KINDS)
def test_untrusted_error_line_mentions_trust(kind, cases):
    """The error line itself (not only the hint) should say the file needs trust."""
    user_error(invoke("inspect", cases["cnn"].files[kind]), "trust")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_trusted_pickle_with_unimportable_class(command, torch_bad):
    """--trust-code on a pickle whose class cannot be imported here is a user error, not a crash."""
    res = invoke(*COMMANDS[command], torch_bad.foreign, "--trust-code")
    user_error(res, "foreign_class.pt")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_trusted_garbage_pickle(command, torch_bad):
    res = invoke(*COMMANDS[command], torch_bad.garbage, "--trust-code")
    user_error(res, "garbage_pickle.pt")


def test_untrusted_garbage_pickle_refused_before_reading(torch_bad):
    res = invoke("inspect", torch_bad.garbage)
    user_error(res)
    assert "--trust-code" in hint_of(res) or "trust_code" in hint_of(res)


# ---------------------------------------------------------------------------------------- wrong inputs


def test_run_wrong_input_name(cases, tmp_path):
    npz = tmp_path / "x.npz"
    np.savez(npz, a=cases["two_io"].keras_inputs["a"], c=cases["two_io"].keras_inputs["b"])
    msg = user_error(invoke("run", cases["two_io"].files["tflite"], "--input", npz), "'b'", "'c'")
    assert "'a'" in msg  # says what the file holds


def test_run_wrong_input_name_single_input_model(cases, tmp_path):
    npz = tmp_path / "x.npz"
    x = cases["cnn"].keras_inputs["image"]
    np.savez(npz, img=x, mask=x)
    user_error(invoke("run", cases["cnn"].files["tflite"], "--input", npz), "'image'", "'img'", "'mask'")


@pytest.mark.parametrize("kind,given", [("tflite", (3, 8, 8, 3)), ("keras", (3, 8, 8, 3)), ("onnx", (3, 8, 8, 1)),
                                        ("openvino", (3, 8, 8, 1)), ("tflite", (3, 64))])
def test_run_wrong_shape(kind, given, cases, tmp_path):
    npz = tmp_path / "x.npz"
    np.savez(npz, image=np.zeros(given, dtype=np.float32))
    expected = "[?, 1, 8, 8]" if kind in ("onnx", "openvino") else "[?, 8, 8, 1]"
    user_error(invoke("run", cases["cnn"].files[kind], "--input", npz), "'image'", expected, str(list(given)))


def test_run_wrong_shape_two_io(cases, tmp_path):
    npz = tmp_path / "x.npz"
    np.savez(npz, a=np.zeros((3, 4), np.float32), b=np.zeros((3, 4), np.float32))
    user_error(invoke("run", cases["two_io"].files["onnx"], "--input", npz), "'b'", "[?, 3]", "[3, 4]")


def test_run_different_sample_counts(cases, tmp_path):
    npz = tmp_path / "x.npz"
    np.savez(npz, a=np.zeros((3, 4), np.float32), b=np.zeros((2, 3), np.float32))
    user_error(invoke("run", cases["two_io"].files["tflite"], "--input", npz), "a=3", "b=2")


@pytest.mark.parametrize("kind", ["tflite", "onnx", "keras"])
def test_run_string_input_for_float_model(kind, cases, tmp_path):
    npz = tmp_path / "x.npz"
    shape = (1, 1, 8, 8) if kind == "onnx" else (1, 8, 8, 1)
    np.savez(npz, image=np.full(shape, "abc"))
    user_error(invoke("run", cases["cnn"].files[kind], "--input", npz), "'image'", "float32", "str")


@pytest.mark.parametrize("which", ["int_keras", "int_tflite"])
def test_run_float_input_for_int_model(which, keras_extra, tmp_path):
    npz = tmp_path / "x.npz"
    np.savez(npz, ids=keras_extra.int_inputs.astype(np.float32))
    user_error(invoke("run", getattr(keras_extra, which), "--input", npz), "'ids'", "int32", "float32")


def test_run_out_of_range_ints_for_int32_model(keras_extra, tmp_path):
    npz = tmp_path / "x.npz"
    np.savez(npz, ids=np.full((1, 5), 2**40, dtype=np.int64))
    user_error(invoke("run", keras_extra.int_tflite, "--input", npz), "'ids'", "int32", "int64")


def test_run_float_input_for_raw_int8(cases, tmp_path):
    npz = tmp_path / "x.npz"
    np.savez(npz, **cases["int8"].keras_inputs)
    user_error(invoke("run", cases["int8"].files["tflite"], "--raw-quantized", "--input", npz), "int8", "float32")


def test_run_npy_for_two_input_model(cases, tmp_path):
    npy = tmp_path / "x.npy"
    np.save(npy, cases["two_io"].keras_inputs["a"])
    user_error(invoke("run", cases["two_io"].files["tflite"], "--input", npy), "2 inputs")


def test_run_missing_input_file(cases, tmp_path):
    user_error(invoke("run", cases["cnn"].files["tflite"], "--input", tmp_path / "nope.npz"), "nope.npz")


def test_run_unreadable_input_file(cases, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    user_error(invoke("run", cases["cnn"].files["tflite"], "--input", bad), "bad.npz")


def test_run_pickled_object_array_refused(cases, tmp_path):
    npz = tmp_path / "obj.npz"
    np.savez(npz, image=np.array([object(), 1], dtype=object))
    user_error(invoke("run", cases["cnn"].files["tflite"], "--input", npz), "obj.npz")


def test_run_both_input_and_random(cases, tmp_path):
    npz = tmp_path / "x.npz"
    np.savez(npz, **cases["cnn"].keras_inputs)
    user_error(invoke("run", cases["cnn"].files["tflite"], "--input", npz, "--random"), "--input", "--random")


def test_run_neither_input_nor_random(cases):
    user_error(invoke("run", cases["cnn"].files["tflite"]), "--input", "--random")


# --------------------------------------------------------------------------------------- backends, platform


def test_unknown_backend(cases):
    res = invoke("inspect", cases["cnn"].files["tflite"], "--backend", "nope")
    user_error(res, "nope")
    assert "litert" in hint_of(res)


def test_backend_that_cannot_run_the_format(cases):
    res = invoke("run", cases["cnn"].files["tflite"], "--random", "--backend", "keras")
    user_error(res, "keras", "tflite")


@pytest.mark.skipif(platform.system() == "Darwin", reason="Core ML predicts on macOS")
def test_coreml_run_off_macos(cases):
    res = invoke("run", cases["cnn"].files["coreml"], "--random")
    user_error(res, "macOS")
    # inspect on the same package works here
    ok("inspect", cases["cnn"].files["coreml"])


# ------------------------------------------------------------------------------------------------- --debug


def test_debug_shows_traceback(bad_files):
    path, _ = bad_files["truncated.tflite"]
    res = invoke("--debug", "inspect", path)
    assert res.exit_code == 2, describe(res)
    assert "Traceback" in res.stderr
    assert "ModelFileError" in res.stderr
    assert any(ln.startswith("error: ") for ln in res.stderr.splitlines())
    assert any(ln.startswith("hint: ") for ln in res.stderr.splitlines())
    # and the next call without --debug is back to two lines
    res2 = invoke("inspect", path)
    user_error(res2)


def test_debug_traceback_on_run(cases):
    res = invoke("--debug", "run", cases["cnn"].files["pt2"], "--random")
    assert res.exit_code == 2, describe(res)
    assert "Traceback" in res.stderr and "TrustRequiredError" in res.stderr


# ------------------------------------------------------------------------------- options and run-time failures


@pytest.mark.parametrize("kind", ["torchscript", "pickle"])
def test_run_torch_without_shapes_wrong_layout(kind, cases, tmp_path):
    """TorchScript / pickled modules record no input shapes, so a wrong layout fails inside the module: that is
    still a user error (exit 2), not an internal crash."""
    npz = tmp_path / "nhwc.npz"
    np.savez(npz, **cases["cnn"].keras_inputs)  # NHWC given to an NCHW module
    user_error(invoke("run", cases["cnn"].files[kind], "--trust-code", "--input", npz))


@pytest.mark.parametrize("kind", ["tflite", "onnx", "openvino", "keras"])
def test_run_zero_samples(kind, cases, tmp_path):
    """An input file with 0 samples is refused as a user error or gives empty outputs of the right shape."""
    npz = tmp_path / "zero.npz"
    shape = (0, 1, 8, 8) if kind in ("onnx", "openvino") else (0, 8, 8, 1)
    np.savez(npz, image=np.zeros(shape, np.float32))
    res = invoke("run", cases["cnn"].files[kind], "--input", npz, "--json")
    if res.exit_code == 0:
        import json

        (out,) = json.loads(res.stdout)["outputs"].values()
        assert out["shape"] == [0, 10]
    else:
        user_error(res)


def test_run_zero_samples_fixed_batch(keras_extra, tmp_path):
    npz = tmp_path / "zero.npz"
    np.savez(npz, image=np.zeros((0, 8, 8, 1), np.float32))
    res = invoke("run", keras_extra.fixed1, "--input", npz, "--json")
    if res.exit_code == 0:
        import json

        outs = json.loads(res.stdout)["outputs"]
        assert [o["shape"] for o in outs.values()] == [[0, 10]], outs  # the output is not silently dropped
    else:
        user_error(res)


def test_run_output_is_a_directory(cases, tmp_path):
    target = tmp_path / "out.npz"
    target.mkdir()
    user_error(invoke("run", cases["cnn"].files["onnx"], "--random", "--output", target), "out.npz")


def test_run_output_parent_is_a_file(cases, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    user_error(invoke("run", cases["cnn"].files["onnx"], "--random", "--output", blocker / "out.npz"))


def test_run_negative_seed(cases):
    rejected(invoke("run", cases["cnn"].files["onnx"], "--random", "--seed", "-1"))


@pytest.mark.parametrize("kind", ["tflite", "onnx", "openvino"])
@pytest.mark.parametrize("threads", ["-1"])
def test_run_invalid_threads(kind, threads, cases):
    res = invoke("run", cases["cnn"].files[kind], "--random", "--threads", threads)
    rejected(res)
    if any(ln.startswith("hint: ") for ln in res.stderr.splitlines()):
        assert "re-download" not in hint_of(res), "a bad option is not a damaged file"


def test_usage_errors_exit_2(cases):
    rejected(invoke("run"))
    rejected(invoke("inspect"))
    rejected(invoke("run", cases["cnn"].files["onnx"], "--random", "--no-such-option"))
    rejected(invoke("no-such-command"))
