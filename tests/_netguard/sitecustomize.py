"""Network guard for the test suite: any attempt to reach a non-loopback address fails, and is logged.

tests/conftest.py installs it in the test process and puts this folder on PYTHONPATH so that child Python
processes import it as ``sitecustomize`` at start-up (a fork inherits the patched functions as they are).
Loopback (127.0.0.0/8, ::1, "localhost") and AF_UNIX stay allowed: tests may start local servers.

An attempt raises ``NetworkBlockedError`` (an ``OSError``, what an offline machine gives a library) and
appends a line to the file named by ``EDGEKIT_NETGUARD_LOG``: a library that swallows the error (telemetry
senders do) still leaves a trace, and conftest fails the test during which the line appeared.

Children activate the guard only when their interpreter is the one the tests run under
(``EDGEKIT_NETGUARD_PREFIX``): another virtual environment a test builds may need its package index.
Native code that opens sockets itself (not through Python's ``socket`` module) is not covered.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys

LOG_VAR, PREFIX_VAR = "EDGEKIT_NETGUARD_LOG", "EDGEKIT_NETGUARD_PREFIX"
_ORIGINAL: dict[tuple[object, str], object] = {}
# frames of the networking plumbing, skipped when naming who tried
_PLUMBING = ("socket.py", "ssl.py", os.sep + "http" + os.sep, os.sep + "urllib" + os.sep, "urllib3", "requests",
             os.sep + "asyncio" + os.sep, os.sep + "multiprocessing" + os.sep, os.sep + "concurrent" + os.sep,
             "threading.py", "_netguard")


class NetworkBlockedError(OSError):
    pass


def _is_local(host) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard / loopback
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]").split("%")[0]
    if host.lower() in ("localhost", "localhost.localdomain", "") or host.lower().endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


def _caller() -> str:
    f = sys._getframe(1)
    while f is not None:
        name = f.f_code.co_filename
        if not any(p in name for p in _PLUMBING):
            parts = name.replace(os.sep, "/").split("/")
            return f"{'/'.join(parts[-3:])}:{f.f_lineno}"
        f = f.f_back
    return "?"


def _block(host, port=None):
    where = f"{host}:{port}" if port is not None else str(host)
    msg = f"test tried to reach the network: {where} (from {_caller()})"
    log = os.environ.get(LOG_VAR)
    if log:
        try:
            with open(log, "a") as fh:
                fh.write(f"pid {os.getpid()}: {msg}\n")
        except OSError:
            pass
    raise NetworkBlockedError(msg)


def _check_address(sock_or_family, address):
    family = getattr(sock_or_family, "family", sock_or_family)
    if getattr(socket, "AF_UNIX", None) is not None and family == socket.AF_UNIX:
        return
    if isinstance(address, (tuple, list)) and address:
        if not _is_local(address[0]):
            _block(address[0], address[1] if len(address) > 1 else None)
    elif isinstance(address, (str, bytes)) and family in (socket.AF_INET, socket.AF_INET6):
        if not _is_local(address):
            _block(address)


def _wrap():
    orig = _ORIGINAL

    def connect(self, address):
        _check_address(self, address)
        return orig[(socket.socket, "connect")](self, address)

    def connect_ex(self, address):
        _check_address(self, address)
        return orig[(socket.socket, "connect_ex")](self, address)

    def sendto(self, data, *args):
        if args:
            _check_address(self, args[-1])
        return orig[(socket.socket, "sendto")](self, data, *args)

    def create_connection(address, *args, **kwargs):
        host, port = address[0], address[1]
        if not _is_local(host):
            _block(host, port)
        return orig[(socket, "create_connection")](address, *args, **kwargs)

    def getaddrinfo(host, port, *args, **kwargs):
        if not _is_local(host):
            _block(host, port)
        return orig[(socket, "getaddrinfo")](host, port, *args, **kwargs)

    def gethostbyname(host):
        if not _is_local(host):
            _block(host)
        return orig[(socket, "gethostbyname")](host)

    def gethostbyname_ex(host):
        if not _is_local(host):
            _block(host)
        return orig[(socket, "gethostbyname_ex")](host)

    return {(socket.socket, "connect"): connect, (socket.socket, "connect_ex"): connect_ex,
            (socket.socket, "sendto"): sendto, (socket, "create_connection"): create_connection,
            (socket, "getaddrinfo"): getaddrinfo, (socket, "gethostbyname"): gethostbyname,
            (socket, "gethostbyname_ex"): gethostbyname_ex}


def install() -> None:
    """Patch the socket module (idempotent)."""
    if _ORIGINAL:
        return
    for (owner, name), fn in _wrap().items():
        _ORIGINAL[(owner, name)] = getattr(owner, name)
        setattr(owner, name, fn)


def uninstall() -> None:
    for (owner, name), fn in _ORIGINAL.items():
        setattr(owner, name, fn)
    _ORIGINAL.clear()


def _same_interpreter() -> bool:
    want = os.environ.get(PREFIX_VAR)
    return bool(want) and os.path.realpath(sys.prefix) == os.path.realpath(want)


if __name__ == "sitecustomize":
    if os.environ.get(LOG_VAR) and _same_interpreter():
        install()
    # this file shadows any other sitecustomize on the path: run that one too
    import importlib.machinery
    import importlib.util

    _here = os.path.dirname(os.path.abspath(__file__))
    _spec = importlib.machinery.PathFinder.find_spec(
        "sitecustomize", [p for p in sys.path if os.path.abspath(p or os.curdir) != _here])
    if _spec is not None and _spec.loader is not None:
        _mod = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_mod)
