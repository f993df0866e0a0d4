"""`edgekit doctor`: what is installed, what this machine is, and what an extra would add."""

from __future__ import annotations

import platform

import typer

from edgekit.cli._common import command, console, print_json


def doctor_report() -> dict:
    from edgekit.benchmarks.device_classes import PROFILES, guess
    from edgekit.benchmarks.environment import PACKAGES, environment
    from edgekit.runtimes import BACKENDS, runner_class

    env = environment()
    pk = env["packages"]
    backends = {}
    for name in BACKENDS:
        cls = runner_class(name)
        mod = cls.available()
        backends[name] = {"available": mod is not None, "via": mod,
                          "formats": [f.value for f in cls.formats], "extra": cls.requires[0][2]}
        if name == "coreml":
            backends[name]["can_predict"] = platform.system() == "Darwin"
    missing_extras = sorted({PACKAGES[d][1] for d, v in pk.items() if v is None}
                            - {e for d, v in pk.items() if v for e in [PACKAGES[d][1]]})
    cls_name = guess(env["cpu"], env["board"], platform.system())
    return {**env, "backends": backends, "device_class": cls_name,
            "device_class_description": PROFILES[cls_name].description,
            "missing_extras": missing_extras,
            "install_hint": f"pip install 'edgekit[{','.join(missing_extras)}]'" if missing_extras else None}


@command
def doctor_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables.")):
    """Show installed runtimes and converters, CPU features and the guessed device class."""
    from edgekit.benchmarks.environment import PACKAGES

    rep = doctor_report()
    if json_out:
        print_json(rep)
        return
    from rich.table import Table

    out = console()
    cpu = rep["cpu"]
    out.print(f"[bold]machine[/]  {cpu['model']} ({cpu['machine']}, {cpu['logical_cores']} logical cores, "
              f"{cpu['usable_cores']} usable)  {rep['os']}  Python {rep['python']}")
    out.print(f"[bold]ISA[/]      {' '.join(cpu['isa']) or '(none detected)'}")
    if rep["board"]:
        out.print(f"[bold]board[/]    {rep['board']}")
    out.print(f"[bold]device class[/]  {rep['device_class']}: {rep['device_class_description']}")
    th = rep["thermal"]
    if th:
        out.print("[bold]thermal[/]  " + "  ".join(f"{k}={v}" for k, v in th.items()))
    t = Table(title="packages")
    for col in ("package", "version", "role", "extra"):
        t.add_column(col)
    for dist, ver in rep["packages"].items():
        _mod, extra, role = PACKAGES[dist]
        t.add_row(dist, ver or "[dim]not installed[/]", role, extra)
    out.print(t)
    b = Table(title="runtime backends")
    for col in ("backend", "status", "formats"):
        b.add_column(col)
    for name, info in rep["backends"].items():
        status = f"ready ({info['via']})" if info["available"] else f"missing: pip install 'edgekit[{info['extra']}]'"
        if name == "coreml" and info["available"] and not info.get("can_predict", True):
            status = f"inspect only ({info['via']}); predictions need macOS"
        b.add_row(name, status, ", ".join(info["formats"]))
    out.print(b)
    if rep["install_hint"]:
        out.print(f"to add the rest: {rep['install_hint']}")
