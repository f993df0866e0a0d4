"""Keep the vendors' tools off the network while edgekit runs them: edge labs are often offline, and a user
converting a model has not asked to send anything anywhere.

What the tools fetch, and where edgekit stops it:

- OpenVINO sends usage telemetry to Google Analytics (https://www.google-analytics.com/mp/collect) when
  ``openvino`` is first imported and on every ``openvino.convert_model`` call, unless the user opted out
  with ``opt_in_out --opt_out``; NNCF (``nncf.quantize``, ``nncf.compress_weights``) sends through the same
  ``openvino_telemetry`` package. On Linux each message forks a process that tries the network (12 per
  ONNX -> IR conversion measured here). ``vendor_telemetry_off()`` drops the messages while edgekit's call
  runs; it changes nothing on disk and nothing outside the block. ``Edge.convert`` runs every edge inside it
  (an edge's first ``import openvino`` included), and the NNCF compression does too. Code that imports
  openvino outside it (the OpenVINO runner) still lets the import event through.
- onnx2tf downloads 20 MS-COCO calibration images from GitHub (or Wasabi) when every input is a 3-channel
  NHWC image with a fixed batch: onnx_to_savedmodel.py hands it edgekit's own sample instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading

_lock = threading.Lock()
_state = {"depth": 0, "send": None}


def _sender_class():
    try:
        if importlib.util.find_spec("openvino_telemetry") is None:
            return None
        from openvino_telemetry.utils.sender import TelemetrySender
    except (ImportError, ValueError):
        return None
    return TelemetrySender if callable(getattr(TelemetrySender, "send", None)) else None


def _drop(self, backend, message):
    """TelemetrySender.send while edgekit runs a tool: the message is not queued, no process is forked."""


@contextlib.contextmanager
def vendor_telemetry_off():
    """Within the block, OpenVINO/NNCF telemetry sends nothing (re-entrant, thread-safe; restored on exit)."""
    cls = _sender_class()
    if cls is None:
        yield
        return
    with _lock:
        if _state["depth"] == 0:
            _state["send"] = cls.__dict__.get("send")
            cls.send = _drop
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                if _state["send"] is not None:
                    cls.send = _state["send"]
                _state["send"] = None
