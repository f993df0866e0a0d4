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


@contextlib.contextmanager
def captured(log_path=None):
    """Run tools with stdout, stderr, Python warnings and progress bars captured (to ``log_path`` if given).

    Redirects the file descriptors, so native and Python output alike are caught. With VERBOSE it does nothing.
    """
    import warnings

    if VERBOSE:
        yield
        return
    old_tqdm = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:
        saved = None
    sink = open(log_path, "wb") if log_path else tempfile.TemporaryFile()
    try:
        if saved:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        if saved:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        sink.close()
        if old_tqdm is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = old_tqdm
