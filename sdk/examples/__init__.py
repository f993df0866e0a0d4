"""Bundled example models (see `digits/train.py` for how they were made)."""

from __future__ import annotations

from pathlib import Path

DIGITS_DIR = Path(__file__).parent / "digits"
