"""Fixtures for the accuracy gates (re-exported by model_factory.py), used by the converter tests.

A planted fault: the onnx_to_openvino edge made to write a wrong model and exit 0, which the parity gate must
catch. A trained model that plain int8 breaks: a one-block transformer on the digits whose FFN activations have
outlier channels, for the accuracy-aware int8 repair (tests/converters/test_int8_repair*.py, tools/int8_repair.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


# ---------------------------------------------------------------------------------------------- planted faults
def sabotage_onnx_to_openvino(monkeypatch, factor: float) -> None:
    """Make the onnx_to_openvino edge silently scale the first output by ``factor`` (a converter that writes a
    wrong model and exits 0): the parity gate must catch it."""
    from edgekit.converters import base, planner
    from edgekit.formats import Format

    planner.load_edges()
    edge = base.REGISTRY["onnx_to_openvino"]

    def sabotage(self, src, options, out):
        import openvino as ov

        m = ov.convert_model(str(src.path))
        result = m.outputs[0].get_node()
        scaled = ov.opset13.multiply(result.input_value(0), ov.opset13.constant(np.float32(factor)))
        result.input(0).replace_source_output(scaled.output(0))
        path = out / f"{src.path.stem}.xml"
        ov.save_model(m, str(path), compress_to_fp16=False)
        return base.Artifact(path, Format.OPENVINO_IR)

    monkeypatch.setattr(type(edge), "run", sabotage)


# ------------------------------------------------------------------------------ a model that plain int8 breaks
def build_outlier_attention(out: Path, width: int = 32, outlier: float = 1000.0, epochs: int = 10) -> dict[str, Path]:
    """A one-block transformer on the digits (8 tokens = the image rows, 8 features each), trained briefly with
    PyTorch, whose FFN hidden activations get a few huge outlier channels after training: ff1's rows 0-1 scaled by
    ``outlier`` and ff2's matching columns by 1/outlier, so the fp32 function is unchanged (as in LLMs, where a few
    channels are 100x the rest) but a per-tensor int8 activation scale crushes the other channels. Writes
    ``outlier_attention.onnx`` (dynamic batch), ``digits_tokens.npz`` (the held-out split: tokens, labels) and
    ``digits_calib.npz`` (200 training samples: tokens). Returns those paths as onnx, data, calib."""
    import torch
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    tokens = (x / 16.0).astype(np.float32).reshape(-1, 8, 8)
    idx = np.random.default_rng(0).permutation(len(tokens))
    train, test = idx[:1400], idx[1400:]
    module = _outlier_attention_class()(width)
    opt = torch.optim.Adam(module.parameters(), min(1e-2, 0.32 / width))  # wider models diverge at 1e-2
    xt, yt = torch.from_numpy(tokens[train]), torch.from_numpy(y[train])
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            b = perm[i:i + 64]
            loss = torch.nn.functional.nll_loss(torch.log(module(xt[b]) + 1e-9), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    module.eval()
    with torch.no_grad():  # the outlier channels: function-preserving (ReLU commutes with a positive scale)
        for c in (0, 1):
            module.ff1.weight[c] *= outlier
            module.ff1.bias[c] *= outlier
            module.ff2.weight[:, c] /= outlier
    out.mkdir(parents=True, exist_ok=True)
    files = {"onnx": out / "outlier_attention.onnx", "data": out / "digits_tokens.npz",
             "calib": out / "digits_calib.npz"}
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.onnx.export(module, (torch.from_numpy(tokens[:1]),), str(files["onnx"]), input_names=["tokens"],
                      output_names=["probs"], dynamic_shapes={"tokens": {0: batch}}, dynamo=True, verbose=False)
    np.savez(files["data"], tokens=tokens[test], labels=y[test])
    np.savez(files["calib"], tokens=tokens[train[:200]])
    return files


def _outlier_attention_class():
    import torch

    class OutlierAttention(torch.nn.Module):
        def __init__(self, d: int):
            super().__init__()
            self.d = d
            self.embed = torch.nn.Linear(8, d)
            self.pos = torch.nn.Parameter(torch.randn(1, 8, d) * 0.1)
            self.norm1, self.norm2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
            self.qkv, self.proj = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
            self.ff1, self.ff2 = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)
            self.head = torch.nn.Linear(d, 10)

        def forward(self, tokens):
            h = self.embed(tokens) + self.pos
            q, k, v = self.qkv(self.norm1(h)).chunk(3, -1)
            h = h + self.proj(torch.softmax(q @ k.transpose(1, 2) / self.d ** 0.5, -1) @ v)
            h = h + self.ff2(torch.relu(self.ff1(self.norm2(h))))
            return torch.softmax(self.head(h.mean(1)), -1)

    return OutlierAttention
