"""Localize a parity failure: the FIRST operation where a candidate model departs from its reference.

`edgekit validate --localize` runs the reference and the candidate on the same inputs with every intermediate
tensor kept, matches tensors by NAME, walks the reference's operations in graph order and reports the first one
whose output's relative error exceeds the threshold, with how the error grows after it.

Supported pairs (anything else returns ``supported=False`` with a note, never an exception):

- ONNX reference, ONNX candidate: every node output is added as a graph output (typed from shape inference where
  it knows the type, a bare untyped ValueInfo otherwise: ONNX Runtime accepts that, it rejects elem_type UNDEFINED),
  both run on ONNX Runtime's CPU provider with graph optimizations off, so no tensor is fused away.
- ONNX (or OpenVINO IR) candidate on OpenVINO (``candidate_backend="openvino"``): the reference's tensor names that
  the OpenVINO model also has are added as outputs (``Model.add_outputs``), compiled with
  ``INFERENCE_PRECISION_HINT=f32`` (OpenVINO would otherwise run in bf16 on CPUs that have it).
- TFLite reference, TFLite candidate: LiteRT with ``experimental_preserve_all_tensors=True``; each operator's
  outputs in operator order. TFLite operators have no names, so ``op_name`` is the operator's output tensor name
  and ``op_type`` the builtin name (``FULLY_CONNECTED``). Quantized tensors are dequantized before comparing.

Relative error = max |ref - got| / (max(ref) - min(ref)), or / max|ref| when the range is 0, or the plain max abs
error when the reference tensor is all zeros. NaN/Inf in the candidate where the reference is finite is ``inf``.

Matching is by name, so an operation that exists only in the candidate (e.g. an extra ``Mul`` baked in after the
input) cannot itself be the reported departure: the first reference operation consuming its result is (the first
Conv). The note then names the candidate-only operations that feed the departing tensor, which points at the cause.
"""

from __future__ import annotations

import warnings
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
    """(ops in order as (op_type, [output indices]), tensor name -> float array for every op output)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgekit.runtimes._tflite_fb import read_tflite
    from edgekit.runtimes._tflite_io import public_names

    names_in, _ = public_names(read_tflite(path.read_bytes()))
    # no default delegate (XNNPACK): delegated ops would hide their intermediate tensors behind one DELEGATE op
    with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": that is what this is
        warnings.simplefilter("ignore")
        it = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    details = it.get_input_details()
    keys = [names_in.get(d["name"], d["name"]) for d in details]
    if not all(k in feeds for k in keys) and all(d["name"] in feeds for d in details):
        keys = [d["name"] for d in details]
    fed = _match_feeds(keys, [d["dtype"] for d in details], feeds)
    for d, k in zip(details, keys):
        if tuple(d["shape"]) != fed[k].shape:
            it.resize_tensor_input(d["index"], fed[k].shape, strict=False)
    it.allocate_tensors()
    for d, k in zip(details, keys):
        it.set_tensor(d["index"], fed[k])
    it.invoke()
    info = {d["index"]: d for d in it.get_tensor_details()}
    ops = [(op["op_name"], [int(i) for i in op["outputs"] if i >= 0]) for op in it._get_ops_details()
           if op["op_name"] != "DELEGATE"]
    tensors = {}
    for _, outs in ops:
        for i in outs:
            d = info.get(i)
            if d is None:
                continue
            try:
                x = np.array(it.get_tensor(i))
            except ValueError:
                continue
            scale, zp = d.get("quantization", (0.0, 0))
            if x.dtype.kind in "iu" and scale:
                x = (x.astype(np.float32) - zp) * scale
            tensors[d["name"]] = x
    return ops, info, tensors


def _localize_tflite(ref_path: Path, cand_path: Path, feeds: dict, threshold: float) -> Localization:
    ops, info, ref = _run_tflite(ref_path, feeds)
    _, _, cand = _run_tflite(cand_path, feeds)
    order = [(info[i]["name"], op_type, info[i]["name"]) for op_type, outs in ops for i in outs if i in info]
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
