"""The bench report's PNG: a box plot of per-call latency per model (`report.plot_latencies`, --plot and the HTML
page). Same rows and labels as the tables in `report`; matplotlib is imported only here, inside the function."""

from __future__ import annotations

from pathlib import Path

from .report import _data, _ms, _ok, _title


def _minor_log_label(v: float, _pos=None) -> str:
    """Label the 2x and 5x minor ticks of a log axis with plain numbers (the decades get the major labels)."""
    import math

    if v <= 0:
        return ""
    mantissa = round(v / 10 ** math.floor(math.log10(v)), 6)
    return f"{v:g}" if mantissa in (2, 5) else ""


def plot_latencies(result, path) -> Path:
    """Box plot of per-call latency per model, written as a PNG at ``path``; returns the path.

    With ``samples_ms`` the box is p25–p75 and the whiskers p1–p99 of the samples; without them the box is drawn
    from the recorded summary (box min–p90, whiskers to p99, a point at max, hatched). p50 is marked and labelled.
    The y axis is logarithmic when the largest latency is over 20x the smallest. Error rows are skipped.
    """
    try:
        import matplotlib  # noqa: F401  (imported first so a missing package fails here)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
        from matplotlib.ticker import FuncFormatter
    except ImportError as e:
        from edgekit.errors import MissingDependencyError

        raise MissingDependencyError("matplotlib", "report", "draw plots") from e
    import numpy as np

    result = _data(result)
    path = Path(path)
    ok = _ok(result)
    stats, p50s, lo, hi = [], [], [], []
    for r in ok:
        lat = r["latency_ms"]
        samples = np.asarray(r.get("samples_ms") or [], dtype=float)
        label = str(r.get("model", "?"))
        if r.get("backend"):
            label += f"\n{r['backend']}"
        if samples.size:
            p1, q1, med, q3, p99 = np.percentile(samples, [1, 25, 50, 75, 99])
            fliers = samples[(samples < p1) | (samples > p99)]
            stats.append({"label": label, "whislo": p1, "q1": q1, "med": med, "q3": q3, "whishi": p99,
                          "fliers": fliers, "summary": False})
            lo.append(samples.min())
            hi.append(samples.max())
        else:
            stats.append({"label": label, "whislo": lat["min"], "q1": lat["min"], "med": lat["p50"],
                          "q3": lat["p90"], "whishi": lat["p99"], "fliers": [lat["max"]], "summary": True})
            lo.append(lat["min"])
            hi.append(lat["max"])
        p50s.append(lat.get("p50", stats[-1]["med"]))

    width = max(6.5, 1.4 * len(stats) + 2.5)
    fig = Figure(figsize=(width, 5.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(_title(result), fontsize=11)
    if not stats:
        ax.text(0.5, 0.5, "no successful results to plot", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        positions = list(range(1, len(stats) + 1))
        arts = ax.bxp([{k: v for k, v in s.items() if k != "summary"} for s in stats], positions=positions,
                      widths=0.5, patch_artist=True, showfliers=True,
                      medianprops={"color": "#c0392b", "linewidth": 2},
                      flierprops={"marker": ".", "markersize": 3, "alpha": 0.5})
        for box, s in zip(arts["boxes"], stats):
            box.set_facecolor("#f4f4f4" if s["summary"] else "#b9d3ea")
            if s["summary"]:
                box.set_hatch("//")
        p50_marks = ax.scatter(positions, p50s, marker="D", color="#c0392b", zorder=3, s=18, label="p50")
        for x, p in zip(positions, p50s):  # label just right of the box
            ax.annotate(f"p50 {_ms(p)}", (x + 0.28, p), ha="left", va="center", fontsize=8, color="#c0392b")
        if min(lo) > 0 and max(hi) / min(lo) > 20:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(FuncFormatter(_minor_log_label))
        ax.set_ylabel("latency per call (ms)" + (", log scale" if ax.get_yscale() == "log" else ""))
        ax.set_xlim(0.5, len(stats) + 0.9)
        ax.grid(axis="y", alpha=0.3, which="both")
        handles = [p50_marks]
        if any(not s["summary"] for s in stats):
            handles.append(Patch(facecolor="#b9d3ea", edgecolor="black",
                                 label="samples: box p25–p75, whiskers p1–p99"))
        if any(s["summary"] for s in stats):
            handles.append(Patch(facecolor="#f4f4f4", hatch="//", edgecolor="black",
                                 label="summary only: box min–p90, whisker p99, point max"))
        fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncols=len(handles) if width >= 10 else 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
