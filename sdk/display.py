"""What every terminal view shares: labels that tell models apart, shapes as text, and tables that fit the terminal.

A table is described once (columns with a priority, rows of strings) and `fit_table` picks what fits the width:
every column when it fits, else the least important columns are left out (a caption names them and where the full
details are), else one block per row (a stacked layout of `name value` pairs). A number is never cut: numeric
columns do not wrap or shrink below their widest cell; only text columns wrap. rich is imported inside functions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePath

VERDICT_STYLES = {"pass": "green", "fail": "red", "unverified": "yellow", "ok": "green", "error": "red",
                  "skipped": "dim"}


def short_labels(paths) -> list[str]:
    """The shortest path suffix that tells each of ``paths`` apart from the others: ``mnv2.tflite`` when the
    names differ, ``fp16/mnv2.tflite`` and ``int8/mnv2.tflite`` when only their folders do. The same path given
    twice gets the same label."""
    parts = [PurePath(os.path.normpath(str(p))).parts or (str(p),) for p in paths]
    depth = [1] * len(parts)
    for _ in range(max((len(p) for p in parts), default=1)):
        labels = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        grow = {i for i, lab in enumerate(labels)
                if any(other == lab and parts[j] != parts[i] for j, other in enumerate(labels))}
        if not grow:
            break
        for i in grow:
            depth[i] = min(depth[i] + 1, len(parts[i]))
    return ["/".join(p[-d:]) for p, d in zip(parts, depth)]


def shape_text(shape) -> str:
    """``1x8x8x1``; a dynamic dim is ``?``; an unknown shape is ``?``."""
    if shape is None:
        return "?"
    return "x".join("?" if d is None or (isinstance(d, int) and d < 0) else str(d) for d in shape) or "scalar"


def signature_text(specs) -> str:
    """Inputs as ``name 1x8x8x1 float32``, several joined by ``; ``; ``specs``: TensorSpecs or their dicts."""
    items = []
    for s in specs or []:
        d = s.to_dict() if hasattr(s, "to_dict") else dict(s)
        items.append(f"{d.get('name')} {shape_text(d.get('shape'))}")
    return "; ".join(items) or "-"


def shapes_only(specs) -> str:
    """Inputs' shapes only, ``1x8x8x1`` (several joined by ``, ``): the compact column."""
    out = []
    for s in specs or []:
        d = s.to_dict() if hasattr(s, "to_dict") else dict(s)
        out.append(shape_text(d.get("shape")))
    return ", ".join(out) or "-"


@dataclass
class Column:
    """One column of a fitted table. ``priority`` 0 is always shown; larger numbers are left out first when the
    table does not fit. ``numeric`` columns are right-aligned and never wrap (a cut number is a wrong number);
    a ``wrap`` text column (a list of parameters, a route) may wrap between words, any other column never wraps."""
    key: str
    header: str
    numeric: bool = True
    priority: int = 0
    wrap: bool = False


def _table(cols: list[Column], rows: list[dict]):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    t = Table(header_style="bold", pad_edge=False, box=box.SIMPLE_HEAD)
    for c in cols:
        widest = max([len(_plain(r.get(c.key, ""))) for r in rows] + [len(c.header)])
        t.add_column(c.header, justify="right" if c.numeric else "left", no_wrap=not c.wrap, overflow="fold",
                     min_width=None if c.wrap else widest)
    for r in rows:
        t.add_row(*[_cell(r, c.key) for c in cols], style=r.get("_style"))
    return t


def _cell(r: dict, key: str):
    from rich.text import Text

    v = r.get(key, "")
    return v if isinstance(v, Text) else Text(str(v), style=r.get(f"{key}:style", ""))


def _plain(v) -> str:
    return v.plain if hasattr(v, "plain") else str(v)


