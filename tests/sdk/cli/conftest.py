"""Fixtures for the CLI tests: extra models built by code, damaged / hostile files, and two per-test helpers.

The shared fixture models (`cases`) come from tests/conftest.py; the fixtures here add what the CLI tests need
beyond them: a Keras CNN with non-zero biases (so a TFLite file keeps every parameter), fixed-batch models,
a model with an integer input, and a collection of broken or unsafe files. Everything is built by the one
fixture factory, tests/model_factory.py (its `build_*` functions); this file only gives each a session folder.
Per test: `digits` (fresh copies of the bundled digits example) and `no_bench` (fails a test whose command starts
measuring), shared by the bad-input tests (test_cli_bad_input.py, test_cli_bad_input_outputs.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # cli_util


@pytest.fixture(scope="session")
def keras_extra(tmp_path_factory):
    from model_factory import build_keras_extra

    return build_keras_extra(tmp_path_factory.mktemp("keras_extra"))


@pytest.fixture(scope="session")
def torch_fixed(tmp_path_factory):
    from model_factory import build_torch_fixed

    return build_torch_fixed(tmp_path_factory.mktemp("torch_fixed"))


@pytest.fixture(scope="session")
def bad_files(cases, tmp_path_factory):
    """Broken model files: name -> (path, fragments the error line must contain)."""
    from model_factory import build_bad_files

    return build_bad_files(cases, tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="session")
def onnx_external(tmp_path_factory):
    from model_factory import build_onnx_external

    return build_onnx_external(tmp_path_factory.mktemp("onnx_ext"))


@pytest.fixture(scope="session")
def torch_bad(tmp_path_factory):
    from model_factory import build_torch_bad

    return build_torch_bad(tmp_path_factory.mktemp("torch_bad"))


@pytest.fixture
def digits(tmp_path):
    """Copies of the bundled models and test split: onnx, tflite, xml (+ .bin) and data."""
    from model_factory import copy_digits

    return copy_digits(tmp_path / "models")


@pytest.fixture
def no_bench(monkeypatch):
    """Fail the test if a measurement starts: output checks must come first."""
    from edgekit import bench

    def boom(*a, **k):
        raise AssertionError("the benchmark ran before the outputs were checked")

    monkeypatch.setattr(bench, "benchmark", boom)
