"""The converter contract: typed options, artifacts with lineage, conversion edges and their registry.

An edge converts one format into another with one vendor tool. It declares what it needs (checked with
``importlib.util.find_spec``, never by importing) and the extra that installs it; the planner chains edges.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from edgekit.errors import ConversionError, first_line
from edgekit.formats import Format
from edgekit.space import Knob

from .compress_base import CompressOptions

PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic")  # the one word of the CLI's --precision
FLOAT_PRECISIONS = ("fp32", "fp16")  # what a conversion writes; int8 is a compression (CompressOptions)
# the compression fields ConvertOptions took before CompressOptions, with their defaults: still accepted and
# readable (and settable) on ConvertOptions, where they delegate to ``compress``
_COMPRESS_FIELDS = {"calibration": None, "per_channel": True, "int8_io": False, "palettize_bits": None,
                    "prune_sparsity": None, "weights_only_bits": None}

# edgekit tune's precision knob (edgekit.space): the float conversions, int8 static / dynamic and 4-bit weights;
# knob_choices keeps what each target's passes accept (check_compression), so no trial asks for a refusal
TUNE_PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic", "int4-weights")
KNOBS = (Knob("precision", TUNE_PRECISIONS, owner=__name__,
              help="fp32/fp16 conversion, int8 static (calibrated) or dynamic, or 4-bit weights only"),
         Knob("calibration_samples", (100, 300), when={"precision": ("int8",)}, owner=__name__,
              help="calibration samples static int8 reads (convert's calibration_samples; all when fewer)"))


def precision_kwargs(word: str) -> dict:
    """The convert keywords of a TUNE_PRECISIONS word (int4-weights is fp32 with weights_only_bits=4)."""
    return {"precision": "fp32", "weights_only_bits": 4} if word == "int4-weights" else {"precision": word}


def knob_choices(knob: Knob, target: str) -> tuple:
    """The precision choices ``target`` can honour here (its compression passes installed and accepting them)."""
    if knob.name != "precision":
        return knob.choices
    from edgekit.errors import EdgekitError

    from .compress_base import check_compression

    ok = []
    for word in knob.choices:
        try:
            check_compression([target], ConvertOptions(**precision_kwargs(word)))
        except EdgekitError:
            continue
        ok.append(word)
    return tuple(ok)


@dataclass(init=False)
class ConvertOptions:
    """What the user asked for; every edge reads the fields that apply to it.

    ``float_precision`` is the conversion's (fp32, or fp16 weights written by the exporter); ``compress`` is the
    compression applied after (or, for TFLite, inside) the conversion, None for none: the fp32 counterpart of a
    compressed target is the same options with ``compress=None`` (``uncompressed()``). ``precision`` reads the
    one word the target ends in (int8 / int8-dynamic when compressed so, else the float precision), and the old
    keyword fields (``precision="int8"``, ``calibration=``, ``weights_only_bits=``, ...) still build a
    ``compress``.
    """

    float_precision: str = "fp32"
    input_shapes: dict[str, tuple[int | None, ...]] = field(default_factory=dict)  # fixes dims; None: dynamic
    trust_code: bool = False
    verbose: bool = False
    sample: dict | None = None  # name -> array: the user's sample, used to trace modules and to check parity
    input_order: list[str] = field(default_factory=list)  # the source's input names, in its order
    compress: CompressOptions | None = None
    # sizes for the dynamic dims a converter cannot keep ({input: {axis: size}}): the check sample's shape, set
    # by convert; an edge that must pin a dim takes its size from here (rewrite.onnx_pin_dims)
    pin_dims: dict[str, dict[int, int]] = field(default_factory=dict)

    def __init__(self, precision: str | None = None, input_shapes: dict | None = None, trust_code: bool = False,
                 verbose: bool = False, sample: dict | None = None, input_order: list[str] | None = None,
                 compress: CompressOptions | None = None, *, float_precision: str | None = None,
                 pin_dims: dict | None = None, **legacy):
        unknown = sorted(set(legacy) - set(_COMPRESS_FIELDS))
        if unknown:
            raise TypeError(f"ConvertOptions got unexpected keyword argument(s) {', '.join(unknown)}")
        if precision is not None and float_precision is not None:
            raise TypeError("give precision or float_precision, not both")
        word = str(precision if precision is not None else float_precision or "fp32").strip().lower()
        asked = {k: v for k, v in legacy.items()
                 if (v is not None if _COMPRESS_FIELDS[k] is None else bool(v) != _COMPRESS_FIELDS[k])}
        if word in ("int8", "int8-dynamic"):
            asked["precision"], word = word, "fp32"
        if asked and compress is not None:
            raise TypeError("give the compression as compress=CompressOptions(...) or as the old keyword "
                            f"fields ({', '.join(sorted(asked))}), not both")
        self.float_precision = _float_precision(word)
        self.input_shapes = dict(input_shapes or {})
        self.trust_code, self.verbose, self.sample = trust_code, verbose, sample
        self.input_order = list(input_order or [])
        self.pin_dims = dict(pin_dims or {})
        self.compress = CompressOptions(**asked) if asked else compress
        if self.float_precision == "fp16" and self.compress is not None and self.compress.precision:
            from edgekit.errors import InputError

            raise InputError(f"an fp16 conversion and {self.compress.precision} compression conflict",
                             "int8 sets the precision of the weights: ask for one of fp16 and int8")

    @property
    def precision(self) -> str:
        """The one word the target ends in: the compression's int8/int8-dynamic, else fp32 or fp16."""
        c = self.compress
        return c.precision if c is not None and c.precision else self.float_precision

    @property
    def compressing(self) -> bool:
        return self.compress is not None and self.compress.active

    def uncompressed(self) -> "ConvertOptions":
        """The same conversion without compression: the fp32 counterpart a compressed target is measured against."""
        from dataclasses import replace

        return replace(self, compress=None)


