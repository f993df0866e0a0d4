"""`edgekit tune` end to end on the bundled digits CNN (ONNX, real labels): a feasible search exits 0 and writes the
recipe, the Pareto PNG and the HTML report with the numbers it printed; a bad option is a user error (2, one
`error:` and one `hint:` line) before any work; a budget no trial can meet exits 1; the same command resumes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from cli_util import describe, invoke, ok, user_error  # noqa: E402

from model_factory import copy_digits  # noqa: E402

SPACE = ["--space", "precision=fp32,int8-dynamic", "--space", "onnxruntime.threads=1",
         "--space", "onnxruntime.graph_optimization_level=all"]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return copy_digits(tmp_path_factory.mktemp("digits"))


def _tune(digits, out, *more):
    return invoke("tune", digits["onnx"], "--data", digits["data"], "--targets", "onnx", "--sampler", "grid",
                  "--max-accuracy-drop", "2", *SPACE, "-o", out, *more)


@pytest.fixture(scope="module")
def run(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "out"
    return out, ok("tune", digits["onnx"], "--data", digits["data"], "--targets", "onnx", "--sampler", "grid",
                   "--max-accuracy-drop", "2", *SPACE, "-o", out, "--json")


def test_feasible_search_writes_recipe_png_html(run):
    out, result = run
    doc = json.loads(result.stdout)
    trials, best = doc["trials"], doc["best"]
    assert len(trials) == 2 and {t["params"]["precision"] for t in trials} == {"fp32", "int8-dynamic"}
    feasible = [t for t in trials if t["feasible"]]
    assert best is not None and best["latency_ms"] == min(t["latency_ms"] for t in feasible)
    assert all(t["drop_ci"][1] <= 2.0 for t in feasible)
    files = doc["files"]
    assert Path(files["recipe"]) == out / "recipe.json" and Path(files["png"]) == out / "pareto.png"
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["edgekit_recipe"] == 1 and recipe["target"] == "onnx"
    assert recipe == best["recipe"] or recipe["convert"] == best["recipe"]["convert"]
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert f"{best['latency_ms']:.3f}" in html and "http://" not in html and "https://" not in html
    # one progress row per finished trial on stderr, with its latency
    for t in trials:
        assert f"latency {t['latency_ms']:.3f} ms" in result.stderr, result.stderr


def test_rerun_resumes_the_study_and_prints_the_table(run, digits):
    out, first = run
    before = json.loads(first.stdout)
    again = _tune(digits, out)  # same storage (out/tune.db) and derived study: nothing left to run
    assert again.exit_code == 0, describe(again)
    assert "trial " not in again.stderr  # no new trial ran
    best = before["best"]
    assert f"best feasible trial #{best['number']}" in again.stdout
    assert f"{best['latency_ms']:.3f}" in again.stdout
    assert "recipe" in again.stdout and str(out / "report.html") in again.stdout.replace("\n", "")


@pytest.mark.parametrize("args, fragment", [
    (["--sampler", "annealing"], "--sampler"),
    (["--objective", "speed"], "--objective"),
    (["--space", "precision"], "--space"),
    (["--storage", "tune.db"], "--storage"),
    (["--targets", "tflite,nope"], "nope"),
    (["--space", "no.such_knob=1,2"], "no.such_knob"),
])
def test_bad_option_is_a_user_error(digits, tmp_path, args, fragment):
    user_error(_tune(digits, tmp_path / "out", *args), fragment)
    assert not (tmp_path / "out" / "tune.db").exists() or fragment == "no.such_knob"


def test_missing_data_is_a_user_error(digits, tmp_path):
    r = invoke("tune", digits["onnx"], "--data", tmp_path / "none.npz", "--targets", "onnx", "-o", tmp_path / "o")
    user_error(r, "none.npz")


def test_no_feasible_trial_exits_1(digits, tmp_path):
    r = _tune(digits, tmp_path / "out", "--max-latency-ms", "0.000001", "--json")
    assert r.exit_code == 1, describe(r)
    doc = json.loads(r.stdout)
    assert doc["best"] is None and len(doc["trials"]) == 2
    assert all(t["state"] == "infeasible" and not t["feasible"] for t in doc["trials"])
    assert all(t["latency_ms"] > 0.000001 for t in doc["trials"])
    assert not (tmp_path / "out" / "recipe.json").exists()
    assert (tmp_path / "out" / "report.html").exists() and (tmp_path / "out" / "pareto.png").exists()


def test_ctrl_c_keeps_finished_trials_and_the_same_command_resumes(digits, tmp_path, monkeypatch):
    from edgekit.tuning import engine

    real, calls = engine.run_trial, []

    def interrupt_second(setup, src, number, params):  # Ctrl-C during the second trial
        calls.append(number)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(setup, src, number, params)

    monkeypatch.setattr(engine, "run_trial", interrupt_second)
    out = tmp_path / "out"
    r = _tune(digits, out)
    assert r.exit_code == 130, describe(r)
    assert "interrupted: 1 finished trial" in r.stderr and "to resume, run the same command again" in r.stderr
    monkeypatch.setattr(engine, "run_trial", real)
    again = _tune(digits, out, "--json")
    assert again.exit_code == 0, describe(again)
    doc = json.loads(again.stdout)
    done = [t for t in doc["trials"] if t["state"] != "failed"]
    assert {t["params"]["precision"] for t in done} == {"fp32", "int8-dynamic"}  # the grid is complete
    assert again.stderr.count("trial ") == 1  # only the interrupted configuration ran again
