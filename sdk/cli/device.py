"""`edgekit device add/list/remove/check/setup`: your own boards over SSH, and what `bench`, `validate` and `tune`
run when given `--device NAME[,NAME...]` (`edgekit.devices`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from edgekit.cli._common import USER_ERROR, command, console, human_size, outcome, print_json, report_error

app = typer.Typer(name="device", help="Register devices reachable over SSH, set them up, and check them.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

ACCEPT_HELP = "Trust a host key seen for the first time without asking (for scripts); a changed key is always refused."


def confirm_host_key(question: str) -> bool:
    """First contact: ask on a terminal; without one, refuse (the error says to pass --accept-new-host-key)."""
    if not sys.stdin.isatty():
        return False
    return typer.confirm(question, default=False, err=True)


@app.command("add")
@command
def add_cmd(
    name: str = typer.Argument(..., help="A short name for the device (e.g. pi5)."),
    target: str = typer.Argument(..., help="user@host (or host)."),
    port: int = typer.Option(22, "--port", min=1, max=65535, help="SSH port."),
    python: str = typer.Option("python3", "--python", help="The device's Python that builds edgekit's venv."),
    key: Path = typer.Option(None, "--key", help="Private key file (default: the SSH agent and ~/.ssh/id_*)."),
    root: str = typer.Option("~/.edgekit", "--root", help="edgekit's folder on the device (venv, cache, runs)."),
    known_hosts: Path = typer.Option(None, "--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts)."),
    replace: bool = typer.Option(False, "--replace", help="Replace a device of the same name."),
):
    """Register a device (stored in ~/.config/edgekit/devices.toml; no password is stored)."""
    from edgekit.devices.registry import Device, add, parse_target

    user, host = parse_target(target)
    d = Device(name=name, host=host, user=user, port=port, python=python,
               key=str(key.expanduser().resolve()) if key else None, root=root,
               known_hosts=str(known_hosts.expanduser().resolve()) if known_hosts else None)
    path = add(d, replace=replace)
    console().print(f"added {name} ({d.target}:{port}) to {path}; next: `edgekit device check {name}`")


@app.command("list")
@command
def list_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON.")):
    """List registered devices."""
    from dataclasses import asdict

    from rich.table import Table

    from edgekit.devices.registry import load_all, registry_file

    devices = load_all()
    if json_out:
        print_json({n: asdict(d) for n, d in devices.items()})
        return
    if not devices:
        console().print(f"no devices yet ({registry_file()}); add one with `edgekit device add NAME user@host`")
        return
    t = Table(title=f"devices ({registry_file()})")
    for col in ("name", "target", "port", "python", "key", "root"):
        t.add_column(col)
    for d in devices.values():
        t.add_row(d.name, d.target, str(d.port), d.python, d.key or "agent / ~/.ssh", d.root)
    console().print(t)


@app.command("remove")
@command
def remove_cmd(name: str = typer.Argument(..., help="The device's name.")):
    """Forget a device (nothing on the device is touched)."""
    from edgekit.devices.registry import remove

    remove(name)
    console().print(f"removed {name}")


@app.command("check")
@command
def check_cmd(
    name: str = typer.Argument(..., help="The device's name."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    accept_new_host_key: bool = typer.Option(False, "--accept-new-host-key", help=ACCEPT_HELP),
):
    """Connect and report OS, architecture, Python, the device's `edgekit doctor`, device class and free disk.

    Exit codes: 0 reachable and set up; 2 unreachable, refused, or not set up yet (the hint says what to do)."""
    from edgekit.devices.registry import DeviceError, get
    from edgekit.devices.remote import check
    from edgekit.devices.ssh import Connection

    d = get(name)
    with Connection(d, accept_new_host_key=accept_new_host_key, confirm=confirm_host_key) as conn:
        info = check(conn)
    if json_out:
        print_json(info)
    else:
        out = console()
        out.print(f"[bold]{name}[/]  {d.target}:{d.port}  {info['os']} {info['machine']}  Python {info['python']}  "
                  f"free disk {human_size(info['free_disk_bytes'])} ({info['root']})")
        if info["doctor"]:
            cpu = info["doctor"].get("cpu") or {}
            out.print(f"device class {info['device_class']}  CPU {cpu.get('model', '?')}  runtimes: "
                      f"{', '.join(info['runtimes']) or 'none'}")
    if info["problem"]:
        report_error(DeviceError(info["problem"], info["hint"]))
        raise typer.Exit(USER_ERROR)


@app.command("setup")
@command
def setup_cmd(
    name: str = typer.Argument(..., help="The device's name."),
    extras: str = typer.Option("litert,onnx", "--extras", help="Runtimes to install, comma-separated: litert, onnx, "
                               "openvino, ncnn, executorch, coreml (a Mac: Core ML predictions and parity)."),
    offline: bool = typer.Option(False, "--offline", help="The device has no internet: download its wheels here (for "
                                 "its platform and Python) and copy them over."),
    recreate: bool = typer.Option(False, "--recreate", help="Remove the device's venv first."),
    accept_new_host_key: bool = typer.Option(False, "--accept-new-host-key", help=ACCEPT_HELP),
):
    """Create or update a runtime-only venv on the device with this workstation's edgekit and the chosen runtimes."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from edgekit.devices.registry import get
    from edgekit.devices.setup import check_extras, setup
    from edgekit.devices.ssh import Connection

    chosen = check_extras([e.strip() for e in extras.split(",") if e.strip()])
    d = get(name)
    err = console(stderr=True)
    with Connection(d, accept_new_host_key=accept_new_host_key, confirm=confirm_host_key) as conn, \
            Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                     console=err, transient=True) as bar:  # connected first: a first-contact question stays legible
        tasks: dict[str, int] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(f"copying {what}", total=total)
            bar.update(tasks[what], completed=done, total=total)

        doc = setup(conn, chosen, offline=offline, recreate=recreate, say=lambda m: err.print(m), progress=progress)
    ready = [n for n, b in (doc.get("backends") or {}).items() if b.get("available")]
    console().print(f"{name} ready: device class {doc.get('device_class')}, runtimes: {', '.join(ready) or 'none'}")


