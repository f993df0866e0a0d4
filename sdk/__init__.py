"""edgekit: take a trained model to edge and mobile devices with proof that it still works.

The public API: `load`, `convert`, `validate`, `benchmark`, `inspect`, `doctor`, `demo`, `explain_routes`, `tune`,
`monitor`. Each
report they return is a typed object whose ``to_dict()`` is the JSON the matching `edgekit` command writes; the
CLI only parses options, calls these and renders. ``threads=None`` means the device class's default everywhere
(see `edgekit.device_classes`).

``import edgekit`` stays light: no ML framework or runtime is imported until a model is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .errors import (
    BackendError,
    ConversionError,
    EdgekitError,
    InputError,
    MissingDependencyError,
    ModelFileError,
    ParityError,
    PlatformError,
    TrustRequiredError,
    UnsupportedFormatError,
)
from .bench import BenchReport, benchmark
from .conversion import ConvertReport, convert
from .demonstration import DemoReport, demo
from .diagnosis import DoctorReport, doctor
from .formats import Format, ModelSource, detect
from .inspection import InspectReport, inspect
from .model import Model, load
from .precision import Precision
from .types import TensorSpec
from .validation import ValidateReport

__version__ = "0.1.0"


def validate(reference, candidates, data, *, labels=None, task: str | None = None, device_class: str | None = None,
             atol: float | None = None, rtol: float | None = None, output_tolerances: dict | None = None,
             localize: bool = False, batch_size: int = 64, preprocess=None, trust_code: bool = False,
             progress=None):
    """Check converted models against their reference on real data; returns a ValidateReport (the report
    `edgekit validate --json` writes, with attributes and to_dict(); see `edgekit.validation.validate`)."""
    from edgekit.validation import validate as _validate

    return _validate(reference, candidates, data, labels=labels, task=task, device_class=device_class, atol=atol,
                     rtol=rtol, output_tolerances=output_tolerances, localize=localize, batch_size=batch_size,
                     preprocess=preprocess, trust_code=trust_code, progress=progress)


def monitor(model, reference=None, **options):
    """Wrap a loaded Model to record latency, errors, input/output drift against a reference profile and task
    metrics from labels that arrive later; returns a Monitor with the same ``predict`` (see `edgekit.monitoring`)."""
    from edgekit.monitoring import monitor as _monitor

    return _monitor(model, reference, **options)


def tune(model=None, data=None, **options):
    """Search conversion, compression and runtime settings for the fastest deployment within an accuracy budget
    (Optuna); returns a TuneResult (best, pareto, trials). See `edgekit.tuning.tune` for the options."""
    from edgekit.tuning import tune as _tune

    return _tune(model, data, **options)


def explain_routes(source_path: str | os.PathLike, targets: str | Sequence[str]):
    """Each target's conversion routes from the model at ``source_path``: the chosen one, the alternatives and
    what would unlock a blocked one; converts nothing (see `edgekit.converters.planner.explain_routes`)."""
    from edgekit.converters.planner import explain_routes as _explain

    return _explain(source_path, targets)


__all__ = [
    "BackendError", "BenchReport", "ConversionError", "ConvertReport", "DemoReport", "DoctorReport", "EdgekitError",
    "Format", "InputError", "InspectReport", "MissingDependencyError", "Model", "ModelFileError", "ModelSource",
    "ParityError", "PlatformError", "Precision", "TensorSpec", "TrustRequiredError", "UnsupportedFormatError",
    "ValidateReport", "benchmark",
    "convert", "demo", "detect", "doctor", "explain_routes", "inspect", "load", "monitor", "tune", "validate", "__version__",
]
