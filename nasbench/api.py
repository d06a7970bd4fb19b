"""A search run's results from Python: ``nasbench.load_run(path) -> Run``.

``Run`` holds the records as a pandas DataFrame (one row per evaluated architecture), the Pareto front and
the stored configuration; ``nasbench.search(...)`` (``nasbench.pipeline.run.search``) returns one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nasbench.objectives.table import ACCURACY_DEFAULT


@dataclass(frozen=True)
class Run:
    """A search run read back: where it is, how it was configured, what it found."""

    path: Path
    run_id: str
    config: dict[str, Any]  # the settings the run was started with (``config.json``)
    records: pd.DataFrame  # every evaluation, ``nasbench.runs.records.SCHEMA``'s columns
    front: pd.DataFrame  # the Pareto front of the ok records over the run's objectives (pareto.csv's columns)

    @property
    def objectives(self) -> list[str]:
        return list(self.config.get("objectives") or ACCURACY_DEFAULT)


def load_run(path: str | os.PathLike) -> Run:
    """Read a search run (finished, or still running: what it has recorded so far) from its folder or id."""
    from nasbench.runs import RunDir

    run = RunDir.open(path)
    return Run(run.path, run.run_id, dict(run.config), run.records(), run.front())
