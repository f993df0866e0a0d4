"""`edgekit doctor`: what is installed, what this machine is, and what an extra would add (`edgekit.doctor`)."""

from __future__ import annotations

import typer

from edgekit.cli._common import command, console, print_json


@command
def doctor_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables.")):
    """Show installed runtimes and converters, CPU features and the guessed device class."""
    from edgekit import diagnosis

    rep = diagnosis.doctor()
    if json_out:
        print_json(rep.to_dict())
    else:
        _render(rep)


def _render(rep) -> None:
    from rich.table import Table

    out = console()
    env = rep.environment
    cpu = env["cpu"]
    out.print(f"[bold]machine[/]  {cpu['model']} ({cpu['machine']}, {cpu['logical_cores']} logical cores, "
              f"{cpu['usable_cores']} usable)  {env['os']}  Python {env['python']}")
    out.print(f"[bold]ISA[/]      {' '.join(cpu['isa']) or '(none detected)'}")
    if env["board"]:
        out.print(f"[bold]board[/]    {env['board']}")
    out.print(f"[bold]device class[/]  {rep.device_class}: {rep.device_class_description}")
    if env["thermal"]:
        out.print("[bold]thermal[/]  " + "  ".join(f"{k}={v}" for k, v in env["thermal"].items()))
    t = Table(title="packages")
    for col in ("package", "version", "role", "extra"):
        t.add_column(col)
    roles = rep.package_roles
    for dist, ver in env["packages"].items():
        extra, role = roles[dist]
        t.add_row(dist, ver or "[dim]not installed[/]", role, extra)
    out.print(t)
    b = Table(title="runtime backends")
    for col in ("backend", "status", "formats"):
        b.add_column(col)
    for name, info in rep.backends.items():
        status = f"ready ({info['via']})" if info["available"] else f"missing: pip install 'edgekit[{info['extra']}]'"
        if name == "coreml" and info["available"] and not info.get("can_predict", True):
            status = f"inspect only ({info['via']}); predictions need macOS"
        b.add_row(name, status, ", ".join(info["formats"]))
    out.print(b)
    c = Table(title="converters and quantizers")
    for col in ("package", "version", "used for"):
        c.add_column(col)
    for dist, info in rep.converters.items():
        c.add_row(dist, info["version"] or "[dim]not installed[/]", info["role"])
    out.print(c)
    n = Table(title="native benchmark tools (bench --compare-native)")
    for col in ("tool", "backend", "version", "path"):
        n.add_column(col, overflow="fold")
    for tool, info in rep.tools.items():
        n.add_row(tool, info["backend"], info["version"] or "-", info["path"] or "[dim]not found[/]")
    out.print(n)
    if rep.install_hint:
        out.print(f"to add the rest: {rep.install_hint}")
