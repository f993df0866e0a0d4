"""The device registry: ``devices.toml`` in the user's config folder (``$XDG_CONFIG_HOME/edgekit``, default
``~/.config/edgekit``). No password is ever stored: authentication is the SSH agent or a key file."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from edgekit.errors import EdgekitError, InputError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_ROOT = "~/.edgekit"  # on the device: venv/, cache/, runs/


class DeviceError(EdgekitError):
    """A device could not be reached or failed mid-run; the message names the device."""

    exit_code = 2
    default_hint = "check the device with `edgekit device check NAME`"


@dataclass
class Device:
    name: str
    host: str
    user: str | None = None
    port: int = 22
    python: str = "python3"  # the device's interpreter that builds the venv
    key: str | None = None  # a private key file (default: the SSH agent and ~/.ssh/id_*)
    root: str = DEFAULT_ROOT  # edgekit's folder on the device
    known_hosts: str | None = None  # default: ~/.ssh/known_hosts

    @property
    def target(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def known_hosts_file(self) -> Path:
        return Path(os.path.expanduser(self.known_hosts or "~/.ssh/known_hosts"))


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "edgekit"


def registry_file() -> Path:
    return config_dir() / "devices.toml"


def parse_target(target: str) -> tuple[str | None, str]:
    """``user@host`` -> (user, host); ``host`` -> (None, host)."""
    user, _, host = target.rpartition("@")
    if not host or any(c.isspace() for c in target):
        raise InputError(f"not a user@host: '{target}'", "e.g. edgekit device add pi5 pi@raspberrypi.local")
    return (user or None), host


def _toml():
    try:
        import tomllib  # Python >= 3.11
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            raise EdgekitError("reading the device registry needs Python 3.11 or the 'tomli' package",
                               "pip install tomli") from None
    return tomllib


def load_all() -> dict[str, Device]:
    tomllib = _toml()

    path = registry_file()
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not valid TOML: {e}", f"fix or remove {path}") from None
    known = {f.name for f in fields(Device)}
    out = {}
    for name, table in (data.get("devices") or {}).items():
        if not isinstance(table, dict) or "host" not in table:
            raise InputError(f"{path}: device '{name}' has no host", f"fix {path} or `edgekit device remove {name}`")
        out[name] = Device(name=name, **{k: v for k, v in table.items() if k in known and k != "name"})
    return out


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def save_all(devices: dict[str, Device]) -> Path:
    path = registry_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# edgekit devices (`edgekit device add/remove`); no passwords are stored here", ""]
    for name in sorted(devices):
        lines.append(f'[devices."{name}"]')
        for k, v in asdict(devices[name]).items():
            if k != "name" and v is not None:
                lines.append(f"{k} = {_toml_value(v)}")
        lines.append("")
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
    return path


def add(device: Device, replace: bool = False) -> Path:
    if not NAME.match(device.name):
        raise InputError(f"not a device name: '{device.name}'", "use letters, digits, '.', '_' and '-' (e.g. pi5)")
    if device.key is not None and not Path(os.path.expanduser(device.key)).is_file():
        raise InputError(f"no such key file: {device.key}", "pass the private key with --key, or omit it to use "
                         "the SSH agent and ~/.ssh/id_*")
    devices = load_all()
    if device.name in devices and not replace:
        raise InputError(f"a device named '{device.name}' exists already",
                         f"pick another name, or `edgekit device remove {device.name}` first")
    devices[device.name] = device
    return save_all(devices)


def remove(name: str) -> Path:
    devices = load_all()
    get(name, devices)
    del devices[name]
    return save_all(devices)


def get(name: str, devices: dict[str, Device] | None = None) -> Device:
    devices = load_all() if devices is None else devices
    if name not in devices:
        known = ", ".join(sorted(devices)) or "none yet"
        raise InputError(f"no device named '{name}' (known: {known})",
                         f"add it with `edgekit device add {name} user@host`")
    return devices[name]


def get_many(names: str) -> list[Device]:
    """``pi5,jetson`` -> their Devices, in that order (each once)."""
    devices = load_all()
    out: list[Device] = []
    for n in (x.strip() for x in names.split(",")):
        if n and all(d.name != n for d in out):
            out.append(get(n, devices))
    if not out:
        raise InputError("--device names no device", "e.g. --device pi5 or --device pi5,jetson")
    return out
