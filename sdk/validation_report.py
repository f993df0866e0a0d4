"""Renderings of a validation report: the terminal view (fits the width), Markdown, and one self-contained HTML page
with plots (error histograms per output, with exact zeros counted apart; confusion matrices with counts: the
reference's once, then each candidate's).

All three share one row model (``_rows``) and one list of findings per candidate (``_findings``: reasons, the
accuracy difference's CI and McNemar's test, localization, warnings), so they always show the same numbers."""

from __future__ import annotations

import base64
import html as H
import io
from pathlib import Path

from edgekit.display import (VERDICT_STYLES, Column, fit_table, html_page, html_table, shapes_only, short_labels,
                             verdict_html)


def _fmt(v, spec=".3g") -> str:
    return "-" if v is None else format(v, spec)


# key, header, numeric, terminal priority (0: always shown; larger: left out first when narrow)
COLUMNS = [("candidate", "candidate", False, 0), ("verdict", "verdict", False, 0), ("precision", "precision", False, 1),
           ("input", "input shape", False, 3), ("output", "output", False, 2), ("max_abs", "max abs", True, 0),
           ("mean_abs", "mean abs", True, 5), ("p99_abs", "p99 abs", True, 4), ("cosine", "cosine", True, 1),
           ("snr", "SNR dB", True, 5), ("within", "within tol", True, 4), ("agree", "top-1 agree", True, 2),
           ("accuracy", "accuracy ref -> cand", True, 2), ("mcnemar", "McNemar p", True, 3)]
HEAD = [h for _, h, _, _ in COLUMNS] + ["reasons"]


def _labels(rep: dict) -> dict[str, str]:
    """Each model's shortest unambiguous path (the reference's too)."""
    paths = [rep["reference"]] + [c["model"] for c in rep["candidates"]]
    return dict(zip(paths, short_labels(paths)))


def _rows(rep: dict) -> list[dict]:
    """One row per candidate and output, keyed by COLUMNS (and ``reasons``)."""
    labels = _labels(rep)
    out = []
    for c in rep["candidates"]:
        met = c.get("metrics") or {}
        acc_r = (met.get("reference") or {}).get("accuracy")
        acc_c = (met.get("candidate") or {}).get("accuracy")
        for name, e in (c["outputs"] or {None: {}}).items():
            out.append({"candidate": labels[c["model"]], "verdict": c["verdict"], "precision": c.get("precision") or "-",
                        "input": shapes_only(c.get("inputs")) if c.get("inputs") else "-", "output": name or "-",
                        "max_abs": _fmt(e.get("max_abs")), "mean_abs": _fmt(e.get("mean_abs")),
                        "p99_abs": _fmt(e.get("p99_abs")), "cosine": _fmt(e.get("cosine"), ".6f"),
                        "snr": _fmt(e.get("snr_db"), ".1f"), "within": _fmt(e.get("within_tol"), ".4f"),
                        "agree": _fmt(c.get("agreement_top1"), ".4f"),
                        "accuracy": f"{_fmt(acc_r, '.4f')} -> {_fmt(acc_c, '.4f')}" if acc_r is not None else "-",
                        "mcnemar": _fmt(met.get("mcnemar_p"), ".3g"), "reasons": "; ".join(c.get("reasons") or []),
                        "verdict:style": VERDICT_STYLES.get(c["verdict"], "")})
    return out


def _warnings(rep: dict) -> list[str]:
    """Every warning of the run and its candidates, once: checks that could not show a fault."""
    labels = _labels(rep)
    ws = list(rep.get("warnings") or [])
    for c in rep.get("candidates", []):
        ws += [f"{labels[c['model']]}: {w}" for w in c.get("warnings") or [] if w not in ws]
    return list(dict.fromkeys(ws))


