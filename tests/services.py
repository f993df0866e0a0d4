"""Real servers the tests start on 127.0.0.1 (never a mock): PostgreSQL for `edgekit tune --storage postgresql://`.

`postgres_url` (a session fixture) starts Debian's PostgreSQL server from /usr/lib/postgresql/*/bin in a fresh
temporary folder (data directory and unix socket directory inside it), listening on 127.0.0.1 only on a free port,
with one database and one trust-auth role allowed from 127.0.0.1 and the unix socket only. It yields
``postgresql://edgekit@127.0.0.1:PORT/edgekit_test`` and afterwards stops the server and removes the folder.

initdb and postgres refuse to run as root: as root (CI), they run as the Debian ``postgres`` user (``nobody`` where
that user is missing) through ``runuser``, with the folder chowned to that user. A machine without the server
binaries fails the fixture with a message naming ``make services`` (which installs the package): never a skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROLE, DATABASE = "edgekit", "edgekit_test"


class ServiceError(RuntimeError):
    pass


def postgres_bin() -> Path:
    """The newest installed PostgreSQL server's bin folder (Debian layout)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if not found:
        raise ServiceError("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): the tune "
                           "storage tests need a real server; run `make services` (installs Debian's postgresql "
                           "package) or `apt-get install postgresql`")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Postgres:
    root: Path
    port: int
    prefix: list[str]  # runuser -u USER -- (as root), else []
    bin: Path

    @property
    def url(self) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        cmd = [*self.prefix, str(self.bin / tool), *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if p.returncode:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ServiceError(f"{tool} failed ({p.returncode}): {p.stderr.strip()[-2000:]}\n{tail}")

    def start(self) -> None:
        data, sock = self.root / "data", self.root / "sock"
        self._run("initdb", "-D", str(data), "-U", ROLE, "--auth=trust", "--no-sync", "-E", "UTF8", "--no-locale")
        # trust for the unix socket and 127.0.0.1 only: nothing else may connect
        (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        self._chown(data / "pg_hba.conf")
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={sock} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
        self._run("pg_ctl", "-D", str(data), "-o", opts, "-l", str(self.root / "server.log"), "-w", "-t", "60",
                  "start", timeout=90)
        self._create_database()

    def _create_database(self) -> None:
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=ROLE, dbname="postgres",
                                        connect_timeout=5)
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        finally:
            conn.close()

    def stop(self) -> None:
        if (self.root / "data" / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "-t", "60", "stop", timeout=90)
            except (ServiceError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def _chown(self, path: Path) -> None:
        if self.prefix:
            user = pwd.getpwnam(self.prefix[2])
            os.chown(path, user.pw_uid, user.pw_gid)


def _server_user() -> str | None:
    """The unprivileged user to run the server as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise ServiceError("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL")


def start_postgres() -> Postgres:
    """Start a fresh server (the caller stops it with .stop())."""
    binary = postgres_bin()
    user = _server_user()
    if user is not None and shutil.which("runuser") is None:
        raise ServiceError("running as root but `runuser` (util-linux) is missing: PostgreSQL refuses to run as root")
    root = Path(tempfile.mkdtemp(prefix="edgekit-pg-"))
    (root / "sock").mkdir()
    prefix = ["runuser", "-u", user, "--"] if user else []
    pg = Postgres(root, free_port(), prefix, binary)
    for p in (root, root / "sock"):
        pg._chown(p)
    try:
        pg.start()
    except BaseException:
        pg.stop()
        raise
    return pg


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL on 127.0.0.1 for the session: its URL; stopped and removed afterwards."""
    try:
        pg = start_postgres()
    except ServiceError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield pg.url
    finally:
        pg.stop()
