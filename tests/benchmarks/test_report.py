"""Benchmark reports: Markdown, PNG plot, self-contained HTML and the rich terminal table, on hand-built results."""

from __future__ import annotations

import copy
import re
import sys

import numpy as np
import pytest

from edgekit.benchmarks import report
from edgekit.errors import MissingDependencyError


def _row(model, fmt, backend, p50, *, samples=None, **extra):
    lat = {"min": p50 * 0.9, "mean": p50 * 1.05, "std": p50 * 0.02, "p50": p50, "p90": p50 * 1.1,
           "p95": p50 * 1.2, "p99": p50 * 1.4, "max": p50 * 1.8}
    row = {"model": model, "path": f"/models/{model}", "format": fmt, "backend": backend, "threads": 4, "runs": 200,
           "latency_ms": lat, "load_ms": 41.5, "first_inference_ms": 7.25, "throughput_ips": 1000.0 / lat["mean"],
           "throughput_async_ips": None, "peak_rss_mb": 153.2, "size_bytes": 1_572_864, "stable": True,
           "unstable_reason": None, "ratio_to_first": None}
    if samples is not None:
        row["samples_ms"] = samples
    row.update(extra)
    return row


@pytest.fixture
def result():
    rng = np.random.default_rng(0)
    rows = [
        _row("mobilenet.tflite", "tflite", "litert", 1.234, ratio_to_first=1.0,
             samples=list(1.234 + rng.gamma(2.0, 0.02, 300))),
        _row("mobilenet.onnx", "onnx", "onnxruntime", 2.468, ratio_to_first=2.0,
             stable=False, unstable_reason="cv 14.2% > 10%", throughput_async_ips=1520.4),
        {"model": "broken.xml", "path": "/models/broken.xml", "error": "BackendError: unsupported op Foo"},
    ]
    rows[1]["latency_ms"]["mean"] = 2.5
    rows[1]["latency_ms"]["std"] = 0.125
    rows[1]["throughput_ips"] = 400.0
    return {
        "environment": {"cpu": {"model": "Intel(R) Xeon(R) Gold 6338", "isa": ["avx2", "avx512f", "fma"],
                                "logical_cores": 16, "machine": "x86_64"},
                        "os": "Linux 6.8.0", "python": "3.11.7", "device_class": "x86-server",
                        "thermal": {"governor": "performance"},
                        "packages": {"onnxruntime": "1.19.2", "ai-edge-litert": "1.2.0", "openvino": None}},
        "settings": {"runs": 200, "warmup": 20, "duration_s": None, "threads": 4, "interleaved": False},
        "results": rows,
        "interrupted": False,
    }


def _table_lines(md):
    return [line for line in md.splitlines() if line.startswith("|")]


def _md_cells(line):
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


# ---------------------------------------------------------------- markdown

def test_markdown_table_has_header_separator_and_one_row_per_result(result):
    md = report.to_markdown(result)
    lines = _table_lines(md)
    assert len(lines) == 2 + len(result["results"])
    header = _md_cells(lines[0])
    for col in ("model", "format", "backend", "threads", "p50 ms", "p90 ms", "p99 ms", "mean±std ms", "load ms",
                "first ms", "throughput ips", "peak RSS MB", "size", "stable", "ratio to first"):
        assert col in header
    assert set(lines[1]) <= set("|-: ")
    assert all(len(_md_cells(line)) == len(header) for line in lines)


def test_markdown_shows_the_numbers(result):
    md = report.to_markdown(result)
    lines = _table_lines(md)
    header = _md_cells(lines[0])
    first = dict(zip(header, _md_cells(lines[2])))
    second = dict(zip(header, _md_cells(lines[3])))
    assert first["model"] == "mobilenet.tflite"
    assert first["p50 ms"] == "1.234"
    assert first["p90 ms"] == f"{1.234 * 1.1:.3f}" == "1.357"
    assert first["p99 ms"] == "1.728"
    assert first["load ms"] == "41.500"
    assert first["first ms"] == "7.250"
    assert first["peak RSS MB"] == "153.2"
    assert first["size"] == "1.5 MiB"
    assert first["threads"] == "4"
    assert first["stable"] == "yes"
    assert first["ratio to first"] == "1.00x"
    assert second["mean±std ms"] == "2.500 ± 0.125"
    assert second["throughput ips"] == "400.0 (async 1520)"
    assert second["stable"] == "no"
    assert second["ratio to first"] == "2.00x"


