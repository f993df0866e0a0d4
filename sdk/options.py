"""Read and check the options of the public API given as text (the CLI passes its flags' words here unchanged).

Each function raises InputError naming what it could not read and how to write it; ``what`` is how the caller
names the option in that message (the CLI passes its flag, e.g. ``--input-shape``).
"""

from __future__ import annotations

from .errors import InputError

TOLERANCE_KEYS = ("atol", "rtol", "max_abs_rel", "cosine")


def parse_input_shapes(items: list[str] | None, what: str = "input shape") -> dict[str, tuple[int, ...]]:
    """``["NAME=D0,D1,...", ...]`` -> ``{NAME: (D0, D1, ...)}``; every dimension a positive integer."""
    shapes = {}
    for item in items or []:
        name, sep, dims = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            shapes[name] = tuple(int(d) for d in dims.split(","))
            if any(d < 1 for d in shapes[name]):
                raise ValueError
        except ValueError:
            raise InputError(f"cannot read {what} '{item}'", "write NAME=D0,D1,... e.g. image=1,3,224,224") from None
    return shapes


def parse_output_tolerances(items: list[str] | None, what: str = "output tolerance") -> dict[str, dict[str, float]]:
    """``["NAME:key=value[,key=value]", ...]`` -> ``{NAME: {key: value}}``; keys: atol, rtol, max_abs_rel, cosine.
    NAME may itself contain ':' (the last one separates it)."""
    out: dict = {}
    for item in items or []:
        name, sep, rest = item.rpartition(":")
        try:
            if not sep or not name:
                raise ValueError
            for kv in rest.split(","):
                k, v = kv.split("=")
                if k not in TOLERANCE_KEYS:
                    raise ValueError
                out.setdefault(name, {})[k] = float(v)
        except ValueError:
            raise InputError(f"cannot read {what} '{item}'",
                             f"write NAME:key=value[,key=value] with keys {', '.join(TOLERANCE_KEYS)}") from None
    return out
