"""Core ML compression, checked on the saved package: ops, weight-file size, and the decompressed weights.

Core ML cannot predict off macOS, so the numbers are checked by decompressing the saved weights (coremltools'
own MIL loader reads the package) and comparing them with the fp32 originals.
"""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("coremltools")
pytest.importorskip("torch")

from edgekit.converters.compress_coreml import compress_coreml
from edgekit.errors import ConversionError

WEIGHT_BIN = ("Data", "com.apple.CoreML", "weights", "weight.bin")


def opts(**kw):
    base = {"precision": "fp32", "calibration": None, "per_channel": True, "int8_io": False,
            "palettize_bits": None, "prune_sparsity": None, "weights_only_bits": None, "sample": None}
    return SimpleNamespace(**{**base, **kw})


def _build(path: Path, ios18: bool) -> Path:
    import coremltools as ct
    import torch

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = torch.nn.Linear(256, 512), torch.nn.Linear(512, 512), torch.nn.Linear(512, 10)

        def forward(self, x):
            return self.c(torch.relu(self.b(torch.relu(self.a(x)))))

    torch.manual_seed(0)
    ep = torch.export.export(MLP().eval(), (torch.randn(1, 256),)).run_decompositions()
    kw = {"minimum_deployment_target": ct.target.iOS18} if ios18 else {}
    ml = ct.convert(ep, convert_to="mlprogram", compute_precision=ct.precision.FLOAT32, **kw)
    ml.save(str(path))
    return path


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("fp32") / "mlp.mlpackage", ios18=False)


@pytest.fixture(scope="module")
def mlp18(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("fp32_ios18") / "mlp.mlpackage", ios18=True)


def _size(p: Path) -> int:
    return p.joinpath(*WEIGHT_BIN).stat().st_size


def _program(p: Path):
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    ml = ct.models.MLModel(str(p), skip_model_load=True)
    spec = ml.get_spec()
    return load(spec, specification_version=spec.specificationVersion, file_weights_dir=ml.weights_dir)


def _linear_weights(p: Path) -> dict[str, tuple[str, object]]:
    """linear op name -> (op type producing its weight, that op)."""
    out = {}
    for op in _program(p).functions["main"].operations:
        if op.op_type == "linear":
            w = op.inputs["weight"].op
            out[op.name] = (w.op_type, w)
    return out


def _value(op) -> np.ndarray:
    return np.asarray(op.outputs[0].val if op.op_type == "const" else op.materialized_val_inference(), np.float32)


