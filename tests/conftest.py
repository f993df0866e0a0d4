import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def cases(tmp_path_factory):
    """Every fixture model, built once per test session (see model_factory.py)."""
    from model_factory import build_all

    return build_all(tmp_path_factory.mktemp("models"))
