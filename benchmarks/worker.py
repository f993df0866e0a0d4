"""One model per child process: `edgekit bench` measures each model in its own spawned interpreter.

Why (measured; docs/ARCHITECTURE.md "Bench method"): in one process, runtimes' spinning worker threads, their
caches and each other's allocations slowed models measured after another one (a face-detection TFLite model ran
1.2x slower interleaved in blocks of 10 than in a bare `invoke` loop), and a later model's peak RSS was a delta
over libraries already loaded. A child process per model gives each runtime the process to itself and makes its
peak RSS its own.

The parent keeps every child alive and idle (blocked on its pipe, using no CPU) and asks one at a time for a block
of timed calls, so models are interleaved only between blocks, which are long enough to reach steady state.

Protocol (a fresh ``python -c`` interpreter per child, `Worker`; pickled messages over two pipes): the child opens its model with the caller's
``opener`` (a picklable callable returning a `harness.Subject`; the sdk layer provides it, so this layer imports
nothing above it), warms it up and sends ``("ready", row, call_s)``; then it answers ``("block", calls, max_s,
with_raw)`` with ``("block", edgekit_ns, raw_ns, runtime_ms)`` and ``("finish", extras)`` with ``("done", info)`` and exits.
A model that cannot be opened answers ``("error", message)``; an unexpected exception ``("crash", traceback)``.
The child ignores SIGINT: Ctrl-C is the parent's to handle, and a block in flight completes and is kept.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from typing import Any, Callable

import numpy as np

SETTLE_CALLS = 3     # untimed calls before every block, at least ...
SETTLE_S = 0.05      # ... and at least this long: caches and the runtime's threads are back in steady state
SUB_S = 0.01         # with --overhead: raw and edgekit calls alternate in sub-blocks of about this long


def pin_cpus(threads: int | None) -> list[int] | None:
    """The CPUs a child is pinned to: the last ``threads`` of this process's allowed CPUs (CPU 0 takes most
    interrupts), or None where the OS has no affinity call, the thread count is the runtime's own choice, or
    there are not that many CPUs."""
    if not hasattr(os, "sched_getaffinity") or not threads:
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if threads > len(allowed):
        return None
    return allowed[-threads:]


def apply_pinning(cpus: list[int] | None) -> None:
    """Pin this process (and the threads it starts later) to ``cpus``; for vendor tools too (preexec_fn)."""
    if cpus:
        os.sched_setaffinity(0, set(cpus))


def _rss_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _settle(predict, feeds, raw) -> None:
    t_end = time.perf_counter() + SETTLE_S
    n = 0
    while n < SETTLE_CALLS or time.perf_counter() < t_end:
        predict(feeds)
        if raw is not None:
            raw()
        n += 1


class BlockInterrupted(Exception):
    """Ctrl-C inside a block run in the caller's process; ``partial`` holds the calls timed before it."""

    def __init__(self, partial: tuple[np.ndarray, np.ndarray, np.ndarray | None]):
        super().__init__("interrupted")
        self.partial = partial


