"""Progress for long commands: on a terminal a rich spinner line with the step (k/n), what it is doing and the
elapsed time; without a terminal (CI logs, pipes) one plain line per step, never control characters."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path


class StepProgress:
    """``step(k, n, name, stage)``: target k of n is at ``stage`` (e.g. "export (torch_to_onnx)", "compress",
    "check parity"); ``say(message)``: a line that stays (a finished target, a note). ``count(done, total)``:
    samples seen, for commands that stream data."""

    def __init__(self, con, what: str):
        self.con, self.what = con, what
        self.t0 = time.perf_counter()
        self.live = None
        self.task = None
        self.last = None

    def _elapsed(self) -> str:
        return f"{time.perf_counter() - self.t0:5.1f} s"

    def _show(self, text: str, total=None, completed=None) -> None:
        if self.live is not None:
            self.live.update(self.task, description=text, total=total, completed=completed or 0)
        elif text != self.last:
            self.con.print(f"[dim]{self._elapsed()}[/] {text}", highlight=False, markup=True, soft_wrap=True)
        self.last = text

    def step(self, k: int, n: int, name: str, stage: str) -> None:
        self._show(f"[{k}/{n}] {name}: {stage}" if k and n else f"{name}: {stage}")

    def status(self, message: str) -> None:
        self._show(message)

    def say(self, message: str) -> None:
        if self.live is not None:
            self.live.console.print(f"[dim]{self._elapsed()}[/] {message}", highlight=False)
        else:
            self.con.print(f"[dim]{self._elapsed()}[/] {message}", highlight=False)

    def count(self, done: int, total: int | None) -> None:
        of = f"/{total}" if total else ""
        if self.live is not None:
            self._show(f"{self.what}: {done}{of} samples", total=total, completed=done)
        elif total and done >= total:
            self._show(f"{self.what}: {done}{of} samples")

    __call__ = count


@contextlib.contextmanager
def progress(con, what: str):
    """A StepProgress: live (spinner, bar when counting, elapsed) on a terminal, plain lines otherwise."""
    p = StepProgress(con, what)
    if not con.is_terminal:
        yield p
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=20),
                  TimeElapsedColumn(), console=con, transient=True) as live:
        p.live, p.task = live, live.add_task(what, total=None)
        yield p


@contextlib.contextmanager
def validate_progress(con, reference, candidates, data):
    """validate's progress: what is loading (the reference, each candidate, the data), then samples seen."""
    with progress(con, "validating") as p:
        p.status(f"loading the reference {Path(reference).name} and {len(candidates)} candidate(s), "
                 f"reading {Path(data).name}")
        yield p
