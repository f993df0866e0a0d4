"""The converter contract: typed options, artifacts with lineage, conversion edges and their registry.

An edge converts one format into another with one vendor tool. It declares what it needs (checked with
``importlib.util.find_spec``, never by importing) and the extra that installs it; the planner chains edges.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from edgekit.errors import ConversionError, first_line
from edgekit.formats import Format

PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic")


@dataclass
class ConvertOptions:
    """What the user asked for; every edge reads the fields that apply to it."""

    precision: str = "fp32"
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # fixes dynamic dims
    trust_code: bool = False
    verbose: bool = False
    sample: dict | None = None  # name -> array: the user's sample, used to trace modules and to check parity
    input_order: list[str] = field(default_factory=list)  # the source's input names, in its order
    # compression
    calibration: list | None = None  # feed dicts of one sample each (batch 1), keyed by the source's input names
    per_channel: bool = True
    int8_io: bool = False
    palettize_bits: int | None = None
    prune_sparsity: float | None = None
    weights_only_bits: int | None = None

    @property
    def compressing(self) -> bool:
        return self.precision in ("int8", "int8-dynamic") or any(
            v is not None for v in (self.palettize_bits, self.prune_sparsity, self.weights_only_bits))

    def uncompressed(self) -> "ConvertOptions":
        """The same conversion without compression: the fp32 counterpart a compressed target is measured against."""
        from dataclasses import replace

        return replace(self, precision="fp32", palettize_bits=None, prune_sparsity=None, weights_only_bits=None,
                       int8_io=False, calibration=None)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            from edgekit.errors import InputError

            raise InputError(f"unknown precision '{self.precision}'", f"choose one of: {', '.join(PRECISIONS)}")


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

        with vendor_telemetry_off():  # the vendors' tools send nothing while they convert for edgekit
            result = self.run(src, options, out)
        result.route = [*src.route, self.name]
        result.tool_versions = {**src.tool_versions, **{t: version_of(t) for t in self.tools}}
        result.notes = [*src.notes, *result.notes]
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
