"""A real OpenSSH server the tests start on 127.0.0.1 (never a mock): the "device" of `edgekit device` and `--device`.

`sshd_server` (a session fixture) runs Debian's /usr/sbin/sshd in the foreground from a private config in a fresh
temporary folder: a host key and a user key generated there with ssh-keygen, AuthorizedKeysFile pointing at the
user key, a free port on 127.0.0.1 only, no PAM, no passwords, StrictModes off (the folder is a temp dir), the
PidFile inside the folder. It logs in as the user running the tests. As root (CI), sshd needs its privilege
separation directory /run/sshd, which is created when missing. A machine without the binaries fails with a
message naming ``make services`` (which installs openssh-server): never a skip.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from services import ServiceError, free_port

SSHD = "/usr/sbin/sshd"


@dataclass
class Sshd:
    root: Path
    port: int
    user: str
    user_key: Path  # the private key the client logs in with
    host_pub: str  # "ssh-ed25519 AAAA..." (the line a known_hosts file trusts)
    proc: subprocess.Popen | None = None

    @property
    def target(self) -> str:
        return f"{self.user}@127.0.0.1"

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_pub}\n"

    def session_pids(self) -> list[int]:
        """The per-connection sshd processes (children of the listener): killing them drops every connection."""
        if self.proc is None:
            return []
        r = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in r.stdout.split()]

    def drop_connections(self) -> int:
        """Kill the sessions (a cable pulled, a device rebooting); the server keeps listening. Returns how many."""
        pids = self.session_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgekit-test", "-f", str(path)],
                   check=True, capture_output=True, timeout=30)


def _wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"sshd exited ({proc.returncode}): {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.1)
    raise ServiceError(f"sshd did not answer on 127.0.0.1:{port} within {timeout:.0f} s")


def start_sshd() -> Sshd:
    if not Path(SSHD).is_file() or shutil.which("ssh-keygen") is None:
        raise ServiceError(f"OpenSSH server not found ({SSHD}, ssh-keygen): the device tests need a real server; "
                           "run `make services` (installs Debian's openssh-server) or `apt-get install "
                           "openssh-server openssh-client`")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    root = Path(tempfile.mkdtemp(prefix="edgekit-sshd-"))
    _keygen(root / "host_key")
    _keygen(root / "user_key")
    shutil.copy(root / "user_key.pub", root / "authorized_keys")
    port = free_port()
    sftp = next((p for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server") if Path(p).exists()),
                "internal-sftp")
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
        "UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowTcpForwarding no\nX11Forwarding no\n"
        f"PrintMotd no\nLogLevel ERROR\nMaxStartups 50\nMaxSessions 50\nSubsystem sftp {sftp}\n")
    log = root / "sshd.log"
    host_pub = " ".join((root / "host_key.pub").read_text().split()[:2])
    s = Sshd(root, port, getpass.getuser(), root / "user_key", host_pub)
    try:
        s.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")], stdout=subprocess.DEVNULL,
                                  stderr=open(log, "wb"), start_new_session=True)
        _wait_listening(port, s.proc, log)
    except BaseException:
        s.stop()
        raise
    return s


@pytest.fixture(scope="session")
def sshd_server():
    """A real OpenSSH server on 127.0.0.1 for the session; stopped and removed afterwards."""
    try:
        s = start_sshd()
    except ServiceError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield s
    finally:
        s.stop()
