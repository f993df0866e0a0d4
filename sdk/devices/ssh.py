"""One SSH connection to a device (asyncssh behind a small synchronous facade), and the one place where SSH and
SFTP failures become errors that name the device and say what to do.

Why asyncssh: pure Python over `cryptography` (no C extension of its own, installs on a Pi or a Jetson from a
wheel), maintained, and its own SFTP client with progress callbacks and OpenSSH known_hosts matching (hashed
names, ``[host]:port``); one event loop per connection serves several devices at once from threads without
Paramiko's per-channel threads.

Host keys are always verified against known_hosts (default ``~/.ssh/known_hosts``). A host that is not there is
first contact: its fingerprint is shown and the key is trusted only when the user says so (``confirm``) or
passed ``--accept-new-host-key``; it is then appended like OpenSSH's ``accept-new``. A host whose key changed is
refused, always.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import posixpath
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .registry import Device, DeviceError


class DeviceLost(DeviceError):
    """The connection dropped mid-run (a cable, Wi-Fi, the device rebooting)."""

    exit_code = 3  # some targets were not measured; the others are kept


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str


def _asyncssh():
    try:
        import asyncssh
    except ImportError:
        from edgekit.errors import MissingDependencyError

        raise MissingDependencyError("asyncssh", "devices", "reach devices over SSH") from None
    return asyncssh


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def known_hosts_entry(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class Connection:
    """``with Connection(device) as c: c.run([...])``. Every failure is a DeviceError naming the device."""

    def __init__(self, device: Device, *, accept_new_host_key: bool = False,
                 confirm: Callable[[str], bool] | None = None, connect_timeout: float = 20):
        self.device = device
        self._accept_new = accept_new_host_key
        self._confirm = confirm
        self._timeout = connect_timeout
        self._loop = asyncio.new_event_loop()
        self._conn = None
        self._sftp = None
        self._home: str | None = None
        self.root = device.root

    # ------------------------------------------------------------------ plumbing

    def _do(self, coro, doing: str, timeout: float | None = None):
        asyncssh = _asyncssh()
        name = self.device.name
        try:
            if timeout is not None:
                coro = asyncio.wait_for(coro, timeout)
            return self._loop.run_until_complete(coro)
        except (asyncio.TimeoutError, TimeoutError):
            self._drop()
            raise DeviceError(f"device '{name}': {doing} timed out after {timeout or self._timeout:.0f} s",
                              f"check the device's load and network (`edgekit device check {name}`); on a slow "
                              "device, fewer --runs or a --duration keep a run shorter") from None
        except asyncssh.HostKeyNotVerifiable as e:
            raise DeviceError(
                f"device '{name}': the host key of {self.device.host}:{self.device.port} does not match "
                f"{self.device.known_hosts_file()} ({e.reason}): refused",
                f"if the device was reinstalled, remove the old key with `ssh-keygen -R "
                f"'{known_hosts_entry(self.device.host, self.device.port)}'` and connect again; otherwise "
                "someone may be intercepting the connection") from None
        except asyncssh.PermissionDenied:
            raise DeviceError(f"device '{name}': {self.device.target} refused the login (public key)",
                              "install your key on the device (ssh-copy-id), load it in ssh-agent, or pass "
                              "--key FILE to `edgekit device add`") from None
        except asyncssh.SFTPFailure as e:
            raise self._disk_or(e, doing) from None
        except asyncssh.SFTPError as e:
            raise DeviceError(f"device '{name}': {doing} failed: {e.reason}",
                              "check the device's folder and permissions with `edgekit device check "
                              f"{name}`") from None
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError, BrokenPipeError, ConnectionResetError,
                EOFError) as e:
            self._drop()
            raise DeviceLost(f"device '{name}': the connection was lost while {doing} ({_why(e)})",
                             "the device may have rebooted or left the network; what was measured before is kept; "
                             f"rerun when `edgekit device check {name}` passes") from None
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise self._disk_or(e, doing) from None
            connected = self._conn is not None
            self._drop()
            if not connected:
                raise DeviceError(f"device '{name}': cannot connect to {self.device.host}:{self.device.port} "
                                  f"({_why(e)})", f"is the device on and reachable? try `ssh -p {self.device.port} "
                                  f"{self.device.target}`") from None
            raise DeviceLost(f"device '{name}': the connection failed while {doing} ({_why(e)})",
                             f"what was measured before is kept; rerun when `edgekit device check {name}` "
                             "passes") from None

    def _disk_full(self, doing: str) -> DeviceError:
        return DeviceError(f"device '{self.device.name}': the device's disk is full ({doing})",
                           f"free space on the device (`edgekit device check {self.device.name}` shows it), "
                           f"e.g. remove {self.root}/cache")

    def _disk_or(self, e, doing: str) -> DeviceError:
        text = str(getattr(e, "reason", "") or e)
        if "space" in text.lower() or getattr(e, "errno", None) == errno.ENOSPC:
            return self._disk_full(doing)
        return DeviceError(f"device '{self.device.name}': {doing} failed: {text}",
                           f"check the device's folder {self.root} and its permissions")

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.abort()
            except Exception:  # noqa: BLE001 (already gone)
                pass
        self._conn = None
        self._sftp = None

    # ------------------------------------------------------------------ connecting

    def open(self) -> "Connection":
        asyncssh = _asyncssh()
        d = self.device
        self._do(self._trust_host(asyncssh), "reading its host key", self._timeout)
        keys = [os.path.expanduser(d.key)] if d.key else ()
        self._conn = self._do(asyncssh.connect(d.host, d.port, username=d.user, client_keys=keys or (),
                                               known_hosts=str(d.known_hosts_file()),
                                               keepalive_interval=15, keepalive_count_max=4,
                                               connect_timeout=self._timeout, config=[]),
                              "connecting", self._timeout + 5)
        self._sftp = self._do(self._conn.start_sftp_client(), "starting SFTP", self._timeout)
        self._home = self._do(self._sftp.realpath("."), "finding the home folder", self._timeout)
        if self.root.startswith("~"):
            self.root = self._home.rstrip("/") + self.root[1:]
        return self

    async def _trust_host(self, asyncssh) -> None:
        d = self.device
        path = d.known_hosts_file()
        addr = d.host if _is_ip(d.host) else ""
        if path.is_file():
            if asyncssh.read_known_hosts(str(path)).match(d.host, addr, d.port)[0]:
                return  # known: asyncssh.connect verifies it
        key = await asyncssh.get_server_host_key(d.host, d.port)
        if key is None:
            raise DeviceError(f"device '{d.name}': {d.host}:{d.port} sent no host key", "is it an SSH server?")
        fp = key.get_fingerprint("sha256")
        question = (f"device '{d.name}': {d.host}:{d.port} is not in {path}; its {key.get_algorithm()} key is "
                    f"{fp}. Trust it?")
        if not (self._accept_new or (self._confirm is not None and self._confirm(question))):
            raise DeviceError(f"device '{d.name}': unknown host key {fp} for {d.host}:{d.port} (not in {path})",
                              "compare the fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the "
                              "device, then rerun with --accept-new-host-key (or connect once with ssh)")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        line = f"{known_hosts_entry(d.host, d.port)} {key.export_public_key('openssh').decode().split()[0]} " \
               f"{key.export_public_key('openssh').decode().split()[1]}\n"
        with open(path, "a") as fh:
            fh.write(line)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
                self._loop.run_until_complete(asyncio.wait_for(self._conn.wait_closed(), 5))
            except Exception:  # noqa: BLE001 (closing a dead connection)
                pass
        self._conn = self._sftp = None
        pending = asyncio.all_tasks(self._loop)  # an aborted connection's readers: let them finish cancelling
        for t in pending:
            t.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def __enter__(self) -> "Connection":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _live(self):
        if self._conn is None:
            raise DeviceLost(f"device '{self.device.name}': not connected (the connection was lost earlier)",
                             f"rerun when `edgekit device check {self.device.name}` passes")
        return self._conn

    # ------------------------------------------------------------------ commands and files

    def run(self, argv: list[str] | str, *, doing: str = "running a command", timeout: float | None = 600) -> Result:
        """Run a command (an argument list, quoted here; never a string built from a model file's contents)."""
        cmd = argv if isinstance(argv, str) else shlex.join(argv)
        r = self._do(self._live().run(cmd, check=False), doing, timeout)
        if r.exit_status is None and r.exit_signal is None:
            self._drop()
            raise DeviceLost(f"device '{self.device.name}': the connection was lost while {doing}",
                             "the device may have rebooted or left the network; what was measured before is kept; "
                             f"rerun when `edgekit device check {self.device.name}` passes")
        rc = r.exit_status if r.exit_status is not None else 128 + 9
        return Result(rc, str(r.stdout or ""), str(r.stderr or ""))

    def exists(self, path: str) -> bool:
        return bool(self._do(self._sftp.exists(path), f"looking for {path}", self._timeout))

    def makedirs(self, path: str) -> None:
        self._do(self._sftp.makedirs(path, exist_ok=True), f"creating {path}", self._timeout)

    def put(self, local: Path, remote: str, progress: Callable[[int], None] | None = None,
            timeout: float | None = 3600) -> None:
        last = [0]

        def handler(_src, _dst, done, _total):
            if progress is not None:
                progress(done - last[0])
            last[0] = done

        doing = f"copying {Path(local).name}"
        try:
            self._do(self._sftp.put(str(local), remote, progress_handler=handler), doing, timeout)
        except DeviceLost:
            raise
        except DeviceError:
            # OpenSSH's sftp-server reports ENOSPC as a bare "Failure": ask the file system what is left
            free = self.free_bytes(posixpath.dirname(remote) or ".")
            if free is not None and free < Path(local).stat().st_size:
                raise self._disk_full(doing) from None
            raise

    def rename(self, src: str, dst: str) -> None:
        self._do(self._sftp.posix_rename(src, dst), f"placing {dst}", self._timeout)

    def read_bytes(self, remote: str, timeout: float | None = 600) -> bytes:
        async def read():
            async with self._sftp.open(remote, "rb") as f:
                return await f.read()

        return self._do(read(), f"reading {remote}", timeout)

    def write_bytes(self, remote: str, data: bytes) -> None:
        async def write():
            async with self._sftp.open(remote, "wb") as f:
                await f.write(data)

        self._do(write(), f"writing {remote}", self._timeout)

    def remove_tree(self, path: str) -> None:
        self._do(self._sftp.rmtree(path, ignore_errors=True), f"removing {path}", self._timeout)

    def free_bytes(self, path: str) -> int | None:
        """Free bytes on the file system holding ``path`` (statvfs over SFTP; None where the server lacks it)."""
        try:
            st = self._do(self._sftp.statvfs(path), "reading free disk", self._timeout)
        except DeviceError:
            return None
        return int(st.bavail) * int(st.frsize or st.bsize)


def _why(e: BaseException) -> str:
    text = str(getattr(e, "reason", "") or e).strip()
    return text or type(e).__name__
