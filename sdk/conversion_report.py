"""Renderings of a conversion (its manifest dict, as `edgekit convert` writes it): the terminal view that fits the
width, and report.html beside manifest.json (routes, parity, sizes, signatures, notes; self-contained)."""

from __future__ import annotations

import base64
import html as H
import io
from pathlib import Path

from edgekit.display import (VERDICT_STYLES, Column, fit_table, html_page, html_table, shapes_only, signature_text,
                             verdict_html)

MARK = '<meta name="generator" content="edgekit convert">'


def _size(n) -> str:
    if not n:
        return "-"
    return f"{n / 1024:.1f} KB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MB"


def _compressed(m: dict) -> bool:
    return any(t.get("fp32_size_bytes") for t in m["targets"])


def _rows(m: dict) -> list[dict]:
    rows = []
    for t in m["targets"]:
        par = t.get("parity") or {}
        sig = t.get("signature") or {}
        speed = t.get("speed")
        rows.append({
            "target": t["target"], "status": t["status"], "status:style": VERDICT_STYLES.get(t["status"], ""),
            "precision": t.get("precision") or "-", "input": shapes_only(sig.get("inputs")) if sig else "-",
            "route": " > ".join(t.get("route") or []) or "-", "size": _size(t.get("size_bytes")),
            "ratio": f"{t['size_ratio_fp32']:.2f}x" if t.get("size_ratio_fp32") else "-",
            "max_abs": f"{par['max_abs']:.2e}" if par.get("max_abs") is not None else "-",
            "cosine": f"{par['cosine']:.6f}" if par.get("cosine") is not None else "-",
            "agreement": f"{par['agreement_top1']:.4f}" if par.get("agreement_top1") is not None else "-",
            "speedup": (f"{speed['speedup']:.2f}x" + (" SLOWER" if speed.get("slower") else "")) if speed else "-",
            "seconds": f"{t.get('seconds', 0):.1f}"})
    return rows


def _columns(m: dict) -> list[Column]:
    cols = [Column("target", "target", False, 0), Column("status", "status", False, 0),
            Column("precision", "precision", False, 2), Column("input", "input shape", False, 4),
            Column("route", "route", False, 3, wrap=True), Column("size", "size", True, 1)]
    if _compressed(m):
        cols += [Column("ratio", "vs fp32", True, 1), Column("agreement", "top-1 agreement", True, 0),
                 Column("speedup", "speed-up", True, 2)]
    else:
        cols += [Column("max_abs", "max abs", True, 0), Column("cosine", "cosine", True, 1)]
    return cols + [Column("seconds", "seconds", True, 5)]


def notes(m: dict) -> list[tuple[str, str, str]]:
    """(target, kind, text): errors, warnings and notes of every target, passing ones included; a note every
    target shares is given once, for "all"."""
    targets = m["targets"]
    shared = [n for n in (targets[0].get("notes") or [])] if len(targets) > 1 else []
    shared = [n for n in shared if all(n in (t.get("notes") or []) for t in targets)]
    out = [("all", "note", n) for n in shared]
    for t in targets:
        if t.get("error"):
            op = t.get("failing_op")
            out.append((t["target"], "error", t["error"] + (f" (operator {op})" if op and op not in t["error"] else "")))
        out += [(t["target"], "warning", w) for w in t.get("warnings") or []]
        out += [(t["target"], "note", n) for n in t.get("notes") or [] if n not in shared]
    return out


def rich_view(m: dict, width: int | None = None, title: str | None = None):
    """The table fitted to ``width`` (numbers never cut), then one line per error, warning and note."""
    from rich.console import Group
    from rich.text import Text

    src = m["source"]
    title = title or f"{Path(src['path']).name} ({src['format']}) -> {len(m['targets'])} target(s)"
    table = fit_table(_columns(m), _rows(m), width or 10_000, title=title, label="target",
                      more="all of it in manifest.json and report.html")
    styles = {"error": "red", "warning": "yellow", "note": "dim"}
    lines = [Text.assemble((f"{target}: ", "bold"), (f"{kind} " if kind != "note" else "", styles[kind]),
                           (text, "" if kind == "note" else styles[kind])) for target, kind, text in notes(m)]
    return Group(table, *lines)


