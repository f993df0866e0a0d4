"""`edgekit monitor serve MODEL`: a monitored model behind a small HTTP server (the standard library's).

    POST /predict           body: an .npz keyed by input name, or an .npy for a one-input model; first axis =
                            samples. Answers an .npz of the outputs, with the call id in the X-Edgekit-Call-Id header
                            (send that header yourself to use your own id).
    POST /feedback?call_id=ID   body: an .npy of the call's labels (one per sample), or ?label=L for one sample.
                            204 when matched, 404 for an unknown or expired call.
    GET  /metrics           the Prometheus exposition (see exposition.py)
    GET  /healthz           "ok"

Bodies are refused past ``max_body`` bytes and never unpickled. Bad input answers 400 with the error and its hint.
"""

from __future__ import annotations

import io
import json
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from edgekit.errors import EdgekitError, InputError

CALL_ID = "X-Edgekit-Call-Id"


def _arrays(body: bytes) -> dict[str, np.ndarray] | np.ndarray:
    try:
        obj = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"the body is not an .npy or .npz file ({e})",
                         "send numpy.save / numpy.savez output (no pickled objects)") from None
    if isinstance(obj, np.lib.npyio.NpzFile):
        with obj:
            return {k: obj[k] for k in obj.files}
    return obj


def make_handler(monitor, max_body: int):
    from .exposition import text

    class Handler(BaseHTTPRequestHandler):
        server_version = "edgekit-monitor"

        def log_message(self, *args):  # the monitor's own records are the log
            pass

        def _send(self, code: int, body: bytes = b"", ctype: str = "text/plain; charset=utf-8", headers=()):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _error(self, code: int, e: EdgekitError):
            self._send(code, json.dumps({"error": e.message, "hint": e.hint}).encode(), "application/json")

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            if n > max_body:
                raise InputError(f"the body is {n} bytes, over the server's limit of {max_body}",
                                 "send fewer samples per request, or start the server with a larger --max-body")
            return self.rfile.read(n)

        def do_GET(self):
            path = urllib.parse.urlparse(self.path).path
            if path == "/metrics":
                self._send(200, text(monitor).encode(), "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/healthz":
                self._send(200, b"ok\n")
            else:
                self._send(404, b"not found: GET /metrics, /healthz; POST /predict, /feedback\n")

        def do_POST(self):
            url = urllib.parse.urlparse(self.path)
            try:
                body = self._body()
                if url.path == "/predict":
                    x = _arrays(body)
                    cid, out = monitor.predict_with_id(x, call_id=self.headers.get(CALL_ID))
                    buf = io.BytesIO()
                    np.savez(buf, **out)
                    self._send(200, buf.getvalue(), "application/octet-stream", [(CALL_ID, str(cid))])
                elif url.path == "/feedback":
                    q = urllib.parse.parse_qs(url.query)
                    if "call_id" not in q:
                        raise InputError("no call_id", "POST /feedback?call_id=ID with the id /predict answered")
                    raw = q["call_id"][0]
                    cid = int(raw) if raw.isdigit() and raw not in monitor.labels.pending else raw
                    label = np.array([float(q["label"][0])]) if "label" in q else _arrays(body)
                    if isinstance(label, dict):
                        raise InputError("the labels came as an .npz", "send one .npy array of labels")
                    if monitor.feedback(cid, label):
                        self._send(204)
                    else:
                        self._send(404, f"unknown or expired call {raw}\n".encode())
                else:
                    self._send(404, b"not found: POST /predict, /feedback\n")
            except EdgekitError as e:
                self._error(400, e)

    return Handler


def serve_model(monitor, port: int, addr: str = "127.0.0.1", max_body: int = 256 << 20) -> ThreadingHTTPServer:
    """The server (not started: call serve_forever); ``server.server_address`` holds the bound port."""
    return ThreadingHTTPServer((addr, port), make_handler(monitor, max_body))
