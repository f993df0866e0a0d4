"""ExecuTorch (.pte) and NCNN (.ncnn.param/.bin) targets: conversion from PyTorch and ONNX on the shared fixtures
(CNN, two-in/two-out, dynamic sequence) with numbers against the source, the runners' contract (names, batch,
errors), format detection by content, int8/fp16 compression and the refusals before work."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgekit
from edgekit.errors import InputError

CASES = ("cnn", "two_io", "dynamic")


def _ref(case):
    return case.torch_inputs, case.torch_outputs


@pytest.fixture(scope="module")
def converted(cases, tmp_path_factory):
    """Every fixture converted once per (target, source kind); the reports kept for the tests below."""
    out = {}
    root = tmp_path_factory.mktemp("et_ncnn")
    for target in ("executorch", "ncnn"):
        for name in CASES:
            for kind in ("pt2", "onnx"):
                c = cases[name]
                rep = edgekit.convert(c.files[kind], target, sample=c.torch_inputs, trust_code=True,
                                      output_dir=root / f"{target}_{name}_{kind}")
                out[(target, name, kind)] = rep[target]
    return out


@pytest.mark.parametrize("target", ["executorch", "ncnn"])
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("kind", ["pt2", "onnx"])
def test_converted_outputs_match_the_source(converted, cases, target, name, kind):
    res = converted[(target, name, kind)]
    if (target, name, kind) == ("ncnn", "dynamic", "onnx"):
        # pnnx 20261020 keeps the sequence axis of this ReduceMean (onnx_to_ncnn's docstring): the gate must fail it
        assert res.status == "fail" and res.path is None
        assert "differs from the reference's [2, 6]" in res.error
        return
    assert res.status == "pass", res.error
    assert res.parity["max_abs"] < 1e-5
    feeds, refs = _ref(cases[name])
    with edgekit.load(res.path) as m:  # by hand, outside the gate: every sample, every output
        assert m.format.value == target and m.precision == "fp32"
        if target == "ncnn":  # one sample a call
            got = [m.predict({s.name: v[i:i + 1] for s, v in zip(m.inputs, feeds.values())}) for i in range(
                len(next(iter(feeds.values()))))]
            outs = [np.concatenate([g[k] for g in got]) for k in got[0]]
        else:
            outs = list(m.predict(dict(zip([s.name for s in m.inputs], feeds.values()))).values())
    for y, r in zip(outs, refs):
        np.testing.assert_allclose(y.reshape(r.shape), r, atol=1e-5)


def test_names_and_shapes_come_from_the_files(converted, cases):
    et = edgekit.inspect(converted[("executorch", "two_io", "pt2")].path)
    assert [s.name for s in et.inputs] == ["a", "b"] and et.ops.get("delegate:XnnpackBackend")
    assert et.parameters == 4 * 5 + 5 + 3 * 5 + 5 + 10 * 2 + 2 + 10 * 3 + 3  # the four Linear layers
    nc = edgekit.inspect(converted[("ncnn", "cnn", "onnx")].path)
    assert [s.name for s in nc.inputs] == ["image"] and nc.inputs[0].shape == [1, 1, 8, 8]
    assert [s.name for s in nc.outputs] == ["out0"] and "Noop" not in nc.ops  # edgekit's output markers
    assert nc.parameters == 4 * 9 + 4 + 144 * 10 + 10  # conv + fc weights and biases
    dyn = edgekit.inspect(converted[("ncnn", "dynamic", "pt2")].path)
    assert dyn.inputs[0].shape == [1, None, 8]  # the sequence stays of any size
    assert dyn.outputs[0].shape == [1, 6]
    with edgekit.load(converted[("executorch", "cnn", "pt2")].path) as m:  # more samples than the planned bound
        bound = m.inputs[0].extra["upper_bound"][0]
        x = np.tile(cases["cnn"].torch_inputs["image"], (bound // 3 + 2, 1, 1, 1))
        ref = np.tile(cases["cnn"].torch_outputs[0], (bound // 3 + 2, 1))
        assert len(x) > bound
        np.testing.assert_allclose(m.predict(x)["output_0"], ref, atol=1e-5)
    et = edgekit.inspect(converted[("executorch", "dynamic", "onnx")].path)
    assert [s.name for s in et.inputs] == ["seq"] and et.inputs[0].shape == [None, None, 8]
    with edgekit.load(converted[("ncnn", "dynamic", "pt2")].path) as m:  # another length than the sample's
        x = np.random.default_rng(3).standard_normal((1, 11, 8), dtype=np.float32)
        import torch

        ep = torch.export.load(cases["dynamic"].files["pt2"])
        np.testing.assert_allclose(m.predict(x)["output_0"], ep.module()(torch.from_numpy(x)).detach().numpy(), atol=1e-5)
        with pytest.raises(InputError, match="one sample at a time|expects shape"):
            m.predict(np.zeros((2, 11, 8), np.float32))


def test_detection_by_content(converted, tmp_path):
    from edgekit.formats import Format, detect

    pte = converted[("executorch", "cnn", "pt2")].path
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(pte.read_bytes())
    assert detect(renamed).format is Format.EXECUTORCH
    param = converted[("ncnn", "cnn", "pt2")].path
    assert param.read_text().startswith("7767517")
    src = detect(param)
    assert src.format is Format.NCNN and [f.suffix for f in src.files] == [".param", ".bin"]
    assert detect(param.with_suffix(".bin")).path == param  # the weights file names its model
    cut = tmp_path / "cut.pte"  # a truncated program: refused by edgekit's reader, before the runtime sees it
    cut.write_bytes(pte.read_bytes()[:200])
    with pytest.raises(edgekit.errors.ModelFileError, match="not a readable ExecuTorch program"):
        edgekit.load(cut)
    bad = tmp_path / "bad.ncnn.param"  # a layer NCNN does not have (pnnx leaves an unconverted op so)
    bad.write_text("7767517\n2 2\nInput in0 0 1 in0 0=4\nPad pad0 1 1 in0 out0\n")
    bad.with_suffix(".bin").write_bytes(b"")
    with pytest.raises(edgekit.errors.ModelFileError, match="layer Pad not exists"):
        edgekit.load(bad)
    lone = tmp_path / "lone.param"
    lone.write_text(param.read_text())
    with pytest.raises(edgekit.errors.ModelFileError, match="no weights file lone.bin"):
        detect(lone)


def test_int8_executorch_and_fp16_ncnn(converted, cases, tmp_path):
    c = cases["cnn"]
    rng = np.random.default_rng(1)
    cal = {"image": rng.random((100, 1, 8, 8), dtype=np.float32)}
    et = edgekit.convert(c.files["pt2"], "executorch", precision="int8", calibration=cal, sample=c.torch_inputs,
                         trust_code=True, output_dir=tmp_path / "et")["executorch"]
    assert et.status == "pass" and et.precision == "int8", et.error
    from edgekit.formats.pte_fb import read_pte

    assert read_pte(et.path.read_bytes()).xnnpack_constants["int8"] >= 2  # conv and fc weights in int8
    assert 0 < et.parity["max_abs"] < 0.05 and et.parity["agreement_top1"] == 1.0
    nc = edgekit.convert(c.files["pt2"], "ncnn", precision="fp16", sample=c.torch_inputs, trust_code=True,
                         output_dir=tmp_path / "nc")["ncnn"]
    assert nc.status == "pass", nc.error
    with edgekit.load(nc.path) as m:
        assert m.precision == "fp16"
        err = np.abs(m.predict(c.torch_inputs["image"][:1])["output_0"] - c.torch_outputs[0][:1]).max()
    assert 1e-7 < err < 1e-3  # fp16 weights: measurably off (the fp32 target: ~1e-8), within the fp16 profile
    from edgekit.formats.ncnn_param import stored_fp16

    assert stored_fp16(nc.path.with_suffix(".bin"))  # pnnx fp16=1
    assert not stored_fp16(converted[("ncnn", "cnn", "pt2")].path.with_suffix(".bin"))  # fp16=0: fp32 end to end
    with edgekit.load(nc.path) as m:
        assert "NCNN runs this model with fp16 storage and arithmetic" in m.notes
    with edgekit.load(nc.path, inference_precision="f32") as m:  # fp16 weights kept, fp32 arithmetic asked
        assert m.precision == "fp16" and not m.notes


@pytest.mark.parametrize("target,kw,match", [
    ("executorch", {"precision": "fp16"}, "executorch cannot honour --precision fp16"),
    ("executorch", {"precision": "int8", "palettize_bits": 4}, "XNNPACK has no lookup-table"),
    ("ncnn", {"precision": "int8"}, "ncnn2table"),
])
def test_refused_before_work(cases, tmp_path, target, kw, match):
    out = tmp_path / "out"
    with pytest.raises(InputError, match=match):
        edgekit.convert(cases["cnn"].files["pt2"], target, trust_code=True, output_dir=out,
                        calibration="random", **kw)
    assert not out.exists()


def test_cli_inspect_run_validate_and_bench_overhead(converted, cases, tmp_path):
    from typer.testing import CliRunner

    from edgekit.cli.main import app

    cli = CliRunner()
    c = cases["cnn"]
    x = c.torch_inputs["image"]
    data = tmp_path / "data.npz"
    np.savez(data, image=x)
    pte, param = converted[("executorch", "cnn", "pt2")].path, converted[("ncnn", "cnn", "pt2")].path
    for path, backend in ((pte, "executorch"), (param, "ncnn")):
        r = cli.invoke(app, ["inspect", str(path), "--json"])
        assert r.exit_code == 0, r.output
        info = json.loads(r.stdout)
        assert info["backend"] == backend and info["inputs"][0]["name"] == "image"
        inp, outp = tmp_path / "one.npz", tmp_path / f"{backend}.npz"
        np.savez(inp, image=x[:1])
        r = cli.invoke(app, ["run", str(path), "--input", str(inp), "--output", str(outp)])
        assert r.exit_code == 0, r.output
        with np.load(outp) as got:
            np.testing.assert_allclose(got[got.files[0]], c.torch_outputs[0][:1], atol=1e-5)
    # validate: both candidates against the PyTorch source on three samples (NCNN one sample a call)
    report = tmp_path / "v.json"
    r = cli.invoke(app, ["validate", str(c.files["pt2"]), str(pte), str(param), "--data", str(data), "--trust-code",
                         "--json-out", str(report)])
    assert r.exit_code == 0, r.output
    rows = json.loads(report.read_text())["candidates"]
    assert [row["verdict"] for row in rows] == ["pass", "pass"], rows
    # bench --overhead: edgekit's call against the bare runtime call, same inputs
    out = tmp_path / "b.json"
    r = cli.invoke(app, ["bench", str(pte), str(param), "--runs", "30", "--warmup", "5", "--threads", "1",
                         "--overhead", "--json-out", str(out)])
    assert r.exit_code == 0, r.output
    for row in json.loads(out.read_text())["results"]:
        o = row["overhead"]
        assert o["raw_p50_ms"] > 0 and o["ratio"] == pytest.approx(o["edgekit_p50_ms"] / o["raw_p50_ms"])


def test_routes_from_every_source_kind(cases):
    routes = edgekit.explain_routes(cases["two_io"].files["tflite"], "executorch,ncnn").to_dict()["routes"]
    assert routes["executorch"][0] == ("executorch: chosen  tflite -> onnx -> executorch  "
                                       "(tflite_to_onnx, onnx_to_executorch)")
    assert routes["ncnn"][0] == "ncnn: chosen  tflite -> onnx -> ncnn  (tflite_to_onnx, onnx_to_ncnn)"


def test_doctor_and_tune_know_both_runtimes():
    from edgekit.tuning.space import build_space

    doc = edgekit.doctor()
    assert doc.backends["executorch"]["available"] and doc.backends["executorch"]["formats"] == ["executorch"]
    assert doc.backends["ncnn"]["available"] and doc.backends["ncnn"]["extra"] == "ncnn"
    space = build_space(("executorch", "ncnn"))
    # what each target's passes accept: ExecuTorch fp32/int8, NCNN fp32/fp16; each runner's threads
    assert space.choices[("precision", "executorch")] == ("fp32", "int8")
    assert space.choices[("precision", "ncnn")] == ("fp32", "fp16")
    assert ("executorch.threads", "executorch") in space.choices and ("ncnn.threads", "ncnn") in space.choices
    assert ("executorch.threads", "ncnn") not in space.choices