def _sizes_png(m: dict) -> str | None:
    """Horizontal bars: each target's file size in KB (and its fp32 counterpart's when compressed)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    ts = [t for t in m["targets"] if t.get("size_bytes")]
    if not ts:
        return None
    fig = Figure(figsize=(6.4, 0.6 + 0.45 * len(ts) * (2 if _compressed(m) else 1)))
    ax = fig.add_subplot()
    names = [f"{t['target']} ({t.get('precision')})" for t in ts]
    y = list(range(len(ts)))
    ax.barh(y, [t["size_bytes"] / 1024 for t in ts], height=0.4, color="#4a78a8", label="written file")
    if _compressed(m):
        ax.barh([v + 0.4 for v in y], [(t.get("fp32_size_bytes") or 0) / 1024 for t in ts], height=0.4,
                color="#bbbbbb", label="fp32 counterpart")
        ax.legend(fontsize=7)
    for v, t in zip(y, ts):
        ax.annotate(f" {t['size_bytes'] / 1024:.1f}", (t["size_bytes"] / 1024, v), va="center", fontsize=7)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("size on disk (KB)")
    ax.set_title("target sizes", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def to_html(m: dict) -> str:
    e = H.escape
    src = m["source"]
    cols = [(c.key, c.header, c.numeric) for c in _columns(m)]
    rows = [dict(r, **{"status:html": verdict_html(r["status"])}) for r in _rows(m)]
    counts: dict[str, int] = {}
    for t in m["targets"]:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    summary = " ".join(f"{verdict_html(v)} {n}" for v, n in counts.items())
    info = [("source", f"<code>{e(src['path'])}</code> ({e(src['format'])})"),
            ("source inputs", e(", ".join(src.get("inputs") or []) or "-")),
            ("sha256", f"<code>{e(src.get('sha256', '-'))}</code>"),
            ("edgekit", e(f"{m.get('edgekit_version', '?')}, {m.get('created', '')}")), ("results", summary)]
    body = [f"<h1>edgekit convert: {e(Path(src['path']).name)}</h1>",
            "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in info) + "</dl>"]
    if m.get("warnings"):
        body.append('<div class="note"><b>Warnings</b><ul>' + "".join(f"<li>{e(w)}</li>" for w in m["warnings"])
                    + "</ul></div>")
    body += ["<h2>Targets</h2>", html_table(cols, rows),
             "<p>max abs: largest |target - source| over the check sample (output units); cosine: lowest over "
             "the outputs; top-1 agreement: share of samples where the compressed target picks the source's class."
             "</p>", "<h2>Signatures and routes</h2>"]
    sig_rows = [{"target": t["target"], "file": t.get("path") or "(not written)",
                 "route": " > ".join(t.get("route") or []) or "-",
                 "tools": ", ".join(f"{k} {v}" for k, v in (t.get("tool_versions") or {}).items()) or "-",
                 "inputs": signature_text((t.get("signature") or {}).get("inputs")),
                 "outputs": signature_text((t.get("signature") or {}).get("outputs"))} for t in m["targets"]]
    body.append(html_table([(k, k, False) for k in ("target", "file", "route", "tools", "inputs", "outputs")],
                           sig_rows))
    found = notes(m)
    if found:
        body.append("<h2>Notes</h2><ul>" + "".join(
            f"<li><b>{e(t)}</b>: " + (verdict_html("fail" if k == "error" else "unverified") + " " if k != "note"
                                      else "") + f"{e(x)}</li>" for t, k, x in found) + "</ul>")
    png = _sizes_png(m)
    if png:
        body.append(f"<h2>Sizes</h2><img alt='target sizes in KB' src='data:image/png;base64,{png}'>")
    page = html_page(f"edgekit convert: {Path(src['path']).name}", "\n".join(body))
    return page.replace("<meta charset=\"utf-8\">", "<meta charset=\"utf-8\">" + MARK, 1)


def write_html(report) -> Path | None:
    """Write report.html beside manifest.json, unless a report.html that edgekit did not write is there."""
    path = Path(report.output_dir) / "report.html"
    try:
        if path.exists() and (path.is_symlink() or MARK not in path.read_text(errors="replace")[:2000]):
            return None
        path.write_text(to_html(report.manifest()), encoding="utf-8")
    except OSError:
        return None
    return path