def _float_precision(word: str) -> str:
    from edgekit.errors import InputError
    from edgekit.precision import normalize

    try:
        p = normalize(word)
    except InputError:
        p = None
    if p not in FLOAT_PRECISIONS:
        raise InputError(f"unknown precision '{word}'", f"choose one of: {', '.join(PRECISIONS)}")
    return p


def _delegate(name: str, default):
    def get(self):
        return default if self.compress is None else getattr(self.compress, name)

    def set_(self, value):
        if self.compress is not None:
            self.compress = replace(self.compress, **{name: value})
        elif value is not None and not (isinstance(value, bool) and value == default):
            self.compress = CompressOptions(**{name: value})

    return property(get, set_, doc=f"``compress.{name}`` ({default!r} without compression)")


for _name, _default in _COMPRESS_FIELDS.items():
    setattr(ConvertOptions, _name, _delegate(_name, _default))


@dataclass
class Artifact:
    """A model on disk plus what produced it. ``obj`` may carry the loaded model between edges."""

    path: Path
    format: Format
    precision: str = "fp32"
    route: list[str] = field(default_factory=list)  # edge names, in order
    tool_versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. "fixed dimension 0 of 'x' to 1"
    obj: Any = None
    pinned: dict[str, dict[int, int]] = field(default_factory=dict)  # dynamic dims pinned: {input: {axis: size}}
    written: bool = False  # edgekit wrote this file in this run (an edge's output): no trust check needed


def version_of(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


class Edge:
    """One conversion step. Subclasses set the class attributes and implement ``run``."""

    name: ClassVar[str]
    source: ClassVar[tuple[Format, ...]]
    target: ClassVar[Format]
    requires: ClassVar[tuple[tuple[str, str], ...]] = ()  # (import name, distribution)
    extra: ClassVar[str] = ""
    install_hint: ClassVar[str] = ""  # when `pip install 'edgekit[extra]'` cannot install the tool
    tools: ClassVar[tuple[str, ...]] = ()  # distributions whose versions go in the manifest
    priority: ClassVar[int] = 0  # higher wins among routes of equal length

    def missing(self) -> list[str]:
        """Distributions this edge needs that are not installed (checked without importing them)."""
        out = []
        for module, dist in self.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                out.append(dist)
        return out

    def convert(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        from edgekit._offline import vendor_telemetry_off

        if not src.written:  # the user's file: the one trust check, before any framework opens it
            from edgekit.formats import ModelSource
            from edgekit.trust import require_trust

            require_trust(ModelSource(src.path, src.format), options.trust_code, "convert")
        with vendor_telemetry_off():  # the vendors' tools send nothing while they convert for edgekit
            result = self.run(src, options, out)
        result.written = True
        result.route = [*src.route, self.name]
        result.tool_versions = {**src.tool_versions, **{t: version_of(t) for t in self.tools}}
        result.notes = [*src.notes, *result.notes]
        result.pinned = {**src.pinned, **result.pinned}
        return result

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        raise NotImplementedError


REGISTRY: dict[str, Edge] = {}


def register(edge_cls: type[Edge]) -> type[Edge]:
    """Class decorator: add an edge to the registry; a second edge with the same name is an error."""
    if edge_cls.name in REGISTRY:
        raise ValueError(f"converter edge '{edge_cls.name}' is already registered")
    REGISTRY[edge_cls.name] = edge_cls()
    return edge_cls


def fail(what: str, err: BaseException, op: str | None = None) -> ConversionError:
    """A ConversionError chained from the tool's error, naming the failing operator when known."""
    first = first_line(err, 400)
    msg = f"{what}: {first}" + (f" (operator: {op})" if op and op not in first else "")
    e = ConversionError(msg)
    e.op = op
    e.__cause__ = err
    return e
