"""Compression passes: typed options, the registry and its capability table, refusals before any conversion
starts (immediate, nothing written, no tool imported), and the runner's requires/ensures/confinement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

import edgekit
from edgekit.converters.base import ConvertOptions
from edgekit.converters.compress_base import (
    INT8_WEIGHTS,
    PASSES,
    CompressionPass,
    CompressOptions,
    OptionError,
    capability_table,
    check_compression,
    load_passes,
    refusal,
    register,
)
from edgekit.errors import ConversionError, InputError
from edgekit.formats import Format

DIGITS = Path(__file__).resolve().parents[2] / "sdk" / "examples" / "digits"
HEAVY = ("tensorflow", "torch", "coremltools", "openvino", "onnxruntime", "onnx", "nncf")

# (target, options, words the error must name); Core ML int8 is refused off macOS only
REFUSALS = [
    ("tflite", {"weights_only_bits": 4}, ["tflite", "--weights-only-bits 4", "weights_only_bits"]),
    ("tflite", {"palettize_bits": 4}, ["tflite cannot honour --palettize", "palettize_bits"]),
    ("tflite", {"prune_sparsity": 0.5}, ["tflite", "--prune", "prune_sparsity"]),
    ("tflite", {"int8_io": True, "precision": "int8-dynamic"}, ["tflite", "--int8-io", "--precision int8"]),
    ("tflite", {"precision": "int8-dynamic", "per_channel": False}, ["tflite", "--per-tensor", "per_channel"]),
    ("tflite", {"precision": "fp16", "weights_only_bits": 8}, ["tflite", "--weights-only-bits 8", "fp16"]),
    ("onnx", {"palettize_bits": 4}, ["onnx cannot honour --palettize", "palettize_bits"]),
    ("onnx", {"prune_sparsity": 0.5}, ["onnx cannot honour --prune", "prune_sparsity"]),
    ("onnx", {"precision": "int8", "int8_io": True}, ["onnx", "--int8-io", "int8_io"]),
    ("onnx", {"weights_only_bits": 4, "per_channel": False}, ["onnx", "--per-tensor"]),
    ("openvino", {"palettize_bits": 4}, ["openvino", "palettize_bits"]),
    ("openvino", {"prune_sparsity": 0.5}, ["openvino", "prune_sparsity"]),
    ("openvino", {"precision": "int8-dynamic", "int8_io": True}, ["openvino", "int8_io"]),
    ("openvino", {"precision": "int8-dynamic", "per_channel": False}, ["openvino", "per_channel"]),
    ("coreml", {"precision": "int8-dynamic", "int8_io": True}, ["coreml", "int8_io"]),
    ("coreml", {"palettize_bits": 4, "weights_only_bits": 8}, ["coreml", "palettiz", "--weights-only-bits"]),
    ("coreml", {"palettize_bits": 4, "per_channel": False}, ["coreml", "--per-tensor"]),
    ("coreml", {"precision": "int8", "prune_sparsity": 0.5}, ["coreml", "--precision int8", "combined"]),
]
if sys.platform != "darwin":
    REFUSALS.append(("coreml", {"precision": "int8"}, ["coreml", "--precision int8", "needs macOS"]))


@pytest.mark.parametrize("target,kwargs,words", REFUSALS, ids=[f"{t}-{'-'.join(k)}" for t, k, _ in REFUSALS])
def test_refused_before_any_conversion(tmp_path, monkeypatch, target, kwargs, words):
    monkeypatch.chdir(tmp_path)
    t = time.perf_counter()
    with pytest.raises(InputError) as e:
        check_compression([target], ConvertOptions(**kwargs))
    took = time.perf_counter() - t
    assert took < 1.0, took
    assert isinstance(e.value, OptionError) and e.value.target == target
    for w in words:
        assert w in str(e.value) or w in e.value.hint, (w, str(e.value), e.value.hint)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_every_target_lists_its_plan():
    opts = ConvertOptions(weights_only_bits=8)
    plan = check_compression(["tflite", "onnx", "openvino", "coreml"], opts)
    assert plan == {Format.TFLITE: ["tflite:int8-weights"], Format.ONNX: ["onnx:int8-weights"],
                    Format.OPENVINO_IR: ["openvino:int8-weights"], Format.COREML: ["coreml:int8-weights"]}
    joint = check_compression(["coreml"], ConvertOptions(prune_sparsity=0.5, palettize_bits=4))
    assert joint[Format.COREML] == ["coreml:prune", "coreml:palettize"]  # pruning first: joint compression
    assert check_compression(["onnx", "tflite"], ConvertOptions(precision="fp16")) == {Format.ONNX: [],
                                                                                        Format.TFLITE: []}
    with pytest.raises(OptionError, match="already tflite"):  # a .tflite source cannot be re-quantized
        check_compression(["tflite"], ConvertOptions(precision="int8-dynamic"), source=Format.TFLITE)
    assert check_compression(["onnx"], ConvertOptions(precision="int8-dynamic"), source=Format.ONNX)


def test_refusals_are_immediate_in_a_fresh_process(tmp_path):
    """The check imports no tool: in a fresh interpreter, every refusal is answered in well under a second."""
    cases = [(t, k) for t, k, _ in REFUSALS]
    code = f"""