def test_markdown_keeps_significant_digits_for_fast_models(result):
    lat = result["results"][0]["latency_ms"]
    lat.update(p50=0.007341, p90=0.0162, p99=0.1084, mean=250.04, std=0.5)
    result["results"][1]["latency_ms"].update(mean=0.02, std=0.024)
    result["results"][0]["throughput_ips"] = 119350.04
    lines = _table_lines(report.to_markdown(result))
    first = dict(zip(_md_cells(lines[0]), _md_cells(lines[2])))
    assert (first["p50 ms"], first["p90 ms"], first["p99 ms"]) == ("0.007341", "0.01620", "0.1084")
    assert first["mean±std ms"] == "250.0 ± 0.5"
    assert first["throughput ips"] == "119350"
    second = dict(zip(_md_cells(lines[0]), _md_cells(lines[3])))
    assert second["mean±std ms"] == "0.02000 ± 0.02400"


def test_markdown_error_row_environment_and_notes(result):
    md = report.to_markdown(result)
    err = _table_lines(md)[4]
    assert err.startswith("| broken.xml |")
    assert "error: BackendError: unsupported op Foo" in err
    assert "Intel(R) Xeon(R) Gold 6338" in md
    assert "avx2, avx512f, fma" in md
    assert "x86-server" in md and "Linux 6.8.0" in md and "3.11.7" in md
    assert "onnxruntime 1.19.2" in md and "ai-edge-litert 1.2.0" in md
    assert "openvino" not in md  # not installed: not listed as a runtime version
    assert "mobilenet.onnx: unstable (cv 14.2% > 10%)" in md
    assert "nterrupted" not in md


def test_markdown_interrupted_line(result):
    result["interrupted"] = True
    assert "**Interrupted:**" in report.to_markdown(result)


def test_markdown_ratio_computed_when_absent(result):
    for r in result["results"][:2]:
        del r["ratio_to_first"]
    lines = _table_lines(report.to_markdown(result))
    header = _md_cells(lines[0])
    assert dict(zip(header, _md_cells(lines[3])))["ratio to first"] == "2.00x"


def test_markdown_escapes_pipes(result):
    result["results"][2]["error"] = "bad | shape\nsecond line"
    md = report.to_markdown(result)
    lines = _table_lines(md)
    assert len(lines) == 5
    assert "bad \\| shape second line" in lines[4]
    assert len(_md_cells(lines[4])) == len(_md_cells(lines[0]))


def test_native_and_overhead_columns_only_when_present(result):
    plain = _md_cells(_table_lines(report.to_markdown(result))[0])
    assert not any("native" in h or "overhead" in h or "raw" in h for h in plain)

    result["results"][0]["native"] = {"tool": "benchmark_model", "p50_ms": 1.1, "ratio": 1.12}
    header = _md_cells(_table_lines(report.to_markdown(result))[0])
    assert "native p50 ms (tool)" in header and "vs native" in header
    assert "edgekit overhead" not in header

    result["results"][1]["overhead"] = {"raw_p50_ms": 2.4, "edgekit_p50_ms": 2.468, "ratio": 1.03}
    lines = _table_lines(report.to_markdown(result))
    header = _md_cells(lines[0])
    assert "raw p50 ms" in header and "edgekit overhead" in header
    first = dict(zip(header, _md_cells(lines[2])))
    second = dict(zip(header, _md_cells(lines[3])))
    assert first["native p50 ms (tool)"] == "1.100 (benchmark_model)"
    assert first["vs native"] == "1.12x"
    assert first["edgekit overhead"] == "—"
    assert second["raw p50 ms"] == "2.400" and second["edgekit overhead"] == "1.03x"
    assert second["vs native"] == "—"