def timed_block(predict, feeds, raw, calls: int, max_s: float, call_s: float,
                inner=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Settle, then ``calls`` timed edgekit calls (or fewer when ``max_s`` runs out). With ``raw`` (the bare
    runtime call), raw and edgekit calls alternate in sub-blocks of about SUB_S, one raw call per edgekit call:
    both figures from the same stretch of time, under the same conditions. With ``inner`` (the reader of the
    runtime's own timer, `Runner.runtime_clock`), each edgekit call's figure on that clock is read after the
    call's wall-clock stamp, so reading it costs the timed call nothing. Returns (edgekit ns, raw ns, inner ms)."""
    clock = time.perf_counter_ns
    ed = np.zeros(calls, np.int64)
    rw = np.zeros(calls if raw is not None else 0, np.int64)
    rt = np.zeros(calls, np.float64) if inner is not None else None
    sub = max(1, int(SUB_S / max(call_s, 1e-7)))
    n = 0
    try:
        _settle(predict, feeds, raw)
        deadline = clock() + int(max_s * 1e9)
        while n < calls and clock() < deadline:
            k = min(sub, calls - n)
            if raw is not None:
                for i in range(n, n + k):
                    t0 = clock()
                    raw()
                    rw[i] = clock() - t0
            for i in range(n, n + k):
                t0 = clock()
                predict(feeds)
                ed[i] = clock() - t0
                if rt is not None:  # after the stamp: outside the timed window
                    rt[i] = inner()
            n += k
    except KeyboardInterrupt:  # only in the caller's process (a child ignores SIGINT)
        m = min(n + sub, calls)
        done = np.flatnonzero(ed[n:m] > 0)  # the sub-block in flight: its calls that completed
        n_ok = n + (int(done[-1]) + 1 if done.size else 0)
        raise BlockInterrupted((ed[:n_ok], rw[:n_ok] if raw is not None else rw[:0],
                                None if rt is None else rt[:n_ok])) from None
    return ed[:n], rw[:n], None if rt is None else rt[:n]


def runtime_clock(e) -> Callable[[], float] | None:
    """The reader of the runtime's own timer for a subject (None when the runtime keeps none); its name goes
    into the subject's row as ``runtime_clock.clock``."""
    get = getattr(getattr(e.model, "runner", None), "runtime_clock", None)
    clock = get() if get is not None else None
    if clock is None:
        return None
    e.row["runtime_clock"] = {"clock": clock[0]}
    return clock[1]


def child_main(conn, opener: Callable[[], Any], cpus: list[int] | None, warmup: int) -> None:
    """The child's side of the protocol (runs in the spawned interpreter)."""
    from edgekit.errors import EdgekitError

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    apply_pinning(cpus)
    try:
        with open("/proc/self/clear_refs", "w") as f:  # the peak from here on is this model's
            f.write("5")
    except OSError:
        pass
    base_kb = _rss_kb("VmRSS")
    try:
        e = opener()
    except EdgekitError as err:
        _answer(conn, ("error", err.message))
        return
    except BaseException:
        _answer(conn, ("crash", traceback.format_exc()))
        return
    try:
        from .harness import warm_up

        warm_up(e, warmup)
        call_s = e.call_s or e.row["first_inference_ms"] / 1e3
        raw = None
        inner = runtime_clock(e)
        e.row["rss_before_load_mb"] = base_kb / 1024 if base_kb is not None else None
        e.row["affinity"] = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        conn.send(("ready", e.row, call_s))
        while True:
            msg = conn.recv()
            if msg[0] == "block":
                _, calls, max_s, with_raw = msg
                if with_raw and raw is None:
                    raw = e.model.runner.raw_call(e.feeds)
                ed, rw, rt = timed_block(e.model.predict, e.feeds, raw if with_raw else None, calls, max_s, call_s,
                                         inner)
                conn.send(("block", ed, rw if with_raw and raw is not None else None, rt))
            elif msg[0] == "finish":
                info: dict = {}
                if msg[1]:
                    measure = getattr(e.model.runner, "async_throughput", None)
                    info["throughput_async_ips"] = measure(e.feeds, 1.0) if measure is not None else None
                peak_kb = _rss_kb("VmHWM")
                info["process_peak_rss_mb"] = peak_kb / 1024 if peak_kb is not None else None
                info["peak_rss_mb"] = ((peak_kb - base_kb) / 1024 if peak_kb is not None and base_kb is not None
                                       else None)
                e.model.close()
                conn.send(("done", info))
                return
    except EOFError:  # the parent is gone (or closed this pipe): nothing to answer
        return
    except EdgekitError as err:
        _answer(conn, ("error", err.message))
    except BaseException:
        _answer(conn, ("crash", traceback.format_exc()))


def _answer(conn, msg) -> None:
    try:
        conn.send(msg)
    except OSError:  # the parent is gone
        pass


class ChildFailed(RuntimeError):
    """A child process raised something other than an EdgekitError (a bug: its traceback is the message)."""


class ChildDied(ChildFailed):
    """A child process ended without answering (a runtime crashed it: a signal, or an exit)."""


class _Duplex:
    """Two one-way `multiprocessing.connection.Connection`s over inherited pipe fds, used as one."""

    def __init__(self, rfd: int, wfd: int):
        from multiprocessing.connection import Connection

        self.r, self.w = Connection(rfd, writable=False), Connection(wfd, readable=False)

    def send(self, obj) -> None:
        self.w.send(obj)

    def recv(self):
        return self.r.recv()

    def poll(self, timeout: float = 0.0) -> bool:
        return self.r.poll(timeout)

    def close(self) -> None:
        self.r.close()
        self.w.close()


def subprocess_main(rfd: int, wfd: int) -> None:
    """Entry point of a child started by `Worker`: the first message is (opener, cpus, warmup)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = _Duplex(rfd, wfd)
    try:
        opener, cpus, warmup = conn.recv()
    except EOFError:
        return
    child_main(conn, opener, cpus, warmup)


_CHILD = ("import sys; from edgekit.benchmarks.worker import subprocess_main; "
          "subprocess_main(int(sys.argv[1]), int(sys.argv[2]))")


class Worker:
    """The parent's handle on one child process measuring one model.

    The child is a fresh interpreter (``python -c``), not a `multiprocessing` spawn: spawn re-imports the
    caller's main script in the child, which fails for a script that calls `edgekit.benchmark` without an
    ``if __name__ == "__main__"`` guard. It talks over two pipes handed down as file descriptors, gets this
    process's ``sys.path`` (the opener's module must import there) and its own session (a terminal's Ctrl-C
    is the parent's; the child ends when its pipe closes)."""

    def __init__(self, opener: Callable[[], Any], cpus: list[int] | None, warmup: int, name: str):
        import subprocess
        import sys

        self.name = name
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(down_r), str(up_w)],
                                         pass_fds=(down_r, up_w), stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        except BaseException:
            for fd in (down_r, down_w, up_r, up_w):
                os.close(fd)
            raise
        os.close(down_r)
        os.close(up_w)
        self.conn = _Duplex(up_r, down_w)
        try:
            self.conn.send((opener, cpus, warmup))
        except (BrokenPipeError, OSError):
            pass  # the child died at start: recv says how

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def send(self, *msg) -> None:
        self.conn.send(msg)

    def recv(self) -> tuple:
        """The child's next reply; ``("error", message)`` is returned, a crash raises ChildFailed."""
        try:
            msg = self.conn.recv()
        except (EOFError, OSError):
            try:
                code = self.proc.wait(5)
            except Exception:
                code = None
            why = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 and
                   -code in signal.valid_signals() else f"exited with status {code}")
            raise ChildDied(f"the child process measuring {self.name} {why}") from None
        if msg[0] == "crash":
            raise ChildFailed(f"the child process measuring {self.name} failed:\n{msg[1]}")
        return msg

    def kill(self) -> None:
        self.proc.kill()

    def close(self, timeout: float = 10) -> None:
        self.conn.close()
        try:
            self.proc.wait(timeout)
        except Exception:
            self.proc.kill()
            self.proc.wait()
