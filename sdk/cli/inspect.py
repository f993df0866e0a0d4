"""`edgekit inspect MODEL`: format, backend, I/O signature, size, parameters, op histogram (`edgekit.inspect`)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgekit.cli._common import command, console, human_size, print_json


@command
def inspect_cmd(
    model: Path = typer.Argument(..., help="Model file or folder."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    backend: str = typer.Option(None, "--backend", help="Runtime to load with (default: the best installed)."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Allow formats whose loading can run code."),
):
    """Show a model's format, backend, inputs and outputs, size, parameter count and operators."""
    from edgekit import inspection

    info = inspection.inspect(model, backend, trust_code=trust_code)
    if json_out:
        print_json(info.to_dict())
    else:
        _render(info)


def _shape(shape) -> str:
    return "?" if shape is None else "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _render(info) -> None:
    from rich.table import Table

    out = console()
    out.print(f"[bold]{Path(info.path).name}[/]  format={info.format}  backend={info.backend}  "
              f"precision={info.precision}  size={human_size(info.size_bytes)}  "
              f"parameters={info.parameters if info.parameters is not None else 'n/a'}")
    t = Table(title="signature")
    for col in ("kind", "name", "shape", "dtype", "quantization"):
        t.add_column(col)
    for kind, specs in (("input", info.inputs), ("output", info.outputs)):
        for d in (s.to_dict() for s in specs):
            q = d.get("quantization")
            qs = f"scale={q['scale'][0]:.4g} zp={q['zero_point'][0]}" if q else ""
            t.add_row(kind, d["name"], _shape(d["shape"]), d["dtype"], qs)
    if not info.outputs:
        t.add_row("output", "(known after the first run)", "", "", "")
    out.print(t)
    if info.ops:
        ops = Table(title="operators")
        ops.add_column("op")
        ops.add_column("count", justify="right")
        for name, n in sorted(info.ops.items(), key=lambda kv: (-kv[1], kv[0])):
            ops.add_row(name, str(n))
        out.print(ops)
    for k, v in info.details.items():
        out.print(f"{k}: {v}")
