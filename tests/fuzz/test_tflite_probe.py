"""The child-process probe for TFLite files the reader cannot vouch for, and LiteRT's errors at run time.

Real runtimes and real child processes throughout: ``_probe.child_runs`` counts the children this process
started, so the tests see when a verdict came from the cache.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import edgekit
from edgekit.errors import BackendError, ModelFileError
from tflite_crafted import big_declared_output, custom_op, edit, reshape_mismatch


def _probe():
    from edgekit.runtimes import _probe

    return _probe


def _read(path):
    from edgekit.formats.tflite_fb import read_tflite

    return read_tflite(path.read_bytes())


@pytest.fixture(scope="module")
def custom_file(fuzz_seeds, tmp_path_factory):
    """Not vouched for (a custom op), but harmless: the child survives and LiteRT fails cleanly at invoke."""
    path = tmp_path_factory.mktemp("custom") / "custom_op.tflite"
    path.write_bytes(edit(fuzz_seeds["tflite_float"].read_bytes(), custom_op))
    return path


def test_vouched_file_needs_no_child(fuzz_seeds):
    probe = _probe()
    before = probe.child_runs
    assert probe.probe_tflite(fuzz_seeds["tflite_float"], _read(fuzz_seeds["tflite_float"]), "litert",
                              "ai_edge_litert") is None
    assert probe.child_runs == before


def test_crash_in_child_is_an_error_naming_file_and_signal_and_is_cached(crashers):
    probe = _probe()
    path = crashers["split_without_options"]
    info = _read(path)
    before = probe.child_runs
    with pytest.raises(ModelFileError) as first:
        probe.probe_tflite(path, info, "litert", "ai_edge_litert")
    assert probe.child_runs == before + 1
    msg = first.value.message
    assert path.name in msg and "crashes LiteRT" in msg and "SIGSEGV" in msg, msg
    assert "\n" not in msg and first.value.hint and "\n" not in first.value.hint
    with pytest.raises(ModelFileError) as again:  # same path, size, mtime and content: no second child
        probe.probe_tflite(path, info, "litert", "ai_edge_litert")
    assert probe.child_runs == before + 1 and again.value.message == msg


def test_verdict_follows_the_content(custom_file, crashers, tmp_path):
    """A file replaced in place (new size, mtime and sha256) is probed again."""
    probe = _probe()
    path = tmp_path / "model.tflite"
    shutil.copy(custom_file, path)
    before = probe.child_runs
    cost = probe.probe_tflite(path, _read(path), "litert", "ai_edge_litert")
    assert cost > 0 and probe.child_runs == before + 1
    print(f"child probe of a {path.stat().st_size} B LiteRT model: {cost:.0f} ms")
    assert probe.probe_tflite(path, _read(path), "litert", "ai_edge_litert") == 0.0  # cached
    assert probe.child_runs == before + 1
    shutil.copy(crashers["string_output"], path)
    with pytest.raises(ModelFileError, match="SIGSEGV"):
        probe.probe_tflite(path, _read(path), "litert", "ai_edge_litert")
    assert probe.child_runs == before + 2


def test_large_declared_tensors_are_probed_even_when_vouched(fuzz_seeds, tmp_path):
    """The atheris run found a mutated input shape that made LiteRT allocate 6 GB in the caller: files whose
    declared tensors are large run in a child first, where the out-of-memory killer would end the child."""
    probe = _probe()
    path = tmp_path / "big_declared.tflite"
    path.write_bytes(edit(fuzz_seeds["tflite_float"].read_bytes(), big_declared_output))
    info = _read(path)
    assert info.vouched and info.activation_bytes() > probe._big_model_bytes()
    before = probe.child_runs
    with edgekit.load(path, backend="litert") as m:
        y = m.predict({"image": np.zeros((1, 6, 6, 2), np.float32)})
    assert probe.child_runs == before + 1 and y["output_0"].shape == (1, 4)


def test_probe_can_be_turned_off(custom_file, monkeypatch):
    """EDGEKIT_PROBE=0: no child; the caller takes the risk (for interpreters that cannot start processes)."""
    probe = _probe()
    before = probe.child_runs
    monkeypatch.setenv("EDGEKIT_PROBE", "0")
    assert probe.probe_tflite(custom_file, _read(custom_file), "openvino") is None
    assert probe.child_runs == before


def test_inspect_reports_the_probe_cost(custom_file):
    with edgekit.load(custom_file, backend="litert") as m:
        facts = m.describe()
    assert facts["ops"]["CUSTOM:MyFancyOp"] == 1
    assert facts["child_probe_ms"] >= 0


def test_unresolved_custom_op_at_invoke_is_a_backend_error(custom_file):
    """LiteRT 2.3.0 builds the interpreter and allocates, then fails in invoke(): a traceback before."""
    with edgekit.load(custom_file, backend="litert") as m:
        x = np.zeros((1, 6, 6, 2), np.float32)
        with pytest.raises(BackendError) as e:
            m.predict({"image": x})
    assert "MyFancyOp (node 17)" in e.value.message and "unresolved custom op" in e.value.message, e.value.message
    assert "custom op" in e.value.hint and "\n" not in e.value.message


def test_error_at_invoke_names_the_op(fuzz_seeds, tmp_path):
    """A RESHAPE whose computed shape no longer fits its input fails in invoke(), not at load."""
    path = tmp_path / "reshape_mismatch.tflite"
    path.write_bytes(edit(fuzz_seeds["tflite_float"].read_bytes(), reshape_mismatch))
    assert _read(path).vouched
    with edgekit.load(path, backend="litert") as m:
        with pytest.raises(BackendError) as e:
            m.predict({"image": np.zeros((1, 6, 6, 2), np.float32)})
    msg = e.value.message
    assert msg.startswith(f"LiteRT failed running {path.name} in RESHAPE (node 4): num_input_elements"), msg
    assert "reshape_utils.h" not in msg and "Node number" not in msg and "\n" not in msg


def test_openvino_runs_the_probe_before_reading(crashers):
    """OpenVINO reads .tflite itself: a file the reader does not vouch for runs in an OpenVINO child first
    (this one kills LiteRT but not OpenVINO, which then loads it in this process)."""
    probe = _probe()
    path = crashers["depthwise_without_bias"]
    before = probe.child_runs
    try:
        with edgekit.load(path, backend="openvino") as m:
            m.predict({m.inputs[0].name: np.zeros((1, 6, 6, 2), np.float32)})
    except (ModelFileError, BackendError):
        pass
    assert probe.child_runs == before + 1
    assert probe.last_cost_ms(path) > 0
