"""Search runs: one folder per run holding its configuration, its records and what it shows.

``RunDir`` (``rundir.py``) is the folder and its crash-safe journal of ``Record`` rows (``records.py``);
``outputs.py`` writes the front (CSV), its plot (PNG) and ``summary.md``.
"""

from nasbench.runs.outputs import (
    OBJECTIVES,
    default_reference,
    hypervolume_table,
    objective_frame,
    parse_objectives,
    plot_fronts,
    run_front,
)
from nasbench.runs.records import COLUMNS, SCHEMA, STATUSES, Record, records_frame
from nasbench.runs.rundir import DEFAULT_ROOT, RunDir, make_run_id, read_meta, resolve_run

__all__ = [
    "COLUMNS",
    "DEFAULT_ROOT",
    "OBJECTIVES",
    "SCHEMA",
    "STATUSES",
    "Record",
    "RunDir",
    "default_reference",
    "hypervolume_table",
    "make_run_id",
    "objective_frame",
    "parse_objectives",
    "plot_fronts",
    "read_meta",
    "records_frame",
    "resolve_run",
    "run_front",
]