def _fits(table, width: int, cols: list[Column], rows: list[dict]) -> bool:
    """Whether ``table`` fits ``width`` with every column at its natural width except ``wrap`` columns, which may
    narrow down to their longest word (rich would otherwise squeeze and cut columns of a table too wide)."""
    from rich.console import Console

    con = Console(width=width, file=open(os.devnull, "w"), color_system=None)
    try:
        natural = table._calculate_column_widths(con, con.options.update_width(1 << 20))
        if sum(natural) + _frame(table, len(cols)) <= width:
            return True
        if not any(c.wrap for c in cols):
            return False
        got = table._calculate_column_widths(con, con.options.update_width(width))
    finally:
        con.file.close()
    for c, n, g in zip(cols, natural, got):
        need = n if not c.wrap else min(n, 2 + max([len(w) for r in rows for w in _plain(r.get(c.key, "")).split()]
                                                   + [len(w) for w in c.header.split()]))
        if g < need:
            return False
    return sum(got) + _frame(table, len(cols)) <= width


def _frame(table, n: int) -> int:
    """Characters a table's box adds beside its columns (edges and separators)."""
    if table.box is None:
        return 0
    return (2 if table.show_edge else 0) + (n - 1 if n else 0)


def fit_table(cols: list[Column], rows: list[dict], width: int, *, title: str | None = None,
              caption: str | None = None, label: str | None = None, more: str = "see the JSON/HTML report"):
    """A renderable that fits ``width`` columns: the whole table, the table without its least important columns
    (one at a time, highest ``priority`` first; a line names them and says ``more``), or one block per row titled
    by its ``label`` column. A row with ``_error`` is listed under the table with its error."""
    from rich.console import Group
    from rich.text import Text

    label = label or cols[0].key
    good = [r for r in rows if "_error" not in r]
    errors = [Text.assemble((f"{_plain(r.get(label, ''))}: ", "bold"), (f"error: {r['_error']}", "red"))
              for r in rows if "_error" in r]
    head = [Text(title, style="bold")] if title else []
    shown = list(cols)
    while True:
        table = _table(shown, good)
        if _fits(table, width, shown, good):
            for c in sorted((c for c in cols if c not in shown), key=lambda c: c.priority):  # room left: refill
                trial = [x for x in cols if x in shown or x is c]
                if _fits(_table(trial, good), width, trial, good):
                    shown, table = trial, _table(trial, good)
            dropped = [c.header for c in cols if c not in shown]
            tail = [Text(caption, style="dim")] if caption else []
            if dropped:
                tail.append(Text(f"not shown at {width} columns: {', '.join(dropped)} ({more})", style="dim"))
            group = Group(*head, *([table] if good else []), *errors, *tail)
            group.shown = [c.key for c in shown]  # which columns made it (a caller may say the rest in lines)
            return group
        droppable = [c for c in shown if c.priority > 0]
        if not droppable:
            break
        worst = max(c.priority for c in droppable)
        shown.remove([c for c in droppable if c.priority == worst][-1])
    group = Group(*head, _stacked(cols, good, width, label), *errors,
                  *([Text(caption, style="dim")] if caption else []))
    group.shown = [c.key for c in cols]
    return group


def _stacked(cols, rows, width, label):
    """One block per row: its label in bold, then `name value` pairs packed into lines no wider than ``width``."""
    from rich.console import Group
    from rich.text import Text

    parts = []
    for r in rows:
        parts.append(Text(_plain(r.get(label, "")), style="bold " + r.get(f"{label}:style", "")))
        line = Text("  ")
        for c in cols:
            if c.key == label:
                continue
            v = _plain(r.get(c.key, ""))
            if v in ("", "-", "—"):
                continue
            item = Text.assemble((f"{c.header} ", "dim"), (v, r.get(f"{c.key}:style", "")))
            if len(line) > 2 and len(line) + 3 + len(item) > width:
                parts.append(line)
                line = Text("  ")
            if len(line) > 2:
                line.append("   ")
            line.append_text(item)
        if len(line) > 2:
            parts.append(line)
    return Group(*parts)


