"""Reference backend for TensorFlow-side source models: Keras 3 `.keras`, legacy `.h5`, SavedModel folders.

Keras safe mode stays on: a model whose config holds Python code (a Lambda layer) is refused, never executed.
A SavedModel is a program (its initializers run at load): Runner.load scans its graph for file, network and Python
ops first (edgekit.trust.require_trust), and one that holds them loads only with ``trust_code=True``.
"""

from __future__ import annotations

import os

import numpy as np

from edgekit.errors import ModelFileError, TrustRequiredError
from edgekit.formats import Format
from edgekit.runtimes.base import Runner
from edgekit.types import TensorSpec, dims


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ start-up logs unless the user asked for them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _tf_dtype(dt) -> str:
    try:
        return np.dtype(getattr(dt, "as_numpy_dtype", dt)).name
    except TypeError:
        return str(dt)


class KerasRunner(Runner):
    name = "keras"
    formats = (Format.KERAS, Format.KERAS_H5, Format.SAVEDMODEL)
    requires = (("keras", "keras", "tensorflow"),)

    def _load(self) -> None:
        from edgekit._quiet import quiet_native

        quiet_tensorflow()
        with quiet_native():
            import tensorflow  # noqa: F401  (its import prints absl logs straight to fd 2)
            import keras
        if self.source.format is Format.SAVEDMODEL:
            self._load_savedmodel()
            return

        path = self.source.path
        try:
            model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
        except ValueError as e:
            if "safe_mode" in str(e) or "lambda" in str(e).lower():
                raise TrustRequiredError(
                    f"{path.name} holds Python code (a Lambda layer); edgekit keeps Keras safe mode on and will "
                    "not run code from a model file",
                    "rebuild the model without Lambda layers (use a custom layer class registered in your code)",
                ) from e
            raise ModelFileError(f"Keras could not load {path.name}: {str(e).splitlines()[0][:300]}") from e
        except (OSError, KeyError, TypeError, EOFError) as e:
            raise ModelFileError(f"Keras could not load {path.name}: {str(e).splitlines()[0][:300]}") from e
        self.model = model
        self.inputs = [TensorSpec(t.name, dims(t.shape), _tf_dtype(t.dtype)) for t in model.inputs]
        out_names = list(getattr(model, "output_names", None) or [])
        if len(out_names) != len(model.outputs):
            out_names = [f"output_{i}" for i in range(len(model.outputs))]
        self.outputs = [TensorSpec(n, dims(t.shape), _tf_dtype(t.dtype)) for n, t in zip(out_names, model.outputs)]
        self._order = [s.name for s in self.inputs]
        self._call = self._call_keras

    def _load_savedmodel(self) -> None:
        import tensorflow as tf

        path = self.source.path
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as e:  # TensorFlow raises many types for a damaged SavedModel
            raise ModelFileError(f"TensorFlow could not load the SavedModel {path.name}: "
                                 f"{str(e).strip().splitlines()[0][:300]}") from e
        sigs = dict(loaded.signatures)
        if not sigs:
            raise ModelFileError(f"the SavedModel {path.name} has no serving signature",
                                 "export it with a signature (keras: model.export(path))")
        key = "serving_default" if "serving_default" in sigs else sorted(sigs)[0]
        fn = sigs[key]
        self._loaded_sm = loaded  # keep the object alive: the signature holds weak references to it
        self.model = fn
        # a signature's inputs and outputs are keyword maps with no stable order: order them by name, as
        # TFLite signatures are (see edgekit.formats.tflite_io.natural_key)
        from edgekit.formats.tflite_io import natural_key

        in_specs = fn.structured_input_signature[1]
        self.inputs = [TensorSpec(k, dims(v.shape), _tf_dtype(v.dtype))
                       for k, v in sorted(in_specs.items(), key=lambda kv: natural_key(kv[0]))]
        self.inputs_ordered = len(self.inputs) < 2  # a signature is a keyword map: no order
        outs = fn.structured_outputs
        self.outputs = [TensorSpec(k, dims(v.shape), _tf_dtype(v.dtype))
                        for k, v in sorted(outs.items(), key=lambda kv: natural_key(kv[0]))]
        self._call = self._call_signature

    def _call_keras(self, feeds):
        xs = [feeds[n] for n in self._order]
        y = self.model(xs if len(xs) > 1 else xs[0], training=False)
        if isinstance(y, dict):
            ys = [y[s.name] for s in self.outputs]
        elif isinstance(y, (list, tuple)):
            ys = list(y)
        else:
            ys = [y]
        return {s.name: np.asarray(v) for s, v in zip(self.outputs, ys)}

    def _call_signature(self, feeds):
        import tensorflow as tf

        y = self.model(**{k: tf.constant(v) for k, v in feeds.items()})
        return {s.name: y[s.name].numpy() for s in self.outputs}

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._call(feeds)

    def _close(self) -> None:
        self.model = None
        self._loaded_sm = None

    def describe(self) -> dict:
        if self.source.format is Format.SAVEDMODEL:
            return {}
        layers: dict[str, int] = {}
        for layer in self.model.layers:
            t = type(layer).__name__
            if t != "InputLayer":
                layers[t] = layers.get(t, 0) + 1
        return {"parameters": int(self.model.count_params()), "ops": layers}
