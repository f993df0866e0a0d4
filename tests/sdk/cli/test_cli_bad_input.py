"""Bad input through the CLI: one `error:` line, one `hint:` line, exit 2, no traceback, and nothing lost.

Object arrays, malformed `--preprocess` specs, sizes that do not fit in memory (checked before allocation),
outputs that cannot be written or would overwrite an input (checked before the work starts), reports that fail
after the work (the others and the results are kept), and trust given per file on multi-model commands.
Models are copies of the bundled digits example in tmp_path, so a failing test can never damage the originals.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cli_util import describe, hint_of, invoke, ok, user_error


@pytest.fixture
def digits(tmp_path):
    """Copies of the bundled models and test split: onnx, tflite, xml (+ .bin) and data."""
    from model_factory import copy_digits

    return copy_digits(tmp_path / "models")


def _object_npz(path: Path, key: str = "image") -> Path:
    np.savez(path, **{key: np.array([np.zeros((8, 8, 1), np.float32), None], dtype=object)})
    return path


def _declared_npz(path: Path, shape, key: str = "image") -> Path:
    """An .npz whose member header declares `shape` float32 but holds only 64 bytes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": tuple(shape)})
    buf.write(b"\0" * 64)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{key}.npy", buf.getvalue())
    return path


def _huge_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2 ** 40])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2 ** 40])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.save(m, str(path))
    return path


# ------------------------------------------------------------------------------------------ object arrays


def test_validate_data_with_object_array(digits, tmp_path):
    bad = _object_npz(tmp_path / "obj.npz")
    user_error(invoke("validate", digits["onnx"], digits["tflite"], "--data", bad), "obj.npz", "object")


def test_validate_npy_data_with_object_array(digits, tmp_path):
    np.save(tmp_path / "obj.npy", np.array([np.zeros((8, 8, 1)), None], dtype=object))
    user_error(invoke("validate", digits["onnx"], digits["tflite"], "--data", tmp_path / "obj.npy"), "object")


def test_validate_labels_with_object_array(digits, tmp_path):
    np.save(tmp_path / "lab.npy", np.array(["one", None] * 180, dtype=object))
    user_error(invoke("validate", digits["onnx"], digits["tflite"], "--data", digits["data"], "--labels",
                      tmp_path / "lab.npy"), "lab.npy", "object")


def test_validate_labels_missing_or_miscounted(digits, tmp_path):
    user_error(invoke("validate", digits["onnx"], digits["tflite"], "--data", digits["data"], "--labels",
                      tmp_path / "nope.npy"), "nope.npy")
    np.save(tmp_path / "few.npy", np.arange(7))
    user_error(invoke("validate", digits["onnx"], digits["tflite"], "--data", digits["data"], "--labels",
                      tmp_path / "few.npy"), "7 labels", "360 samples")


def test_convert_calibration_with_object_array(digits, tmp_path):
    bad = _object_npz(tmp_path / "calib.npz")
    user_error(invoke("convert", digits["onnx"], "--to", "openvino", "--precision", "int8", "--calibration", bad,
                      "-o", tmp_path / "out"), "calib.npz", "object")


def test_load_calibration_refuses_object_arrays(tmp_path):
    """The library path too (convert() from Python): an InputError, not numpy's ValueError."""
    from edgekit.compression import load_calibration
    from edgekit.errors import InputError
    from edgekit.types import TensorSpec

    bad = _object_npz(tmp_path / "calib.npz")
    with pytest.raises(InputError, match="object"):
        load_calibration(str(bad), [TensorSpec("image", (None, 8, 8, 1), "float32")], None, {})


def test_run_and_bench_input_with_object_array(digits, tmp_path):
    bad = _object_npz(tmp_path / "obj.npz")
    user_error(invoke("run", digits["onnx"], "--input", bad), "object")
    # one bad --input is the user's error for every model: refused before measuring, not a failed row each
    user_error(invoke("bench", digits["onnx"], digits["tflite"], "--input", bad, "--runs", "3"), "object")


# ----------------------------------------------------------------------------------------- --preprocess


