"""`edgekit.doctor`: what is installed, what this machine is, and what an extra would add.

Reads package metadata and /proc; imports no runtime or framework.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field


@dataclass
class DoctorReport:
    """This machine and install. ``environment``: os, python, cpu (model, machine, cores, isa), board, thermal,
    packages (distribution -> version or None). ``backends``: name -> {available, via, formats, extra[,
    can_predict]}. ``to_dict()`` is the JSON `edgekit doctor --json` prints (the environment's keys at the top)."""
    environment: dict
    backends: dict[str, dict]
    device_class: str
    device_class_description: str
    missing_extras: list[str] = field(default_factory=list)
    # distribution -> (the extra that installs it, its role), for each package in ``environment`` (not in the JSON)
    package_roles: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    @property
    def install_hint(self) -> str | None:
        """The pip command that adds every missing extra, or None."""
        return f"pip install 'edgekit[{','.join(self.missing_extras)}]'" if self.missing_extras else None

    def to_dict(self) -> dict:
        return {**self.environment, "backends": self.backends, "device_class": self.device_class,
                "device_class_description": self.device_class_description, "missing_extras": self.missing_extras,
                "install_hint": self.install_hint}


def doctor() -> DoctorReport:
    """Report installed runtimes and converters, CPU features and the detected device class."""
    from edgekit.benchmarks.environment import PACKAGES, environment
    from edgekit.runtimes import BACKENDS, runner_class

    from .device_classes import PROFILES, guess

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
    installed_extras = {PACKAGES[d][1] for d, v in pk.items() if v}
    missing = sorted({PACKAGES[d][1] for d, v in pk.items() if v is None} - installed_extras)
    cls_name = guess(env["cpu"], env["board"], platform.system())
    return DoctorReport(environment=env, backends=backends, device_class=cls_name,
                        device_class_description=PROFILES[cls_name].description, missing_extras=missing,
                        package_roles={dist: (extra, role) for dist, (_mod, extra, role) in PACKAGES.items()})