def _unpack(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """iOS 16 palettes store ``nbits``-bit indices packed into bytes, lowest bit first."""
    bits = np.unpackbits(packed.astype(np.uint8).reshape(-1), bitorder="little")[: count * nbits]
    return (bits.reshape(count, nbits).astype(np.int64) << np.arange(nbits)).sum(axis=1)


def _compare(src: Path, dst: Path, kind: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    orig, comp = _linear_weights(src), _linear_weights(dst)
    assert orig.keys() == comp.keys() and len(orig) == 3
    pairs = {}
    for name, (t, op) in comp.items():
        assert orig[name][0] == "const"
        assert t == kind, f"{name}: weight comes from {t}, expected {kind}"
        pairs[name] = (_value(orig[name][1]), _value(op))
    return pairs


def test_weights_8bit(mlp, tmp_path):
    path, notes = compress_coreml(mlp, opts(weights_only_bits=8), tmp_path)
    assert path == tmp_path / mlp.name
    ratio = _size(path) / _size(mlp)
    assert ratio <= 0.3, ratio
    assert any("8-bit" in n for n in notes)
    for name, (w, q) in _compare(mlp, path, "constexpr_affine_dequantize").items():
        # symmetric per-channel int8: error at most half a step, step = max|w| per row / 127
        step = np.abs(w).max(axis=1, keepdims=True) / 127
        assert np.all(np.abs(w - q) <= step * 0.5 + 1e-6), name


def test_int8_dynamic_is_8bit_weights(mlp, tmp_path):
    path, _ = compress_coreml(mlp, opts(precision="int8-dynamic"), tmp_path)
    assert _size(path) / _size(mlp) <= 0.3
    _compare(mlp, path, "constexpr_affine_dequantize")


@pytest.mark.parametrize("bits,max_ratio", [(4, 0.2), (6, 0.25)])
def test_palettize(mlp, tmp_path, bits, max_ratio):
    path, notes = compress_coreml(mlp, opts(palettize_bits=bits), tmp_path)
    ratio = _size(path) / _size(mlp)
    assert ratio <= max_ratio, ratio
    assert f"weights palettized to {bits} bits (k-means)" in notes
    for name, (w, p) in _compare(mlp, path, "constexpr_lut_to_dense").items():
        op = _linear_weights(path)[name][1]
        lut = np.asarray(op.inputs["lut"].val, np.float32).reshape(-1)
        idx = _unpack(np.asarray(op.inputs["indices"].val), bits, w.size)
        assert lut.size == 2**bits
        manual = lut[idx].reshape(w.shape)  # our own reconstruction agrees with coremltools'
        np.testing.assert_array_equal(manual, p)
        assert len(np.unique(p)) <= 2**bits
        # each weight sits at its nearest centroid, so the error is under the widest gap between centroids
        srt = np.sort(lut)
        assert np.abs(w - p).max() <= np.diff(srt).max() / 2 + 1e-6, name
        rng = w.max() - w.min()
        assert np.abs(w - p).mean() < rng / 2**bits, name


def test_prune_half(mlp, tmp_path):
    path, _ = compress_coreml(mlp, opts(prune_sparsity=0.5), tmp_path)
    ratio = _size(path) / _size(mlp)
    assert ratio < 0.6, ratio
    for name, (w, p) in _compare(mlp, path, "constexpr_sparse_to_dense").items():
        zeros = np.mean(p == 0)
        assert 0.45 <= zeros <= 0.55, (name, zeros)
        kept = p != 0
        np.testing.assert_array_equal(p[kept], w[kept])  # surviving weights are exact
        assert np.abs(w[~kept]).max() <= np.abs(w[kept]).min() + 1e-7  # the smallest magnitudes went


def test_weights_4bit_needs_ios18(mlp, tmp_path):
    with pytest.raises(ConversionError, match="iOS 18") as e:
        compress_coreml(mlp, opts(weights_only_bits=4), tmp_path)
    assert "iOS18" in e.value.hint


def test_weights_4bit_ios18(mlp18, tmp_path):
    path, _ = compress_coreml(mlp18, opts(weights_only_bits=4), tmp_path)
    ratio = _size(path) / _size(mlp18)
    assert ratio <= 0.2, ratio
    for name, (w, q) in _compare(mlp18, path, "constexpr_blockwise_shift_scale").items():
        # per-block symmetric int4 (blocks of 32 along the input axis): error at most half a step per block
        blocks = w.reshape(w.shape[0], -1, 32)
        step = np.abs(blocks).max(axis=2, keepdims=True) / 7
        err = np.abs(blocks - q.reshape(blocks.shape))
        assert np.all(err <= step * 0.5 + 1e-6), name


def test_prune_then_palettize_ios18(mlp18, tmp_path):
    path, notes = compress_coreml(mlp18, opts(prune_sparsity=0.5, palettize_bits=4), tmp_path)
    assert _size(path) / _size(mlp18) < 0.15
    assert len(notes) >= 2
    for name, (t, op) in _linear_weights(path).items():
        p = _value(op)
        assert 0.45 <= np.mean(p == 0) <= 0.55, name
        assert len(np.unique(p)) <= 17, name  # 16 centroids plus the pruned zeros


def test_prune_then_quantize_8bit_ios18(mlp18, tmp_path):
    path, _ = compress_coreml(mlp18, opts(prune_sparsity=0.5, weights_only_bits=8), tmp_path)
    assert _size(path) / _size(mlp18) < 0.2
    for name, (t, op) in _linear_weights(path).items():
        assert 0.45 <= np.mean(_value(op) == 0) <= 0.55, name


def test_prune_then_palettize_old_spec_is_clear(mlp, tmp_path):
    with pytest.raises(ConversionError, match="iOS 18"):
        compress_coreml(mlp, opts(prune_sparsity=0.5, palettize_bits=4), tmp_path)


def test_in_place_replaces_package(mlp, tmp_path):
    import shutil

    copy = tmp_path / mlp.name
    shutil.copytree(mlp, copy)
    path, _ = compress_coreml(copy, opts(palettize_bits=4), tmp_path)
    assert path == copy and _size(path) / _size(mlp) <= 0.2
    assert [p.name for p in tmp_path.iterdir()] == [mlp.name]  # no temp folder left behind


def test_tiny_model_has_no_effect(tmp_path):
    import coremltools as ct
    import torch

    ep = torch.export.export(torch.nn.Linear(4, 2).eval(), (torch.randn(1, 4),)).run_decompositions()
    ml = ct.convert(ep, convert_to="mlprogram", compute_precision=ct.precision.FLOAT32)
    src = tmp_path / "src" / "tiny.mlpackage"
    ml.save(str(src))
    with pytest.raises(ConversionError, match="had no effect"):
        compress_coreml(src, opts(palettize_bits=4), tmp_path / "out")


@pytest.mark.skipif(sys.platform == "darwin", reason="off macOS only")
def test_int8_activations_need_macos(mlp, tmp_path):
    calib = [{"x": np.zeros((1, 256), np.float32)}]
    with pytest.raises(ConversionError, match="needs macOS") as e:
        compress_coreml(mlp, opts(precision="int8", calibration=calib), tmp_path)
    assert "--weights-only-bits 8" in e.value.hint and "--palettize" in e.value.hint


def test_int8_io_names_coreml(mlp, tmp_path):
    with pytest.raises(ConversionError, match="coreml") as e:
        compress_coreml(mlp, opts(int8_io=True, weights_only_bits=8), tmp_path)
    assert "int8_io" in str(e.value)
    assert not (tmp_path / mlp.name).exists()


def test_bad_options(mlp, tmp_path):
    with pytest.raises(ConversionError, match="palettize_bits"):
        compress_coreml(mlp, opts(palettize_bits=5), tmp_path)
    with pytest.raises(ConversionError, match="no Core ML compression"):
        compress_coreml(mlp, opts(), tmp_path)
