"""Monitoring a deployed model: latency, errors, input and output drift, and task metrics when labels arrive.

``edgekit.monitor(model, reference="profile.json")`` wraps a loaded `edgekit.Model` (see `monitor.Monitor`); the
reference profile comes from `edgekit validate ... --save-profile FILE` (`profile.py`). Only numpy is needed to
monitor; scipy gives exact p-values (numpy approximations otherwise), scikit-learn the task metrics, and
prometheus-client the /metrics endpoint (the ``monitor`` extra). Each is imported when first used.
"""

from __future__ import annotations

from .drift import Thresholds
from .monitor import Monitor
from .profile import ProfileBuilder, load_profile, save_profile


def monitor(model, reference=None, **options) -> Monitor:
    """Watch ``model`` (an `edgekit.Model`); ``reference``: a profile file or dict. Options: ``window`` (samples per
    drift test, 1000), ``thresholds`` (`Thresholds` or dict: alpha, psi, js, wasserstein_std, min_samples),
    ``task``, ``log_dir`` (window records, and the sample log when ``sample_rate`` calls/s is given, capped at
    ``sample_max_bytes``), ``feedback_capacity`` (calls remembered for labels), ``metrics_window`` (labelled
    samples the metrics cover), ``port``/``addr`` (serve /metrics; 127.0.0.1 by default)."""
    return Monitor(model, reference, **options)


__all__ = ["Monitor", "ProfileBuilder", "Thresholds", "load_profile", "monitor", "save_profile"]
