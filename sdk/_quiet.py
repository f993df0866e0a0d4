"""Hide native libraries' start-up chatter (TensorFlow's absl logs, LiteRT's delegate banner).

These libraries write straight to file descriptor 2, below Python, so the descriptor itself is redirected for
the duration of a load. What was written is kept and shown if the load fails. ``--verbose`` (or
``EDGEKIT_VERBOSE=1``) turns this off.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

VERBOSE = os.environ.get("EDGEKIT_VERBOSE", "") not in ("", "0")


@contextlib.contextmanager
def quiet_native():
    if VERBOSE:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (e.g. some embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        ok = False
        try:
            yield
            ok = True
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            if not ok:
                tmp.seek(0)
                text = tmp.read().decode(errors="replace")[-4000:]
                if text.strip():
                    sys.stderr.write(text)