# ------------------------------------------------------------------ --device for bench / validate

def _push_bar(bar):
    tasks: dict[str, int] = {}

    def progress(device: str, done: int, total: int) -> None:
        if device not in tasks:
            tasks[device] = bar.add_task(f"{device}: copying", total=total)
        bar.update(tasks[device], completed=done, total=total)

    return progress


def _faults(faults) -> None:
    for f in faults:
        report_error(f)


def bench_remote(device: str, models: list[Path], *, runs, warmup, duration, threads, backend, device_class, input,
                 json_file, markdown, html, plot, compare_native, overhead, trust_code, json_out: bool = False,
                 method_args=()) -> None:
    """`edgekit bench MODEL... --device NAME[,NAME...]`: measured on each device, merged side by side.
    ``method_args``: the bench method's own flags (--precision-target, --in-process, ...), passed on as given."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from edgekit.cli.bench import show_table, write_reports
    from edgekit.cli._files import report_failure
    from edgekit.devices.api import benchmark_on
    from edgekit.devices.registry import get_many

    devices = get_many(device)
    err = console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=err,
                  transient=True) as bar:
        result, faults = benchmark_on(
            devices, models, runs=runs, warmup=warmup, duration_s=duration, threads=threads, backend=backend,
            device_class=device_class, input_path=input, confirm=confirm_host_key, push_progress=_push_bar(bar),
            model_done=lambda dev, row: err.print(f"{dev}: {row['model']} " + ("measured" if "error" not in row
                                                                                else "[red]failed[/]")),
            extra_args=(["--compare-native"] if compare_native else []) + (["--overhead"] if overhead else [])
            + (["--trust-code"] if trust_code else []) + list(method_args))
    failed = write_reports(result, json_file, markdown, html, plot)
    if html is not None and not any(f.startswith("--html ") for f in failed):
        _add_devices_to_html(html, result)
    out = console()
    if json_out:
        print_json(result.to_dict())
    else:
        show_table(out, result)
        out.print(devices_table(result))
    for r in result.failed:
        if r.get("hint") and not any(r["error"].endswith(f.message) for f in faults):
            out.print(f"[red]{r['model']}[/]: {r['error']}\n  hint: {r['hint']}")
    for flag, path in {"--json-out": json_file, "--markdown": markdown, "--html": html, "--plot": plot}.items():
        if path is not None and not any(f.startswith(f"{flag} ") for f in failed):
            out.print(f"wrote {path}")
    _faults(faults)
    report_failure(failed)
    raise typer.Exit(outcome(targets_failed=bool(result.failed)))


def devices_table(result):
    """Each device's environment side by side: CPU, device class, governor, temperature, throttling, runtimes."""
    from rich.table import Table

    t = Table(title="devices", title_justify="left", header_style="bold", pad_edge=False)
    for col in ("device", "host", "class", "CPU", "governor", "max temp", "throttled", "runtimes"):
        t.add_column(col)
    for name, row in device_rows(result):
        t.add_row(name, *row)
    return t


