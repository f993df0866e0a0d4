"""The route planner: the shortest working chain of edges from a source format to a target format.

Routes are ranked by length (direct first), then by the edges' priority. A route whose edges need packages
that are not installed is blocked; the planner says which extra would unlock it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.formats import Format

from .base import REGISTRY, Edge

EDGE_MODULES = (
    "keras_to_tflite", "keras_to_openvino", "keras_to_onnx", "keras_to_coreml",
    "torch_to_onnx", "torch_to_openvino", "torch_to_coreml", "torchscript_to_onnx",
    "onnx_to_openvino", "onnx_to_savedmodel", "onnx_to_coreml",
    "tflite_to_openvino", "tflite_to_onnx",
    "torch_to_executorch", "onnx_to_executorch", "torch_to_ncnn", "onnx_to_ncnn",
)

TARGETS = {"tflite": Format.TFLITE, "coreml": Format.COREML, "openvino": Format.OPENVINO_IR, "onnx": Format.ONNX,
           "executorch": Format.EXECUTORCH, "ncnn": Format.NCNN}
MAX_HOPS = 3


def load_edges() -> dict[str, Edge]:
    """Import every edge module (cheap: the tools are imported inside each edge's run)."""
    for name in EDGE_MODULES:
        importlib.import_module(f"edgekit.converters.{name}")
    return REGISTRY


@dataclass
class Route:
    edges: list[Edge]
    missing: list[str] = field(default_factory=list)  # distributions not installed
    extras: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)  # install commands for tools no extra installs

    def install(self) -> str:
        parts = ([f"pip install 'edgekit[{','.join(self.extras)}]'"] if self.extras else []) + self.hints
        return " && ".join(parts)

    @property
    def available(self) -> bool:
        return not self.missing

    def describe(self, source: Format) -> str:
        steps = [source.value] + [e.target.value for e in self.edges]
        tools = ", ".join(e.name for e in self.edges)
        return f"{' -> '.join(steps)}  ({tools})"


@dataclass
class Plan:
    source: Format
    target: Format
    routes: list[Route]

    @property
    def chosen(self) -> Route | None:
        return next((r for r in self.routes if r.available), None)

    def explain(self) -> list[str]:
        lines = []
        chosen = self.chosen
        if not self.routes:
            return [f"{self.target.value}: no route from {self.source.value}"]
        for r in self.routes:
            if r is chosen:
                lines.append(f"{self.target.value}: chosen  {r.describe(self.source)}")
            elif r.available:
                lines.append(f"{self.target.value}: also    {r.describe(self.source)}")
            else:
                lines.append(f"{self.target.value}: blocked {r.describe(self.source)}; needs "
                             f"{', '.join(r.missing)}: {r.install()}")
        return lines


def _paths(source: Format, target: Format, edges: list[Edge]) -> list[list[Edge]]:
    found: list[list[Edge]] = []

    def walk(fmt: Format, path: list[Edge], seen: set[Format]):
        if len(path) > MAX_HOPS:
            return
        for e in edges:
            if fmt not in e.source or e.target in seen:
                continue
            if e.target is target:
                found.append([*path, e])
            else:
                walk(e.target, [*path, e], seen | {e.target})

    walk(source, [], {source})
    return found


def plan(source: Format, target: Format) -> Plan:
    edges = list(load_edges().values())
    routes = []
    for path in _paths(source, target, edges):
        missing = sorted({d for e in path for d in e.missing()})
        extras = sorted({e.extra for e in path if e.missing() and not e.install_hint})
        hints = list(dict.fromkeys(e.install_hint for e in path if e.missing() and e.install_hint))
        routes.append(Route(path, missing, extras, hints))
    routes.sort(key=lambda r: (len(r.edges), -sum(e.priority for e in r.edges)))
    return Plan(source, target, routes)


@dataclass
class RouteExplanation:
    """Each target's routes from one source file: the chosen one, the alternatives, and what would unlock a
    blocked one (``Plan.explain`` lines). ``to_dict()``: what `edgekit convert --explain --json` prints."""
    source_path: Path
    source: Format
    routes: dict[str, list[str]]

    def to_dict(self) -> dict:
        return {"source": self.source.value, "routes": self.routes}


def explain_routes(source_path: str | os.PathLike, targets: str | Sequence[str]) -> RouteExplanation:
    """Plan every target (names from TARGETS, a list or a comma-separated string) for the model at
    ``source_path`` and explain the routes; converts nothing and loads no model (the format is read from the
    file's content)."""
    from edgekit.errors import InputError
    from edgekit.formats import detect

    names = [t.strip().lower() for t in (targets.split(",") if isinstance(targets, str) else targets) if t.strip()]
    bad = [t for t in names if t not in TARGETS]
    if bad or not names:
        raise InputError(f"unknown target {', '.join(repr(b) for b in bad)}" if bad else "no target given",
                         f"choose from: {', '.join(TARGETS)} (comma-separated)")
    src = detect(source_path)
    return RouteExplanation(src.path, src.format,
                            {t: plan(src.format, TARGETS[t]).explain() for t in dict.fromkeys(names)})
