"""Many workers share one study through PostgreSQL (`edgekit tune --storage postgresql://`): a real server started
on 127.0.0.1 by tests/services.py, two worker processes running the tuner at once on the same grid study. Every
configuration of the grid is run exactly once: none lost, none duplicated."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

import pytest

from model_factory import copy_digits
from services import postgres_url  # noqa: F401  (the fixture)

# the grid: 3 precisions x 2 graph-optimization levels on one target, one thread (6 configurations)
SPACE = {"precision": ("fp32", "fp16", "int8-dynamic"), "onnxruntime.graph_optimization_level": ("all", "basic"),
         "onnxruntime.threads": (1,)}
GRID = [dict(zip(SPACE, combo)) for combo in itertools.product(*SPACE.values())]

WORKER = textwrap.dedent("""
    import json, sys
    import edgekit
    model, data, url, study, out, space = sys.argv[1:7]
    space = {k: tuple(v) for k, v in json.loads(space).items()}
    mine = []  # the trials this worker ran (progress is called by the worker that ran the trial)
    r = edgekit.tune(model, data, targets=("onnx",), sampler="grid", storage=url, study=study, space=space,
                     output_dir=out, max_accuracy_drop=5.0, progress=mine.append)
    print("RESULT " + json.dumps([{"number": t.number, "params": t.params, "state": t.state} for t in mine]))
    print("STUDY " + json.dumps(sorted(t.number for t in r.trials)))
""")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return copy_digits(tmp_path_factory.mktemp("digits"))


def _config(params: dict) -> tuple:
    return tuple(params.get(k) for k in SPACE)


def test_two_workers_share_one_grid_study(postgres_url, digits, tmp_path):  # noqa: F811
    assert postgres_url.startswith("postgresql://edgekit@127.0.0.1:")
    args = [str(digits["onnx"]), str(digits["data"]), postgres_url, "pg-grid"]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, *args, str(tmp_path / f"w{i}"), json.dumps(SPACE)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, f"worker exit {p.returncode}\n{out[-2000:]}\n{err[-4000:]}"

    from edgekit.tuning import load_study

    study = load_study(postgres_url, "pg-grid")
    stored = study.get_trials(deepcopy=False)
    # a worker that asks for a trial after the grid was handed out gets a surplus trial: pruned, marked, no result
    extra = [t for t in stored if t.state.name != "COMPLETE"]
    assert all(t.state.name == "PRUNED" and t.user_attrs.get("edgekit_surplus") for t in extra), \
        [(t.number, t.state.name, t.user_attrs) for t in extra]
    trials = [t for t in stored if t.state.name == "COMPLETE"]
    # each worker ran a share: together they cover the grid, each configuration once
    mine = [json.loads(out.split("RESULT ", 1)[1].splitlines()[0]) for out, _ in outs]
    # each worker's TuneResult reports the whole study, its own trials and the other's
    seen = [json.loads(out.split("STUDY ", 1)[1].splitlines()[0]) for out, _ in outs]
    assert seen[1] == sorted(t.number for t in trials) or seen[0] == sorted(t.number for t in trials), seen
    numbers = [t["number"] for w in mine for t in w]
    assert sorted(numbers) == sorted(t.number for t in trials), "the workers' trials are the study's trials"
    by_worker = [{t["number"] for t in w} for w in mine]
    assert len(trials) == len(GRID) == 6
    ran = sorted(_config(t["params"]) for w in mine for t in w)
    assert ran == sorted(_config(g) for g in GRID), f"each grid configuration exactly once: {ran}"
    assert all(t["params"]["target"] == "onnx" for w in mine for t in w)
    assert all(t["state"] in ("complete", "infeasible") for w in mine for t in w)
    assert by_worker[0] & by_worker[1] == set() and all(by_worker), f"both workers ran trials: {by_worker}"


def test_missing_server_package_fails_naming_make_services(monkeypatch):
    import services

    monkeypatch.setattr(services.glob, "glob", lambda pattern: [])
    with pytest.raises(services.ServiceError, match=r"make services"):
        services.start_postgres()
