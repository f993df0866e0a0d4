"""What `edgekit tune` shows and writes: the trials table (rich), the Pareto-front PNG and a self-contained HTML
report (the Pareto plot, Optuna's matplotlib visualizations, the best feasible trial and its recipe, the warnings).

Reads a TuneResult (edgekit.tuning.result) and, for Optuna's plots, the study (passed in, or loaded with
edgekit.tuning.load_study). matplotlib runs on the Agg backend and, with rich and optuna, is imported inside the
functions: importing this module costs nothing. Images are embedded as base64 data URIs: the HTML has no
external asset.
"""

from __future__ import annotations

import base64
import html as H
import io
import json
from pathlib import Path

HEAD = ("#", "target", "params", "accuracy", "drop (95% CI)", "latency ms", "size MB", "memory MB", "feasible",
        "state / reason")


# ------------------------------------------------------------------------------------------------ formatting
def fmt_ms(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def fmt_mb(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def fmt_pts(v) -> str:
    return "-" if v is None else f"{v:+.2f}"


def fmt_acc(v) -> str:
    return "-" if v is None else f"{v:.4g}"


def fmt_drop(t) -> str:
    """The accuracy drop in points with its bootstrap CI: '+0.40 [-0.10, +0.90]'."""
    if t.accuracy_drop is None:
        return "-"
    ci = f" [{t.drop_ci[0]:+.2f}, {t.drop_ci[1]:+.2f}]" if t.drop_ci else ""
    return fmt_pts(t.accuracy_drop) + ci


def fmt_params(params: dict) -> str:
    """The knobs without the target (its own column) and without the owner's prefix (the target names the runtime):
    'graph_optimization_level=all precision=int8 threads=2'."""
    flat = {}
    for k, v in (params or {}).items():  # build=fn's own hyperparameters come as one dict: shown as knobs
        flat.update(v if isinstance(v, dict) else {k: v})
    items = sorted((k.rsplit(".", 1)[-1], v) for k, v in flat.items() if k != "target")
    return " ".join(f"{k}={v}" for k, v in items)


def _state(t) -> str:
    return t.state + (f": {t.reason}" if t.reason else "")


def trial_row(t) -> list[str]:
    """One trial as the table's cells (HEAD order): the CLI prints these as trials finish."""
    return [str(t.number), t.target or "-", fmt_params(t.params), fmt_acc(t.accuracy), fmt_drop(t),
            fmt_ms(t.latency_ms), fmt_mb(t.size_mb), fmt_mb(t.peak_memory_mb), "yes" if t.feasible else "no",
            _state(t)]


def _marks(result) -> dict[int, str]:
    """'best' / 'pareto' marks by trial number."""
    marks = {t.number: "pareto" for t in result.pareto}
    if result.best is not None:
        marks[result.best.number] = "best"
    return marks


# ------------------------------------------------------------------------------------------------ rich table
def rich_table(result, pareto_only: bool = False, width: int | None = None):
    """The trials (or only the Pareto front), the best feasible trial marked ★ and bold, fitted to ``width``
    (edgekit.display.fit_table: the least important columns left out first, numbers never cut); each trial's
    reason (why it failed or was infeasible) on a line under the table."""
    from rich.console import Group
    from rich.text import Text

    from edgekit.display import Column, fit_table

    marks = _marks(result)
    title = "Pareto front" if pareto_only else f"Trials ({len(result.trials)}; ★ best, ◆ Pareto front)"
    keys = ("number", "target", "params", "accuracy", "drop", "latency", "size", "memory", "feasible", "state")
    prio = {"number": 0, "target": 0, "params": 1, "accuracy": 2, "drop": 0, "latency": 0, "size": 2, "memory": 3,
            "feasible": 1, "state": 1}
    cols = [Column("mark", "", False, 0)] + [
        Column(k, h if k != "state" else "state", numeric=k in ("number", "accuracy", "drop", "latency", "size",
                                                                 "memory"), priority=prio[k], wrap=k == "params")
        for k, h in zip(keys, HEAD)]
    rows, reasons = [], []
    for t in sorted(result.pareto if pareto_only else result.trials, key=lambda t: t.number):
        mark = {"best": "★", "pareto": "◆"}.get(marks.get(t.number), "")
        cells = trial_row(t)
        row = dict(zip(keys, cells), mark=mark, state=t.state,
                   _style="bold" if mark == "★" else ("dim" if t.state == "failed" else None))
        rows.append(row)
        if t.reason:
            reasons.append(Text(f"#{t.number} {t.state}: {t.reason}", style="dim"))
    table = fit_table(cols, rows, width or 10_000, title=title, label="number", more="all of it in report.html")
    if "params" not in table.shown:  # too narrow for the settings column: each trial's settings on its own line
        reasons = [Text(f"#{r['number']}: {r['params']}") for r in rows] + reasons
    return Group(table, *reasons)


def best_summary(result) -> str:
    """One paragraph on the best feasible trial (or why there is none)."""
    b = result.best
    if b is None:
        n = sum(t.state == "infeasible" for t in result.trials)
        f = sum(t.state == "failed" for t in result.trials)
        return (f"no feasible trial among {len(result.trials)} ({n} infeasible, {f} failed): none met the accuracy, "
                "latency and size budget")
    base = result.baseline or {}
    speed = ""
    if base.get("latency_ms") and b.latency_ms:
        speed = f" ({base['latency_ms'] / b.latency_ms:.2f}x the source's {fmt_ms(base['latency_ms'])} ms)"
    return (f"best feasible trial #{b.number}: {b.target} {fmt_params(b.params)}; latency {fmt_ms(b.latency_ms)} ms"
            f"{speed}, size {fmt_mb(b.size_mb)} MB, accuracy {fmt_acc(b.accuracy)}, drop {fmt_drop(b)} points")


# ------------------------------------------------------------------------------------------------ plots
def _matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        return matplotlib
    except ImportError as e:
        from edgekit.errors import MissingDependencyError

        raise MissingDependencyError("matplotlib", "tune", "draw the tune report's plots") from e


def _png(fig, dpi: int = 90, tight: bool = False) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
    return buf.getvalue()


def pareto_png(result, path=None, budget: float | None = None, size=(7.0, 4.5), dpi: int = 90) -> bytes:
    """Accuracy drop (x) vs latency (y) of every measured trial: marker area by size in MB, color by feasibility,
    the Pareto front joined by a line, the best feasible trial starred, the drop budget a dashed line. Returns
    the PNG's bytes (also written to ``path`` when given); the image is size x dpi pixels."""
    _matplotlib()
    from matplotlib.figure import Figure

    pts = [t for t in result.trials if t.latency_ms is not None and t.accuracy_drop is not None]
    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    sizes = [t.size_mb or 0.0 for t in pts]
    smax = max(sizes, default=0.0) or 1.0
    for feasible, color, label in ((True, "tab:blue", "feasible"), (False, "tab:gray", "infeasible")):
        sel = [t for t in pts if bool(t.feasible) == feasible]
        if sel:
            ax.scatter([t.accuracy_drop for t in sel], [t.latency_ms for t in sel], alpha=0.7, color=color,
                       s=[30 + 270 * (t.size_mb or 0.0) / smax for t in sel], label=label, edgecolors="black",
                       linewidths=0.4)
    front = sorted((t for t in result.pareto if t.latency_ms is not None and t.accuracy_drop is not None),
                   key=lambda t: t.accuracy_drop)
    if front:
        ax.plot([t.accuracy_drop for t in front], [t.latency_ms for t in front], color="tab:orange", lw=1.2,
                label="Pareto front")
    b = result.best
    if b is not None and b.latency_ms is not None and b.accuracy_drop is not None:
        ax.scatter([b.accuracy_drop], [b.latency_ms], marker="*", s=320, color="gold", edgecolors="black",
                   zorder=5, label=f"best #{b.number}: {fmt_ms(b.latency_ms)} ms")
    if budget is not None:
        ax.axvline(budget, color="tab:red", ls="--", lw=1, label=f"budget {budget:g} points")
    ax.set_xlabel("accuracy drop (points; marker area ~ size MB)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"{result.study_name}: {len(pts)} measured trials (size up to {fmt_mb(smax)} MB)")
    ax.grid(alpha=0.3)
    if pts:
        ax.legend(fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, "no trial was measured", ha="center", va="center", transform=ax.transAxes)
    data = _png(fig, dpi)
    if path is not None:
        Path(path).write_bytes(data)
    return data


def _optuna_plot(fn, study, **kw) -> bytes:
    import matplotlib.pyplot as plt

    out = fn(study, **kw)
    ax = out.flat[0] if hasattr(out, "flat") else out
    fig = ax.figure
    fig.set_size_inches(7, 4.5)
    try:
        return _png(fig, tight=True)  # Optuna's long parameter names stay inside the image
    finally:
        plt.close(fig)


def optuna_figures(study, objectives=("latency",)) -> list[tuple[str, bytes | None, str]]:
    """Optuna's matplotlib visualizations: (title, PNG or None, note). A plot Optuna cannot compute for this study
    (too few complete trials, parameters that never vary, only conditional parameters) comes back as None with
    the reason, which the report prints in its place."""
    _matplotlib()
    import warnings

    import optuna
    from optuna.visualization import matplotlib as ovm

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    multi = len(study.directions) > 1
    name = f"{objectives[0]}" if objectives else "objective"
    kw = {"target": lambda t: t.values[0], "target_name": name} if multi else {"target_name": name}
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna's ExperimentalWarning for its matplotlib backend
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        if not done:
            out.append(("Optimization history", None, "no complete trial: nothing to plot"))
        else:
            out.append(_try("Optimization history", lambda: _optuna_plot(ovm.plot_optimization_history, study, **kw)))
        out.append(_importances(study, done, ovm, kw))
    return out


def _importances(study, done, ovm, kw) -> tuple[str, bytes | None, str]:
    title = "Parameter importances"
    if len(done) < 2:
        return title, None, f"needs at least 2 complete trials ({len(done)} here)"
    common = set.intersection(*(set(t.params) for t in done))
    varying = [p for p in common if len({json.dumps(t.params[p], default=str) for t in done}) > 1]
    if not varying:
        return title, None, ("no parameter present in every complete trial takes two values (conditional "
                             "parameters are left out by Optuna's importance evaluators)")
    return _try(title, lambda: _optuna_plot(ovm.plot_param_importances, study, **kw))


def _try(title, make) -> tuple[str, bytes | None, str]:
    try:
        return title, make(), ""
    except Exception as e:  # Optuna refuses some studies (e.g. a single distinct value, dynamic spaces)
        return title, None, f"Optuna could not compute it: {type(e).__name__}: {' '.join(str(e).split())[:300]}"


# ------------------------------------------------------------------------------------------------ HTML
def _img(title: str, png: bytes) -> str:
    b64 = base64.b64encode(png).decode()
    return (f"<figure><img alt='{H.escape(title)}' src='data:image/png;base64,{b64}'>"
            f"<figcaption>{H.escape(title)}</figcaption></figure>")


def _table_html(result) -> str:
    marks = _marks(result)
    head = "".join(f"<th>{H.escape(h)}</th>" for h in ("", *HEAD))
    rows = []
    for t in sorted(result.trials, key=lambda t: t.number):
        m = marks.get(t.number, "")
        cells = "".join(f"<td>{H.escape(x)}</td>" for x in [{"best": "★", "pareto": "◆"}.get(m, ""), *trial_row(t)])
        rows.append(f"<tr class='{m or t.state}'>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def to_html(result, study=None, budget: float | None = None, objectives=None) -> str:
    """The self-contained report: summary, best trial + recipe, Pareto plot, Optuna plots (or why not), the
    trials table and the warnings. ``study`` defaults to load_study(result.storage, result.study_name)."""
    if study is None:
        from edgekit.tuning import load_study

        study = load_study(result.storage, result.study_name)
    objectives = objectives or getattr(result, "objectives", None) or ("latency",)
    if budget is None:
        budget = (result.baseline or {}).get("budget_points")
    figs = [_img("Pareto front: accuracy drop vs latency", pareto_png(result, budget=budget))]
    notes = []
    for title, png, note in optuna_figures(study, objectives):
        if png is not None:
            figs.append(_img(title, png))
        else:
            notes.append(f"<p class='note'><b>{H.escape(title)}</b>: not shown: {H.escape(note)}</p>")
    recipe = ""
    if result.best is not None and result.best.recipe:
        recipe = f"<h2>Recipe of the best trial</h2><pre>{H.escape(json.dumps(result.best.recipe, indent=2, default=str))}</pre>"
    warns = "".join(f"<li>{H.escape(w)}</li>" for w in result.warnings) or "<li>none</li>"
    base = H.escape(json.dumps(result.baseline or {}, default=str))
    return ("<!doctype html><html><head><meta charset='utf-8'><title>edgekit tune</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:3px 6px;font-size:13px}tr.best{font-weight:bold;background:#fff6cc}tr.failed{color:#888}"
            "figure{display:inline-block;margin:8px}.note{color:#a60}</style></head><body>"
            f"<h1>edgekit tune: {H.escape(result.study_name)}</h1>"
            f"<p>storage {H.escape(_redact(result.storage))}; {len(result.trials)} trials; source baseline {base}</p>"
            f"<h2>Best feasible trial</h2><p>{H.escape(best_summary(result))}</p>{recipe}"
            f"<h2>Plots</h2>{''.join(figs)}{''.join(notes)}"
            f"<h2>Trials</h2>{_table_html(result)}<h2>Warnings</h2><ul>{warns}</ul></body></html>")


def _redact(url: str) -> str:
    """A storage URL without its password."""
    if "://" in str(url) and "@" in str(url):
        scheme, rest = str(url).split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':', 1)[0]}@{host}"
    return str(url)


def write_html(result, path, study=None, budget=None, objectives=None) -> Path:
    path = Path(path)
    path.write_text(to_html(result, study=study, budget=budget, objectives=objectives), encoding="utf-8")
    return path
