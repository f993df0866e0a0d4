"""The checking core: one tolerance table, one compare function, the statistics behind them.

- ``tolerances``: the table per precision and device class (the only place a tolerance is defined);
- ``verdict``: ``judge`` / ``compare_outputs``, used by convert's gates and by validate (pass / fail / unverified);
- ``stream``: error statistics accumulated batch by batch; ``metrics``: task metrics (scikit-learn), paired tests;
- ``power``: warnings when a check cannot show a fault (constant reference, too few samples);
- ``localize``: the first operation where a failing candidate departs from its reference.

Importing this package is light (numpy only); scikit-learn, SciPy and the runtimes load inside the functions.
"""

from .power import MIN_AGREEMENT_SAMPLES, MIN_PARITY_SAMPLES, constant_warning, power_warnings

__all__ = ["MIN_AGREEMENT_SAMPLES", "MIN_PARITY_SAMPLES", "constant_warning", "power_warnings"]
