"""Localize a parity failure: the FIRST operation where a candidate model departs from its reference.

`edgekit validate --localize` runs the reference and the candidate on the same inputs with every intermediate
tensor kept, matches tensors by NAME, walks the reference's operations in graph order and reports the first one
whose output's relative error exceeds the threshold, with how the error grows after it.

Every model runs through the normal runner (``edgekit.load(..., intermediates=True)``: the loader option that
marks every intermediate tensor as an output), so localize opens no runtime session of its own and every file
passes the same safety checks as anywhere else (TFLite validator and crash probe, ONNX external data, trust).
Supported pairs (anything else returns ``supported=False`` with a note, never an exception):

- ONNX reference, ONNX candidate: both on ONNX Runtime with every node output added as a graph output and graph
  optimizations off, so no tensor is fused away; the graph order comes from the reference file.
- ONNX (or OpenVINO IR) candidate on OpenVINO (``candidate_backend="openvino"``): every named op output added as an
  output (``Model.add_outputs``), f32 inference precision, each output reachable under all of its tensor names.
- TFLite reference, TFLite candidate: LiteRT with every tensor preserved and no default delegate; each operator's
  outputs in operator order. TFLite operators have no names, so ``op_name`` is the operator's output tensor name
  and ``op_type`` the builtin name (``FULLY_CONNECTED``). Quantized tensors are dequantized before comparing.

Relative error = max |ref - got| / (max(ref) - min(ref)), or / max|ref| when the range is 0, or the plain max abs
error when the reference tensor is all zeros. NaN/Inf in the candidate where the reference is finite is ``inf``.

Matching is by name, so an operation that exists only in the candidate (e.g. an extra ``Mul`` baked in after the
input) cannot itself be the reported departure: the first reference operation consuming its result is (the first
Conv). The note then names the candidate-only operations that feed the departing tensor, which points at the cause.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

MAX_GROWTH = 20
_UNSUPPORTED = ("localization compares intermediate tensors of two ONNX or two TFLite models; got a {ref} reference "
                "and a {cand} candidate{on}: convert the reference to the candidate's format first (the conversion's "
                "own parity can be checked separately), then localize between the two")


@dataclass
class Departure:
    op_name: str
    op_type: str
    tensor: str
    rel_error: float


@dataclass
class Localization:
    supported: bool
    method: str
    first: Departure | None
    growth: list[dict] = field(default_factory=list)
    compared: int = 0
    note: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def rel_error(ref, got) -> float | None:
    """Max abs error relative to the reference's range (see the module doc); None when shapes cannot be compared."""
    ref = np.asarray(ref)
    got = np.asarray(got)
    if ref.dtype.kind not in "biuf" or got.dtype.kind not in "biuf":
        return None
    ref = ref.astype(np.float64)
    got = got.astype(np.float64)
    if ref.shape != got.shape:
        if ref.size != got.size:
            return None
        got = got.reshape(ref.shape)
    if ref.size == 0:
        return 0.0
    ok = np.isfinite(ref)
    if (~np.isfinite(got) & ok).any():
        return float("inf")
    if not ok.any():
        return 0.0
    r, g = ref[ok], got[ok]
    err = float(np.max(np.abs(r - g)))
    scale = float(r.max() - r.min()) or float(np.max(np.abs(r)))
    return err / scale if scale > 0 else err


def _walk(order: list[tuple[str, str, str]], ref: dict, cand: dict, threshold: float) -> Localization:
    """order: (op_name, op_type, tensor) in graph order; ref/cand: tensor name -> array."""
    rows = []
    for op_name, op_type, tensor in order:
        if tensor in ref and tensor in cand:
            e = rel_error(ref[tensor], cand[tensor])
            if e is not None:
                rows.append((op_name, op_type, tensor, e))
    first_i = next((i for i, r in enumerate(rows) if r[3] > threshold), None)
    if first_i is None:
        note = None if rows else "the two models have no intermediate tensor names in common (different converters?)"
        return Localization(True, "", None, [], len(rows), note)
    growth = [{"tensor": t, "op_type": ty, "rel_error": e} for _, ty, t, e in rows[first_i:first_i + MAX_GROWTH]]
    return Localization(True, "", Departure(*rows[first_i]), growth, len(rows))


# ---------------------------------------------------------------------------------------------------- ONNX


