"""Render a benchmark result (an `edgekit.BenchReport`, or the JSON ``edgekit bench`` writes, as a dict) as Markdown,
a PNG plot, one HTML page or a rich table.

All four views share one column definition (``_columns`` / ``_cells``), so they always show the same numbers.
Latencies are milliseconds; ``ratio to first`` is each model's p50 over the p50 of the first model.
matplotlib and rich are imported inside the functions that need them.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from edgekit.display import Column, fit_table, html_page, html_table, shape_text, short_labels

DASH = "—"

# key, full header (markdown/html), compact header (terminal)
_BASE_COLUMNS = [
    ("model", "model", "model"),
    ("format", "format", "fmt"),
    ("backend", "backend", "backend"),
    ("precision", "precision", "prec"),
    ("input", "input shape", "input"),
    ("threads", "threads", "thr"),
    ("p50", "p50 ms", "p50"),
    ("p50_ci", "p50 95% CI ms", "p50 CI"),
    ("p90", "p90 ms", "p90"),
    ("p99", "p99 ms", "p99"),
    ("mean_std", "mean±std ms", "mean±std"),
    ("load", "load ms", "load"),
    ("first", "first ms", "1st"),
    ("throughput", "throughput ips", "ips"),
    ("rss", "peak RSS MB", "RSS MB"),
    ("size", "size", "size"),
    ("stable", "stable", "stable"),
    ("ratio", "ratio to first", "×first"),
]
_NATIVE_COLUMNS = [("native_p50", "native p50 ms (tool)", "native p50"), ("native_ratio", "vs native", "×native")]
_OVERHEAD_COLUMNS = [("raw_p50", "raw p50 ms", "raw p50"), ("overhead", "edgekit overhead", "overhead")]


# ---------------------------------------------------------------- formatting

def _ms(v) -> str:
    """Milliseconds: 3 decimals from 1 ms up (1 decimal from 100 ms), 4 significant digits below 1 ms."""
    if v is None:
        return DASH
    v = float(v)
    if abs(v) >= 100:
        return f"{v:.1f}"
    if abs(v) >= 1 or v == 0:
        return f"{v:.3f}"
    return f"{v:#.4g}"


def _mean_std(mean, std) -> str:
    """``mean ± std`` with std to the same decimals as the mean, so the two line up."""
    m = _ms(mean)
    if std is None or mean is None:
        return f"{m} ± {_ms(std)}"
    decimals = len(m.split(".")[1]) if "." in m else 0
    return f"{m} ± {float(std):.{decimals}f}"


def _num(v, digits: int = 1) -> str:
    return DASH if v is None else f"{float(v):.{digits}f}"


def _ips(v) -> str:
    return DASH if v is None else (f"{float(v):.0f}" if float(v) >= 1000 else f"{float(v):.1f}")


def _ratio(v) -> str:
    return DASH if v is None else f"{float(v):.2f}x"


def _size(n) -> str:
    if n is None:
        return DASH
    n = float(n)
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def _data(result) -> dict:
    """The result as the dict `edgekit bench --json` writes (a BenchReport, or such a dict already)."""
    return result.to_dict() if hasattr(result, "to_dict") else result


def _is_error(r: dict) -> bool:
    """A row without latencies is shown as an error row (its ``error``, or "no latency recorded")."""
    return not r.get("latency_ms")


def _ok(result: dict) -> list[dict]:
    return [r for r in result.get("results", []) if not _is_error(r)]


def _label(r: dict, result: dict) -> str:
    """The row's model as the shortest path that tells it apart from the other rows (two mnv2.tflite files in
    fp16/ and int8/ show as fp16/mnv2.tflite and int8/mnv2.tflite)."""
    rows = result.get("results", [])
    paths = [x["path"] if x.get("path") and Path(x["path"]).name == x.get("model") else x.get("model") or "?"
             for x in rows]
    for x, label in zip(rows, short_labels(paths)):
        if x is r:
            return label
    return str(r.get("model") or r.get("path") or "?")


def _first_p50(result: dict) -> float | None:
    ok = _ok(result)
    return ok[0]["latency_ms"]["p50"] if ok else None


# ---------------------------------------------------------------- shared table model

def _columns(result: dict, compact: bool = False) -> list[tuple[str, str]]:
    """(key, header) of every column shown for this result; native/overhead only when some row has them."""
    cols = list(_BASE_COLUMNS)
    ok = _ok(result)
    if any(r.get("native") for r in ok):
        cols += _NATIVE_COLUMNS
    if any(r.get("overhead") for r in ok):
        cols += _OVERHEAD_COLUMNS
    return [(key, short if compact else full) for key, full, short in cols]


def _cells(r: dict, result: dict, compact: bool = False) -> dict[str, str]:
    """One result row as display strings keyed by column; an error row has only ``model`` and ``error``."""
    if _is_error(r):
        return {"model": _label(r, result), "error": str(r.get("error") or "no latency recorded")}
    lat = r.get("latency_ms") or {}
    threads = r.get("threads", (result.get("settings") or {}).get("threads"))
    tput = _ips(r.get("throughput_ips"))
    if r.get("throughput_async_ips") is not None:
        tput += f" (async {_ips(r['throughput_async_ips'])})"
    ratio = r.get("ratio_to_first")
    if ratio is None and "ratio_to_first" not in r:
        first = _first_p50(result)
        ratio = lat["p50"] / first if first and lat.get("p50") is not None else None
    stable = r.get("stable")
    out = {
        "model": _label(r, result),
        "format": str(r.get("format", DASH)),
        "precision": str(r.get("precision") or DASH),
        "input": ", ".join(shape_text(s) for s in (r.get("input_shapes") or {}).values()) or DASH,
        "backend": str(r.get("backend", DASH)),
        "threads": "auto" if threads is None else str(threads),
        "p50": _ms(lat.get("p50")),
        "p50_ci": "–".join(_ms(v) for v in r["p50_ci_ms"]) if r.get("p50_ci_ms") else DASH,
        "p90": _ms(lat.get("p90")),
        "p99": _ms(lat.get("p99")),
        "mean_std": _mean_std(lat.get("mean"), lat.get("std")),
        "load": _ms(r.get("load_ms")),
        "first": _ms(r.get("first_inference_ms")),
        "throughput": tput,
        "rss": _num(r.get("peak_rss_mb")),
        "size": _size(r.get("size_bytes")),
        "stable": DASH if stable is None else ("yes" if stable else "no"),
        "ratio": _ratio(ratio),
    }
    native = r.get("native") or {}
    out["native_p50"] = _ms(native.get("p50_ms"))
    if native.get("p50_ms") is not None and not compact:
        out["native_p50"] += f" ({native.get('tool', '?')})"
    same = native.get("same_clock_ratio")  # like for like where the tool reports the runtime's own timer
    out["native_ratio"] = _ratio(same if same is not None else native.get("ratio"))
    overhead = r.get("overhead") or {}
    out["raw_p50"] = _ms(overhead.get("raw_p50_ms"))
    out["overhead"] = _ratio(overhead.get("ratio"))
    return out


def _environment(result: dict) -> list[tuple[str, str]]:
    """(label, value) pairs describing the machine and the settings."""
    env = result.get("environment") or {}
    cpu = env.get("cpu") or {}
    settings = result.get("settings") or {}
    device_class = env.get("device_class")
    if isinstance(device_class, dict):
        device_class = device_class.get("name")
    cores = cpu.get("logical_cores")
    cpu_text = str(cpu.get("model") or DASH) + (f" ({cores} logical cores)" if cores else "")
    items = [("CPU", cpu_text), ("ISA", ", ".join(cpu.get("isa") or []) or DASH)]
    if env.get("board"):
        items.append(("Board", str(env["board"])))
    detected = env.get("device_class_detected")
    if detected and device_class and detected != device_class:
        device_class = f"{device_class} (detected: {detected})"
    items += [("Device class", str(device_class or DASH)), ("OS", str(env.get("os") or DASH)),
              ("Python", str(env.get("python") or DASH))]
    threads = settings.get("threads")
    items.append(("Threads", "runtime default" if threads is None else str(threads)))
    runs = [f"{settings['runs']} runs" if settings.get("runs") is not None else None,
            f"{settings['warmup']} warmup" if settings.get("warmup") is not None else None,
            f"{settings['duration_s']:g} s per model" if settings.get("duration_s") else None,
            "interleaved" if settings.get("interleaved") else None]
    if any(runs):
        items.append(("Runs", ", ".join(x for x in runs if x)))
    thermal = env.get("thermal") or {}
    therm = [f"governor {thermal['governor']}" if thermal.get("governor") else None,
             f"{thermal['freq_mhz']} MHz" if thermal.get("freq_mhz") else None]
    temps = thermal.get("temperatures_c") or {}
    if temps:
        therm.append(f"max {max(temps.values()):.0f} °C")
    if any(therm):
        items.append(("Thermal", ", ".join(x for x in therm if x)))
    pkgs = env.get("packages") or {}
    versions = ", ".join(f"{name} {ver}" for name, ver in sorted(pkgs.items()) if ver)
    items.append(("Runtime versions", versions or DASH))
    return items


def _same_clock_note(r: dict) -> str:
    nat, rc = r["native"], r["runtime_clock"]
    return (f"{r.get('model', '?')}: vs native is on {nat['tool']}'s clock ({rc['clock']}): edgekit p50 "
            f"{rc['p50_ms']:.4g} ms on it, {r['latency_ms']['p50']:.4g} ms on the wall clock "
            f"(+{rc['wall_minus_clock_us']:.1f} us a call: the binding around infer(), which {nat['tool']}'s figure "
            f"leaves out); wall clock vs native {nat['ratio']:.3f}x")


def clock_notes(result) -> list[str]:
    """One line per row whose "vs native" is on the tool's clock rather than the wall clock (also printed under
    the terminal table: the ratio would otherwise read as wall clock against wall clock)."""
    return [_same_clock_note(r) for r in _ok(_data(result)) if (r.get("native") or {}).get("same_clock_ratio")
            is not None]


def _notes(result: dict) -> list[str]:
    notes = [f"{r.get('model', '?')}: unstable ({r.get('unstable_reason') or 'reason not recorded'})"
             for r in _ok(result) if r.get("stable") is False]
    notes += [f"{r.get('model', '?')}: native tool {r['native'].get('tool') or '?'} failed: {r['native']['error']}"
              for r in _ok(result) if (r.get("native") or {}).get("error")]
    notes += clock_notes(result)
    notes += [f"{r.get('model', '?')}: {r['outliers']['count']} outlier call(s) "
              f"({100 * r['outliers']['share']:.1f} %, {r['outliers']['rule']})"
              for r in _ok(result) if (r.get("outliers") or {}).get("count")]
    notes += [f"{r.get('model', '?')}: dynamic input(s) {', '.join(r['dynamic_inputs'])} timed at "
              + ", ".join(f"{k} {shape_text(v)}" for k, v in (r.get("input_shapes") or {}).items())
              for r in _ok(result) if r.get("dynamic_inputs")]
    scopes = {r.get("memory_scope") for r in _ok(result) if r.get("memory_scope")}
    notes += [f"peak RSS: {scope}" for scope in sorted(scopes)]
    if result.get("throttled"):
        notes.append("the CPU throttled during the run: latencies may be inflated")
    if result.get("interrupted"):
        notes.append("interrupted: the run was stopped early; these results cover only what finished")
    return notes


# ---------------------------------------------------------------- markdown

def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("\\", "\\\\").replace("|", "\\|")


def to_markdown(result) -> str:
    """A Markdown table (one row per result; error rows show their error), then the environment and notes."""
    result = _data(result)
    cols = _columns(result)
    lines = ["| " + " | ".join(h for _, h in cols) + " |",
             "|" + "|".join("---" if k in ("model", "format", "backend", "stable") else "---:" for k, _ in cols) + "|"]
    for r in result.get("results", []):
        c = _cells(r, result)
        if "error" in c:
            row = [_md(c["model"]), _md(f"error: {c['error']}")] + [""] * (len(cols) - 2)
        else:
            row = [_md(c[k]) for k, _ in cols]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Latencies in ms per call; ratio to first = p50 / p50 of the first model.", "", "### Environment", ""]
    lines += [f"- **{label}**: {_md(value)}" for label, value in _environment(result)]
    notes = _notes(result)
    if notes:
        lines += ["", "### Notes", ""] + [f"- {_md(n)}" for n in notes]
    if result.get("interrupted"):
        lines += ["", "**Interrupted:** the benchmark was stopped before every model finished."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- plot

def _title(result: dict) -> str:
    env = result.get("environment") or {}
    cpu = (env.get("cpu") or {}).get("model") or "unknown CPU"
    dc = env.get("device_class")
    if isinstance(dc, dict):
        dc = dc.get("name")
    return f"Latency per call — {cpu}" + (f" ({dc})" if dc else "")


def plot_latencies(result, path) -> Path:
    """Box plot of per-call latency per model, written as a PNG at ``path`` (`benchmarks/plot.py`)."""
    from .plot import plot_latencies as draw

    return draw(result, path)


# ---------------------------------------------------------------- html

_TEXT_COLUMNS = ("model", "format", "backend", "precision", "input", "stable")
# the HTML page's first table (latency and its comparisons); the other columns go in a second one, so that each
# fits 1400 px whatever comparisons were asked for
_HTML_MAIN = ("model", "backend", "precision", "input", "p50", "p90", "p99", "stable", "ratio", "native_ratio",
              "overhead")


def to_html(result, plot_png: bytes | None = None) -> str:
    """One self-contained HTML page: the table, the environment, the plot (inline base64 PNG) and notes."""
    result = _data(result)
    e = html.escape
    cols = [(k, h, k not in _TEXT_COLUMNS) for k, h in _columns(result)]
    rows = []
    for r in result.get("results", []):
        c = _cells(r, result)
        if "error" in c:
            c["_error"] = c.pop("error")
        elif r.get("stable") is False:
            c["_class"] = "unstable"
        rows.append(c)
    env = "".join(f"<dt>{e(label)}</dt><dd>{e(value)}</dd>" for label, value in _environment(result))
    notes = "".join(f"<li>{e(n)}</li>" for n in _notes(result))
    title = _title(result).replace("Latency per call", "edgekit benchmark")
    parts = [f"<h1>{e(title)}</h1>"]
    if notes:
        parts.append(f'<div class="note"><ul>{notes}</ul></div>')
    main = [c for c in cols if c[0] in _HTML_MAIN]
    details = cols[:1] + [c for c in cols if c[0] not in _HTML_MAIN]
    parts += ["<h2>Results</h2>", html_table(main, rows, row_class=lambda c: c.get("_class", "")),
              "<p>Latencies in ms per call; ratio to first = p50 / p50 of the first model.</p>",
              "<h2>Load, memory, throughput</h2>",
              html_table(details, [r for r in rows if "_error" not in r], row_class=lambda c: c.get("_class", ""))]
    if plot_png:
        data = base64.b64encode(plot_png).decode("ascii")
        parts += ["<h2>Latency distribution</h2>",
                  f'<img alt="latency per call per model" src="data:image/png;base64,{data}">']
    parts += ["<h2>Environment</h2>", f"<dl>{env}</dl>"]
    return html_page(title, "\n".join(parts))


# ---------------------------------------------------------------- terminal

# the terminal leaves out the least important columns first (priority 0: always shown)
_PRIORITY = {"model": 0, "p50": 0, "p99": 0, "backend": 1, "stable": 1, "ratio": 1, "overhead": 1, "native_ratio": 1,
             "precision": 2, "native_p50": 2, "p50_ci": 3, "input": 3, "size": 3, "raw_p50": 3, "p90": 4, "load": 4,
             "throughput": 4, "first": 5, "mean_std": 5, "rss": 5, "format": 6, "threads": 6}


def rich_table(result, width: int | None = None, title: str | None = None):
    """The same columns (compact headers) for the terminal: a ``rich.table.Table`` with every column, or, with
    ``width``, what fits it (the least important columns left out, or one block per model when even the main
    ones do not fit); a number is never cut."""
    result = _data(result)
    cols = [Column(k, h, numeric=k not in _TEXT_COLUMNS, priority=_PRIORITY.get(k, 4))
            for k, h in _columns(result, compact=True)]
    rows = []
    for r in result.get("results", []):
        c = _cells(r, result, compact=True)
        if "error" in c:  # listed under the table
            c["_error"] = c.pop("error")
        else:
            c["stable:style"] = "yellow" if c["stable"] == "no" else ""
            c["p50:style"] = "bold"
        rows.append(c)
    caption = "interrupted: results cover only what finished" if result.get("interrupted") else None
    title = title or "latency per call (ms); ×first = p50 / p50 of the first model"
    return fit_table(cols, rows, width or 10_000, title=title, caption=caption, label="model",
                     more="all columns in --json-out/--markdown/--html")
