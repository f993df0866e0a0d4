"""The sample log: a bounded, rate-limited record of live inputs and outputs, for troubleshooting and replay.

Opt-in (``edgekit.monitor(..., log_dir=DIR, sample_rate=CALLS_PER_SECOND)``). A token bucket lets at most
``rate`` calls per second through (bursts of up to ``max(1, rate)``); the others are counted as dropped. Kept calls
are buffered in memory up to ``segment_bytes`` and written as one ``samples-NNNNNN.npz`` segment holding each input
under its own name (so a segment is also valid ``--data`` for `edgekit validate`), each output as ``output:NAME``,
and ``call_id`` and ``time`` per sample. Past ``max_bytes`` on disk the oldest segments are deleted (rotation); the
newest one always stays. `edgekit validate REFERENCE --replay DIR` runs the reference on the logged inputs and
compares its outputs with the logged ones (`replay.py`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from edgekit.errors import InputError

OUT = "output:"


class SampleLog:
    def __init__(self, folder, rate: float, max_bytes: int = 64 << 20, segment_bytes: int | None = None):
        if rate <= 0 or max_bytes <= 0:
            raise InputError(f"sample log rate={rate} and max_bytes={max_bytes} must be positive",
                             "give a rate in calls per second (e.g. 1.0) and a size cap in bytes")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rate, self.max_bytes = float(rate), int(max_bytes)
        self.segment_bytes = int(segment_bytes or max(1, max_bytes // 8))
        self.tokens, self.burst, self.last = max(1.0, rate), max(1.0, rate), time.monotonic()
        self.records = self.dropped = 0
        self._buf: list[tuple] = []
        self._buf_bytes = 0
        self._shape = None
        existing = sorted(self.folder.glob("samples-*.npz"))
        self._seq = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0

    def _allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def offer(self, call_id, feeds: dict, outputs: dict) -> bool:
        """Keep this call if the rate limit allows (copies are taken); returns whether it was kept."""
        n = len(next(iter(feeds.values())))
        if not self._allow():
            self.dropped += n
            return False
        shape = tuple((k, np.shape(v)[1:], np.asarray(v).dtype.str) for k, v in (*feeds.items(), *outputs.items()))
        if self._shape is not None and shape != self._shape:
            self._write()
        self._shape = shape
        arrays = {**{k: np.array(v) for k, v in feeds.items()}, **{OUT + k: np.array(v) for k, v in outputs.items()}}
        self._buf.append((str(call_id), time.time(), n, arrays))
        self._buf_bytes += sum(a.nbytes for a in arrays.values())
        self.records += n
        if self._buf_bytes >= self.segment_bytes:
            self._write()
        return True

    def _write(self) -> None:
        if not self._buf:
            return
        keys = list(self._buf[0][3])
        data = {k: np.concatenate([b[3][k] for b in self._buf]) for k in keys}
        data["call_id"] = np.array([b[0] for b in self._buf for _ in range(b[2])])
        data["time"] = np.array([b[1] for b in self._buf for _ in range(b[2])])
        path = self.folder / f"samples-{self._seq:06d}.npz"
        tmp = self.folder / f".samples-{self._seq:06d}.tmp.npz"
        np.savez(tmp, **data)
        os.replace(tmp, path)
        self._seq += 1
        self._buf, self._buf_bytes = [], 0
        self._rotate()

    def _rotate(self) -> None:
        segs = sorted(self.folder.glob("samples-*.npz"))
        sizes = [p.stat().st_size for p in segs]
        while len(segs) > 1 and sum(sizes) > self.max_bytes:
            segs.pop(0).unlink()
            sizes.pop(0)

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("samples-*.npz"))

    def stats(self) -> dict:
        return {"bytes": self.disk_bytes(), "records": self.records, "dropped": self.dropped,
                "buffered_bytes": self._buf_bytes}

    def close(self) -> None:
        self._write()


def read_segments(folder):
    """Yield (inputs, outputs, call_ids) per segment of a sample log folder (or of a monitor log's samples/)."""
    p = Path(folder)
    if (p / "samples").is_dir():
        p = p / "samples"
    segs = sorted(p.glob("samples-*.npz"))
    if not segs:
        raise InputError(f"no sample log segments (samples-*.npz) in {p}",
                         "record some with edgekit.monitor(..., log_dir=DIR, sample_rate=R), then close() it")
    for s in segs:
        with np.load(s, allow_pickle=False) as z:
            inputs = {k: z[k] for k in z.files if not k.startswith(OUT) and k not in ("call_id", "time")}
            outputs = {k[len(OUT):]: z[k] for k in z.files if k.startswith(OUT)}
            yield inputs, outputs, z["call_id"]


def describe(folder) -> dict:
    return json.loads((Path(folder) / "monitor.json").read_text()) if (Path(folder) / "monitor.json").exists() else {}
