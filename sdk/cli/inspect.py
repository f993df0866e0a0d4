"""`edgekit inspect MODEL`: format, backend, I/O signature, size, parameters, op histogram."""

from __future__ import annotations

from pathlib import Path

import typer

from edgekit.cli._common import command, console, human_size, print_json


def inspect_model(path: Path, backend: str | None = None, trust_code: bool = False) -> dict:
    import edgekit

    with edgekit.load(path, backend=backend, trust_code=trust_code) as m:
        facts = m.describe()
        return {
            "path": str(m.path),
            "format": m.format.value,
            "backend": m.backend,
            "precision": m.precision,
            "size_bytes": m.source.size_bytes,
            "inputs": [s.to_dict() for s in m.inputs],
            "outputs": [s.to_dict() for s in m.outputs],
            "parameters": facts.pop("parameters", None),
            "ops": facts.pop("ops", None),
            "details": facts,
        }


@command
def inspect_cmd(
    model: Path = typer.Argument(..., help="Model file or folder."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    backend: str = typer.Option(None, "--backend", help="Runtime to load with (default: the best installed)."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Allow formats whose loading can run code."),
):
    """Show a model's format, backend, inputs and outputs, size, parameter count and operators."""
    info = inspect_model(model, backend, trust_code)
    if json_out:
        print_json(info)
        return
    from rich.table import Table

    out = console()
    out.print(f"[bold]{Path(info['path']).name}[/]  format={info['format']}  backend={info['backend']}  "
              f"precision={info['precision']}  size={human_size(info['size_bytes'])}  "
              f"parameters={info['parameters'] if info['parameters'] is not None else 'n/a'}")
    t = Table(title="signature")
    for col in ("kind", "name", "shape", "dtype", "quantization"):
        t.add_column(col)
    for kind in ("inputs", "outputs"):
        for s in info[kind]:
            q = s.get("quantization")
            qs = f"scale={q['scale'][0]:.4g} zp={q['zero_point'][0]}" if q else ""
            shape = "?" if s["shape"] is None else "[" + ", ".join("?" if d is None else str(d) for d in s["shape"]) + "]"
            t.add_row(kind[:-1], s["name"], shape, s["dtype"], qs)
    if not info["outputs"]:
        t.add_row("output", "(known after the first run)", "", "", "")
    out.print(t)
    if info["ops"]:
        ops = Table(title="operators")
        ops.add_column("op")
        ops.add_column("count", justify="right")
        for name, n in sorted(info["ops"].items(), key=lambda kv: (-kv[1], kv[0])):
            ops.add_row(name, str(n))
        out.print(ops)
    for k, v in info["details"].items():
        out.print(f"{k}: {v}")
