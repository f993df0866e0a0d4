"""PyTorch files users bring that hold no convertible model: a state_dict, a training checkpoint, a module whose
class lived in the saving script (__main__) or in a package that is not installed. Each is named, read from the
pickle's opcodes without unpickling (so even without --trust-code), with the export command as the hint."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import edgekit
from edgekit.errors import ModelFileError
from edgekit.formats.torch_pickle_scan import not_a_model, scan_pickle

NET = """
import torch
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
    def forward(self, x):
        return self.fc(x)
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("torch_pickles")
    script = NET + textwrap.dedent(f"""
        import sys
        d = sys.argv[1]
        m = Net().eval()
        torch.save(m.state_dict(), d + "/sd.pt")
        torch.save({{"model_state_dict": m.state_dict(), "epoch": 3}}, d + "/ckpt.pth")
        torch.save(m, d + "/main_class.pt")
        torch.save(torch.nn.Sequential(torch.nn.Linear(4, 3)), d + "/sequential.pt")
        torch.save(m, d + "/legacy.pt", _use_new_zipfile_serialization=False)
    """)
    subprocess.run([sys.executable, "-c", script, str(d)], check=True)
    return d


def test_state_dict_is_named_with_its_keys(files):
    scan = scan_pickle(files / "sd.pt")
    assert scan.weights_only and scan.tensor_keys() == ["fc.weight", "fc.bias"]
    message, hint = not_a_model(files / "sd.pt")
    assert "state_dict" in message and "2 weight tensors" in message and "'fc.weight'" in message
    assert "load_state_dict(torch.load('sd.pt'))" in hint and "torch.export.save" in hint


def test_checkpoint_names_the_key_to_load(files):
    message, hint = not_a_model(files / "ckpt.pth")
    assert "checkpoint" in message and "'model_state_dict'" in message
    assert "torch.load('ckpt.pth')['model_state_dict']" in hint


@pytest.mark.parametrize("name", ["main_class.pt", "legacy.pt"])
def test_class_from_the_saving_script(files, name):
    scan = scan_pickle(files / name)
    assert "__main__.Net" in scan.classes and not scan.weights_only
    message, hint = not_a_model(files / name)
    assert "Net" in message and "__main__" in message and "torch.export.export" in hint


def test_loadable_module_is_left_to_the_trusted_loader(files):
    scan = scan_pickle(files / "sequential.pt")
    assert any(g.endswith("Sequential") for g in scan.globals) and scan.classes == []
    assert not_a_model(files / "sequential.pt") is None


@pytest.mark.parametrize("trust", [False, True])
def test_load_names_the_state_dict_whatever_the_trust(files, trust):
    """Trusting a state_dict would not help: the error says what the file is, not that it needs trust."""
    with pytest.raises(ModelFileError, match="state_dict") as err:
        edgekit.load(files / "sd.pt", trust_code=trust)
    assert "trust" not in err.value.message


def test_convert_of_a_state_dict_is_a_user_error_before_work(files, tmp_path):
    from typer.testing import CliRunner

    from edgekit.cli.main import app

    res = CliRunner().invoke(app, ["convert", str(files / "sd.pt"), "--to", "onnx,tflite", "--output-dir",
                                   str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "error: sd.pt holds a state_dict" in res.output and "hint:" in res.output
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_pickled_module_without_shapes_asks_for_a_sample_by_input_name(files, tmp_path):
    with pytest.raises(edgekit.InputError, match="records no input shapes") as err:
        edgekit.convert(files / "sequential.pt", ["onnx"], output_dir=tmp_path / "a", trust_code=True)
    assert "np.savez('sample.npz', input=x_0)" in err.value.hint
    np.savez(tmp_path / "s.npz", input=np.random.default_rng(0).random((8, 4), dtype=np.float32))
    rep = edgekit.convert(files / "sequential.pt", ["onnx"], output_dir=tmp_path / "b", trust_code=True,
                          sample=tmp_path / "s.npz")
    assert rep["onnx"].status == "pass" and rep["onnx"].parity["max_abs"] <= 1e-5


def test_mutated_pickles_never_raise(files, tmp_path):
    """The scanner reads untrusted bytes before any trust is given: 3000 seeded mutations of a real pickle
    (flips, cuts, insertions) return a verdict or None, never an exception."""
    import random
    import zipfile

    with zipfile.ZipFile(files / "main_class.pt") as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    rnd, path, verdicts = random.Random(0), tmp_path / "m.pt", 0
    for _ in range(3000):
        b = bytearray(data)
        for _ in range(rnd.randint(1, 8)):
            at = rnd.randrange(len(b) + 1)
            kind = rnd.random()
            if kind < 0.5 and at < len(b):
                b[at] = rnd.randrange(256)
            elif kind < 0.75:
                del b[at:at + rnd.randint(1, 20)]
            else:
                b[at:at] = rnd.randbytes(rnd.randint(1, 5))
        path.write_bytes(b"\x80" + bytes(b[1:]))
        verdicts += not_a_model(path) is not None
    assert verdicts > 0  # many mutants still name the __main__ class