@pytest.fixture
def images(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs" / "3"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(folder / "a.png")
    return tmp_path / "imgs"


PREPROCESS = {
    "bad.json": ('{"size": [8, 8],', "not valid JSON"),
    "bad.yaml": ("size: [8, 8\nchannels: L\n", "YAML"),
    "list.json": ('[{"size": [8, 8]}]', "list"),
    "list.yaml": ("- size\n- channels\n", "list"),
    "scalar.json": ("42", "int"),
    "empty.yaml": ("", "nothing"),
    "tag.yaml": ("!!python/object/apply:os.system ['touch PWNED']\n", "YAML"),
    "tag_value.yaml": ("size: !!python/object/apply:os.system ['touch PWNED']\n", "YAML"),
    "size.json": ('{"size": "abc"}', "size"),
    "channels.json": ('{"channels": "CMYK"}', "channels"),
    "layout.json": ('{"layout": "HWC"}', "layout"),
    "mean.json": ('{"channels": "RGB", "mean": [0.5, 0.5]}', "mean"),
    "std.json": ('{"std": 0}', "std"),
    "scale.json": ('{"scale": -1}', "scale"),
    "unknown.json": ('{"resize": 8}', "resize"),
    "intkey.yaml": ("1: 2\n", "unknown"),
    "binary.json": (b"\xff\xfe\x00garbage", "preprocessing spec"),
}


@pytest.mark.parametrize("name", list(PREPROCESS))
def test_bad_preprocess_spec(name, digits, images, tmp_path, monkeypatch):
    text, fragment = PREPROCESS[name]
    spec = tmp_path / name
    spec.write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.chdir(tmp_path)
    res = invoke("validate", digits["onnx"], digits["tflite"], "--data", images, "--preprocess", spec)
    user_error(res, fragment)
    assert not (tmp_path / "PWNED").exists()  # a YAML tag is refused, never constructed


def test_preprocess_spec_missing_or_a_folder(digits, images, tmp_path):
    user_error(invoke("validate", digits["onnx"], digits["tflite"], "--data", images, "--preprocess",
                      tmp_path / "nope.json"), "nope.json")
    user_error(invoke("validate", digits["onnx"], digits["tflite"], "--data", images, "--preprocess", images),
               "folder")


def test_good_yaml_preprocess_spec_still_validates(digits, images, tmp_path):
    spec = tmp_path / "pre.yaml"
    spec.write_text("size: [8, 8]\nchannels: l\nscale: 255\nlayout: nhwc\nmean: 0\nstd: [1.0]\n")
    ok("validate", digits["onnx"], digits["tflite"], "--data", images, "--preprocess", spec)


# ------------------------------------------------------------------------------------- sizes vs memory


def test_run_random_on_a_huge_input_is_refused_before_allocation(tmp_path):
    res = invoke("run", _huge_onnx(tmp_path / "huge.onnx"), "--random")
    msg = user_error(res, "TiB", "memory")
    assert "1099511627776" in msg
    assert "EDGEKIT_MEMORY_LIMIT" in hint_of(res)


@pytest.mark.parametrize("command", ["run", "validate", "bench"])
def test_npz_declaring_2_to_the_40_elements(command, digits, tmp_path):
    bad = _declared_npz(tmp_path / "huge.npz", (2 ** 40, 8, 8, 1))
    args = {"run": ("run", digits["onnx"], "--input", bad),
            "validate": ("validate", digits["onnx"], digits["tflite"], "--data", bad),
            "bench": ("bench", digits["onnx"], "--input", bad, "--runs", "3")}[command]
    user_error(invoke(*args), "huge.npz", "memory")


def test_npz_declaring_more_than_it_holds_is_truncated(digits, tmp_path):
    bad = _declared_npz(tmp_path / "short.npz", (100, 8, 8, 1))  # 25 KiB declared, 64 bytes held
    user_error(invoke("run", digits["onnx"], "--input", bad), "short.npz", "truncated")


def test_convert_input_shape_of_50000_images(digits, tmp_path):
    res = invoke("convert", digits["onnx"], "--to", "openvino", "--input-shape", "image=50000,3,224,224",
                 "-o", tmp_path / "out")
    user_error(res, "50000", "memory")


def test_random_calibration_total_is_checked(digits, tmp_path, monkeypatch):
    """100 random samples of 8x8 floats (25.6 KiB) are refused under a 20 KiB limit, before they are made."""
    from edgekit.compression import load_calibration
    from edgekit.errors import InputError
    from edgekit.types import TensorSpec

    monkeypatch.setenv("EDGEKIT_MEMORY_LIMIT", "20K")
    with pytest.raises(InputError, match="100 random calibration samples"):
        load_calibration("random", [TensorSpec("image", (None, 8, 8, 1), "float32")], None, {})


def test_memory_limit_is_exact(digits, tmp_path, monkeypatch):
    """The limit compares the bytes the arrays need: the digits split (360x8x8x1 float32 = 92160 B)."""
    from edgekit.data import nbytes

    assert nbytes((360, 8, 8, 1), np.float32) == 92160
    assert nbytes((2 ** 40, 2 ** 30), np.float64) == 2 ** 73  # no overflow
    monkeypatch.setenv("EDGEKIT_MEMORY_LIMIT", "92159")
    user_error(invoke("run", digits["onnx"], "--input", digits["data"]), "90.0 KiB")
    monkeypatch.setenv("EDGEKIT_MEMORY_LIMIT", "92160")
    ok("run", digits["onnx"], "--input", digits["data"])
    monkeypatch.setenv("EDGEKIT_MEMORY_LIMIT", "lots")
    user_error(invoke("run", digits["onnx"], "--input", digits["data"]), "EDGEKIT_MEMORY_LIMIT")


# -------------------------------------------------------------------- outputs checked before the work


@pytest.fixture
def no_bench(monkeypatch):
    """Fail the test if a measurement starts: output checks must come first."""
    from edgekit import bench

    def boom(*a, **k):
        raise AssertionError("the benchmark ran before the outputs were checked")

    monkeypatch.setattr(bench, "benchmark", boom)


def _impossible(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir(exist_ok=True)
    return {"folder": tmp_path / "a_folder", "under a file": tmp_path / "a_file" / "r.json",
            "name too long": tmp_path / ("x" * 300 + ".json")}


@pytest.mark.parametrize("flag", ["--json-out", "--markdown", "--html", "--plot"])
@pytest.mark.parametrize("case", ["folder", "under a file", "name too long"])
def test_bench_reports_checked_before_measuring(flag, case, digits, tmp_path, no_bench):
    path = _impossible(tmp_path)[case]
    user_error(invoke("bench", digits["onnx"], flag, path, "--runs", "3"), flag)


@pytest.mark.parametrize("case", ["folder", "under a file", "name too long"])
def test_validate_and_run_outputs_checked_first(case, digits, tmp_path, monkeypatch):
    import edgekit.validation

    monkeypatch.setattr(edgekit.validation, "validate", lambda *a, **k: pytest.fail("validated before the check"))
    path = _impossible(tmp_path)[case]
    user_error(invoke("validate", digits["onnx"], digits["tflite"], "--data", digits["data"], "--html", path),
               "--html")
    user_error(invoke("run", digits["onnx"], "--random", "--output", path), "--output")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_unwritable_folder(digits, tmp_path, no_bench):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        user_error(invoke("bench", digits["onnx"], "--json-out", locked / "sub" / "r.json"), "permission")
        user_error(invoke("convert", digits["onnx"], "--to", "openvino", "-o", locked / "out"), "permission")
    finally:
        locked.chmod(0o700)


def test_convert_and_demo_output_dir_that_is_a_file(digits, tmp_path):
    (tmp_path / "a_file").write_text("keep me")
    user_error(invoke("convert", digits["onnx"], "--to", "openvino", "-o", tmp_path / "a_file"), "not a folder")
    user_error(invoke("demo", "-o", tmp_path / "a_file"), "not a folder")
    assert (tmp_path / "a_file").read_text() == "keep me"


def test_two_reports_with_one_path(digits, tmp_path, no_bench):
    user_error(invoke("bench", digits["onnx"], "--json-out", tmp_path / "r", "--markdown", tmp_path / "r"),
               "--json-out", "--markdown")


# ------------------------------------------------------------------- outputs that would overwrite inputs


@pytest.mark.parametrize("which", ["onnx", "xml", "bin"])
def test_run_output_that_is_the_model_is_refused(which, digits):
    model = digits["xml"] if which in ("xml", "bin") else digits["onnx"]
    before = digits[which].read_bytes()
    user_error(invoke("run", model, "--random", "--output", digits[which]), str(digits[which].name))
    assert digits[which].read_bytes() == before


def test_run_output_that_is_onnx_external_data_is_refused(onnx_external):
    weights = onnx_external.good.parent / "w.bin"
    before = weights.read_bytes()
    user_error(invoke("run", onnx_external.good, "--random", "--output", weights), "w.bin", "model")
    assert weights.read_bytes() == before


def test_run_output_that_is_the_input_is_refused(digits):
    before = digits["data"].read_bytes()
    user_error(invoke("run", digits["onnx"], "--input", digits["data"], "--output", digits["data"]), "--input")
    assert digits["data"].read_bytes() == before


def test_bench_and_validate_reports_over_a_model_are_refused(digits, no_bench, monkeypatch):
    import edgekit.validation

    monkeypatch.setattr(edgekit.validation, "validate", lambda *a, **k: pytest.fail("validated before the check"))
    before = digits["tflite"].read_bytes()
    user_error(invoke("bench", digits["onnx"], digits["tflite"], "--json-out", digits["tflite"]), "--json-out")
    user_error(invoke("validate", digits["onnx"], digits["tflite"], "--data", digits["data"], "--markdown",
                      digits["tflite"]), "--markdown")
    user_error(invoke("validate", digits["onnx"], digits["tflite"], "--data", digits["data"], "--json-out",
                      digits["data"]), "--data")
    assert digits["tflite"].read_bytes() == before


def test_run_output_still_written(digits, tmp_path):
    out = tmp_path / "deep" / "out.npz"
    ok("run", digits["onnx"], "--input", digits["data"], "--output", out)
    with np.load(out) as z:
        assert z[next(iter(z.files))].shape == (360, 10)


# ------------------------------------------------------------ a report that fails after the work ran


def _block_after(monkeypatch, module, name, blocker: Path):
    """Run the real function, then put a file where the report's folder should be (the disk changed mid-run)."""
    real = getattr(module, name)

    def wrapped(*a, **k):
        out = real(*a, **k)
        blocker.write_text("in the way")
        return out

    monkeypatch.setattr(module, name, wrapped)


def test_bench_html_failing_after_measuring_keeps_the_results(digits, tmp_path, monkeypatch):
    from edgekit import bench

    _block_after(monkeypatch, bench, "benchmark", tmp_path / "later")
    res = invoke("bench", digits["onnx"], "--runs", "20", "--warmup", "2", "--json-out", tmp_path / "r.json",
                 "--markdown", tmp_path / "r.md", "--html", tmp_path / "later" / "r.html")
    msg = user_error(res, "--html", "r.html")
    assert "--json-out" not in msg and "--markdown" not in msg, msg
    data = json.loads((tmp_path / "r.json").read_text())  # the measurement survived
    row = data["results"][0]
    assert row["runs"] == 20 and 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["max"]
    assert "digits_cnn.onnx" in (tmp_path / "r.md").read_text()
    assert "digits_cnn.onnx" in res.stdout  # the table was printed
    assert not (tmp_path / "later").is_dir()


def test_validate_json_failing_after_validating_keeps_the_results(digits, tmp_path, monkeypatch):
    import edgekit.validation

    _block_after(monkeypatch, edgekit.validation, "validate", tmp_path / "later")
    res = invoke("validate", digits["onnx"], digits["tflite"], "--data", digits["data"], "--json-out",
                 tmp_path / "later" / "r.json", "--markdown", tmp_path / "r.md")
    user_error(res, "--json-out")
    md = (tmp_path / "r.md").read_text()
    assert "digits_cnn.tflite" in md and "360 samples" in md and "360 samples" in res.stdout


def test_an_existing_report_is_not_half_overwritten(digits, tmp_path, monkeypatch):
    """A report is replaced whole or not at all: a failing render keeps the previous file."""
    from edgekit.benchmarks import report

    old = tmp_path / "r.md"
    old.write_text("previous run\n")

    def broken(result):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "to_markdown", broken)
    res = invoke("bench", digits["onnx"], "--runs", "5", "--warmup", "1", "--markdown", old, "--json-out",
                 tmp_path / "r.json")
    user_error(res, "--markdown", "No space left")
    assert old.read_text() == "previous run\n"
    assert json.loads((tmp_path / "r.json").read_text())["results"][0]["runs"] == 5
    assert not list(tmp_path.glob(".edgekit-*.tmp"))


# ----------------------------------------------------------------------------------- trust is per file


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    """Two TorchScript copies of a small classifier (loading either runs code) and data keyed 'input'."""
    from model_factory import build_scripted

    return build_scripted(tmp_path_factory.mktemp("scripted"))


def test_bench_refuses_untrusted_files_naming_them(scripted):
    a, b = scripted / "a.pt", scripted / "b.pt"
    msg = user_error(invoke("bench", a, b, "--input", scripted / "data.npz", "--runs", "3"), "a.pt", "b.pt")
    assert "trust" in msg
    res = invoke("bench", a, b, "--input", scripted / "data.npz", "--runs", "3", "--trust", a)
    msg = user_error(res, "b.pt", "not trusted")
    assert "a.pt" not in msg and "--trust" in hint_of(res)


def test_trust_code_refused_when_several_models_run_code(scripted):
    res = invoke("bench", scripted / "a.pt", scripted / "b.pt", "--input", scripted / "data.npz", "--trust-code")
    user_error(res, "2 files")
    assert "--trust PATH" in hint_of(res)
    user_error(invoke("validate", scripted / "a.pt", scripted / "b.pt", "--data", scripted / "data.npz",
                      "--trust-code"), "2 files")


def test_trust_per_file_measures_and_validates(scripted, digits):
    a, b = scripted / "a.pt", scripted / "b.pt"
    res = invoke("bench", a, b, "--input", scripted / "data.npz", "--runs", "5", "--warmup", "1", "--trust", a,
                 "--trust", b)
    assert res.exit_code == 0, describe(res)
    ok("validate", a, b, "--data", scripted / "data.npz", "--trust", a, "--trust", b)
    # --trust-code stays allowed where exactly one model on the line runs code
    res = invoke("bench", a, digits["onnx"], "--input", scripted / "data.npz", "--runs", "3", "--trust-code")
    assert res.exit_code in (0, 3) and "not trusted" not in res.output, describe(res)


def test_trust_must_name_a_model_on_the_line(scripted, digits):
    user_error(invoke("bench", digits["onnx"], "--trust", scripted / "a.pt"), "names no model")
    user_error(invoke("bench", scripted / "a.pt", "--trust", scripted / "a.pt", "--trust-code"), "not both")


def test_help_documents_per_file_trust():
    for cmd in ("bench", "validate"):
        text = " ".join(ok(cmd, "--help").stdout.replace("│", " ").split())
        assert "--trust" in text and "per file" in text and "--trust-code" in text


def test_a_savedmodel_with_file_ops_needs_its_own_trust(digits, tmp_path, no_bench):
    """Trust per file covers what runs code by content: a SavedModel whose signature reads a file."""
    import tensorflow as tf

    from edgekit.cli._files import resolve_trust

    m = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(x):
        return {"y": x * tf.cast(tf.strings.length(tf.io.read_file(str(tmp_path / "secret"))), tf.float32)}

    m.serve = serve
    sm = tmp_path / "reader_sm"
    tf.saved_model.save(m, str(sm), signatures={"serving_default": serve})
    user_error(invoke("bench", sm, digits["onnx"]), "reader_sm", "not trusted")
    user_error(invoke("bench", sm, digits["onnx"], "--trust", digits["onnx"]), "reader_sm", "not trusted")
    assert resolve_trust([sm, digits["onnx"]], [sm], False) is True
    assert resolve_trust([digits["onnx"], digits["tflite"]], [], False) is False
