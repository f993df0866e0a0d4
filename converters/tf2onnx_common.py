"""Shared by the edges that use tf2onnx (Keras, SavedModel, TFLite -> ONNX).

tf2onnx can log "Unsupported ops" and still exit cleanly, leaving TensorFlow ops that ONNX Runtime rejects
(DESIGN.md field notes): every result is checked against the ONNX operator schemas and the unknown ops are
reported by name. Keras 3's exact gelu lowers to TF `Erfc`, which tf2onnx lacks; it is rewritten as 1 - Erf.
"""

from __future__ import annotations

from pathlib import Path

from .base import fail

OPSET = 17  # tf2onnx 1.17 supports opsets up to 18


def _patch_numpy() -> None:
    """tf2onnx 1.17 still calls numpy aliases removed in numpy 2 on some paths."""
    import numpy as np

    for alias, real in (("object", object), ("bool", bool), ("product", np.prod), ("cast", None)):
        if real is not None and not hasattr(np, alias):
            setattr(np, alias, real)


def erfc_handler(ctx, node, name, args):
    """Erfc(x) = 1 - Erf(x), built from ONNX ops."""
    import numpy as np
    from tf2onnx import utils

    node.type = "Erf"
    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.output[0]))
    one = ctx.make_const(utils.make_name("erfc_one"), np.array(1, dtype))
    ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name("erfc_sub"),
                                  inputs=[one.output[0], node.output[0]])


HANDLERS = {"Erfc": (erfc_handler, [])}


def unknown_ops(model) -> list[str]:
    """Ops in the ONNX graph that no registered ONNX operator schema defines (left-over TF ops)."""
    import onnx

    bad = []
    for node in model.graph.node:
        domain = node.domain or ""
        if domain in ("", "ai.onnx", "ai.onnx.ml", "com.microsoft"):
            if not onnx.defs.has(node.op_type, domain if domain != "ai.onnx" else ""):
                bad.append(node.op_type)
        else:
            bad.append(f"{domain}::{node.op_type}")
    return sorted(set(bad))


def finish(model_proto, path: Path, what: str) -> None:
    """Refuse a graph with unknown ops (naming them), then save it."""
    import onnx

    bad = unknown_ops(model_proto)
    if bad:
        err = ValueError(f"ONNX has no operator for {', '.join(bad)}")
        raise fail(f"{what} left operators ONNX Runtime cannot run", err, bad[0])
    onnx.save_model(model_proto, str(path))