def device_rows(result) -> list[tuple[str, list[str]]]:
    env = result.environment if hasattr(result, "environment") else result["environment"]
    out = []
    for name, e in (env.get("devices") or {}).items():
        th = e.get("thermal") or {}
        temps = th.get("temperatures_c") or {}
        pkgs = ", ".join(f"{k} {v}" for k, v in sorted((e.get("packages") or {}).items()) if v)
        out.append((name, [f"{e.get('host')}:{e.get('port')}", str(e.get("device_class")),
                           str((e.get("cpu") or {}).get("model") or "-"), th.get("governor") or "-",
                           f"{max(temps.values()):.0f} °C" if temps else "-", "yes" if e.get("throttled") else "no",
                           pkgs or "-"]))
    return out


def _add_devices_to_html(path: Path, result) -> None:
    import html as H

    head = ["device", "host", "class", "CPU", "governor", "max temp", "throttled", "runtimes"]
    rows = "".join("<tr>" + "".join(f"<td>{H.escape(c)}</td>" for c in [n, *r]) + "</tr>"
                   for n, r in device_rows(result))
    section = ("<h2>Devices</h2><table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head)
               + f"</tr></thead><tbody>{rows}</tbody></table>\n")
    text = path.read_text()
    path.write_text(text.replace("</body></html>", section + "</body></html>", 1))


def validate_remote(device: str, reference: Path, candidates: list[Path], data: Path, *, labels, task, device_class,
                    atol, rtol, tols, batch_size, pre, trust_code, json_file, markdown, html,
                    json_out: bool = False) -> None:
    """`edgekit validate REF CAND... --data D --device NAME`: the reference here, the candidates on the device."""
    from edgekit.cli._files import report_failure, write_outputs
    from edgekit.devices.api import validate_on
    from edgekit.devices.registry import get_many
    from edgekit.validation_report import rich_table, to_html, to_markdown

    devices = get_many(device)
    err = console(stderr=True)
    err.print(f"running {len(candidates)} candidate(s) on {', '.join(d.name for d in devices)}")
    rep, faults = validate_on(devices, reference, candidates, data, labels=labels, task=task,
                              device_class=device_class, atol=atol, rtol=rtol, output_tolerances=tols,
                              batch_size=batch_size, preprocess=pre, trust_code=trust_code,
                              confirm=confirm_host_key)
    failed = write_outputs([("--json-out", json_file, lambda: json.dumps(rep, indent=2, default=float)),
                            ("--markdown", markdown, lambda: to_markdown(rep)), ("--html", html, lambda: to_html(rep))])
    if json_out:
        print_json(rep)
    else:
        out = console()
        out.print(rich_table(rep, width=out.width))
    _faults(faults)
    report_failure(failed)
    not_run = any(c.get("error") for c in rep["candidates"])
    raise typer.Exit(outcome(targets_failed=not_run, checks_failed=any(c["verdict"] == "fail"
                                                                       for c in rep["candidates"])))


def tune_measure(device: str, space: dict | None, targets: list[str], err):
    """`edgekit tune ... --device NAME[,NAME...]`: the measure that times trials on the devices, and the space with
    the knobs a device run cannot set held at their defaults (said on stderr)."""
    from edgekit.devices.registry import get_many
    from edgekit.devices.tuning import DeviceMeasure, fixed_space

    devices = get_many(device)
    space, notes = fixed_space(space, list(targets))
    for n in notes:
        err.print(f"note: {n}")
    err.print(f"timing trials on {', '.join(d.name for d in devices)} (one worker per device)")
    return DeviceMeasure(devices, confirm=confirm_host_key), space
