"""The runtime contract, parametrized over every backend and format: outputs match the source model's numbers."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit
from edgekit import InputError

# (case, artifact kind, backend, reference family)
KERAS_SIDE = [("keras", "keras"), ("h5", "keras"), ("savedmodel", "keras"), ("savedmodel", "openvino"),
              ("tflite", "litert"), ("tflite", "openvino")]
TORCH_SIDE = [("pt2", "torch"), ("torchscript", "torch"), ("pickle", "torch"), ("onnx", "onnxruntime"),
              ("onnx", "openvino"), ("openvino", "openvino")]
ENTRIES = [(c, k, b, "keras") for c in ("cnn", "two_io", "dynamic") for k, b in KERAS_SIDE] + \
          [(c, k, b, "torch") for c in ("cnn", "two_io", "dynamic") for k, b in TORCH_SIDE]
TRUST = {"pt2", "torchscript", "pickle"}


def _load(cases, case, kind, backend):
    return edgekit.load(cases[case].files[kind], backend=backend, trust_code=kind in TRUST)


def _close_to(got: np.ndarray, ref: np.ndarray, rel: float = 1e-5):
    assert got.shape == ref.shape
    span = max(float(ref.max() - ref.min()), 1e-6)
    err = float(np.max(np.abs(got.astype(np.float64) - ref)))
    assert err <= rel * span + 1e-6, f"max abs error {err:.3g} over range {span:.3g}"


@pytest.mark.parametrize("case,kind,backend,family", ENTRIES, ids=[f"{c}-{k}-{b}" for c, k, b, _ in ENTRIES])
def test_outputs_match_source(cases, case, kind, backend, family):
    c = cases[case]
    feeds = c.keras_inputs if family == "keras" else c.torch_inputs
    refs = c.keras_outputs if family == "keras" else c.torch_outputs
    with _load(cases, case, kind, backend) as m:
        assert m.backend == backend
        assert [s.name for s in m.inputs] == list(feeds)  # same names, same order as the source
        for s in m.inputs:
            if s.shape is not None:
                assert len(s.shape) == feeds[s.name].ndim
                assert s.shape[0] is None  # exported with a dynamic batch
        out = m.predict(feeds)
        assert len(out) == len(refs)
        for spec, ref in zip(m.outputs, refs):
            _close_to(out[spec.name], ref)
        # every input form gives the same numbers: dict, sequence in input order, single array; a file that keys
        # its inputs by name and keeps no order (TFLite, SavedModel signatures) refuses a list of several
        if len(m.inputs) > 1 and kind in ("tflite", "savedmodel"):
            with pytest.raises(InputError, match="records no order"):
                m.predict([feeds[s.name] for s in m.inputs])
        else:
            seq = m.predict([feeds[s.name] for s in m.inputs])
            for k in out:
                np.testing.assert_array_equal(seq[k], out[k])
        if len(m.inputs) == 1:
            single = m.predict(next(iter(feeds.values())))
            for k in out:
                np.testing.assert_array_equal(single[k], out[k])
        # a batch of one reproduces the first row of the batched run (~1e-6: different kernels may run)
        one = m.predict({k: v[:1] for k, v in feeds.items()})
        for k in out:
            _close_to(one[k][0], out[k][0], rel=1e-4)


@pytest.mark.parametrize("kind,backend", [("keras", "keras"), ("tflite", "litert"), ("pt2", "torch"),
                                          ("onnx", "onnxruntime"), ("openvino", "openvino")])
def test_dynamic_sequence_length(cases, kind, backend):
    """The dynamic case runs at sequence lengths other than the one it was built with."""
    import keras
    import torch

    c = cases["dynamic"]
    x = np.random.default_rng(3).standard_normal((4, 13, 8)).astype(np.float32)
    if kind in ("keras", "tflite"):
        ref = np.asarray(keras.saving.load_model(c.files["keras"])(x))
    else:
        mod = torch.load(c.files["pickle"], weights_only=False)
        with torch.no_grad():
            ref = mod(torch.from_numpy(x)).numpy()
    with _load(cases, "dynamic", kind, backend) as m:
        assert m.inputs[0].shape == (None, None, 8)
        _close_to(next(iter(m.predict(x).values())), ref)
        y2 = next(iter(m.predict(x[:, :5]).values()))  # shrink again: LiteRT must resize back
        assert y2.shape == (4, 6)


@pytest.mark.parametrize("backend", ["litert", "openvino"])
def test_int8_tflite_float_io(cases, backend):
    """int8 I/O is quantized/dequantized with the tensor's scale and zero point; outputs near the float model."""
    c = cases["int8"]
    x = c.keras_inputs["image"]
    with edgekit.load(c.files["tflite"], backend=backend) as m:
        spec_in, spec_out = m.inputs[0], m.outputs[0]
        assert spec_in.dtype == "int8" and spec_in.quantized and spec_out.quantized
        assert m.precision == "int8"
        y = m.predict(x)[spec_out.name]
        assert y.dtype == np.float32
        ref = c.keras_outputs[0]
        assert float(np.max(np.abs(y - ref))) < 0.05  # int8 noise on softmax probabilities
        assert (y.argmax(-1) == ref.argmax(-1)).all()
    with edgekit.load(c.files["tflite"], backend=backend, raw_quantized_io=True) as raw:
        s, zp = spec_in.scale[0], spec_in.zero_point[0]
        q = np.clip(np.round(x / s + zp), -128, 127).astype(np.int8)
        yq = raw.predict(q)[spec_out.name]
        assert yq.dtype == np.int8
        # the float path is exactly: quantize the input, run, dequantize the output
        deq = (yq.astype(np.float32) - spec_out.zero_point[0]) * spec_out.scale[0]
        np.testing.assert_allclose(deq, y, rtol=0, atol=1e-7)
        with pytest.raises(InputError, match="int8"):
            raw.predict(x)  # floats are refused when raw integers are asked for