def test_vs_native_compares_on_the_tools_clock_where_it_reports_the_runtimes_timer(result):
    """benchmark_app's median is OpenVINO's own timer: "vs native" is then edgekit's p50 on that timer over
    benchmark_app's, and a note gives both clocks and the wall-clock ratio."""
    row = _row("m.xml", "openvino", "openvino", 1.65)
    row["runtime_clock"] = {"clock": "openvino InferRequest.latency", "p50_ms": 1.60, "p50_ci_ms": [1.59, 1.61],
                            "wall_minus_clock_us": 48.0, "runs": 200}
    row["native"] = {"tool": "benchmark_app", "p50_ms": 1.58, "clock": "openvino InferRequest.latency",
                     "ratio": 1.65 / 1.58, "same_clock_ratio": 1.60 / 1.58}
    result["results"] = [row]
    md = report.to_markdown(result)
    header, cells = (_md_cells(x) for x in (_table_lines(md)[0], _table_lines(md)[2]))
    assert dict(zip(header, cells))["vs native"] == "1.01x"  # 1.60 / 1.58, not 1.65 / 1.58 = 1.04
    assert ("m.xml: vs native is on benchmark_app's clock (openvino InferRequest.latency): edgekit p50 1.6 ms on "
            "it, 1.65 ms on the wall clock (+48.0 us a call") in md
    assert "wall clock vs native 1.044x" in md


# ---------------------------------------------------------------- plot

def _read_png(path):
    import matplotlib.image

    return matplotlib.image.imread(str(path))


def test_plot_writes_a_real_png(result, tmp_path):
    out = report.plot_latencies(result, tmp_path / "plots" / "latency.png")
    assert out == tmp_path / "plots" / "latency.png"
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 5_000
    img = _read_png(out)
    h, w = img.shape[:2]
    assert 300 <= h <= 2000 and 400 <= w <= 4000
    assert w > h  # landscape
    # not a blank canvas: plenty of non-white pixels
    assert (img[..., :3] < 0.9).any(axis=-1).mean() > 0.01


def test_plot_uses_log_scale_for_wide_spread(result, tmp_path, monkeypatch):
    scales = []
    from matplotlib.axes import Axes

    orig = Axes.set_yscale
    monkeypatch.setattr(Axes, "set_yscale", lambda self, v, **kw: (scales.append(v), orig(self, v, **kw))[1])
    report.plot_latencies(result, tmp_path / "narrow.png")
    assert scales == []  # 1.1 ms .. 4.4 ms: linear

    wide = copy.deepcopy(result)
    wide["results"][1]["latency_ms"] = {k: v * 100 for k, v in wide["results"][1]["latency_ms"].items()}
    report.plot_latencies(wide, tmp_path / "wide.png")
    assert scales == ["log"]


def test_plot_with_only_errors_still_draws(result, tmp_path):
    result["results"] = result["results"][2:]
    out = report.plot_latencies(result, tmp_path / "empty.png")
    assert out.read_bytes().startswith(b"\x89PNG")


def test_plot_without_matplotlib_names_the_extra(result, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError) as exc:
        report.plot_latencies(result, tmp_path / "x.png")
    assert exc.value.package == "matplotlib" and exc.value.extra == "report"


# ---------------------------------------------------------------- html

def test_html_is_one_self_contained_page(result, tmp_path):
    png = report.plot_latencies(result, tmp_path / "p.png").read_bytes()
    page = report.to_html(result, plot_png=png)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("<table") == 2  # latency, then load/memory/throughput (the error row only in the first)
    assert page.count("<tr") == (1 + len(result["results"])) + (1 + len(result["results"]) - 1)
    assert "<th>p50 ms</th>" in page and ">1.234</td>" in page and ">2.500 ± 0.125</td>" in page
    assert "data:image/png;base64," in page
    import base64

    b64 = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page).group(1)
    assert base64.b64decode(b64) == png
    assert "<style>" in page
    lower = page.lower()
    assert "<script src=" not in lower and "<link " not in lower and "http" not in lower
    assert "error: BackendError: unsupported op Foo" in page
    assert "<dt>CPU</dt>" in page and "Intel(R) Xeon(R) Gold 6338" in page
    assert "cv 14.2% &gt; 10%" in page  # the unstable note


