"""Bad input data and models through the CLI: one `error:` line, one `hint:` line, exit 2, no traceback.

Object arrays, malformed `--preprocess` specs, sizes that do not fit in memory (checked before allocation), and
trust given per file on multi-model commands. Bad output paths and failing reports are in
test_cli_bad_input_outputs.py; the `digits` and `no_bench` fixtures both files use are in conftest.py.
Models are copies of the bundled digits example in tmp_path, so a failing test can never damage the originals.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cli_util import describe, hint_of, invoke, ok, user_error


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
