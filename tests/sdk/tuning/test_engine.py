"""edgekit.tune's engine on a tiny Keras MLP trained on scikit-learn's digits: every sampler runs, constraints are
honoured (an infeasible trial is never best), a study resumes, the cache reuses artifacts, k-fold rotates the
calibration fold, failures are recorded, and build=fn searches hyperparameters with the deployment knobs."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.checks.metrics import paired_bootstrap_ci
from edgekit.errors import InputError

SMALL = {"precision": ("fp32", "int8-dynamic"), "onnxruntime.threads": (1,), "litert.threads": (1,),
         "onnxruntime.graph_optimization_level": ("all", "basic"), "openvino.threads": (1,),
         "openvino.performance_hint": ("LATENCY",), "openvino.inference_precision": ("f32",),
         "onnx.calibrate_method": ("minmax",), "onnx.activation_type": ("u8",), "onnx.quant_format": ("qdq",),
         "per_channel": (True,), "keep_float": (0,), "openvino.preset": ("performance",),
         "openvino.smooth_quant": (False,), "calibration_samples": (300,)}
FAST = {"bench_s": 0.1, "seed": 0}


def _digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y.astype(np.int64)


def _mlp(units: int = 32, epochs: int = 12, seed: int = 0):
    import keras

    X, y = _digits()
    keras.utils.set_random_seed(seed)
    i = keras.Input((64,), name="x")
    h = keras.layers.Dense(units, activation="relu")(i)
    m = keras.Model(i, keras.layers.Dense(10, activation="softmax")(h))
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(X[:1000], y[:1000], epochs=epochs, batch_size=32, verbose=0)
    return m


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    X, y = _digits()
    _mlp().save(root / "mlp.keras")
    np.savez(root / "test.npz", x=X[1400:], labels=y[1400:])
    np.savez(root / "cal.npz", x=X[1000:1400])
    return {"model": root / "mlp.keras", "data": root / "test.npz", "cal": root / "cal.npz", "out": root / "out",
            "X": X[1400:], "y": y[1400:]}


def _tune(case, **kw):
    from edgekit.tuning import tune

    opts = {"output_dir": case["out"], "targets": ("onnx",), "space": SMALL, **FAST, **kw}
    return tune(case["model"], case["data"], **opts)


def _run(path, X):
    import edgekit

    with edgekit.load(path) as m:
        from edgekit.batching import predict_samples

        return next(iter(predict_samples(m, {m.inputs[0].name: X}).values()))


def test_grid_visits_each_configuration_once_and_resumes(case, tmp_path):
    db = f"sqlite:///{tmp_path / 'grid.db'}"
    first = _tune(case, sampler="grid", trials=3, storage=db, study="g", targets=("onnx", "tflite"))
    assert len(first.trials) == 3
    again = _tune(case, sampler="grid", trials=5, storage=db, study="g", targets=("onnx", "tflite"))
    assert [t.number for t in again.trials] == [0, 1, 2, 3, 4]  # resumed: 3 kept, 2 added
    keys = [tuple(sorted(t.params.items())) for t in again.trials]
    assert len(set(keys)) == 5  # no configuration twice
    done = _tune(case, sampler="grid", storage=db, study="g", targets=("onnx", "tflite"))  # the whole grid: 4 + 2
    assert len(done.trials) == 6 and len({tuple(sorted(t.params.items())) for t in done.trials}) == 6
    assert {t.params["target"] for t in done.trials} == {"onnx", "tflite"}
    assert all("onnxruntime.threads" not in t.params for t in done.trials if t.params["target"] == "tflite")


@pytest.mark.parametrize("sampler", ["random", "tpe", "gp", "nsga2"])
def test_each_sampler_runs(case, tmp_path, sampler):
    objectives = ("latency", "size") if sampler == "nsga2" else ("latency",)
    res = _tune(case, sampler=sampler, trials=4, storage=f"sqlite:///{tmp_path / 's.db'}", objectives=objectives,
                max_accuracy_drop=2.0)
    assert len(res.trials) == 4 and all(t.state in ("complete", "infeasible") for t in res.trials)
    for t in res.trials:  # the numbers are the source's and the candidate's on the same 397 samples
        assert t.drop_ci[0] <= t.accuracy_drop <= t.drop_ci[1] and t.latency_ms > 0 and t.size_mb > 0
        assert t.feasible == (t.drop_ci[1] <= 2.0)
    assert res.baseline["accuracy"] == pytest.approx(float(np.mean(_run(case["model"], case["X"]).argmax(-1)
                                                                   == case["y"])))
    feasible = [t for t in res.trials if t.feasible]
    assert res.best is not None and res.best.latency_ms == min(t.latency_ms for t in feasible)
    for p in res.pareto:  # nobody feasible dominates a Pareto member
        assert not any(q.accuracy_drop <= p.accuracy_drop and q.latency_ms <= p.latency_ms and q.size_mb <= p.size_mb
                       and (q.accuracy_drop, q.latency_ms, q.size_mb) != (p.accuracy_drop, p.latency_ms, p.size_mb)
                       for q in feasible)


def test_drop_and_ci_are_the_bootstrap_of_the_artifact(case, tmp_path):
    res = _tune(case, sampler="random", trials=1, storage=f"sqlite:///{tmp_path / 'c.db'}",
                space={**SMALL, "precision": ("int8-dynamic",)})
    t = res.trials[0]
    ref, cand = _run(case["model"], case["X"]), _run(t.artifact, case["X"])
    ci = paired_bootstrap_ci(case["y"], ref, cand, n_boot=1000, seed=0)
    assert t.accuracy == pytest.approx(float(np.mean(cand.argmax(-1) == case["y"])))
    assert t.accuracy_drop == pytest.approx(-100 * ci["delta"])
    assert t.drop_ci == pytest.approx((-100 * ci["high"], -100 * ci["low"]))


def test_infeasible_trials_are_never_best(case, tmp_path):
    db = f"sqlite:///{tmp_path / 'k.db'}"
    sizes = _tune(case, sampler="grid", storage=db, study="all").trials
    small = min(t.size_mb for t in sizes)
    limit = (small + max(t.size_mb for t in sizes)) / 2  # between the int8 and fp32 files
    res = _tune(case, sampler="tpe", trials=4, storage=db, study="lim", max_size_mb=limit)
    for t in res.trials:
        assert t.feasible == (t.size_mb <= limit and t.drop_ci[1] <= 1.0)
        if not t.feasible:
            assert t.state == "infeasible" and t.reason
    assert res.best is not None and res.best.size_mb <= limit and res.best.feasible
    none = _tune(case, sampler="random", trials=2, storage=db, study="none", max_size_mb=small / 10)
    assert none.best is None and none.pareto == [] and all(t.state == "infeasible" for t in none.trials)
    assert all("MB >" in t.reason for t in none.trials)
    with pytest.raises(InputError, match="no feasible trial"):
        none.write_recipe(tmp_path / "r.json")


def test_cache_hit_reuses_the_artifact(case, tmp_path):
    one = {**SMALL, "precision": ("fp32",), "onnxruntime.graph_optimization_level": ("all",)}
    a = _tune(case, sampler="random", trials=1, storage=f"sqlite:///{tmp_path / 'a.db'}", space=one).trials[0]
    b = _tune(case, sampler="random", trials=1, storage=f"sqlite:///{tmp_path / 'b.db'}", space=one).trials[0]
    assert b.extra["cache_hit"] is True and b.artifact == a.artifact
    assert b.extra["cache_key"] == a.extra["cache_key"] and b.accuracy == a.accuracy
    assert b.extra["convert_s"] < b.extra["convert_fresh_s"]  # a lookup, not a conversion


def test_kfold_rotates_the_calibration_fold(case, tmp_path):
    from edgekit.tuning.folds import splits

    parts = splits(397, 3, seed=0)
    assert all(len(set(p.calibration) & set(p.evaluation)) == 0 and len(p.calibration) + len(p.evaluation) == 397
               for p in parts)
    assert sorted(np.concatenate([p.calibration for p in parts]).tolist()) == list(range(397))
    space = {**SMALL, "precision": ("int8",), "onnxruntime.graph_optimization_level": ("all",)}
    res = _tune(case, sampler="random", trials=1, storage=f"sqlite:///{tmp_path / 'f.db'}", folds=3, space=space)
    t = res.trials[0]
    assert t.folds["k"] == 3 and [f["samples"] for f in t.folds["per_fold"]] == [len(p.evaluation) for p in parts]
    accs = [f["accuracy"] for f in t.folds["per_fold"]]
    assert t.accuracy == pytest.approx(np.mean(accs)) and t.folds["accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    assert t.drop_ci[1] == max(f["drop_ci"][1] for f in t.folds["per_fold"])
    assert not any("calibrating on the evaluation data" in w for w in res.warnings)
    plain = _tune(case, sampler="random", trials=1, storage=f"sqlite:///{tmp_path / 'p.db'}", space=space)
    assert any("calibrating on the evaluation data" in w for w in plain.warnings)
    given = _tune(case, sampler="random", trials=1, storage=f"sqlite:///{tmp_path / 'q.db'}", space=space,
                  calibration=case["cal"])
    assert not any("calibrating on the evaluation data" in w for w in given.warnings)
    assert given.trials[0].recipe["calibration"]["samples"] == 400
    same = _tune(case, sampler="random", trials=1, storage=f"sqlite:///{tmp_path / 'r.db'}", space=space,
                 calibration=case["data"])  # the evaluation file again: said so
    assert any(w.startswith("397 of the 397 calibration samples are also evaluation samples") for w in same.warnings)
    assert same.trials[0].extra["cache_hit"]  # the same samples as calibrating on the evaluation data above


def test_a_failing_trial_is_recorded_and_the_study_goes_on(case, tmp_path):
    space = {**SMALL, "precision": ("fp32",), "onnxruntime.graph_optimization_level": ("all",), "batch": (1, 10_000)}
    res = _tune(case, sampler="grid", storage=f"sqlite:///{tmp_path / 'x.db'}", space=space)
    states = {t.params["batch"]: t for t in res.trials}
    assert states[10_000].state == "failed" and "batch 10000" in states[10_000].reason
    assert len(res.trials) == 2 and states[1].state == "complete" and res.best.number == states[1].number


def test_build_searches_hyperparameters_with_the_knobs(case, tmp_path):
    from edgekit.tuning import tune

    def build(trial):
        return _mlp(units=trial.suggest_categorical("units", (8, 24)), epochs=4)

    res = tune(build=build, data=case["data"], targets=("onnx",), space=SMALL, sampler="random", trials=2,
               output_dir=tmp_path / "b", objectives=("latency", "accuracy"), **FAST)
    assert len(res.trials) == 2 and all(t.state in ("complete", "infeasible") for t in res.trials)
    assert all(t.params["build"]["units"] in (8, 24) and t.accuracy > 0.5 for t in res.trials)

    def torch_build(trial):
        import torch

        torch.manual_seed(0)
        X, y = _digits()
        net = torch.nn.Sequential(torch.nn.Linear(64, trial.suggest_categorical("hidden", (16,))), torch.nn.ReLU(),
                                  torch.nn.Linear(16, 10))
        opt = torch.optim.Adam(net.parameters(), 0.01)
        for _ in range(60):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(torch.from_numpy(X[:1000])), torch.from_numpy(y[:1000])).backward()
            opt.step()
        return net.eval(), torch.zeros(1, 64)

    res = tune(build=torch_build, data={"x": case["X"]}, targets=("onnx",), space=SMALL, sampler="tpe", trials=1,
               output_dir=tmp_path / "t", **FAST)
    t = res.trials[0]
    assert t.state in ("complete", "infeasible") and t.params["build"] == {"hidden": 16}
    assert any("no labels" in w for w in res.warnings)  # agreement with the source, said so

    def sk_build(trial):
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier((8,), max_iter=5)

    with pytest.raises(InputError, match="skl2onnx"):
        tune(build=sk_build, data=case["data"], targets=("onnx",), space=SMALL, sampler="random", trials=1,
             output_dir=tmp_path / "s", **FAST)


def test_ctrl_c_keeps_finished_trials_and_the_study_resumes(case, tmp_path):
    db = f"sqlite:///{tmp_path / 'i.db'}"
    seen = []

    def stop_after_two(t):
        seen.append(t.number)
        if len(seen) == 2:
            raise KeyboardInterrupt

    res = _tune(case, sampler="random", trials=5, storage=db, study="i", progress=stop_after_two)
    assert res.interrupted and [t.number for t in res.trials] == [0, 1]
    assert any("interrupted" in w for w in res.warnings)
    more = _tune(case, sampler="random", trials=4, storage=db, study="i")
    assert not more.interrupted and [t.number for t in more.trials] == [0, 1, 2, 3]
    assert [t.to_dict() for t in more.trials[:2]] == [t.to_dict() for t in res.trials]


def test_runner_knobs_reach_the_runtimes(case, tmp_path):
    from edgekit.machine import cpu_info
    from edgekit.runtimes import openvino as ov_runtime
    from edgekit.tuning.objective import open_model

    res = _tune(case, sampler="random", trials=1, storage=f"sqlite:///{tmp_path / 'r.db'}", targets=("openvino",),
                space={**SMALL, "precision": ("fp32",)})
    with open_model(res.trials[0].artifact, "openvino", {"threads": 1, "performance_hint": "THROUGHPUT"}) as m:
        assert str(m.runner.compiled.get_property("PERFORMANCE_HINT")) == "THROUGHPUT"
    one = _tune(case, sampler="random", trials=1, storage=f"sqlite:///{tmp_path / 'o.db'}",
                space={**SMALL, "precision": ("fp32",)}).trials[0]
    with open_model(one.artifact, "onnx", {"threads": 1, "graph_optimization_level": "basic"}) as m:
        import onnxruntime as ort

        opts = m.runner.session.get_session_options()
        assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        assert opts.intra_op_num_threads == 1
    bf16 = bool({"avx512_bf16", "amx_bf16", "bf16"} & set(cpu_info()["isa"]))
    knob = next(k for k in ov_runtime.KNOBS if k.name == "openvino.inference_precision")
    assert ("bf16" in knob.choices) == bf16


def test_grid_reruns_a_point_interrupted_inside_its_trial(case, tmp_path, monkeypatch):
    from edgekit.tuning import engine

    real, calls = engine.run_trial, []

    def interrupt_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(engine, "run_trial", interrupt_second)
    space = {**SMALL, "onnxruntime.graph_optimization_level": ("all",)}
    db = f"sqlite:///{tmp_path / 'g.db'}"
    first = _tune(case, sampler="grid", storage=db, study="g", space=space)
    assert first.interrupted and [t.number for t in first.trials] == [0]
    monkeypatch.setattr(engine, "run_trial", real)
    again = _tune(case, sampler="grid", storage=db, study="g", space=space)
    assert [t.number for t in again.trials] == [0, 2]  # trial 1 was cut; trial 2 ran its point
    assert {t.params["precision"] for t in again.trials} == {"fp32", "int8-dynamic"}
    assert any("interrupted before a result" in w for w in again.warnings)


def test_space_is_conditional_and_the_grid_enumerates_it():
    import optuna

    from edgekit.tuning.space import build_space

    sp = build_space(("onnx", "tflite"), {**SMALL, "precision": ("fp32", "int8", "int4-weights"),
                                          "onnx.calibrate_method": ("minmax", "entropy")})
    configs = sp.configs()
    onnx = [c for c in configs if c["target"] == "onnx"]
    tfl = [c for c in configs if c["target"] == "tflite"]
    # onnx: fp32 and int4-weights x 2 graph levels, int8 x 2 graph levels x 2 calibrate methods; tflite: fp32, int8
    assert len(onnx) == 2 * 2 + 2 * 2 and len(tfl) == 2 and len(configs) == len({str(c) for c in configs})
    assert {c["precision"] for c in tfl} == {"fp32", "int8"}  # no 4-bit weights pass for TFLite
    assert all(("onnx.calibrate_method" in c) == (c["precision"] == "int8") for c in onnx)
    assert all("onnxruntime.threads" not in c and "per_channel" not in c for c in tfl)
    assert all(("keep_float" in c) == (c["precision"] == "int8") for c in tfl)  # TFLite's debugger denylists
    assert sp.param[("precision", "onnx")] == "precision:onnx"  # choices differ per target: one name each
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = [sp.suggest(study.ask()) for _ in range(20)]
    assert all(d in configs for d in drawn) and len({str(d) for d in drawn}) > 3
    with pytest.raises(InputError, match="unknown knob 'nope'"):
        build_space(("onnx",), {"nope": (1,)})


def test_a_configuration_drawn_again_reuses_its_result(case, tmp_path):
    """Random sampling over 2 configurations for 5 trials must repeat; a repeat reuses the first measurement
    (the minimum of several noisy timings of one model would otherwise beat the others) and says so."""
    space = {**SMALL, "precision": ("fp32",)}  # target onnx: 2 configurations (graph optimization level)
    res = _tune(case, sampler="random", trials=5, space=space, storage=f"sqlite:///{tmp_path / 'r.db'}", study="r")
    assert len(res.trials) == 5
    first = {}
    for t in res.trials:
        key = tuple(sorted((k, str(v)) for k, v in t.params.items()))
        if key in first:
            assert t.extra["repeat_of"] == first[key].number
            assert (t.latency_ms, t.accuracy_drop, t.drop_ci) == (first[key].latency_ms, first[key].accuracy_drop,
                                                                 first[key].drop_ci)
        else:
            assert "repeat_of" not in t.extra
            first[key] = t
    assert len(first) <= 2 and sum("repeat_of" in t.extra for t in res.trials) == 5 - len(first)


def test_pareto_front_counts_accuracy_when_it_is_an_objective():
    from edgekit.tuning.result import TrialResult, pareto_front

    def trial(n, acc, lat):
        return TrialResult(number=n, params={}, state="complete", target="onnx", accuracy=acc, accuracy_drop=0.0,
                           drop_ci=(0.0, 0.0), latency_ms=lat, size_mb=0.01, peak_memory_mb=1.0, feasible=True,
                           reason=None, artifact=None, recipe=None, folds=None)

    accurate, fast = trial(0, 0.97, 0.011), trial(1, 0.95, 0.010)
    assert pareto_front([accurate, fast], ("latency",)) == [fast]
    assert {t.number for t in pareto_front([accurate, fast], ("accuracy", "latency"))} == {0, 1}