def test_html_without_plot_has_no_image(result):
    page = report.to_html(result)
    assert "data:image" not in page and "<img" not in page


def test_html_escapes_names(result):
    result["results"][0]["model"] = "<evil>.tflite"
    result["results"][2]["error"] = "<script>alert(1)</script>"
    page = report.to_html(result)
    assert "<evil>" not in page and "&lt;evil&gt;.tflite" in page
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_html_interrupted_note(result):
    assert "interrupted" not in report.to_html(result)
    result["interrupted"] = True
    assert "interrupted" in report.to_html(result)


# ---------------------------------------------------------------- rich

def _render(table):
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(table)
    return console.export_text()


def test_rich_table_has_one_row_per_model(result):
    text = _render(report.rich_table(result))
    for name in ("mobilenet.tflite", "mobilenet.onnx", "broken.xml"):
        assert sum(name in line for line in text.splitlines()) == 1
    assert "1.234" in text and "2.00x" in text and "1.00x" in text
    assert "unsupported op Foo" in text


def test_rich_table_does_not_read_markup_in_names(result):
    result["results"][0]["model"] = "net[bold].tflite"
    text = _render(report.rich_table(result))
    assert "net[bold].tflite" in text


def test_failed_native_tool_and_throttling_are_noted(result):
    result["results"][0]["native"] = {"tool": "benchmark_model", "p50_ms": None, "ratio": None,
                                      "error": "benchmark_model not found on PATH"}
    result["throttled"] = True
    md = report.to_markdown(result)
    header = _md_cells(_table_lines(md)[0])
    first = dict(zip(header, _md_cells(_table_lines(md)[2])))
    assert first["native p50 ms (tool)"] == "—" and first["vs native"] == "—"
    assert "mobilenet.tflite: native tool benchmark_model failed: benchmark_model not found on PATH" in md
    assert "throttled" in md
    assert "throttled" in report.to_html(result)


def test_a_bench_report_renders_as_its_dict(result, tmp_path):
    """edgekit.benchmark returns a BenchReport; every view takes it and shows what its JSON form shows."""
    from edgekit.bench import BenchReport

    rep = BenchReport(environment=result["environment"], settings=result["settings"], results=result["results"],
                      interrupted=result["interrupted"])
    d = rep.to_dict()
    assert list(d) == ["environment", "settings", "results", "interrupted", "throttled"]
    assert {k: d[k] for k in result} == result and d["throttled"] is False
    assert report.to_markdown(rep) == report.to_markdown(d)
    assert report.to_html(rep) == report.to_html(d)
    assert _render(report.rich_table(rep)) == _render(report.rich_table(d))
    pytest.importorskip("matplotlib")
    assert report.plot_latencies(rep, tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert rep.failed == [result["results"][2]] and rep.row("mobilenet.onnx") is result["results"][1]


def test_method_fields_reach_the_table_and_notes(result):
    """The bench method's figures (issue 17) are shown, not only kept in the JSON: the median's CI as a column,
    counted outliers, the shape a dynamic input was timed at and what the peak RSS measures."""
    row = result["results"][0]
    row.update(p50_ci_ms=[1.2211, 1.2473], outliers={"rule": "above Q3 + 3 x IQR, counted not removed",
                                                     "fence_ms": 1.5, "count": 6, "share": 0.02},
               dynamic_inputs=["x"], input_shapes={"x": [1, 16]},
               memory_scope="own child process: its peak RSS over its RSS before loading the runtime")
    md = report.to_markdown(result)
    header = _md_cells(_table_lines(md)[0])
    first = dict(zip(header, _md_cells(_table_lines(md)[2])))
    assert first["p50 95% CI ms"] == "1.221–1.247"
    assert "mobilenet.tflite: 6 outlier call(s) (2.0 %, above Q3 + 3 x IQR, counted not removed)" in md
    assert "mobilenet.tflite: dynamic input(s) x timed at x 1x16" in md
    assert "peak RSS: own child process" in md
