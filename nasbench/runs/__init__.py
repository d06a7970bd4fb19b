"""Search runs: one folder per run holding its configuration, its records and what it shows.

``RunDir`` (``rundir.py``) owns the folder: every file a named path on it, the crash-safe journal of
``Record`` rows (``records.py``) and the writer's lock. ``outputs.py`` turns a run's records (a DataFrame)
into the front (CSV), its plot (PNG) and ``summary.md``; it knows nothing of the folder.
``OBJECTIVES`` and ``parse_objectives`` are the objectives table's (``nasbench.objectives.table``),
re-exported here for existing callers.
"""

from nasbench.objectives.table import OBJECTIVES, parse_objectives
from nasbench.runs.naming import DEFAULT_ROOT, make_run_id, resolve_run
from nasbench.runs.outputs import (
    default_reference,
    hypervolume_table,
    objective_frame,
    plot_fronts,
    run_front,
)
from nasbench.runs.records import COLUMNS, SCHEMA, STATUSES, Record, Status, records_frame
from nasbench.runs.rundir import RunDir, read_meta

__all__ = [
    "COLUMNS",
    "Status",
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
