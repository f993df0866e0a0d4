"""edgekit: take a trained model to edge and mobile devices with proof that it still works.

``import edgekit`` stays light: no ML framework or runtime is imported until a model is loaded.
"""

from __future__ import annotations

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
from .conversion import ConvertReport, convert
from .formats import Format, ModelSource, detect
from .model import Model, load
from .types import TensorSpec

__version__ = "0.1.0"


def validate(reference, candidates, data, **kwargs) -> dict:
    """Check converted models against their reference on real data (see `edgekit.validation.validate`)."""
    from edgekit.validation import validate as _validate

    return _validate(reference, candidates, data, **kwargs)


def benchmark(models, **kwargs) -> dict:
    """Measure one or more models (see `edgekit.benchmarks.harness.benchmark` for the options); returns the
    result dict `edgekit bench --json` writes."""
    from edgekit.benchmarks.harness import benchmark as _benchmark

    return _benchmark(models, **kwargs)


__all__ = [
    "BackendError", "ConversionError", "ConvertReport", "EdgekitError", "Format", "InputError", "MissingDependencyError",
    "Model", "ModelFileError", "ModelSource", "ParityError", "PlatformError", "TensorSpec",
    "TrustRequiredError", "UnsupportedFormatError", "benchmark", "convert", "detect", "load", "validate", "__version__",
]
