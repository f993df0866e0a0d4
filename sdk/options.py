"""Read and check the options of the public API given as text (the CLI passes its flags' words here unchanged).

Each function raises InputError naming what it could not read and how to write it; ``what`` is how the caller
names the option in that message (the CLI passes its flag, e.g. ``--input-shape``).
"""

from __future__ import annotations

from .errors import InputError

TOLERANCE_KEYS = ("atol", "rtol", "max_abs_rel", "cosine")


DYNAMIC_WORDS = ("none", "-1", "?")  # a dim written so stays dynamic


def parse_input_shapes(items: list[str] | None, what: str = "input shape") -> dict[str, tuple[int | None, ...]]:
    """``["NAME=D0,D1,...", ...]`` -> ``{NAME: (D0, D1, ...)}``; every dimension a positive integer, or ``None``
    (written None, -1 or ?) for a dim to keep dynamic."""
    shapes = {}
    for item in items or []:
        name, sep, dims = item.partition("=")
        try:
            if not sep or not name or name in shapes:
                raise ValueError
            shapes[name] = tuple(_dim(d) for d in dims.split(","))
        except ValueError:
            again = f"; {name} is given twice" if sep and name in shapes else ""
            raise InputError(f"cannot read {what} '{item}'{again}",
                             "write NAME=D0,D1,... e.g. image=1,3,224,224; None or -1 keeps a dim dynamic, "
                             "e.g. tokens=-1,128") from None
    return shapes


def input_shapes(shapes: dict | None) -> dict[str, tuple[int | None, ...]]:
    """The API's ``input_shapes`` (``{name: dims}``, dims ints, None, -1 or text) checked as the CLI's are."""
    out = {}
    for name, dims in (shapes or {}).items():
        try:
            out[str(name)] = tuple(_dim(d) for d in (dims.split(",") if isinstance(dims, str) else dims))
        except (TypeError, ValueError):
            raise InputError(f"cannot read the input shape {name}={dims!r}",
                             "give a sequence of positive ints, with None or -1 for a dim to keep dynamic") from None
    return out


def _dim(d) -> int | None:
    if d is None or (isinstance(d, str) and d.strip().lower() in DYNAMIC_WORDS):
        return None
    if isinstance(d, bool) or isinstance(d, float) and not d.is_integer():
        raise ValueError(d)
    v = int(d)
    if v == -1:
        return None
    if v < 1:
        raise ValueError(d)
    return v


def check_input_shapes(shapes: dict, specs, what: str = "--input-shape") -> None:
    """An input shape for a name the model does not have (``specs``: its TensorSpecs), or of another rank, is an
    error, raised before any work."""
    names = [s.name for s in specs]
    unknown = [n for n in shapes if n not in names]
    if unknown:
        raise InputError(f"{what} names no input of the model: {', '.join(unknown)}",
                         f"the model's inputs are: {', '.join(names) or '(none)'}")
    for s in specs:
        if s.name in shapes and s.shape is not None and len(shapes[s.name]) != len(s.shape):
            shown = ",".join("None" if d is None else str(d) for d in s.shape)
            raise InputError(f"{what} gives {s.name} {len(shapes[s.name])} dims; the model's has {len(s.shape)}",
                             f"write {s.name}={shown} with the dims to fix (None keeps a dim dynamic)")


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
