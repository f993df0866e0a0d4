"""`edgekit monitor report LOG`: what a monitor log folder says, as a terminal table or one self-contained HTML page
(latency over time, drift per feature, task metrics over windows, alerts). Reads windows.jsonl (and the rotated
windows.1.jsonl) that `edgekit.monitor(..., log_dir=LOG)` writes, one record per closed window."""

from __future__ import annotations

import html as H
import json
from datetime import datetime, timezone
from pathlib import Path

from edgekit.errors import InputError


def read_windows(log) -> list[dict]:
    p = Path(log)
    files = [f for f in (p / "windows.1.jsonl", p / "windows.jsonl") if f.exists()]
    if not p.is_dir() or not files:
        raise InputError(f"{p} is not a monitor log (no windows.jsonl in it)",
                         "pass the log_dir given to edgekit.monitor(...); a window is written when it closes")
    out = []
    for f in files:
        for i, line in enumerate(f.read_text().splitlines()):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                raise InputError(f"{f.name} line {i + 1} is not JSON", "the log is damaged; remove that line") from None
    return out


def _time(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def rows(windows: list[dict]) -> list[list[str]]:
    out = []
    for w in windows:
        lat = w.get("latency_s") or {}
        met = w.get("metrics") or {}
        out.append([str(w["window"]), _time(w["end"]), str(w["samples"]), str(w.get("errors", 0)),
                    f"{lat['p50'] * 1e3:.3f}" if lat else "-", f"{lat['p99'] * 1e3:.3f}" if lat else "-",
                    str(sum(1 for d in w.get("drift", {}).values() if d.get("drift"))),
                    f"{met['accuracy']:.4f}" if met.get("accuracy") is not None else "-",
                    "; ".join(w.get("alerts") or []) or "-"])
    return out


HEAD = ["window", "end (UTC)", "samples", "errors", "p50 ms", "p99 ms", "drifted", "accuracy", "alerts"]


def rich_table(windows: list[dict], log) -> object:
    from rich.table import Table

    t = Table(title=f"monitor log {log}: {len(windows)} windows, "
                    f"{sum(len(w.get('alerts') or []) for w in windows)} alerts")
    for h in HEAD:
        t.add_column(h)
    for r in rows(windows):
        t.add_row(*r)
    return t


def _plots(windows: list[dict]) -> list[tuple[str, str]]:
    from matplotlib.figure import Figure

    from edgekit.validation_report import _png

    out = []
    ends = [datetime.fromtimestamp(w["end"], timezone.utc) for w in windows]
    fig = Figure(figsize=(7, 2.8))
    ax = fig.add_subplot()
    for q in ("p50", "p95", "p99"):
        ax.plot(ends, [(w.get("latency_s") or {}).get(q, float("nan")) * 1e3 for w in windows], marker=".", label=q)
    ax.set_ylabel("latency ms")
    ax.legend()
    fig.autofmt_xdate()
    out.append(("latency per window over time", _png(fig)))
    feats = sorted({f for w in windows for f in w.get("drift", {})})
    if feats:
        fig = Figure(figsize=(7, 3.2))
        ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        idx = [w["window"] for w in windows]
        for f in feats:
            ax1.plot(idx, [max(w["drift"].get(f, {}).get("p_value", float("nan")), 1e-300) for w in windows],
                     marker=".", label=f)
            ax2.plot(idx, [w["drift"].get(f, {}).get("psi", float("nan")) for w in windows], marker=".", label=f)
        ax1.set_yscale("log")
        ax1.set_ylabel("p-value")
        ax1.set_xlabel("window")
        ax2.set_ylabel("PSI")
        ax2.set_xlabel("window")
        ax2.legend(fontsize=6)
        out.append(("drift per feature: test p-value and PSI per window", _png(fig)))
    mets = [w for w in windows if w.get("metrics")]
    if mets:
        fig = Figure(figsize=(7, 2.8))
        ax = fig.add_subplot()
        for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "precision", "recall",
                  "f1", "r2"):
            vals = [w["metrics"].get(k) for w in mets]
            if any(v is not None for v in vals):
                ax.plot([w["window"] for w in mets], [float("nan") if v is None else v for v in vals], marker=".",
                        label=k)
        ax.set_xlabel("window")
        ax.legend(fontsize=7)
        out.append(("task metrics on labelled samples per window", _png(fig)))
    return out


def to_html(windows: list[dict], log) -> str:
    head = "".join(f"<th>{H.escape(h)}</th>" for h in HEAD)
    body = "".join("<tr>" + "".join(f"<td>{H.escape(x)}</td>" for x in r) + "</tr>" for r in rows(windows))
    alerts = [(w["window"], _time(w["end"]), a) for w in windows for a in (w.get("alerts") or [])]
    al = "".join(f"<li>window {i} ({t}): {H.escape(a)}</li>" for i, t, a in alerts) or "<li>none</li>"
    imgs = "".join(f"<figure><img alt='{H.escape(t)}' src='data:image/png;base64,{b}'>"
                   f"<figcaption>{H.escape(t)}</figcaption></figure>" for t, b in _plots(windows))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>edgekit monitor report</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:3px 6px;font-size:13px}figure{display:inline-block;margin:8px}</style></head><body>"
            f"<h1>edgekit monitor report</h1><p>{H.escape(str(log))}: {len(windows)} windows</p>"
            f"<h2>alerts</h2><ul>{al}</ul><h2>windows</h2><table><tr>{head}</tr>{body}</table>{imgs}</body></html>")
