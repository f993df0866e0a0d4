"""Renderings of a validation report: terminal table, Markdown, and one self-contained HTML page with plots
(error histograms per output, confusion matrices of reference and candidate side by side)."""

from __future__ import annotations

import base64
import html as H
import io
from pathlib import Path


def _fmt(v, spec=".3g") -> str:
    return "-" if v is None else format(v, spec)


def _rows(rep: dict):
    for c in rep["candidates"]:
        outs = c["outputs"] or {None: {}}
        for name, e in outs.items():
            met = c.get("metrics") or {}
            acc_r = (met.get("reference") or {}).get("accuracy")
            acc_c = (met.get("candidate") or {}).get("accuracy")
            yield [Path(c["model"]).name, c["verdict"], c.get("precision") or "-", name or "-", _fmt(e.get("max_abs")),
                   _fmt(e.get("mean_abs")), _fmt(e.get("p99_abs")), _fmt(e.get("cosine"), ".6f"),
                   _fmt(e.get("snr_db"), ".1f"), _fmt(e.get("within_tol"), ".4f"), _fmt(c.get("agreement_top1"), ".4f"),
                   f"{_fmt(acc_r, '.4f')} -> {_fmt(acc_c, '.4f')}" if acc_r is not None else "-",
                   _fmt(met.get("mcnemar_p"), ".3g"), "; ".join(c.get("reasons") or [])]


HEAD = ["candidate", "verdict", "precision", "output", "max abs", "mean abs", "p99 abs", "cosine", "SNR dB",
        "within tol", "top-1 agree", "accuracy ref -> cand", "McNemar p", "reasons"]


def rich_table(rep: dict):
    from rich.table import Table
    from rich.text import Text

    t = Table(title=f"validate against {Path(rep['reference']).name} on {rep['data']['samples']} samples "
                    f"(task {rep['task']}, device class {rep['device_class']})")
    for h in HEAD:
        t.add_column(h)
    colours = {"pass": "green", "fail": "red", "unverified": "yellow"}
    for row in _rows(rep):
        t.add_row(*[Text(x, style=colours.get(x, "")) if i == 1 else Text(x) for i, x in enumerate(row)])
    for c in rep["candidates"]:
        loc = c.get("localization")
        if loc and loc.get("first"):
            f = loc["first"]
            t.caption = (t.caption or "") + f"{Path(c['model']).name}: first departure at {f['op_type']} " \
                                            f"'{f['op_name']}' (rel. error {f['rel_error']:.3g}) "
    warnings = _warnings(rep)
    if warnings:
        t.caption = (t.caption or "") + " ".join(f"WARNING: {w}." for w in warnings)
    return t


def _warnings(rep: dict) -> list[str]:
    """Every warning of the run and its candidates, once: checks that could not show a fault."""
    ws = list(rep.get("warnings") or [])
    for c in rep.get("candidates", []):
        ws += [f"{Path(c['model']).name}: {w}" for w in c.get("warnings") or [] if w not in ws]
    return list(dict.fromkeys(ws))


def to_markdown(rep: dict) -> str:
    esc = lambda s: str(s).replace("|", "\\\\|")  # noqa: E731
    lines = [f"# edgekit validate: {Path(rep['reference']).name}", "",
             f"{rep['data']['samples']} samples, task `{rep['task']}`, device class `{rep['device_class']}`", "",
             "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(esc(x) for x in row) + " |" for row in _rows(rep)]
    lines += [f"\n**WARNING**: {w}" for w in _warnings(rep)]
    for c in rep["candidates"]:
        met = c.get("metrics") or {}
        if met.get("ci95"):
            ci = met["ci95"]
            lines.append(f"\n{Path(c['model']).name}: accuracy difference {ci['delta']:+.4f}, "
                         f"95% CI [{ci['low']:+.4f}, {ci['high']:+.4f}], McNemar p = {met['mcnemar_p']:.3g}")
        loc = c.get("localization")
        if loc:
            f = loc.get("first")
            lines.append(f"\n{Path(c['model']).name}: " + (f"first departure at {f['op_type']} `{f['op_name']}` "
                                                            f"(rel. error {f['rel_error']:.3g})" if f else
                                                            (loc.get("note") or "no departing op found")))
    return "\n".join(lines) + "\n"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _plots(rep: dict) -> list[tuple[str, str]]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return []
    out = []
    for c in rep["candidates"]:
        name = Path(c["model"]).name
        for oname, e in (c.get("outputs") or {}).items():
            h = e.get("histogram_log10_abs")
            if not h:
                continue
            fig = Figure(figsize=(5, 2.6))
            ax = fig.add_subplot()
            ax.stairs(h["counts"], h["edges"], fill=True)
            ax.set_xlabel("log10 |candidate - reference|")
            ax.set_ylabel("elements (sampled)")
            ax.set_title(f"{name}: {oname}")
            out.append((f"error histogram {name} {oname}", _png(fig)))
        met = c.get("metrics") or {}
        cms = [(k, (met.get(k) or {}).get("confusion_matrix")) for k in ("reference", "candidate")]
        if all(cm is not None for _, cm in cms):
            fig = Figure(figsize=(8, 3.6))
            for i, (k, cm) in enumerate(cms):
                ax = fig.add_subplot(1, 2, i + 1)
                ax.imshow(cm, cmap="Blues")
                ax.set_title(f"{k}" if k == "reference" else f"{name}")
                ax.set_xlabel("predicted")
                ax.set_ylabel("true")
            out.append((f"confusion matrices {name}", _png(fig)))
    return out


def to_html(rep: dict) -> str:
    rows = "".join("<tr>" + "".join(f"<td>{H.escape(x)}</td>" for x in r) + "</tr>" for r in _rows(rep))
    head = "".join(f"<th>{H.escape(h)}</th>" for h in HEAD)
    imgs = "".join(f"<figure><img alt='{H.escape(t)}' src='data:image/png;base64,{b}'>"
                   f"<figcaption>{H.escape(t)}</figcaption></figure>" for t, b in _plots(rep))
    md = H.escape(to_markdown(rep).split("\n|", 1)[0])
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>edgekit validate</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:3px 6px;font-size:13px}figure{display:inline-block;margin:8px}</style></head><body>"
            f"<h1>edgekit validate</h1><pre>{md}</pre><table><tr>{head}</tr>{rows}</table>{imgs}</body></html>")
