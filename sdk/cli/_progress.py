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
            from rich.markup import escape

            self.live.update(self.task, description=escape(text), total=total, completed=completed or 0)
        elif text != self.last:
            from rich.text import Text

            self.con.print(Text.assemble((self._elapsed() + " ", "dim"), text), highlight=False, soft_wrap=True)
        self.last = text

    def step(self, k: int, n: int, name: str, stage: str) -> None:
        self._show(f"[{k}/{n}] {name}: {stage}" if k and n else f"{name}: {stage}")

    def status(self, message: str) -> None:
        self._show(message)

    def say(self, message: str, prefix: str = "", style: str = "") -> None:
        """A line that stays; ``message`` is shown as it is (no markup), after ``prefix`` in ``style``."""
        from rich.text import Text

        line = Text.assemble((self._elapsed() + " ", "dim"), (prefix, style), message)
        (self.live.console if self.live is not None else self.con).print(line, highlight=False, soft_wrap=True)

    def count(self, done: int, total: int | None, unit: str = "samples") -> None:
        of = f"/{total}" if total else ""
        if self.live is not None:
            self._show(f"{self.what}: {done}{of} {unit}", total=total, completed=done)
        elif total and done >= total:
            self._show(f"{self.what}: {done}{of} {unit}")

    __call__ = count


@contextlib.contextmanager
def progress(con, what: str, bar: bool = False):
    """A StepProgress: live (spinner, a bar when ``bar`` (counting), elapsed) on a terminal, plain lines
    otherwise."""
    p = StepProgress(con, what)
    if not con.is_terminal:
        yield p
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn("{task.description}")] + ([BarColumn(bar_width=20)] if bar else [])
    with Progress(*columns, TimeElapsedColumn(), console=con, transient=True) as live:
        p.live, p.task = live, live.add_task(what, total=None)
        yield p


@contextlib.contextmanager
def validate_progress(con, reference, candidates, data):
    """validate's progress: what is loading (the reference, each candidate, the data), then samples seen."""
    with progress(con, "validating", bar=True) as p:
        p.status(f"loading the reference {Path(reference).name} and {len(candidates)} candidate(s), "
                 f"reading {Path(data).name}")
        yield p
