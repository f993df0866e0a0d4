"""Hardware-aware model search with `edgekit.tune(build=fn)`: each trial trains a small Keras CNN on scikit-learn's
digits with the hyperparameters the trial draws, then converts, compresses, validates and times it on the target
like any other tune trial. Two objectives (accuracy up, latency down) give the Pareto front of models that are
accurate *and* fast on this machine, each with the conversion settings that got it there.

    .venv/bin/python sdk/examples/tune_build_fn.py [--trials 8] [--targets tflite] [--output-dir tune_build_out]

The model hyperparameters come from ``trial.suggest_*`` inside ``build``; the conversion knobs (precision,
threads...) are drawn by edgekit in the same trial, so the sampler learns both together. Accuracy is measured on
the held-out split, which no model trains on.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def digits_split():
    """scikit-learn's digits, 80/20 stratified, pixels 0..1, NHWC (as sdk/examples/digits/train.py)."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    return train_test_split(x, d.target.astype(np.int64), test_size=0.2, stratify=d.target, random_state=0)


def build(trial):
    """One candidate model: its width and depth drawn by the trial, trained for a few epochs."""
    import keras

    x_tr, _, y_tr, _ = digits_split()
    filters = trial.suggest_categorical("filters", [4, 8, 16, 32])
    dense = trial.suggest_categorical("dense", [16, 32, 64])
    second_conv = trial.suggest_categorical("second_conv", [False, True])
    keras.utils.set_random_seed(trial.number)
    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(inp)
    if second_conv:
        x = keras.layers.Conv2D(filters * 2, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(dense, activation="relu")(x)
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="probs")(x))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x_tr, y_tr, epochs=10, batch_size=64, verbose=0)
    return model


def main(argv=None) -> None:
    import edgekit.tuning
    from edgekit.tuning import report

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--targets", default="tflite")
    ap.add_argument("--output-dir", type=Path, default=Path("tune_build_out"))
    args = ap.parse_args(argv)
    import numpy as np

    _, x_te, _, y_te = digits_split()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    data = args.output_dir / "digits_test.npz"  # the held-out split: inputs by name, and labels
    np.savez(data, image=x_te, labels=y_te)
    result = edgekit.tuning.tune(
        build=build, data=data, targets=tuple(args.targets.split(",")),
        objectives=("accuracy", "latency"), sampler="tpe", trials=args.trials, max_accuracy_drop=1.0,
        output_dir=args.output_dir, progress=lambda t: print(report.trial_row(t)))
    from rich.console import Console

    Console(width=None if os.isatty(1) else 160).print(report.rich_table(result, pareto_only=True))
    print(report.best_summary(result))
    print(f"HTML report: {report.write_html(result, args.output_dir / 'report.html', budget=1.0)}")


if __name__ == "__main__":
    main()
