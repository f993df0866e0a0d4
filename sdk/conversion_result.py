"""What `edgekit.convert` returns: one `TargetResult` per target and the `ConvertReport` that holds them and
writes manifest.json (docs/ARCHITECTURE.md). Plain data: importing it loads no converter or runtime."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

STATUSES = ("pass", "fail", "unverified")  # the verdict words of edgekit.checks.verdict, everywhere


@dataclass
class TargetResult:
    target: str
    path: Path | None = None
    route: list[str] = field(default_factory=list)
    precision: str = "fp32"
    status: str = "fail"
    parity: dict | None = None
    size_bytes: int | None = None
    seconds: float = 0.0
    tool_versions: dict = field(default_factory=dict)
    error: str | None = None
    op: str | None = None
    notes: list[str] = field(default_factory=list)
    traceback: str | None = None
    fp32_size_bytes: int | None = None
    speed: dict | None = None
    warnings: list[str] = field(default_factory=list)  # the check ran but could not show a fault
    inputs: list[str] = field(default_factory=list)  # the target's input names, in the source's order
    files: list[str] = field(default_factory=list)  # every entry written to the output folder
    repair: dict | None = None  # max_accuracy_drop / keep_float: layers kept float, their sensitivity, the trials
    pinned: dict = field(default_factory=dict)  # dynamic dims the route pinned: {input: {axis: size}}
    signature: dict | None = None  # {"inputs": [TensorSpec dicts], "outputs": [...]} of the written file

    def to_dict(self, base: Path | None = None) -> dict:
        """The manifest entry; with ``base`` (the manifest's folder) its path is relative to it."""
        path = None if self.path is None else (_rel(self.path, base) if base is not None else str(self.path))
        return {"target": self.target, "path": path, "route": self.route,
                "precision": self.precision, "status": self.status, "parity": self.parity,
                "size_bytes": self.size_bytes, "seconds": round(self.seconds, 3), "tool_versions": self.tool_versions,
                "error": self.error, "failing_op": self.op, "notes": self.notes,
                "fp32_size_bytes": self.fp32_size_bytes,
                "size_ratio_fp32": (self.size_bytes / self.fp32_size_bytes
                                    if self.size_bytes and self.fp32_size_bytes else None),
                "speed": self.speed, "warnings": self.warnings, "inputs": self.inputs, "files": self.files,
                "signature": self.signature,
                "pinned": {k: {f"dim {a}": n for a, n in sorted(v.items())} for k, v in self.pinned.items()},
                **({"repair": self.repair} if self.repair is not None else {})}


@dataclass
class ConvertReport:
    source: dict
    targets: list[TargetResult]
    output_dir: Path
    plans: dict[str, list[str]] = field(default_factory=dict)
    html: Path | None = None  # report.html beside manifest.json (written by `edgekit convert`: write_html)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @property
    def exit_code(self) -> int:
        """docs/EXIT_CODES.md: 3 when a target was not produced or could not run, else 1 when one failed its
        check (parity or the compression gate), else 0 (unverified does not fail)."""
        failed = [t for t in self.targets if t.status == "fail"]
        if any(t.parity is None for t in failed):
            return 3
        return 1 if failed else 0

    @property
    def warnings(self) -> list[str]:
        return list(dict.fromkeys(w for t in self.targets for w in t.warnings))

    def manifest(self) -> dict:
        """manifest.json: paths relative to it (the source's too, with ``..`` where it lies elsewhere), the
        edgekit version, when it was written, and per target its route, parity, size, notes and I/O signature."""
        from . import __version__

        base = Path(self.output_dir)
        source = dict(self.source, path=_rel(self.source["path"], base))
        return {"edgekit_version": __version__, "created": self.created, "source": source, "warnings": self.warnings,
                "targets": [t.to_dict(base) for t in self.targets]}

    def __getitem__(self, target: str) -> TargetResult:
        return next(t for t in self.targets if t.target == target)


def _rel(path, base: Path) -> str:
    """``path`` relative to ``base`` (with ``..`` where it lies elsewhere); absolute only across drives."""
    try:
        return Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()
    except ValueError:
        return str(path)