BAD_INPUT_MODELS = [("cnn", "keras", "keras"), ("cnn", "tflite", "litert"), ("cnn", "onnx", "onnxruntime"),
                    ("cnn", "openvino", "openvino"), ("cnn", "pt2", "torch"), ("two_io", "tflite", "openvino")]


@pytest.mark.parametrize("case,kind,backend", BAD_INPUT_MODELS, ids=[f"{c}-{k}-{b}" for c, k, b in BAD_INPUT_MODELS])
def test_input_errors_name_expected_and_given(cases, case, kind, backend):
    with _load(cases, case, kind, backend) as m:
        first = m.inputs[0]
        good = {s.name: np.zeros([2 if d is None else d for d in s.shape], dtype=s.dtype) for s in m.inputs}
        m.predict(good)
        with pytest.raises(InputError, match=r"unknown input 'nope'"):
            m.predict({**good, "nope": good[first.name]})
        missing = dict(good)
        missing.pop(first.name)
        with pytest.raises(InputError, match=f"missing input '{first.name}'"):
            m.predict(missing)
        bad_shape = np.zeros(good[first.name].shape[:-1] + (good[first.name].shape[-1] + 1,), np.float32)
        with pytest.raises(InputError, match=r"expects shape \[\?.*got \[2"):
            m.predict({**good, first.name: bad_shape})
        with pytest.raises(InputError, match=r"expects dtype float32, got <U1|expects dtype float32, got str"):
            m.predict({**good, first.name: np.full(good[first.name].shape, "a")})
        # float64 is accepted for a float32 input (a safe, same-kind cast) and gives the same numbers
        f64 = m.predict({k: v.astype(np.float64) for k, v in good.items()})
        ref = m.predict(good)
        for k in ref:
            np.testing.assert_allclose(f64[k], ref[k], rtol=1e-6)
        if len(m.inputs) > 1:
            with pytest.raises(InputError, match="2 inputs"):
                m.predict(good[first.name])


def test_closed_model_refuses_to_run(cases):
    m = edgekit.load(cases["cnn"].files["tflite"])
    with m:
        m.predict(cases["cnn"].keras_inputs)
    with pytest.raises(edgekit.BackendError, match="not loaded"):
        m.predict(cases["cnn"].keras_inputs)


def test_openvino_runs_f32_unless_asked(cases):
    path = cases["cnn"].files["openvino"]
    x = cases["cnn"].torch_inputs["image"]
    with edgekit.load(path) as m:
        assert m.precision == "fp32"
        f32 = m.predict(x)["out0"]
    import openvino as ov

    has_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    with edgekit.load(path, backend="openvino", inference_precision="bf16") as m:
        bf16 = m.predict(x)["out0"]
        if has_bf16:  # AVX512_BF16 / AMX: bf16 really runs
            assert m.precision == "bf16" and not m.notes
        else:  # AVX2-only or Arm without bf16: OpenVINO silently runs f32; the model must say so
            assert m.precision == "fp32"
            assert any("bf16" in n and "fp32" in n for n in m.notes)
            np.testing.assert_array_equal(bf16, f32)
    _close_to(f32, cases["cnn"].torch_outputs[0])
    assert np.abs(bf16 - f32).max() < 0.05  # bf16 is close but it is a different computation
    with pytest.raises(InputError, match="precision"):
        edgekit.load(path, inference_precision="int3")


def test_coreml_inspects_but_predicts_only_on_macos(cases):
    import platform

    with edgekit.load(cases["cnn"].files["coreml"]) as m:
        assert m.backend == "coreml" and m.format is edgekit.Format.COREML
        assert [s.name for s in m.inputs] == ["image"]
        assert m.inputs[0].shape == (1, 1, 8, 8)
        assert m.outputs[0].shape == (1, 10)
        ops = m.describe()["ops"]
        assert ops.get("conv", 0) == 1 and ops.get("softmax", 0) == 1
        if platform.system() != "Darwin":
            with pytest.raises(edgekit.PlatformError, match="only on macOS"):
                m.predict(np.zeros((1, 1, 8, 8), np.float32))


@pytest.mark.parametrize("kind", ["pt2", "torchscript", "pickle"])
def test_code_bearing_formats_need_trust(cases, kind):
    with pytest.raises(edgekit.TrustRequiredError, match="code") as e:
        edgekit.load(cases["cnn"].files[kind])
    assert "trust_code" in e.value.hint


def test_keras_safe_mode_stays_on(tmp_path):
    import keras

    i = keras.Input((3,), name="x")
    m = keras.Model(i, keras.layers.Lambda(lambda t: t * 2.0)(i))
    path = tmp_path / "lambda.keras"
    m.save(path)
    with pytest.raises(edgekit.TrustRequiredError, match="Lambda"):
        edgekit.load(path)
