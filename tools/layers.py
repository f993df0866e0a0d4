"""Architecture figures for the layout in docs/ARCHITECTURE.md, printed in one run: the longest function, the
places that define a tolerance, and imports that run upward between layers (a lower layer importing a higher one).

    .venv/bin/python tools/layers.py [ROOT]

Layers, lowest first: core (errors, types, formats, precision, manifest, trust, machine, space, ...) < runtimes <
model (load, data, batching, device classes) < converters, checks < benchmarks < api (convert, validate, bench, ...) < cli.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

MAP = {"sdk": "edgekit", "converters": "edgekit.converters", "runtimes": "edgekit.runtimes",
       "benchmarks": "edgekit.benchmarks"}
CORE = {"errors", "types", "formats", "precision", "manifest", "trust", "_quiet", "_offline", "machine", "options",
        "space", "display"}
MODEL = {"model", "data", "datasets", "batching", "device_classes"}  # load and what it reads (device classes)
RANK = {"core": 0, "runtimes": 1, "model": 2, "converters": 3, "checks": 3, "benchmarks": 4, "api": 5, "cli": 6}


def layer(mod: str) -> str:
    parts = mod.split(".")
    if len(parts) == 1:
        return "api"  # edgekit/__init__: the public facade
    top = parts[1]
    if top in ("runtimes", "converters", "benchmarks", "checks", "cli"):
        return top
    if top in CORE:
        return "core"
    if top in MODEL:
        return "model"
    return "api"


def module_name(root: Path, d: str, f: Path) -> str:
    rel = f.relative_to(root / d).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([MAP[d], *parts])


def main(root: Path) -> None:
    longest, upward, tolerance_defs = (0, ""), set(), []
    for d in MAP:
        for f in sorted((root / d).rglob("*.py")):
            if "examples" in f.parts:
                continue
            mod = module_name(root, d, f)
            text = f.read_text()
            if re.search(r"^\s*(TOLERANCES|PROFILES|AGREEMENT|COSINE)\s*(:[^=]*)?=", text, re.M) and \
                    ("max_abs_rel" in text or "agreement" in text.lower()):
                tolerance_defs.append(str(f.relative_to(root)))
            pkg = mod if f.name == "__init__.py" else mod.rsplit(".", 1)[0]
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > longest[0]:
                        longest = (n, f"{f.relative_to(root)}:{node.name}")
                targets = []
                if isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                        targets = [".".join(base + ([node.module] if node.module else []))]
                    else:
                        targets = [node.module or ""]
                    if node.module is None or (node.level and not node.module):  # from . import x
                        targets = [f"{targets[0]}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                for t in targets:
                    if t.startswith("edgekit") and RANK[layer(t)] > RANK[layer(mod)]:
                        upward.add(f"{mod} ({layer(mod)}) -> {t} ({layer(t)})")
    print(f"longest function: {longest[0]} lines ({longest[1]})")
    print(f"places that define a tolerance table: {len(tolerance_defs)} ({', '.join(tolerance_defs)})")
    print(f"imports that run upward between layers: {len(upward)}")
    for u in sorted(upward):
        print("  ", u)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
