"""`import edgekit` and `edgekit --help` load no ML framework or runtime (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("tensorflow", "torch", "coremltools", "openvino", "onnxruntime", "keras", "jax", "onnx", "ai_edge_litert")

PROBE = """
import json, sys
{body}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def _loaded(body: str) -> list[str]:
    code = PROBE.format(body=body, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_edgekit_is_light():
    assert _loaded("import edgekit; edgekit.detect; edgekit.load") == []
    # the API functions and their report types, and the threads default load takes from the device class
    assert _loaded("import edgekit; edgekit.inspect, edgekit.doctor, edgekit.demo, edgekit.benchmark, "
                   "edgekit.BenchReport\nfrom edgekit.device_classes import default_threads; default_threads()") == []


def test_cli_help_is_light():
    body = ("from edgekit.cli.main import app\n"
            "try:\n    app(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "for c in ('inspect', 'run', 'doctor', 'demo', 'convert', 'bench', 'validate'):\n"
            "    try:\n        app([c, '--help'], standalone_mode=False)\n    except SystemExit:\n        pass")
    assert _loaded(body) == []


def test_doctor_is_light():
    """doctor reports versions from package metadata without importing the runtimes."""
    body = ("import edgekit\nr = edgekit.doctor()\n"
            "assert r.backends['onnxruntime']['available']\n"
            "from edgekit.cli.main import app\n"
            "try:\n    app(['doctor', '--json'], standalone_mode=False)\nexcept SystemExit:\n    pass")
    assert _loaded(body) == []


def test_format_detection_is_light(tmp_path):
    from pathlib import Path

    from edgekit.examples import DIGITS_DIR

    files = [str(p) for p in sorted(Path(DIGITS_DIR).glob("digits_cnn.*")) if p.suffix != ".bin"]
    body = f"import edgekit\nfor f in {files!r}:\n    edgekit.detect(f)"
    assert _loaded(body) == []
