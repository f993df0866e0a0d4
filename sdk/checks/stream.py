"""Error statistics accumulated batch by batch (memory stays bounded however much data streams through).

The streaming form of `checks.metrics.tensor_errors` (same definitions), plus the reference's range and largest
|value|, which the verdict scales its elementwise limit by.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import InputError

RESERVOIR = 200_000  # |error| values kept for the 99th percentile


class ErrorAccumulator:
    """Streaming version of `checks.metrics.tensor_errors` (same definitions), plus the reference's range."""

    def __init__(self, atol: float, rtol: float, seed: int = 0):
        self.atol, self.rtol = atol, rtol
        self.n = self.within = self.nan_mismatch = 0
        self.sum_abs = self.dot = self.rr = self.cc = self.err2 = 0.0
        self.max_abs = self.max_rel = 0.0
        self.lo, self.hi, self.ref_absmax = np.inf, -np.inf, 0.0
        self.pool = np.empty(0)  # a uniform reservoir sample of |error| values, at most RESERVOIR of them
        self.filled = self.seen = 0
        self.rng = np.random.default_rng(seed)

    def add(self, ref: np.ndarray, cand: np.ndarray) -> None:
        r = np.asarray(ref, np.float64).ravel()
        c = np.asarray(cand, np.float64).reshape(np.shape(ref)).ravel() if np.size(cand) == np.size(ref) else None
        if c is None:
            raise InputError(f"output shapes differ: candidate {np.shape(cand)} vs reference {np.shape(ref)}")
        rf, cf = np.isfinite(r), np.isfinite(c)
        same_special = (~rf & ~cf) & ((np.isnan(r) & np.isnan(c)) | (r == c))
        self.nan_mismatch += int(np.sum(rf & ~cf)) + int(np.sum(~rf & ~cf & ~same_special)) + int(np.sum(~rf & cf))
        ok = rf & cf
        r, c = r[ok], c[ok]
        if r.size == 0:
            return
        d = np.abs(r - c)
        self.n += r.size
        self.sum_abs += float(d.sum())
        self.max_abs = max(self.max_abs, float(d.max()))
        self.lo, self.hi = min(self.lo, float(r.min())), max(self.hi, float(r.max()))
        self.ref_absmax = max(self.ref_absmax, float(np.abs(r).max()))
        self.dot += float(r @ c)
        self.rr += float(r @ r)
        self.cc += float(c @ c)
        self.err2 += float(d @ d)
        self.within += int(np.sum(d <= self.atol + self.rtol * np.abs(r)))
        # relative error against max(|ref|, eps), eps = 1e-6 x the largest |ref| seen so far (streaming: a batch
        # is not kept, so eps grows with the data; it only keeps near-zero references from dominating)
        eps = max(1e-6 * self.ref_absmax, 1e-30)
        self.max_rel = max(self.max_rel, float(np.max(d / np.maximum(np.abs(r), eps))))
        self._reservoir(d)

    def _reservoir(self, d: np.ndarray) -> None:
        """Algorithm R, vectorized: memory stays at RESERVOIR values however much data streams through."""
        if self.pool.size == 0:
            self.pool = np.empty(RESERVOIR)
        head = d[:RESERVOIR - self.filled]
        self.pool[self.filled:self.filled + head.size] = head
        self.filled += head.size
        rest = d[head.size:]
        if rest.size:  # the i-th value seen replaces a random slot with probability RESERVOIR / i
            seen_at = np.arange(self.seen + head.size + 1, self.seen + d.size + 1)
            slot = (self.rng.random(rest.size) * seen_at).astype(np.int64)
            hit = slot < RESERVOIR
            self.pool[slot[hit]] = rest[hit]
        self.seen += d.size

    def result(self) -> dict:
        if self.n == 0:
            return {"max_abs": None, "mean_abs": None, "p99_abs": None, "max_rel": None, "cosine": None,
                    "snr_db": None, "within_tol": None, "nan_mismatch": self.nan_mismatch, "range": None,
                    "ref_absmax": None}
        max_rel = self.max_rel
        allkept = self.pool[:self.filled] if self.filled else np.zeros(1)
        cos = 1.0 if self.rr == 0 and self.cc == 0 else (self.dot / np.sqrt(self.rr * self.cc) if self.rr and self.cc
                                                         else 0.0)
        snr = float("inf") if self.err2 == 0 else (10 * np.log10(self.rr / self.err2) if self.rr > 0 else float("-inf"))
        nonzero = allkept[allkept > 0]  # exact zeros are counted apart: log10 has no place for them
        counts, edges = np.histogram(np.log10(nonzero), bins=30) if nonzero.size else (np.zeros(0, int), np.zeros(0))
        return {"max_abs": self.max_abs, "mean_abs": self.sum_abs / self.n, "p99_abs": float(np.percentile(allkept, 99)),
                "max_rel": max_rel, "cosine": float(cos), "snr_db": float(snr), "within_tol": self.within / self.n,
                "nan_mismatch": self.nan_mismatch, "range": self.hi - self.lo, "ref_absmax": self.ref_absmax,
                "histogram_log10_abs": {"edges": edges.tolist(), "counts": counts.tolist(),
                                        "zeros": int(allkept.size - nonzero.size), "sampled": int(allkept.size)}}
