"""A real Prometheus server the tests start on 127.0.0.1 (never a mock), scraping targets on 127.0.0.1.

`start_prometheus(targets)` runs Debian's /usr/bin/prometheus (the `prometheus` package; `make services` installs
it) with a generated config (scrape and evaluation every second, the given 127.0.0.1 targets only), its own
``--storage.tsdb.path`` in a fresh temporary folder and ``--web.listen-address=127.0.0.1:PORT``; it waits for
``/-/ready``. `Prometheus.query(expr)` asks the HTTP API (/api/v1/query) and `wait_for(expr, expected)` polls until a
scrape shows the expected value. Prometheus runs fine as root (CI). A missing binary fails with a message naming
``make services``: never a skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from services import ServiceError, free_port

BINARY = "/usr/bin/prometheus"


@dataclass
class Prometheus:
    root: Path
    port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _get(self, path: str, timeout: float = 5) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return r.read()

    def query(self, expr: str) -> list[dict]:
        """The instant vector of a PromQL expression: [{"metric": {labels}, "value": float}]."""
        body = json.loads(self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
        if body.get("status") != "success":
            raise ServiceError(f"query {expr!r} failed: {body}")
        return [{"metric": r["metric"], "value": float(r["value"][1])} for r in body["data"]["result"]]

    def wait_for(self, expr: str, expected: float, timeout: float = 30) -> list[dict]:
        """Poll until ``expr`` has one series equal to ``expected`` (a scrape after the values settled)."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            last = self.query(expr)
            if len(last) == 1 and last[0]["value"] == expected:
                return last
            time.sleep(0.25)
        raise AssertionError(f"{expr} = {last}, expected {expected} within {timeout} s\n{self.log()[-2000:]}")

    def targets(self) -> list[dict]:
        return json.loads(self._get("/api/v1/targets"))["data"]["activeTargets"]

    def log(self) -> str:
        p = self.root / "prometheus.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def start_prometheus(targets: list[str], timeout: float = 60) -> Prometheus:
    """Start a fresh server scraping ``targets`` ("127.0.0.1:PORT" each; the caller stops it with .stop())."""
    if not Path(BINARY).exists():
        raise ServiceError(f"Prometheus not found ({BINARY}): the monitor's scrape test needs a real server; run "
                           "`make services` (installs Debian's prometheus package) or `apt-get install prometheus`")
    for t in targets:
        if not t.startswith("127.0.0.1:"):
            raise ServiceError(f"scrape target {t} is not on 127.0.0.1")
    root = Path(tempfile.mkdtemp(prefix="edgekit-prom-"))
    cfg = root / "prometheus.yml"
    cfg.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  scrape_timeout: 1s\n"
                   "scrape_configs:\n  - job_name: edgekit\n    static_configs:\n"
                   f"      - targets: [{', '.join(repr(t) for t in targets)}]\n")
    port = free_port()
    log = open(root / "prometheus.log", "wb")
    proc = subprocess.Popen([BINARY, f"--config.file={cfg}", f"--storage.tsdb.path={root / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=root)
    prom = Prometheus(root, port, proc)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            text = prom.log()
            prom.stop()
            raise ServiceError(f"prometheus exited with {proc.returncode}: {text[-2000:]}")
        try:
            if prom._get("/-/ready", timeout=2).strip():
                return prom
        except OSError:
            pass
        if time.monotonic() > deadline:
            prom.stop()
            raise ServiceError(f"prometheus was not ready within {timeout} s")
        time.sleep(0.2)