def console_width(console=None) -> int:
    """The width to fit: the console's, or the terminal's (COLUMNS, else 80 when there is no terminal)."""
    if console is not None:
        return console.width
    from shutil import get_terminal_size

    return get_terminal_size((80, 24)).columns


def relpath(path, start) -> str:
    """``path`` relative to ``start`` when it lies under it, else the path as given."""
    try:
        return Path(path).resolve().relative_to(Path(start).resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)


# ------------------------------------------------------------------------------------------- HTML reports

HTML_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:1rem 1.25rem;
max-width:1400px;color:#222;line-height:1.45}
h1{font-size:1.35rem;overflow-wrap:anywhere}h2{font-size:1.1rem;margin-top:1.8rem}h3{font-size:.95rem;margin:1.2rem 0 .2rem}
p,li,dd{overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.78rem}th,td{border:1px solid #ccc;padding:.25rem .35rem;vertical-align:top}
th{background:#f0f3f7;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.unstable td{background:#fff6e0}tr.error td{background:#fdecea;color:#8a1c1c}
dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
.note{background:#fff6e0;border-left:4px solid #e0a800;padding:.5rem 1rem}
.v{display:inline-block;padding:0 .45em;border-radius:.3em;font-weight:600}
.v.pass,.v.ok{background:#1e7e34;color:#fff}.v.fail,.v.error{background:#c62828;color:#fff}
.v.unverified{background:#f0c020;color:#222}
figure{display:inline-block;margin:.5rem 1rem .5rem 0;max-width:100%;vertical-align:top}
figcaption{font-size:.8rem;color:#555}img{max-width:100%;height:auto}
code{background:#f3f3f3;padding:0 .2em;overflow-wrap:anywhere}
@media (max-width:700px){
 body{padding:.6rem}
 table.stack thead{display:none}
 table.stack,table.stack tbody,table.stack tr,table.stack td{display:block;width:100%}
 table.stack tr{border:1px solid #ccc;margin-bottom:.7rem}
 table.stack td{border:none;border-bottom:1px solid #eee;display:flex;justify-content:space-between;gap:1rem;
  text-align:right;white-space:normal;overflow-wrap:anywhere}
 table.stack td::before{content:attr(data-label);font-weight:600;text-align:left;flex:none}
 table.stack td[colspan]{display:block;text-align:left}
}
"""


def html_page(title: str, body: str) -> str:
    """One self-contained page (no scripts, no links): the shared style, readable from a phone to 1400 px."""
    import html

    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title><style>{HTML_CSS}</style></head><body>\n{body}\n</body></html>\n")


def html_table(cols: list[tuple[str, str, bool]], rows: list[dict], row_class=None) -> str:
    """A table in a horizontal scroller; on a phone each row becomes a block of `header value` lines.
    ``cols``: (key, header, numeric). A row's ``key:html`` holds ready HTML for a cell (e.g. a verdict badge);
    a row with ``_error`` shows it across the row."""
    import html

    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for _, h, _ in cols)
    body = []
    for r in rows:
        cls = row_class(r) if row_class else ""
        attr = f' class="{cls}"' if cls else ""
        if "_error" in r:
            first = cols[0]
            body.append(f'<tr class="error"><td data-label="{e(first[1])}">{e(str(r.get(first[0], "")))}</td>'
                        f'<td colspan="{len(cols) - 1}">error: {e(str(r["_error"]))}</td></tr>')
            continue
        tds = []
        for key, header, numeric in cols:
            inner = r.get(f"{key}:html") or e(str(r.get(key, "")))
            num = ' class="num"' if numeric else ""
            tds.append(f'<td{num} data-label="{e(header)}">{inner}</td>')
        body.append(f"<tr{attr}>{''.join(tds)}</tr>")
    return (f'<div class="scroll"><table class="stack"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def verdict_html(word: str) -> str:
    import html

    return f'<span class="v {html.escape(word)}">{html.escape(word)}</span>'
