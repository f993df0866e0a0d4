"""TFLite files that killed the process: each crafted file (tflite_crafted.py) is first shown to kill a bare LiteRT
process, then `edgekit run FILE --random`, a real CLI process, must end with a clean error naming the file
(exit code 2, `error:` + `hint:`, no traceback). Before the fix, edgekit died with the same signal, printing
nothing (fd 2 is redirected while LiteRT loads).

The reader refuses the crash patterns it knows; the others are not "vouched for" and run once in a child
process, whose death becomes a ModelFileError naming the signal. OpenVINO reads .tflite too and gets the same
protection.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tflite_crafted import CRASHERS, raw_litert_rc

EDGEKIT = Path(sys.executable).with_name("edgekit")
REFUSED = [n for n, spec in CRASHERS.items() if spec[2]]
PROBED = [n for n, spec in CRASHERS.items() if spec[2] is None]


@pytest.mark.parametrize("name", list(CRASHERS))
def test_crafted_file_kills_bare_litert(crashers, name):
    rc = raw_litert_rc(crashers[name])
    assert rc < 0, f"{name}: bare LiteRT no longer dies on this file (rc {rc}): the premise of these tests changed"


@pytest.mark.parametrize("name", REFUSED)
def test_reader_refuses_known_crash_patterns(crashers, name):
    from edgekit.formats.tflite_fb import FlatbufferError, read_tflite

    with pytest.raises(FlatbufferError, match=re.escape(CRASHERS[name][2])):
        read_tflite(crashers[name].read_bytes())


@pytest.mark.parametrize("name", PROBED)
def test_reader_does_not_vouch_for_the_others(crashers, name):
    from edgekit.formats.tflite_fb import read_tflite

    info = read_tflite(crashers[name].read_bytes())
    assert not info.vouched and any(g.unchecked for g in info.subgraphs)


def test_converter_files_are_vouched_for(fuzz_seeds):
    """The seeds come straight from TensorFlow's converter: loaded in-process, without a child probe."""
    from edgekit.formats.tflite_fb import read_tflite

    for kind in ("tflite_float", "tflite_float2", "tflite_int8"):
        info = read_tflite(fuzz_seeds[kind].read_bytes())
        assert info.vouched, (kind, [g.unchecked for g in info.subgraphs])


@pytest.mark.parametrize("name", list(CRASHERS))
def test_cli_run_ends_in_a_clean_error(crashers, name):
    path = crashers[name]
    p = subprocess.run([str(EDGEKIT), "run", str(path), "--random", "--backend", "litert"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2, f"{name}: exit code {p.returncode}\n{p.stderr[-2000:]}"
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith(("error:", "hint:"))]
    assert len(lines) == 2 and lines[0].startswith("error:") and lines[1].startswith("hint:"), p.stderr
    assert path.name in lines[0], lines[0]
    if name in PROBED:  # the child died, this process did not
        assert "crashes LiteRT" in lines[0] and "SIG" in lines[0], lines[0]


def test_openvino_gets_the_same_protection(crashers, tmp_path):
    """`inspect` and `run` with --backend openvino over every crafted file, in one child process: no crash, no
    traceback, exit code 0 or 2. The probed files run in an OpenVINO child process first."""
    from fuzz_harness import run_jobs

    jobs = [("openvino", str(p)) for p in crashers.values()]
    out = run_jobs(jobs, tmp_path, workers=1, timeout=600)
    assert not out.crashes, {jobs[k][1]: rc for k, rc in out.crashes.items()}
    assert "Traceback" not in out.stderr, out.stderr[-4000:]
    assert {k: v for k, v in out.rcs.items() if set(v) - {0, 2}} == {}
    assert len(out.rcs) == len(jobs)
    for k in [i for i, (_b, p) in enumerate(jobs) if Path(p).stem in REFUSED]:
        assert out.rcs[k] == (2, 2), jobs[k]  # the reader refuses them before OpenVINO sees them