def _np_type(type_str: str):
    return {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
            "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
            "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}.get(type_str)


def _match_feeds(names: list[str], dtypes: list, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Feeds by name when every input name is present, else by position; cast to the input's dtype."""
    vals = [feeds[n] for n in names] if all(n in feeds for n in names) else list(feeds.values())[:len(names)]
    if len(vals) != len(names):
        from edgekit.errors import InputError

        raise InputError(f"the model takes inputs {names}; got {list(feeds)}", "pass one array per model input")
    return {n: np.asarray(v, dtype=t) if t is not None else np.asarray(v) for n, v, t in zip(names, vals, dtypes)}


def _run(path: Path, backend: str, feeds: dict) -> dict[str, np.ndarray]:
    """Every tensor of ``path`` on ``backend``, through the normal runner (with its safety checks) loaded with
    every intermediate tensor marked as an output, f32 arithmetic and graph optimizations off."""
    from edgekit.model import load

    with load(path, backend=backend, intermediates=True) as m:
        names = [s.name for s in m.inputs]
        dtypes = [np.dtype(s.dtype) if s.dtype and s.dtype not in ("str", "string") else None for s in m.inputs]
        out = m.predict(_match_feeds(names, dtypes, feeds))
    return {k: np.asarray(v) for k, v in out.items() if isinstance(v, np.ndarray)}


def _candidate_only_ops(cand_model, ref_tensors: set[str], tensor: str, limit: int = 5) -> list[str]:
    """Candidate operations (outside the reference's tensor names) that feed `tensor`, nearest first."""
    producer = {o: n for n in cand_model.graph.node for o in n.output}
    inits = {i.name for i in cand_model.graph.initializer}
    found, seen = [], set()
    stack = [i for i in (producer[tensor].input if tensor in producer else []) if i]
    while stack and len(found) < limit:
        t = stack.pop(0)
        if t in seen or t in ref_tensors or t in inits or t not in producer:
            continue
        seen.add(t)
        node = producer[t]
        found.append(f"{node.op_type} '{node.name or t}' (output '{t}')")
        stack.extend(i for i in node.input if i)
    return found


def _localize_onnx(ref_path: Path, cand_path: Path, feeds: dict, threshold: float, backend: str) -> Localization:
    import onnx

    ref_model = onnx.load(str(ref_path), load_external_data=False)  # the graph order only: no weights
    ref = _run(ref_path, "onnxruntime", feeds)
    cand_model = None
    if backend == "openvino":
        cand = _run(cand_path, "openvino", feeds)
        method = "onnxruntime-vs-openvino"
    else:
        cand_model = onnx.load(str(cand_path), load_external_data=False)
        cand = _run(cand_path, "onnxruntime", feeds)
        method = "onnxruntime"
    order = [(n.name or n.output[0], n.op_type, o) for n in ref_model.graph.node for o in n.output if o]
    loc = _walk(order, ref, cand, threshold)
    loc.method = method
    if loc.first is not None and cand_model is not None:
        extra = _candidate_only_ops(cand_model, set(ref), loc.first.tensor)
        if extra:
            loc.note = ("the candidate computes this tensor from operations the reference does not have: "
                        + ", ".join(extra))
    return loc


# ---------------------------------------------------------------------------------------------------- TFLite


def _run_tflite(path: Path, feeds: dict):
    """(ops in order as (op type, [output tensor names]), tensor name -> array for every op output), through the
    LiteRT runner (its validator and crash probe included) loaded with every tensor kept and no delegate."""
    from edgekit.model import load

    with load(path, backend="litert", intermediates=True) as m:
        names = [s.name for s in m.inputs]
        if not all(n in feeds for n in names) and all(s.extra.get("tensor_name") in feeds for s in m.inputs):
            feeds = {s.name: feeds[s.extra["tensor_name"]] for s in m.inputs}
        dtypes = [np.float32 if s.quantized else np.dtype(s.dtype) for s in m.inputs]
        tensors = m.predict(_match_feeds(names, dtypes, feeds))
        ops = [(t, outs) for t, outs in m.runner.op_order if t != "DELEGATE"]
    return ops, tensors


def _localize_tflite(ref_path: Path, cand_path: Path, feeds: dict, threshold: float) -> Localization:
    ops, ref = _run_tflite(ref_path, feeds)
    _, cand = _run_tflite(cand_path, feeds)
    order = [(name, op_type, name) for op_type, outs in ops for name in outs]
    loc = _walk(order, ref, cand, threshold)
    loc.method = "litert"
    return loc


# ---------------------------------------------------------------------------------------------------- entry


def localize(reference_path, candidate_path, feeds: dict[str, np.ndarray], threshold: float = 1e-3,
             candidate_backend: str | None = None) -> Localization:
    """The first operation where the candidate departs from the reference (see the module doc)."""
    from edgekit.formats import Format, detect

    ref_src, cand_src = detect(reference_path), detect(candidate_path)
    rf, cf = ref_src.format, cand_src.format
    backend = (candidate_backend or "").lower() or None
    if rf == Format.ONNX and (cf == Format.ONNX and backend in (None, "onnxruntime", "ort", "openvino")
                              or cf == Format.OPENVINO_IR and backend in (None, "openvino")):
        return _localize_onnx(ref_src.path, cand_src.path, feeds, threshold,
                              "openvino" if cf == Format.OPENVINO_IR else (backend or "onnxruntime"))
    if rf == Format.TFLITE and cf == Format.TFLITE and backend in (None, "litert", "tflite"):
        return _localize_tflite(ref_src.path, cand_src.path, feeds, threshold)
    on = f" on {backend}" if backend else ""
    return Localization(False, "none", None, [], 0, _UNSUPPORTED.format(ref=rf.value, cand=cf.value, on=on))