def _findings(rep: dict) -> list[tuple[str, str, str]]:
    """(label, kind, text) per candidate: why it failed or was not verified, the accuracy difference with its
    bootstrap 95% CI and McNemar's p, where a failing candidate first departs."""
    labels = _labels(rep)
    out = []
    for c in rep["candidates"]:
        name = labels[c["model"]]
        for r in c.get("reasons") or []:
            out.append((name, c["verdict"], r))
        met = c.get("metrics") or {}
        if met.get("ci95"):
            ci = met["ci95"]
            out.append((name, "statistics", f"accuracy difference {ci['delta']:+.4f}, 95% CI [{ci['low']:+.4f}, "
                                            f"{ci['high']:+.4f}], McNemar p = {met['mcnemar_p']:.3g}"))
        loc = c.get("localization")
        if loc:
            f = loc.get("first")
            out.append((name, "localization", f"first departure at {f['op_type']} '{f['op_name']}' "
                                              f"(rel. error {f['rel_error']:.3g})" if f else
                        (loc.get("note") or "no departing op found")))
    return out


def _title(rep: dict) -> str:
    return (f"validate against {_labels(rep)[rep['reference']]} on {rep['data']['samples']} samples "
            f"(task {rep['task']}, device class {rep['device_class']})")


def rich_table(rep: dict, width: int | None = None, title: str | None = None):
    """The terminal view: the table fitted to ``width`` (the least important columns left out first, or one block
    per candidate), then the findings and warnings as lines. A number is never cut."""
    from rich.console import Group
    from rich.text import Text

    cols = [Column(k, h, numeric=num, priority=p) for k, h, num, p in COLUMNS]
    table = fit_table(cols, _rows(rep), width or 10_000, title=title or _title(rep), label="candidate",
                      more="all columns in --json-out/--markdown/--html")
    lines = [Text.assemble((f"{name}: ", "bold"), (f"{kind}: " if kind not in ("fail", "pass", "unverified") else "",
                                                   "dim"), (text, VERDICT_STYLES.get(kind, "")))
             for name, kind, text in _findings(rep)]
    lines += [Text.assemble(("WARNING ", "yellow"), w) for w in _warnings(rep)]
    return Group(table, *lines)


