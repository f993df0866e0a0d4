"""Every backend is safe to call from several threads: 8 threads x 200 calls, each output equal to the
single-thread output for the same input (OpenVINO once shared one InferRequest and returned other calls' outputs)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import edgekit

THREADS, CALLS, DISTINCT = 8, 200, 48
# (case, artifact kind, backend, input layout)
MODELS = [("cnn", "tflite", "litert", "keras"), ("cnn", "tflite", "openvino", "keras"),
          ("cnn", "onnx", "onnxruntime", "torch"), ("cnn", "onnx", "openvino", "torch"),
          ("cnn", "openvino", "openvino", "torch"), ("two_io", "openvino", "openvino", "torch"),
          ("cnn", "keras", "keras", "keras"), ("cnn", "savedmodel", "keras", "keras"),
          ("cnn", "pt2", "torch", "torch")]


def _inputs(model, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{s.name: rng.standard_normal([1 if d is None else d for d in s.shape]).astype(np.float32)
             for s in model.inputs} for _ in range(DISTINCT)]


@pytest.mark.parametrize("case,kind,backend,_layout", MODELS, ids=[f"{c}-{k}-{b}" for c, k, b, _ in MODELS])
def test_concurrent_calls_return_their_own_outputs(cases, case, kind, backend, _layout):
    with edgekit.load(cases[case].files[kind], backend=backend, trust_code=kind == "pt2") as m:
        xs = _inputs(m, seed=7)
        expected = [m.predict(x) for x in xs]  # one thread, one call at a time
        # distinct inputs really give distinct outputs, so a swapped result cannot pass unnoticed
        first = next(iter(expected[0]))
        assert len({e[first].tobytes() for e in expected}) == DISTINCT
        wrong: list[tuple[int, int, str]] = []
        errors: list[BaseException] = []
        start = threading.Barrier(THREADS)

        def worker(t: int) -> None:
            try:
                start.wait()
                for i in range(CALLS):
                    k = (t * 7 + i) % DISTINCT
                    got = m.predict(xs[k])
                    for name, ref in expected[k].items():
                        if not np.allclose(got[name], ref, rtol=1e-5, atol=1e-6):
                            wrong.append((t, i, name))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors[:3]
        assert not wrong, f"{len(wrong)} of {THREADS * CALLS} outputs belonged to another call: {wrong[:5]}"