import json, sys, time
t0 = time.perf_counter()
from edgekit.converters.base import ConvertOptions
from edgekit.converters.compress_base import check_compression
from edgekit.errors import InputError
first = None
for target, kw in {cases!r}:
    t = time.perf_counter()
    try:
        check_compression([target], ConvertOptions(**kw))
    except InputError:
        first = first or time.perf_counter() - t
    else:
        raise SystemExit(f"not refused: {{target}} {{kw}}")
print(json.dumps({{"total": time.perf_counter() - t0, "first": first,
                  "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["heavy"] == []
    assert got["first"] < 1.0 and got["total"] < 5.0, got
    assert list(tmp_path.iterdir()) == []


def test_compress_options_are_validated():
    for kw, needle in [({"weights_only_bits": 3}, "weights_only_bits must be 8 or 4"),
                       ({"palettize_bits": 5}, "palettize_bits must be one of"),
                       ({"prune_sparsity": 0.0}, "prune_sparsity must be between 0 and 1"),
                       ({"prune_sparsity": 1.0}, "prune_sparsity must be between 0 and 1"),
                       ({"precision": "int3"}, "unknown precision 'int3'"),
                       ({"precision": "int8", "weights_only_bits": 8}, "conflict"),
                       ({"precision": "int8-dynamic", "weights_only_bits": 4}, "conflicts")]:
        with pytest.raises(InputError, match=needle):
            CompressOptions(**kw)
    with pytest.raises(InputError, match="fp16 is a conversion precision") as e:
        CompressOptions(precision="fp16")
    assert "ConvertOptions(precision='fp16')" in e.value.hint
    with pytest.raises(InputError, match="int4") as e:
        CompressOptions(precision="int4")
    assert "weights_only_bits=4" in e.value.hint
    assert CompressOptions(precision="fp32").precision is None and not CompressOptions().active
    c = CompressOptions(prune_sparsity=0.5, weights_only_bits=4)
    assert c.techniques == ("prune", "int4-weights") and c.active
    assert CompressOptions(precision="INT8-dynamic", weights_only_bits=8).techniques == (INT8_WEIGHTS,)


def test_convert_options_split_and_old_fields():
    old = ConvertOptions(precision="int8", calibration=[{"x": 1}], per_channel=False, int8_io=True,
                         palettize_bits=None, prune_sparsity=None, weights_only_bits=None)
    assert old.float_precision == "fp32" and old.precision == "int8" and old.compressing
    assert old.compress == CompressOptions(precision="int8", calibration=[{"x": 1}], per_channel=False, int8_io=True)
    assert (old.calibration, old.per_channel, old.int8_io, old.weights_only_bits) == ([{"x": 1}], False, True, None)
    fp32 = old.uncompressed()  # the fp32 counterpart is simply "no compression"
    assert fp32.compress is None and fp32.precision == "fp32" and not fp32.compressing
    assert (fp32.calibration, fp32.per_channel, fp32.int8_io) == (None, True, False)
    assert replace(old, compress=None) == fp32

    new = ConvertOptions(precision="fp16", compress=CompressOptions(weights_only_bits=4))
    assert new.precision == "fp16" and new.float_precision == "fp16" and new.weights_only_bits == 4
    assert ConvertOptions(precision="int8-dynamic").precision == "int8-dynamic"
    assert ConvertOptions(precision="f16").precision == "fp16"  # edgekit.precision's words
    plain = ConvertOptions(per_channel=True, int8_io=False, palettize_bits=None)
    assert plain.compress is None and plain.precision == "fp32"

    plain.calibration = [{"x": 2}]  # what convert does once the calibration data is loaded
    assert plain.calibration == [{"x": 2}] and not plain.compressing
    plain.weights_only_bits = 8
    assert plain.compressing and plain.compress.techniques == (INT8_WEIGHTS,)
    with pytest.raises(InputError, match="weights_only_bits must be 8 or 4"):
        plain.weights_only_bits = 3

    with pytest.raises(InputError, match="unknown precision 'int16'") as e:
        ConvertOptions(precision="int16")
    assert e.value.hint == "choose one of: fp32, fp16, int8, int8-dynamic"
    with pytest.raises(InputError, match="conflict"):
        ConvertOptions(precision="fp16", compress=CompressOptions(precision="int8"))
    with pytest.raises(TypeError, match="not both"):
        ConvertOptions(weights_only_bits=8, compress=CompressOptions(weights_only_bits=8))
    with pytest.raises(TypeError, match="unexpected"):
        ConvertOptions(palettise_bits=4)


def test_registry_refuses_duplicates():
    load_passes()

    class Again(CompressionPass):
        target, technique = Format.ONNX, INT8_WEIGHTS

    before = dict(PASSES)
    with pytest.raises(ValueError, match="'onnx:int8-weights' is already registered"):
        register(Again)
    with pytest.raises(ValueError, match="already declared"):
        refusal(Format.ONNX, "palettize_bits", "again")
    assert PASSES == before


def test_capability_table():
    rows = capability_table()
    passes = {(r["target"], r["technique"]): r for r in rows if "technique" in r}
    assert set(passes) == {
        ("onnx", "int8"), ("onnx", "int8-weights"), ("onnx", "int4-weights"),
        ("openvino", "int8"), ("openvino", "int8-weights"), ("openvino", "int4-weights"),
        ("coreml", "prune"), ("coreml", "palettize"), ("coreml", "int8"), ("coreml", "int8-weights"),
        ("coreml", "int4-weights"), ("tflite", "int8"), ("tflite", "int8-weights"), ("executorch", "int8")}
    assert passes[("executorch", "int8")]["in_converter"] and passes[("executorch", "int8")]["honours"] == ["per_channel"]
    assert passes[("coreml", "int8")]["platforms"] == ["darwin"] and passes[("coreml", "int8")]["runs_model"]
    assert all(r["calibration"] == (tech == "int8") for (_, tech), r in passes.items())
    tfl = passes[("tflite", "int8")]
    assert tfl["honours"] == ["int8_io", "keep_float"] and tfl["in_converter"]
    assert passes[("openvino", "int8")]["extra"] == "compress"
    refused = {(r["target"], r["refuses"]) for r in rows if "refuses" in r}
    assert {("onnx", "palettize_bits"), ("openvino", "prune_sparsity"), ("tflite", "weights_only_bits"),
            ("coreml", "int8_io"), ("executorch", "fp16"), ("ncnn", "precision")} <= refused
    assert all(r["summary"] for r in passes.values())


class _Fake(CompressionPass):
    """A pass over a text 'model': the runner's contract, without any tool."""

    target, technique = Format.ONNX, INT8_WEIGHTS
    behaviour = "pass"

    @staticmethod
    def inspect(path):
        return {"text": Path(path).read_text()}

    def run(self, src, options, out):
        Path("scratch.txt").write_text("cwd")  # relative writes land in the pass's own folder
        Path(__import__("tempfile").mkstemp()[1]).write_text("tmp")  # so do temporary files
        dest = out / src.name
        if self.behaviour == "leak":
            (out.parent.parent.parent / "leak.txt").write_text("outside")  # beside the output folder
        if self.behaviour == "touch-input":
            src.write_text("changed")
        dest.write_text(src.read_text() if self.behaviour == "noop" else "compressed")
        (out / f"{src.name}.data").write_text("companion")
        return dest, ["fake note"]

    def ensures(self, before, after, options):
        if after["text"] == before["text"]:
            raise ConversionError("fake compression had no effect")


@pytest.fixture
def fake(monkeypatch):
    from edgekit.converters import compress_run

    p = _Fake()
    monkeypatch.setattr(compress_run, "select", lambda target, options: [p])
    return p


def _model(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m.onnx").write_text("fp32")
    return folder / "m.onnx"


def test_runner_publishes_and_cleans_up(fake, tmp_path, monkeypatch):
    from edgekit.converters.compress_run import run_passes

    monkeypatch.chdir(tmp_path)
    src = _model(tmp_path / "src")
    path, notes = run_passes(Format.ONNX, src, CompressOptions(weights_only_bits=8), tmp_path / "out")
    assert path == tmp_path / "out" / "m.onnx" and path.read_text() == "compressed" and notes == ["fake note"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m.onnx", "m.onnx.data"]
    assert src.read_text() == "fp32" and sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]
    # in place: the result replaces the input, and no temporary folder is left
    path, _ = run_passes(Format.ONNX, src, CompressOptions(weights_only_bits=8), src.parent)
    assert path == src and src.read_text() == "compressed"
    assert sorted(p.name for p in src.parent.iterdir()) == ["m.onnx", "m.onnx.data"]


@pytest.mark.parametrize("behaviour,needle", [("leak", "wrote outside its output folder: created"),
                                              ("touch-input", "changed its input"),
                                              ("noop", "had no effect")])
def test_runner_ensures(fake, tmp_path, behaviour, needle):
    from edgekit.converters.compress_run import run_passes

    fake.behaviour = behaviour
    src = _model(tmp_path / "a" / "src")
    out = tmp_path / "a" / "out"
    with pytest.raises(ConversionError, match=needle):
        run_passes(Format.ONNX, src, CompressOptions(weights_only_bits=8), out)
    assert list(out.iterdir()) == []  # nothing published, the pass's folder removed


def test_runner_checks_calibration_before_writing(tmp_path):
    pytest.importorskip("onnx")
    from edgekit.converters.compress_onnx import compress_onnx

    out = tmp_path / "out"
    with pytest.raises(ConversionError, match="needs calibration data"):
        compress_onnx(DIGITS / "digits_cnn.onnx", CompressOptions(precision="int8"), out)
    assert not out.exists()


def test_tflite_ensures_reads_the_flatbuffer():
    from edgekit.converters.compress_base import select
    from edgekit.converters.compress_tflite import verify

    data = (DIGITS / "digits_cnn.tflite").read_bytes()  # a float model: no int8 weights
    opts = ConvertOptions(precision="int8-dynamic")
    with pytest.raises(ConversionError, match="tflite --precision int8-dynamic had no effect"):
        verify(select(Format.TFLITE, opts), data, opts)
    verify(select(Format.TFLITE, ConvertOptions()), data, ConvertOptions())  # nothing asked: nothing checked


def test_option_error_is_an_input_error_for_the_cli():
    e = OptionError("x cannot honour y", target="x", option="y")
    assert isinstance(e, edgekit.InputError) and isinstance(e, ConversionError) and e.exit_code == 2
