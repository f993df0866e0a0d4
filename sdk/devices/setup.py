"""`edgekit device setup NAME`: a runtime-only venv on the device (``ROOT/venv``) holding the workstation's own
edgekit (so both sides speak the same JSON) and the runtimes chosen (``edgekit[litert,onnx,...]``).

The dependencies come from the device's own package index, or with ``offline=True`` from wheels the workstation
downloads for the device's platform tags and Python (``pip download --only-binary=:all: --platform ...``), copies
into the device's cache and installs with ``pip install --no-index``: for boards without internet.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from edgekit.errors import EdgekitError, InputError

from .registry import DeviceError

EXTRAS = ("litert", "onnx", "openvino", "ncnn", "executorch", "coreml")  # coreml: predictions on a Mac

# what the device's interpreter says about itself (run with the device's python; standard library + pip only)
PROBE = ("import json, platform, sys\n"
         "try:\n    from pip._vendor.packaging import tags\n    t = [str(x) for x in tags.sys_tags()]\n"
         "except Exception:\n    t = []\n"
         "print(json.dumps({'python': '%d.%d' % sys.version_info[:2], 'implementation': sys.implementation.name,"
         " 'machine': platform.machine(), 'system': platform.system(), 'tags': t}))")


def check_extras(extras: list[str]) -> list[str]:
    bad = [e for e in extras if e not in EXTRAS]
    if bad:
        raise InputError(f"unknown runtime extra: {', '.join(bad)}", f"choose from: {', '.join(EXTRAS)}")
    return sorted(set(extras)) or ["litert", "onnx"]


def probe(conn) -> dict:
    r = conn.run([conn.device.python, "-c", PROBE], doing="asking the device's Python", timeout=60)
    if r.rc != 0:
        raise DeviceError(f"device '{conn.device.name}': '{conn.device.python}' did not run "
                          f"({(r.stderr.strip().splitlines() or ['exit ' + str(r.rc)])[-1]})",
                          f"install Python 3.10+ with venv on the device, or name it: `edgekit device add "
                          f"{conn.device.name} ... --python /usr/bin/python3`")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _source_tree() -> Path | None:
    """The edgekit source tree this workstation runs from (an editable install), or None (an installed wheel)."""
    import edgekit

    root = Path(edgekit.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "edgekit"' in pyproject.read_text():
        return root
    return None


def _pip(args: list[str], doing: str) -> None:
    r = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=1800)
    if r.returncode:
        tail = (r.stderr.strip().splitlines() or ["exit " + str(r.returncode)])[-1]
        raise EdgekitError(f"{doing} failed on the workstation: {tail}",
                           "check the workstation's package index (pip config list); --offline downloads the "
                           "device's wheels through it")


def edgekit_wheel(out: Path) -> Path:
    """A wheel of the edgekit this workstation runs: built from its source tree (copied first, so nothing is
    written into it), or downloaded for an installed release."""
    from edgekit import __version__

    out.mkdir(parents=True, exist_ok=True)
    src = _source_tree()
    with tempfile.TemporaryDirectory(prefix="edgekit-wheel-") as tmp:
        if src is not None:
            copy = Path(tmp) / "src"
            copy.mkdir()
            for item in ("pyproject.toml", "README.md", "sdk", "converters", "runtimes", "benchmarks"):
                s = src / item
                if s.exists():
                    (shutil.copytree if s.is_dir() else shutil.copy)(s, copy / item)
            _pip(["wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", tmp, str(copy)],
                 "building edgekit's wheel")
        else:
            _pip(["download", "--quiet", "--no-deps", "--only-binary=:all:", "-d", tmp, f"edgekit=={__version__}"],
                 "downloading edgekit's wheel")
        wheel = next(Path(tmp).glob("edgekit-*.whl"))
        target = out / wheel.name
        shutil.copy(wheel, target)
    return target


def download_wheels(info: dict, extras: list[str], out: Path, wheel: Path) -> list[Path]:
    """Wheels of edgekit[extras] and its dependencies for the device's platform and Python."""
    py = info["python"]
    abi = "cp" + py.replace(".", "")
    platforms = []
    for t in info.get("tags", []):
        interp, tag_abi, plat = t.split("-")
        if interp == abi and plat != "any" and plat not in platforms:
            platforms.append(plat)
    if not platforms:
        raise DeviceError("the device's Python did not list its platform tags (pip missing there?)",
                          "install pip on the device (python3-pip), or set up without --offline")
    args = ["download", "--quiet", "--only-binary=:all:", "--python-version", py, "--implementation", "cp",
            "--abi", abi, "--abi", "abi3", "--abi", "none", "-d", str(out)]
    for p in platforms:
        args += ["--platform", p]
    _pip(args + [f"{wheel}[{','.join(extras)}]"], f"downloading wheels for Python {py} on {platforms[0]}")
    return sorted(out.glob("*.whl"))


def setup(conn, extras: list[str], *, offline: bool = False, recreate: bool = False,
          say: Callable[[str], None] = lambda m: None,
          progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Build or update ``ROOT/venv`` on the device; returns what was installed (the device's doctor report)."""
    from .push import push
    from .remote import doctor

    extras = check_extras(extras)
    info = probe(conn)
    say(f"device Python {info['python']} on {info['system']} {info['machine']}")
    work = wheels_dir(info)
    wheel = edgekit_wheel(work / "self")
    venv = f"{conn.root}/venv"
    conn.makedirs(conn.root)
    if recreate:
        conn.remove_tree(venv)
    if not conn.exists(f"{venv}/bin/python"):
        say("creating the venv")
        _must(conn, [conn.device.python, "-m", "venv", venv], "creating the venv", 600,
              "install the venv module on the device (Debian: apt install python3-venv)")
    pip = [f"{venv}/bin/python", "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    if offline:
        folder = work / "deps"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        say(f"downloading wheels for the device ({', '.join(extras)})")
        shutil.copy(wheel, folder / wheel.name)
        files = download_wheels(info, extras, folder, folder / wheel.name)
        pushed = push(conn, folder, progress=(lambda d, t: progress("wheels", d, t)) if progress else None)
        say(f"wheels: {len(files)} files, {pushed.copied / 1e6:.1f} MB copied")
        cmd = pip + ["--no-index", "--find-links", pushed.remote, f"edgekit[{','.join(extras)}]"]
        _must(conn, cmd, "installing from the copied wheels", 1800,
              "the wheels did not fit the device: check its Python and platform with `edgekit device check`")
    else:
        pushed = push(conn, wheel, progress=(lambda d, t: progress("edgekit", d, t)) if progress else None)
        say(f"installing edgekit[{','.join(extras)}] from the device's package index")
        _must(conn, pip + [f"{pushed.remote}[{','.join(extras)}]"], "installing from the device's package index",
              1800, "without internet on the device, rerun with --offline (the workstation downloads the wheels)")
    return doctor(conn)


def wheels_dir(info: dict) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    tag = f"{info.get('implementation', 'cpython')}{info['python']}-{info.get('system', '')}-{info.get('machine', '')}"
    return Path(base) / "edgekit" / "device-wheels" / tag.lower()


def _must(conn, argv: list[str], doing: str, timeout: float, hint: str) -> None:
    r = conn.run(argv, doing=doing, timeout=timeout)
    if r.rc != 0:
        lines = [ln for ln in (r.stderr or r.stdout).strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit {r.rc}"
        if "No space left" in (r.stderr + r.stdout):
            raise conn._disk_full(doing)
        raise DeviceError(f"device '{conn.device.name}': {doing} failed: {last}", hint)
