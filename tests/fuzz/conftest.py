"""Session fixtures for the fuzz suite and the crafted-crasher tests: seed models built once by code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # fuzz_seeds, fuzz_mutants, fuzz_harness, tflite_crafted


@pytest.fixture(scope="session")
def fuzz_seeds(tmp_path_factory):
    """{"tflite_float", "tflite_float2", "tflite_int8", "onnx", "ir"} -> path of a small real model."""
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("tensorflow")
    pytest.importorskip("openvino")
    pytest.importorskip("onnx")
    from fuzz_seeds import build_seeds

    return build_seeds(tmp_path_factory.mktemp("fuzz_seeds"))


@pytest.fixture(scope="session")
def crashers(fuzz_seeds, tmp_path_factory):
    """{name: path} of the crafted TFLite files that kill a bare LiteRT process (tflite_crafted.CRASHERS)."""
    from tflite_crafted import build_crashers

    return build_crashers(fuzz_seeds, tmp_path_factory.mktemp("crashers"))
