"""atheris harness for the ONNX reader (sdk/formats/onnx_scan.py), and ONNX Runtime behind it.

    make fuzz                                     # both harnesses, FUZZ_TIME seconds each
    .venv/bin/python fuzz/fuzz_onnx.py CORPUS_DIR -max_total_time=300 [libFuzzer flags]

Each input is written to a file in a temporary folder and read by ``scan_onnx`` + ``check_external_data``, as
``edgekit.load`` does: anything but an ``OnnxScanError`` escaping them is a finding. A file the reader accepts is
then loaded and run once on zeros by ONNX Runtime in-process, as edgekit would: a crash there is a file that
kills the caller (set EDGEKIT_FUZZ_READER_ONLY=1 to fuzz the reader alone). Half of the mutations are libFuzzer's
byte mutations, half the structural edits of tests/fuzz/fuzz_mutants.py (node inputs, initializers, attributes).
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))

with atheris.instrument_imports():
    from edgekit.formats import onnx_scan as _onnx_scan

import numpy as np  # noqa: E402

DEEP = os.environ.get("EDGEKIT_FUZZ_READER_ONLY", "") in ("", "0")
_DIR = tempfile.mkdtemp(prefix="edgekit-fuzz-onnx-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
_PATH = os.path.join(_DIR, "model.onnx")
_ort = None
_DTYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
           "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(bool)": np.bool_,
           "tensor(float16)": np.float16, "tensor(double)": np.float64}


def _onnxruntime(path: str) -> None:
    global _ort
    if _ort is None:
        import onnxruntime

        onnxruntime.set_default_logger_severity(4)
        _ort = onnxruntime
    try:
        opts = _ort.SessionOptions()
        opts.log_severity_level = 4
        sess = _ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        feeds = {}
        for i in sess.get_inputs():
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in (i.shape or [])]
            feeds[i.name] = np.zeros(shape, _DTYPES.get(i.type, np.float32))
        sess.run(None, feeds)
    except Exception:  # noqa: BLE001 -- ONNX Runtime raises its own exception types for refused models
        STATS["ort_refused"] += 1


STATS = {"inputs": 0, "accepted": 0, "ort_refused": 0}
SEEDS: list[bytes] = []  # the corpus' well-formed models, bases for structural edits


def test_one_input(data: bytes) -> None:
    STATS["inputs"] += 1
    if STATS["inputs"] % 2000 == 0 and os.environ.get("EDGEKIT_FUZZ_STATS"):
        with open(os.environ["EDGEKIT_FUZZ_STATS"], "w") as f:
            json.dump(STATS, f)
    with open(_PATH, "wb") as f:
        f.write(data)
    try:
        info = _onnx_scan.scan_onnx(_PATH)
        _onnx_scan.check_external_data(info, _PATH)
    except _onnx_scan.OnnxScanError:
        return
    STATS["accepted"] += 1
    if DEEP:
        _onnxruntime(_PATH)


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """Half libFuzzer's byte mutations; half 1-3 structural edits of this input if protobuf parses it, else of a
    seed (the reader's coverage does not lead libFuzzer into ONNX Runtime, so the structural edits go there)."""
    rng = random.Random(seed)
    if rng.random() < 0.5:
        from fuzz_mutants import onnx_structural

        for base in (data, rng.choice(SEEDS) if SEEDS else None):
            if base is None:
                continue
            try:
                out = onnx_structural(base, 1, rng, max_edits=rng.randint(1, 3))[0]
                if len(out) <= max_size:
                    return out
            except Exception:  # noqa: BLE001 -- not parseable as ONNX: try a seed, then byte mutations
                continue
    return atheris.Mutate(data, max_size)


def main() -> None:
    import onnx

    for arg in sys.argv[1:]:
        if not arg.startswith("-") and os.path.isdir(arg):
            for f in sorted(Path(arg).iterdir()):
                try:
                    onnx.load_from_string(f.read_bytes())
                    SEEDS.append(f.read_bytes())
                except Exception:  # noqa: BLE001 -- protobuf's DecodeError and friends
                    pass
    atheris.Setup(sys.argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
