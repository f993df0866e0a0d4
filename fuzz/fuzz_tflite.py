"""atheris harness for the TFLite reader (sdk/formats/tflite_fb.py), and LiteRT behind it.

    make fuzz                                     # both harnesses, FUZZ_TIME seconds each
    .venv/bin/python fuzz/fuzz_tflite.py CORPUS_DIR -max_total_time=300 [libFuzzer flags]

Each input goes through ``read_tflite``: anything but a ``FlatbufferError`` escaping it is a finding. A file the
reader accepts and vouches for (``info.vouched``, and not so large that edgekit probes it anyway), which edgekit
loads in-process without the child-process probe, is loaded, allocated and invoked once on zeros by LiteRT here:
a crash there is a file the validator should have refused (EDGEKIT_FUZZ_READER_ONLY=1 fuzzes the reader alone).
Half of the mutations are libFuzzer's byte mutations, half the structural edits of tests/fuzz/fuzz_mutants.py
(tensor indices, buffers, operator inputs/outputs, opcodes, options), so the search gets past the reader's checks.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

with atheris.instrument_imports():
    from edgekit.formats import tflite_fb as _tflite_fb

from edgekit.runtimes._probe import _big_model_bytes  # noqa: E402

BIG = _big_model_bytes()

import numpy as np  # noqa: E402

DEEP = os.environ.get("EDGEKIT_FUZZ_READER_ONLY", "") in ("", "0")
_interpreter = None


STATS = {"inputs": 0, "accepted": 0, "vouched": 0, "litert_refused": 0}
SEEDS: list[bytes] = []  # the corpus' well-formed files, bases for structural edits


def _stats() -> None:
    STATS["inputs"] += 1
    if STATS["inputs"] % 2000 == 0 and os.environ.get("EDGEKIT_FUZZ_STATS"):
        with open(os.environ["EDGEKIT_FUZZ_STATS"], "w") as f:
            json.dump(STATS, f)


def _litert(data: bytes) -> None:
    global _interpreter
    if _interpreter is None:
        from ai_edge_litert.interpreter import Interpreter

        _interpreter = Interpreter
    try:
        it = _interpreter(model_content=data)
        it.allocate_tensors()
        for d in it.get_input_details():
            it.set_tensor(d["index"], np.zeros([max(int(x), 1) for x in d["shape"]], d["dtype"]))
        it.invoke()
    except (RuntimeError, ValueError, TypeError):
        STATS["litert_refused"] += 1  # a clean refusal: edgekit turns these into ModelFileError / BackendError


def test_one_input(data: bytes) -> None:
    _stats()
    try:
        info = _tflite_fb.read_tflite(data)
    except _tflite_fb.FlatbufferError:
        return
    STATS["accepted"] += 1
    info.op_histogram()
    info.parameter_count()
    if DEEP and info.vouched and info.activation_bytes() <= BIG:  # edgekit loads these without a child probe
        STATS["vouched"] += 1
        _litert(data)


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """Half libFuzzer's byte mutations; half 1-3 structural edits of this input if it is well-formed, else of a
    seed (the reader's coverage does not lead libFuzzer into LiteRT, so the structural edits go there)."""
    rng = random.Random(seed)
    if rng.random() < 0.5:
        from fuzz_mutants import tflite_structural

        try:
            _tflite_fb.read_tflite(data)  # the generated schema code only unpacks well-formed files
            base = data
        except _tflite_fb.FlatbufferError:
            base = rng.choice(SEEDS) if SEEDS else None
        if base is not None:
            try:
                out = tflite_structural(base, 1, rng, max_edits=rng.randint(1, 3))[0]
                if len(out) <= max_size:
                    return out
            except Exception:  # noqa: BLE001 -- an edit the schema code cannot pack: byte mutations instead
                pass
    return atheris.Mutate(data, max_size)


def main() -> None:
    for arg in sys.argv[1:]:
        if not arg.startswith("-") and os.path.isdir(arg):
            for f in sorted(Path(arg).iterdir()):
                try:
                    _tflite_fb.read_tflite(f.read_bytes())
                    SEEDS.append(f.read_bytes())
                except (OSError, _tflite_fb.FlatbufferError):
                    pass
    atheris.Setup(sys.argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
