"""Latency objectives: honest end-to-end measurement, per-layer lookup tables and a validated predictor.

``measure`` times models (eval, inference mode, warm-up, pinned threads / CUDA events, median and
spread), ``lut`` builds a table of every layer config a space can produce, ``table`` reads and writes
tables (portable: loading never needs the device), ``predict`` fits the end-to-end correction and
validates predictions on held-out archs or refits it on another machine (``calibrate``), ``use`` gives a
search the table over the resolutions it covers and says whose milliseconds it predicts. The commands
(``nasbench latency ...``) are in ``nasbench.cli.latency``.
"""

from nasbench.latency.measure import (
    Context,
    Machine,
    Stats,
    make_context,
    measure_arch,
    measure_interleaved,
    measure_module,
)
from nasbench.latency.table import (
    Correction,
    LatencyTable,
    config_key,
    layer_fingerprint,
    load_table,
    space_fingerprint,
    table_path,
)

__all__ = [
    "Context",
    "Correction",
    "LatencyTable",
    "Machine",
    "Stats",
    "config_key",
    "layer_fingerprint",
    "load_table",
    "make_context",
    "measure_arch",
    "measure_interleaved",
    "measure_module",
    "space_fingerprint",
    "table_path",
]
