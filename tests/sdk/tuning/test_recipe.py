"""Recipes: the best tuned trial written as JSON (with its calibration samples beside it) and replayed by
`edgekit.convert(model, recipe=...)` and `edgekit convert MODEL --recipe FILE` to a model whose outputs equal the
tuned artifact's on the evaluation data; a recipe is refused on another source or other calibration samples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.errors import InputError

BASE = {"onnxruntime.threads": (1,), "onnxruntime.graph_optimization_level": ("all",), "openvino.threads": (1,),
        "openvino.performance_hint": ("LATENCY",), "openvino.inference_precision": ("f32",), "litert.threads": (1,),
        "onnx.activation_type": ("u8",), "onnx.quant_format": ("qdq",), "per_channel": (True,),
        "openvino.smooth_quant": (False,), "calibration_samples": (300,)}


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    import keras
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("recipe")
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    keras.utils.set_random_seed(1)
    i = keras.Input((64,), name="x")
    h = keras.layers.Dense(24, activation="relu")(i)
    m = keras.Model(i, keras.layers.Dense(10, activation="softmax")(h))
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(X[:1000], y[:1000], epochs=10, verbose=0)
    m.save(root / "mlp.keras")
    np.savez(root / "test.npz", x=X[1400:], labels=y[1400:])
    np.savez(root / "cal.npz", x=X[1000:1400])
    return {"root": root, "model": root / "mlp.keras", "data": root / "test.npz", "cal": root / "cal.npz",
            "X": X[1400:]}


def _outputs(path, X):
    import edgekit
    from edgekit.batching import predict_samples

    with edgekit.load(path, threads=1) as m:
        return next(iter(predict_samples(m, {m.inputs[0].name: X}).values()))


def _best(case, tmp_path, target, space, **kw):
    from edgekit.tuning import tune

    res = tune(case["model"], case["data"], targets=(target,), space={**BASE, **space}, sampler="grid",
               output_dir=case["root"] / "out", storage=f"sqlite:///{tmp_path / 't.db'}", bench_s=0.1,
               max_accuracy_drop=5.0, **kw)
    assert res.best is not None, [t.reason for t in res.trials]
    return res


@pytest.mark.parametrize("target, space", [
    ("onnx", {"precision": ("int8",), "onnx.calibrate_method": ("percentile",), "keep_float": (1,)}),
    ("openvino", {"precision": ("int8",), "openvino.preset": ("mixed",), "keep_float": (0,)}),
    ("tflite", {"precision": ("int8-dynamic",)}),
])
def test_recipe_replays_to_the_tuned_model(case, tmp_path, target, space):
    import edgekit

    res = _best(case, tmp_path, target, space, calibration=case["cal"])
    recipe = res.write_recipe(tmp_path / "best.json")
    rec = json.loads(recipe.read_text())
    assert rec["edgekit_recipe"] == 1 and rec["target"] == target and rec["metrics"]["trial"] == res.best.number
    assert rec["convert"]["precision"] == space["precision"][0]
    tuned = _outputs(res.best.artifact, case["X"])
    again = edgekit.convert(case["model"], recipe=recipe, output_dir=tmp_path / "replay")
    assert again[target].path is not None, again[target].error
    np.testing.assert_array_equal(_outputs(again[target].path, case["X"]), tuned)
    if rec["calibration"]:
        assert (tmp_path / rec["calibration"]["file"]).is_file() and rec["calibration"]["samples"] == 400


def test_cli_convert_recipe_and_refusals(case, tmp_path):
    from tests.sdk.cli.cli_util import invoke

    space = {"precision": ("int8",), "onnx.calibrate_method": ("minmax",), "keep_float": (0,)}
    res = _best(case, tmp_path, "onnx", space, folds=2)  # calibrated on a fold of the evaluation data
    recipe = res.write_recipe(tmp_path / "r" / "best.json")
    assert json.loads(recipe.read_text())["calibration"]["from"] == "fold rotation of the evaluation data"
    out = tmp_path / "cli"
    r = invoke("convert", case["model"], "--recipe", recipe, "--output-dir", out, "--json")
    assert r.exit_code == 0, r.output
    path = out / json.loads(r.stdout)["targets"][0]["path"]  # relative to the manifest
    np.testing.assert_array_equal(_outputs(path, case["X"]), _outputs(res.best.artifact, case["X"]))

    other = tmp_path / "other.keras"
    other.write_bytes(case["model"].read_bytes() + b"\0")  # not the tuned source
    r = invoke("convert", other, "--recipe", recipe, "--output-dir", tmp_path / "o")
    assert r.exit_code == 2 and "not the model the recipe was tuned on" in r.output
    cal = recipe.parent / json.loads(recipe.read_text())["calibration"]["file"]
    with np.load(cal) as z:
        np.savez(cal, **{k: z[k] * 0.5 for k in z.files})
    with pytest.raises(InputError, match="not the calibration data"):
        import edgekit

        edgekit.convert(case["model"], recipe=recipe, output_dir=tmp_path / "bad")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    r = invoke("convert", case["model"], "--recipe", bad, "--output-dir", tmp_path / "b")
    assert r.exit_code == 2 and "not an edgekit recipe" in r.output
    r = invoke("convert", case["model"], "--output-dir", tmp_path / "n")  # neither --to nor --recipe
    assert r.exit_code == 2 and "no target given" in r.output
