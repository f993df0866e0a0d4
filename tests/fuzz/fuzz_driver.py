"""Run `edgekit inspect` and `edgekit run --random` in-process over many model files; run it in a child process.

    python fuzz_driver.py JOBS

JOBS holds one "backend<TAB>path" per line. For job i the driver prints "start i" before touching the file and
"done i <inspect rc> <run rc> <ms>" after, flushing each line, so a parent that sees a "start" without its "done"
knows which file killed the process. A command that leaks a traceback (an exception escaping the CLI, or one
printed by it) or ends with an exit code other than 0 and 2 is written, with its stderr, as one JSON line
{"job", "args", "rc", "text"} to JOBS.problems.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(jobs_file: str) -> None:
    from typer.testing import CliRunner

    from edgekit.cli.main import app

    runner = CliRunner()
    out = sys.stdout
    jobs = [line.split("\t", 1) for line in open(jobs_file).read().splitlines() if line]
    problems = open(jobs_file + ".problems", "a")
    for i, (backend, path) in enumerate(jobs):
        out.write(f"start {i}\n")
        out.flush()
        t0 = time.perf_counter()
        rcs = []
        for args in (["inspect", path, "--backend", backend], ["run", path, "--random", "--backend", backend]):
            result = runner.invoke(app, args)
            rc, text = result.exit_code, result.stderr[-4000:]
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                rc, text = 1, "".join(traceback.format_exception(*result.exc_info))[-4000:]
            if rc not in (0, 2) or "Traceback" in text:
                problems.write(json.dumps({"job": i, "args": args, "rc": rc, "text": text}) + "\n")
                problems.flush()
            rcs.append(rc)
        out.write(f"done {i} {rcs[0]} {rcs[1]} {(time.perf_counter() - t0) * 1e3:.0f}\n")
        out.flush()


if __name__ == "__main__":
    main(sys.argv[1])
