"""The tune report (edgekit.tuning.report) shows the numbers of the result it is given: the table and the summary
carry each trial's latency, size and drop; the Pareto PNG decodes at its declared size; the HTML report is
self-contained (every image a data URI, no http(s) asset) and says why an Optuna plot is missing."""

from __future__ import annotations

import base64
import io
import re

import pytest

from model_factory import copy_digits

# a real tune on the bundled digits CNN (ONNX, real labels): 3 precisions on one runtime setting, grid
SPACE = {"precision": ("fp32", "fp16", "int8-dynamic"), "onnxruntime.threads": (1,),
         "onnxruntime.graph_optimization_level": ("all",)}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    from edgekit.tuning import load_study, tune

    d = copy_digits(tmp_path_factory.mktemp("digits"))
    out = tmp_path_factory.mktemp("tune")
    r = tune(d["onnx"], d["data"], targets=("onnx",), sampler="grid", space=SPACE, output_dir=out,
             max_accuracy_drop=2.0, bench_s=0.2)
    assert len(r.trials) == 3 and r.best is not None, [t.to_dict() for t in r.trials]
    return r, load_study(r.storage, r.study_name)


def _text(renderable) -> str:
    from rich.console import Console

    c = Console(record=True, width=400, file=io.StringIO())
    c.print(renderable)
    return c.export_text()


def test_table_rows_carry_each_trials_numbers(tuned):
    from edgekit.tuning import report

    r, _ = tuned
    text = _text(report.rich_table(r))
    for t in r.trials:
        row = next(ln for ln in text.splitlines() if re.search(rf"^\s*[★◆]?\s+{t.number}\s+{t.target}\s", ln))
        assert f"{t.latency_ms:.3f}" in row and f"{t.size_mb:.2f}" in row, row
        assert f"{t.accuracy_drop:+.2f} [{t.drop_ci[0]:+.2f}, {t.drop_ci[1]:+.2f}]" in row, row
        assert f"precision={t.params['precision']}" in row
        assert ("★" in row) == (t.number == r.best.number), row
    summary = report.best_summary(r)
    assert f"#{r.best.number}" in summary and f"latency {r.best.latency_ms:.3f} ms" in summary
    # the best is the fastest feasible trial
    assert r.best.latency_ms == min(t.latency_ms for t in r.trials if t.feasible)


def test_pareto_png_decodes_at_its_size(tuned, tmp_path):
    from PIL import Image

    from edgekit.tuning import report

    r, _ = tuned
    data = report.pareto_png(r, tmp_path / "p.png", budget=2.0, size=(6.0, 4.0), dpi=50)
    assert (tmp_path / "p.png").read_bytes() == data
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.size == (300, 200)
    # the plot is not blank: many distinct colors (markers, star, lines)
    assert len(img.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 20


def test_html_is_self_contained_and_shows_the_result(tuned):
    from edgekit.tuning import report

    r, study = tuned
    html = report.to_html(r, study=study, budget=2.0)
    refs = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]*)['"]""", html, flags=re.I)
    assert refs and all(u.startswith("data:image/png;base64,") for u in refs), refs
    assert not re.search(r"url\(|<link|<script", html, flags=re.I)
    for u in refs:
        assert base64.b64decode(u.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # the Pareto plot, Optuna's history and its parameter importances (3 complete trials, precision varies)
    assert len(refs) == 3 and "Optimization history" in html and "Parameter importances" in html
    assert f"{r.best.latency_ms:.3f}" in html and f"best feasible trial #{r.best.number}" in html
    assert report.H.escape('"edgekit_recipe": 1') in html  # the best trial's recipe
    for w in r.warnings:
        assert report.H.escape(w) in html
    for t in r.trials:
        assert f"<td>{t.latency_ms:.3f}</td>" in html


def test_plots_optuna_cannot_compute_are_named_with_the_reason():
    import optuna

    from edgekit.tuning import report
    from edgekit.tuning.result import TrialResult, TuneResult

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    dist = {"precision": optuna.distributions.CategoricalDistribution(["fp32", "int8"])}
    study.add_trial(optuna.trial.create_trial(params={"precision": "fp32"}, distributions=dist, value=1.5))
    one = TrialResult(0, {"target": "onnx", "precision": "fp32"}, "infeasible", "onnx", 0.9, 3.0, (2.0, 4.0), 1.5,
                      0.1, 10.0, False, "drop CI upper 4.00 > budget 1.00")
    res = TuneResult(None, [], [one], {}, "s", "sqlite:///x.db", None, warnings=["calibrating on eval data"])
    figs = {title: (png, note) for title, png, note in report.optuna_figures(study)}
    assert figs["Optimization history"][0] is not None
    assert figs["Parameter importances"] == (None, "needs at least 2 complete trials (1 here)")
    html = report.to_html(res, study=study, budget=1.0)
    assert "not shown: needs at least 2 complete trials (1 here)" in html
    assert "no feasible trial among 1 (1 infeasible, 0 failed)" in html
    assert "drop CI upper 4.00 &gt; budget 1.00" in html and "calibrating on eval data" in html
    # a parameter that never varies: Optuna's evaluators have nothing to rank
    study.add_trial(optuna.trial.create_trial(params={"precision": "fp32"}, distributions=dist, value=1.2))
    note = dict((a, c) for a, _, c in report.optuna_figures(study))["Parameter importances"]
    assert "takes two values" in note