def to_markdown(rep: dict) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = [f"# edgekit validate: {_labels(rep)[rep['reference']]}", "",
             f"{rep['data']['samples']} samples, task `{rep['task']}`, device class `{rep['device_class']}`", "",
             "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(esc(r[k]) for k in [c[0] for c in COLUMNS] + ["reasons"]) + " |" for r in _rows(rep)]
    lines += [f"\n**WARNING**: {w}" for w in _warnings(rep)]
    lines += [f"\n{name}: {text}" for name, kind, text in _findings(rep) if kind in ("statistics", "localization")]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------- plots

def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _histogram(name: str, oname: str, h: dict) -> str:
    """Error histogram: one bar for exact zeros (labelled), then log10 bins of the non-zero |differences|."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 2.8))
    ax = fig.add_subplot()
    edges, counts = h.get("edges") or [], h.get("counts") or []
    zeros = h.get("zeros", 0)
    if counts:
        ax.stairs(counts, edges, fill=True, color="#4a78a8", label="non-zero |difference|")
        width = edges[1] - edges[0] if len(edges) > 1 else 0.5
        left = edges[0] - 2 * width
    else:
        width, left = 0.5, -1.0
    if zeros:
        ax.bar(left, zeros, width=width * 1.5, color="#2e8b57", label=f"exactly 0 ({zeros})")
    ax.set_xlabel("log10 |candidate - reference|  (absolute error, output units)")
    ax.set_ylabel(f"elements (of {h.get('sampled', sum(counts) + zeros)} sampled)")
    ax.set_title(f"{name}: {oname}", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    return _png(fig)


def _confusion(title: str, cm) -> str:
    """A confusion matrix with its counts written in the cells (up to 20 classes)."""
    import numpy as np
    from matplotlib.figure import Figure

    cm = np.asarray(cm)
    n = cm.shape[0]
    size = min(6.0, 1.6 + 0.38 * n)
    fig = Figure(figsize=(size + 0.8, size))
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="samples")
    if n <= 20:
        hi = cm.max() if cm.size else 0
        for i in range(n):
            for j in range(cm.shape[1]):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if cm[i, j] > hi / 2 else "black")
        ax.set_xticks(range(cm.shape[1]))
        ax.set_yticks(range(n))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    return _png(fig)


def _plots(rep: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    """(section, [(caption, base64 PNG)]): the reference's confusion matrix once, then per candidate its error
    histograms and its confusion matrix."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return []
    labels = _labels(rep)
    ref = labels[rep["reference"]]
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for c in rep["candidates"]:
        name = labels[c["model"]]
        figs = []
        for oname, e in (c.get("outputs") or {}).items():
            h = e.get("histogram_log10_abs")
            if h and (h.get("counts") or h.get("zeros")):
                figs.append((f"error histogram: {name}, output {oname}", _histogram(name, oname, h)))
        met = c.get("metrics") or {}
        ref_cm = (met.get("reference") or {}).get("confusion_matrix")
        cand_cm = (met.get("candidate") or {}).get("confusion_matrix")
        if ref_cm is not None and not sections:
            truth = "given labels" if met.get("labels") == "given" else "the reference's predictions"
            sections.append((f"reference {ref}", [(f"confusion matrix: reference {ref} (true = {truth})",
                                                   _confusion(f"reference {ref}", ref_cm))]))
        if cand_cm is not None:
            figs.append((f"confusion matrix: {name}", _confusion(name, cand_cm)))
        if figs:
            sections.append((name, figs))
    return sections


def to_html(rep: dict) -> str:
    e = H.escape
    labels = _labels(rep)
    cols = [(k, h, num) for k, h, num, _ in COLUMNS] + [("reasons", "reasons", False)]
    rows = [dict(r, **{"verdict:html": verdict_html(r["verdict"])}) for r in _rows(rep)]
    counts: dict[str, int] = {}
    for c in rep["candidates"]:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    summary = " ".join(f"{verdict_html(v)} {n}" for v, n in counts.items())
    findings = "".join(f"<li><b>{e(name)}</b>: " + (verdict_html(kind) + " " if kind in ("pass", "fail", "unverified")
                                                   else f"<i>{e(kind)}</i>: ") + f"{e(text)}</li>"
                       for name, kind, text in _findings(rep))
    warnings = "".join(f"<li>{e(w)}</li>" for w in _warnings(rep))
    imgs = "".join(f"<h3>{e(section)}</h3>" + "".join(
        f"<figure><img alt='{e(t)}' src='data:image/png;base64,{b}'><figcaption>{e(t)}</figcaption></figure>"
        for t, b in figs) for section, figs in _plots(rep))
    ref_in = shapes_only(rep.get("reference_inputs")) if rep.get("reference_inputs") else "-"
    body = [f"<h1>edgekit validate: {e(labels[rep['reference']])}</h1>",
            "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in (
                ("reference", f"<code>{e(rep['reference'])}</code> (input {e(ref_in)})"),
                ("data", f"<code>{e(str(rep['data'].get('path')))}</code>, {rep['data']['samples']} samples"),
                ("task", e(rep["task"])), ("device class", e(str(rep["device_class"]))),
                ("verdicts", summary))) + "</dl>"]
    if warnings:
        body.append(f'<div class="note"><b>Warnings</b><ul>{warnings}</ul></div>')
    body += ["<h2>Candidates</h2>", html_table(cols, rows),
             "<p>Errors are |candidate - reference| in the output's units; cosine and SNR per output over all "
             "samples; top-1 agree: share of samples where both pick the same class.</p>"]
    if findings:
        body.append(f"<h2>Findings</h2><ul>{findings}</ul>")
    if imgs:
        body.append(f"<h2>Plots</h2>{imgs}")
    return html_page(f"edgekit validate: {labels[rep['reference']]}", "\n".join(body))
